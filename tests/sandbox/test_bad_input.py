"""Bad input to every write: the documented 400 envelope, and the store is left exactly as it was."""

from __future__ import annotations

import pytest

from .catalog import BAD_CASES, WRITE_BY_NAME, WRITES, build_ctx, field_matches, shared_ctx
from .conftest import Api, assert_error, assert_unchanged, digest_before


@pytest.mark.parametrize(("name", "idx"), BAD_CASES, ids=[f"{n}-{i}" for n, i in BAD_CASES])
async def test_bad_body_is_400_and_changes_nothing(shared_api: Api, name: str, idx: int) -> None:
    ctx = await shared_ctx(shared_api)
    case = WRITE_BY_NAME[name]
    body_fn, want_field = case.bads[idx]
    before = digest_before(shared_api.sb)
    applied = shared_api.sb.applied_total()
    r = await shared_api.write(case.method, case.path(ctx), body_fn(ctx))
    err = assert_error(r, 400, "validation")
    assert field_matches(err["field"], want_field), err
    assert err["detail"], err
    assert_unchanged(shared_api.sb, before)
    assert shared_api.sb.applied_total() == applied


@pytest.mark.parametrize("name", [w.name for w in WRITES])
async def test_every_write_needs_idempotency_key(shared_api: Api, name: str) -> None:
    ctx = await shared_ctx(shared_api)
    case = WRITE_BY_NAME[name]
    before = digest_before(shared_api.sb)
    r = await shared_api.write(case.method, case.path(ctx), case.good(ctx), key=None)
    assert_error(r, 400, "validation", "Idempotency-Key")
    assert_unchanged(shared_api.sb, before)


@pytest.mark.parametrize("name", [w.name for w in WRITES if w.method != "DELETE" or w.name != "image_delete"])
async def test_malformed_json_is_400(shared_api: Api, name: str) -> None:
    ctx = await shared_ctx(shared_api)
    case = WRITE_BY_NAME[name]
    before = digest_before(shared_api.sb)
    r = await shared_api.client().request(
        case.method,
        case.path(ctx),
        content=b"{not json",
        headers={"Idempotency-Key": "k-malformed", "Content-Type": "application/json"},
    )
    assert_error(r, 400, "validation")
    assert_unchanged(shared_api.sb, before)


@pytest.mark.parametrize("name", [w.name for w in WRITES])
async def test_good_body_is_accepted(api: Api, name: str) -> None:
    """The counterpart: the good bodies are really accepted (so the bad ones fail for their fault)."""
    ctx = await build_ctx(api)
    case = WRITE_BY_NAME[name]
    r = await api.write(case.method, case.path(ctx), case.good(ctx))
    assert r.status_code == case.ok_status, r.text
    if case.ok_status == 202:
        op = r.json()
        assert op["uuid"].startswith("op-")
        assert r.headers["Location"] == f"/v1/operations/{op['uuid']}"
        assert op["status"] in ("pending", "running", "succeeded"), op


@pytest.mark.parametrize("name", [w.name for w in WRITES])
async def test_unknown_body_field_refused(shared_api: Api, name: str) -> None:
    ctx = await shared_ctx(shared_api)
    case = WRITE_BY_NAME[name]
    body = case.good(ctx)
    body = {**(body or {}), "bogus_field": 1}
    before = digest_before(shared_api.sb)
    r = await shared_api.write(case.method, case.path(ctx), body)
    assert_error(r, 400, "validation", "bogus_field")
    assert_unchanged(shared_api.sb, before)


async def test_unknown_route_and_method(shared_api: Api) -> None:
    assert_error(await shared_api.get("/v1/nothing-here"), 404, "not_found")
    r = await shared_api.write("PUT", "/v1/me", {})
    assert r.status_code == 405, r.text
    assert r.json()["error"]["code"] == "method_not_allowed"

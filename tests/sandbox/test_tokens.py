"""Tokens and scopes: 401, 403 api_not_enabled, 403 forbidden naming the scope, check order, /v1/me."""

from __future__ import annotations

import pytest

from .catalog import WRITE_BY_NAME, WRITES, build_ctx, shared_ctx
from .conftest import (
    ADMIN,
    ALL_SCOPES,
    DISABLED,
    EDITOR,
    READONLY,
    UPLOADER,
    Api,
    assert_error,
    assert_unchanged,
    digest_before,
    new_key,
)

SCOPES = {
    ADMIN: ALL_SCOPES,
    EDITOR: [
        "api.images.read",
        "api.images.write",
        "api.keywords.write",
        "api.ratings.write",
        "api.metadata.write",
        "api.sets.write",
    ],
    READONLY: ["api.images.read"],
    UPLOADER: ["api.images.read", "api.upload", "api.download"],
}

READ_PATHS = [
    "/v1/images",
    "/v1/keywords",
    "/v1/keywords/namespaces",
    "/v1/metadata_profiles",
    "/v1/sets",
    "/v1/sets/tree",
    "/v1/facets",
]


@pytest.mark.parametrize("tok", list(SCOPES))
async def test_me_per_token(api: Api, tok: str) -> None:
    r = await api.get("/v1/me", tok)
    assert r.status_code == 200, r.text
    me = r.json()
    assert sorted(me["capabilities"]) == sorted(SCOPES[tok])
    assert me["account"]["name"] == "Riverside Sound Festival"
    assert me["account"]["unique_id"] == "riverside"
    assert set(me["service_token"]) >= {"uuid", "name"}
    assert me.get("user") is None


@pytest.mark.parametrize("path", ["/v1/me", *READ_PATHS])
async def test_missing_or_unknown_token_401(api: Api, path: str) -> None:
    assert_error(await api.get(path, None), 401, "unauthorized")
    assert_error(await api.get(path, "dpg_api_live_nope"), 401, "unauthorized")
    r = await api.client(None).get(path, headers={"Authorization": f"Basic {ADMIN}"})
    assert_error(r, 401, "unauthorized")


@pytest.mark.parametrize("path", ["/v1/me", *READ_PATHS])
async def test_api_switch_off_403(api: Api, path: str) -> None:
    assert_error(await api.get(path, DISABLED), 403, "api_not_enabled")


async def test_api_switch_off_on_writes(api: Api) -> None:
    ctx = await build_ctx(api)
    before = api.sb.state_digest()
    for case in WRITES:
        r = await api.write(case.method, case.path(ctx), case.good(ctx), token=DISABLED)
        assert_error(r, 403, "api_not_enabled")
    assert api.sb.state_digest() == before


def _lacking(scope: str) -> str | None:
    return next((t for t in (READONLY, EDITOR, UPLOADER) if scope not in SCOPES[t]), None)


SCOPED = [w.name for w in WRITES if w.scope and _lacking(w.scope)]


@pytest.mark.parametrize("name", SCOPED)
async def test_missing_scope_403_names_it(shared_api: Api, name: str) -> None:
    ctx = await shared_ctx(shared_api)
    case = WRITE_BY_NAME[name]
    tok = _lacking(case.scope)
    assert tok
    before = digest_before(shared_api.sb)
    r = await shared_api.write(case.method, case.path(ctx), case.good(ctx), token=tok)
    err = assert_error(r, 403, "forbidden", None)
    assert err["detail"] == f"this token lacks the {case.scope} scope"
    assert_unchanged(shared_api.sb, before)


async def test_reads_of_archives_need_download(api: Api) -> None:
    err = assert_error(await api.get("/v1/archives", EDITOR), 403, "forbidden", None)
    assert "api.download" in err["detail"]
    assert (await api.get("/v1/archives", UPLOADER)).status_code == 200


async def test_check_order(api: Api) -> None:
    ctx = await build_ctx(api)
    path = f"/v1/images/{ctx.img}"
    before = api.sb.state_digest()
    # unknown token beats everything else
    assert_error(await api.write("PATCH", path, {"title": 5}, token="bad", key=None), 401, "unauthorized")
    # switch off beats scope
    r = await api.write("PATCH", path, {"title": 5}, token=DISABLED, key=None)
    assert_error(r, 403, "api_not_enabled")
    # scope beats the missing key
    assert_error(await api.write("PATCH", path, {"title": 5}, token=READONLY, key=None), 403, "forbidden")
    # missing key beats a bad body
    r = await api.write("PATCH", path, {"title": 5}, key=None)
    assert_error(r, 400, "validation", "Idempotency-Key")
    # bad body beats a missing image
    r = await api.write("PATCH", "/v1/images/00000000-0000-4000-8000-000000000000", {"title": 5})
    assert_error(r, 400, "validation", "title")
    # then existence
    r = await api.write("PATCH", "/v1/images/00000000-0000-4000-8000-000000000000", {"title": "ok"})
    assert_error(r, 404, "image_not_found")
    assert api.sb.state_digest() == before


async def test_idempotency_conflict_beats_body_validation(api: Api) -> None:
    ctx = await build_ctx(api)
    key = new_key()
    await api.ok_write("PATCH", f"/v1/images/{ctx.img}", {"title": "first"}, key=key)
    r = await api.write("PATCH", f"/v1/images/{ctx.img}", {"title": 5}, key=key)
    assert_error(r, 409, "idempotency_key_conflict")


async def test_operations_visible_to_own_token_only(api: Api) -> None:
    ctx = await build_ctx(api)
    op = await api.ok_write("PATCH", f"/v1/images/{ctx.img}", {"title": "mine"}, token=EDITOR)
    r = await api.get(f"/v1/operations/{op['uuid']}", EDITOR)
    assert r.status_code == 200 and r.json()["uuid"] == op["uuid"]
    assert_error(await api.get(f"/v1/operations/{op['uuid']}", ADMIN), 404, "operation_not_found")
    assert_error(await api.get("/v1/operations/op-nope", EDITOR), 404, "operation_not_found")
    # any valid token may poll: a read-only token polls its own (none), gets 404 not 403
    assert_error(await api.get(f"/v1/operations/{op['uuid']}", READONLY), 404, "operation_not_found")
    assert_error(await api.get(f"/v1/operations/{op['uuid']}", None), 401, "unauthorized")


async def test_request_id_on_every_response(api: Api) -> None:
    for r in [await api.get("/v1/me"), await api.get("/v1/images"), await api.get("/v1/me", None)]:
        assert r.headers.get("X-Request-Id")
    ids = {(await api.get("/v1/me")).headers["X-Request-Id"] for _ in range(3)}
    assert len(ids) == 3

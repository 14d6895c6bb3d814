"""Idempotency-Key: replay returns the original and applies once; conflicts are 409; 24 h per token."""

from __future__ import annotations

from .catalog import build_ctx
from .conftest import ADMIN, EDITOR, UPLOADER, Api, FakeClock, assert_error, new_key


def count_for(api: Api, key: str) -> list[int]:
    return [n for k, n in api.sb.apply_counts().items() if k.endswith(f":{key}")]


async def test_replay_returns_original_and_applies_once(api: Api) -> None:
    ctx = await build_ctx(api)
    path = f"/v1/images/{ctx.img}"
    k1, k2 = new_key(), new_key()
    r1 = await api.write("PATCH", path, {"title": "first"}, key=k1)
    op1 = r1.json()
    assert "Idempotent-Replayed" not in r1.headers
    await api.ok_write("PATCH", path, {"title": "second"}, key=k2)
    digest = api.sb.state_digest()
    r = await api.write("PATCH", path, {"title": "first"}, key=k1)
    assert r.status_code == 202
    assert r.json()["uuid"] == op1["uuid"]
    assert r.headers["Idempotent-Replayed"] == "true"
    assert r.headers["Location"] == f"/v1/operations/{op1['uuid']}"
    # the replay did not write "first" again over "second"
    assert (await api.image(ctx.img))["title"] == "second"
    assert api.sb.state_digest() == digest
    tid = api.sb.token_id(ADMIN)
    assert api.sb.apply_counts()[f"{tid}:{k1}"] == 1
    assert api.sb.apply_counts()[f"{tid}:{k2}"] == 1


async def test_body_key_order_is_canonical(api: Api) -> None:
    ctx = await build_ctx(api)
    key = new_key()
    path = f"/v1/images/{ctx.img}"
    op = await api.ok_write("PATCH", path, {"title": "t", "description": "d"}, key=key)
    r = await api.client().request(
        "PATCH",
        path,
        content=b'{"description": "d",   "title": "t"}',
        headers={"Idempotency-Key": key, "Content-Type": "application/json"},
    )
    assert r.status_code == 202 and r.json()["uuid"] == op["uuid"]
    assert count_for(api, key) == [1]


async def test_conflict_on_different_body_path_or_method(api: Api) -> None:
    ctx = await build_ctx(api)
    key = new_key()
    await api.ok_write("PATCH", f"/v1/images/{ctx.img}", {"title": "a"}, key=key)
    digest = api.sb.state_digest()
    assert_error(
        await api.write("PATCH", f"/v1/images/{ctx.img}", {"title": "b"}, key=key),
        409,
        "idempotency_key_conflict",
    )
    assert_error(
        await api.write("PATCH", f"/v1/images/{ctx.img2}", {"title": "a"}, key=key),
        409,
        "idempotency_key_conflict",
    )
    assert_error(
        await api.write("PUT", f"/v1/images/{ctx.img}/rating", {"rating": 1}, key=key),
        409,
        "idempotency_key_conflict",
    )
    assert api.sb.state_digest() == digest
    assert count_for(api, key) == [1]


async def test_keys_are_per_token(api: Api) -> None:
    ctx = await build_ctx(api)
    key = new_key()
    a = await api.ok_write("PATCH", f"/v1/images/{ctx.img}", {"title": "x"}, key=key, token=ADMIN)
    b = await api.ok_write("PATCH", f"/v1/images/{ctx.img}", {"title": "x"}, key=key, token=EDITOR)
    assert a["uuid"] != b["uuid"]
    assert sorted(count_for(api, key)) == [1, 1]
    # and a different body on the other token is not a conflict
    r = await api.write("PATCH", f"/v1/images/{ctx.img}", {"title": "y"}, key=key, token=UPLOADER)
    assert r.status_code == 403  # uploader lacks api.images.write: scope, not idempotency, answers


async def test_keys_remembered_24h(api: Api, clock: FakeClock) -> None:
    ctx = await build_ctx(api)
    key = new_key()
    path = f"/v1/images/{ctx.img}"
    op = await api.ok_write("PATCH", path, {"title": "day one"}, key=key)
    clock.advance(24 * 3600 - 5)
    r = await api.write("PATCH", path, {"title": "day one"}, key=key)
    assert r.json()["uuid"] == op["uuid"]
    assert_error(await api.write("PATCH", path, {"title": "other"}, key=key), 409, "idempotency_key_conflict")
    clock.advance(10)  # past 24 h: the key is forgotten, the same key is a new write
    r = await api.write("PATCH", path, {"title": "other"}, key=key)
    assert r.status_code == 202, r.text
    assert r.json()["uuid"] != op["uuid"]
    assert (await api.image(ctx.img))["title"] == "other"


async def test_upload_ticket_and_download_link_replay(api: Api) -> None:
    ctx = await build_ctx(api)
    key = new_key()
    body = {"filename": "a.png", "title": "t"}
    r1 = await api.write("POST", "/v1/uploads", body, key=key)
    r2 = await api.write("POST", "/v1/uploads", body, key=key)
    assert r1.status_code == r2.status_code == 201
    assert r1.json() == r2.json()
    assert count_for(api, key) == [1]
    assert_error(
        await api.write("POST", "/v1/uploads", {"filename": "b.png"}, key=key),
        409,
        "idempotency_key_conflict",
    )
    key = new_key()
    dl = {"image_public_uuid": ctx.img, "version": "large"}
    r1 = await api.write("POST", "/v1/downloads", dl, key=key)
    r2 = await api.write("POST", "/v1/downloads", dl, key=key)
    assert r1.status_code == r2.status_code == 200
    assert r1.json() == r2.json()


async def test_rejected_request_does_not_burn_the_key(api: Api) -> None:
    """A 400 applied nothing, so the same key can carry the corrected request."""
    ctx = await build_ctx(api)
    key = new_key()
    path = f"/v1/images/{ctx.img}"
    assert_error(await api.write("PATCH", path, {"title": "x" * 192}, key=key), 400, "validation", "title")
    r = await api.write("PATCH", path, {"title": "fixed"}, key=key)
    assert r.status_code == 202, r.text
    assert (await api.image(ctx.img))["title"] == "fixed"

"""Edge cases across areas: races on one key, failing operations, lead images, replays of running work."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from .conftest import UPLOADER, Api, FakeClock, assert_error, make_sandbox, new_key


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_concurrent_same_key_applies_once(api: Api, images: list[dict[str, Any]]) -> None:
    u = images[0]["public_uuid"]
    key = new_key()
    rs = await asyncio.gather(
        *[api.write("POST", f"/v1/images/{u}/keywords", {"keywords": ["race"]}, key=key) for _ in range(10)]
    )
    assert {r.status_code for r in rs} == {202}
    assert len({r.json()["uuid"] for r in rs}) == 1
    assert [n for k, n in api.sb.apply_counts().items() if k.endswith(key)] == [1]


async def test_filtered_total_count(api: Api, images: list[dict[str, Any]]) -> None:
    r = await api.get("/v1/images", params={"min_rating": 4, "limit": 1})
    assert int(r.headers["X-Total-Count"]) == sum(1 for i in images if i["rating"] >= 4)


async def test_delete_lead_image(api: Api, sets: list[dict[str, Any]]) -> None:
    tree = (await api.get("/v1/sets/tree")).json()

    def walk(ns: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [x for n in ns for x in [n, *walk(n.get("children") or [])]]

    s = next(n for n in walk(tree) if n["lead_image_public_uuid"] and n["image_count"] >= 2)
    lead = s["lead_image_public_uuid"]
    await api.ok_write("DELETE", f"/v1/images/{lead}")
    after = await api.set_(s["public_uuid"])
    assert after["lead_image_public_uuid"] != lead
    assert after["lead_image_public_uuid"] in [
        i["public_uuid"] for i in await api.set_images(s["public_uuid"])
    ]


async def test_archive_fails_when_images_vanish(clock: FakeClock) -> None:
    sb = make_sandbox(clock, operation_seconds={"archive": 1.0})
    api = Api(sb)
    try:
        ids = [i["public_uuid"] for i in (await api.get("/v1/images", params={"limit": 2})).json()]
        op = (await api.write("POST", "/v1/archives", {"image_public_uuids": ids})).json()
        await api.ok_write("DELETE", f"/v1/images/{ids[0]}")
        clock.advance(1.5)
        done = (await api.get(f"/v1/operations/{op['uuid']}")).json()
        assert done["status"] == "failed"
        assert done["error"]["code"] == "image_not_found"
        assert set(done["error"]) >= {"code", "message", "detail", "field"}
        assert (await api.get("/v1/archives")).json() == []
    finally:
        await api.aclose()


async def test_replay_of_running_operation_shows_progress(clock: FakeClock) -> None:
    sb = make_sandbox(clock, operation_seconds={"archive": 2.0})
    api = Api(sb)
    try:
        ids = [i["public_uuid"] for i in (await api.get("/v1/images", params={"limit": 2})).json()]
        key = new_key()
        body = {"image_public_uuids": ids}
        first = (await api.write("POST", "/v1/archives", body, key=key, token=UPLOADER)).json()
        assert first["status"] in ("pending", "running")
        clock.advance(3)
        again = await api.write("POST", "/v1/archives", body, key=key, token=UPLOADER)
        assert again.status_code == 202
        assert again.json()["uuid"] == first["uuid"]
        assert again.json()["status"] == "succeeded"  # the replay shows the operation as it is now
        assert len((await api.get("/v1/archives", UPLOADER)).json()) == 1  # built once
    finally:
        await api.aclose()


async def test_restore_brings_back_visibility(api: Api) -> None:
    tree = (await api.get("/v1/sets/tree")).json()
    s = next(n["public_uuid"] for n in tree if n["image_count"] >= 3)
    members = await api.set_images(s)
    u = members[0]["public_uuid"]
    before_hidden = {m["public_uuid"]: m["hidden"] for m in members}
    await api.ok_write(
        "PATCH", f"/v1/sets/{s}/visibility", {"image_public_uuids": [u], "hidden": not before_hidden[u]}
    )
    snaps = (await api.get(f"/v1/sets/{s}/snapshots")).json()
    snap = max(snaps, key=lambda x: x["created_at"])
    await api.ok_write("POST", f"/v1/sets/{s}/restore", {"snapshot_uuid": snap["uuid"]})
    assert {m["public_uuid"]: m["hidden"] for m in await api.set_images(s)} == before_hidden


async def test_activation_time_in_the_past_refused(api: Api, clock: FakeClock) -> None:
    tree = (await api.get("/v1/sets/tree")).json()
    s = next(n["public_uuid"] for n in tree if n["image_count"] >= 1)
    u = (await api.set_images(s))[0]["public_uuid"]
    r = await api.write(
        "PATCH",
        f"/v1/sets/{s}/visibility",
        {"image_public_uuids": [u], "hidden": True, "activation_time": iso(clock() - 60)},
    )
    assert_error(r, 400, "validation", "activation_time")
    r = await api.write(
        "PATCH",
        f"/v1/sets/{s}/visibility",
        {"image_public_uuids": [u], "hidden": False, "activation_time": iso(clock() + 60)},
    )
    assert_error(r, 400, "validation", "activation_time")


async def test_order_move_over_threshold_takes_time(clock: FakeClock) -> None:
    sb = make_sandbox(clock, large_move_threshold=3, large_move_seconds=1.0)
    api = Api(sb)
    try:
        tree = (await api.get("/v1/sets/tree")).json()

        def walk(ns: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [x for n in ns for x in [n, *walk(n.get("children") or [])]]

        s = next(n["public_uuid"] for n in walk(tree) if n["image_count"] >= 5)
        members = [i["public_uuid"] for i in await api.set_images(s)]
        r = await api.write("PATCH", f"/v1/sets/{s}/order", {"image_public_uuids": members[::-1]})
        op = r.json()
        assert op["status"] in ("pending", "running")
        # effects are applied at request time; the operation reports done later
        assert [i["public_uuid"] for i in await api.set_images(s)] == members[::-1]
        clock.advance(1.1)
        assert (await api.get(f"/v1/operations/{op['uuid']}")).json()["status"] == "succeeded"
    finally:
        await api.aclose()


async def test_media_etag(api: Api, images: list[dict[str, Any]]) -> None:
    v = next(v for v in images[0]["versions"] if v["name"] == "medium")
    r = await api.get(v["url"], None)
    assert r.headers.get("ETag")
    r2 = await api.get(v["url"], None, headers={"If-None-Match": r.headers["ETag"]})
    assert r2.status_code == 304


async def test_unknown_version_media_404(api: Api, images: list[dict[str, Any]]) -> None:
    u = images[0]["public_uuid"]
    assert (await api.get(f"/media/{u}/huge.png", None)).status_code == 404
    assert (await api.get(f"/media/{u}/original.png", None)).status_code == 404  # originals are private
    assert (await api.get("/media/00000000-0000-4000-8000-000000000000/large.png", None)).status_code == 404


async def test_user_token_ops_are_its_own(api: Api, clock: FakeClock) -> None:
    from dpg_mcp.sandbox import totp

    from .conftest import LOGIN, PASSWORD, TOTP_SECRET

    c = api.client(None)
    dev = {"name": "t", "platform": "p"}
    r = await c.post("/v1/auth/sign_in", json={"login": LOGIN, "password": PASSWORD, "device": dev})
    r = await c.post(
        "/v1/auth/mfa", json={"mfa_token": r.json()["mfa_token"], "code": totp(TOTP_SECRET, at=clock())}
    )
    b = r.json()
    r = await c.post(
        "/v1/auth/token", json={"refresh_token": b["refresh_token"], "account_uuid": b["accounts"][0]["uuid"]}
    )
    access = r.json()["access_token"]
    me = (await api.get("/v1/me", access)).json()
    u = (await api.get("/v1/images", params={"limit": 1})).json()[0]["public_uuid"]
    if "api.ratings.write" in me["capabilities"]:
        op = await api.ok_write("PUT", f"/v1/images/{u}/rating", {"rating": 2}, token=access)
        assert (await api.get(f"/v1/operations/{op['uuid']}", access)).status_code == 200
        assert_error(await api.get(f"/v1/operations/{op['uuid']}"), 404, "operation_not_found")
    else:
        assert_error(
            await api.write("PUT", f"/v1/images/{u}/rating", {"rating": 2}, token=access), 403, "forbidden"
        )

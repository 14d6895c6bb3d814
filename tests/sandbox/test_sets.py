"""Sets: tree, children order, CRUD, membership, order, reorder, visibility + embargo, snapshots, restore,
long moves."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Api, FakeClock, assert_error, make_sandbox

SET_KEYS = {
    "public_uuid",
    "name",
    "description",
    "colour",
    "type",
    "parent_public_uuid",
    "lead_image_public_uuid",
    "image_count",
    "child_count",
    "website",
    "position",
    "created_at",
    "updated_at",
}


def flatten(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for n in nodes:
        out.append(n)
        out += flatten(n.get("children") or [])
    return out


async def tree(api: Api) -> list[dict[str, Any]]:
    r = await api.get("/v1/sets/tree")
    assert r.status_code == 200
    data: list[dict[str, Any]] = r.json()
    return data


async def children(api: Api, parent: str | None) -> list[str]:
    params = {"parent_public_uuid": parent} if parent else {}
    r = await api.get("/v1/sets", params={**params, "limit": 200})
    assert r.status_code == 200, r.text
    return [s["public_uuid"] for s in r.json()]


async def snapshots(api: Api, s: str) -> list[dict[str, Any]]:
    r = await api.get(f"/v1/sets/{s}/snapshots")
    assert r.status_code == 200
    data: list[dict[str, Any]] = r.json()
    return data


async def a_set(api: Api, min_images: int = 3) -> str:
    return next(n["public_uuid"] for n in flatten(await tree(api)) if n["image_count"] >= min_images)


async def test_tree_matches_lists(api: Api, sets: list[dict[str, Any]]) -> None:
    t = await tree(api)
    assert [n["public_uuid"] for n in t] == [s["public_uuid"] for s in sets]
    nodes = flatten(t)
    assert len(nodes) > len(t)  # the seed nests
    for n in nodes:
        kids = [c["public_uuid"] for c in n.get("children") or []]
        assert await children(api, n["public_uuid"]) == kids
        full = await api.set_(n["public_uuid"])
        assert set(full) >= SET_KEYS
        assert full["child_count"] == len(kids)
        assert full["image_count"] == len(await api.set_images(n["public_uuid"]))
        for i, c in enumerate(n.get("children") or []):
            assert c["parent_public_uuid"] == n["public_uuid"]
            assert (await api.set_(c["public_uuid"]))["position"] == i


async def test_set_paging_headers(api: Api) -> None:
    r = await api.get("/v1/sets", params={"limit": 1})
    assert len(r.json()) == 1 and r.headers["X-Has-More"] == "true" and r.headers["X-Next-Offset"] == "1"
    s = await a_set(api)
    r = await api.get(f"/v1/sets/{s}/images", params={"limit": 2})
    assert len(r.json()) == 2 and r.headers["X-Has-More"] == "true"
    assert_error(await api.get(f"/v1/sets/{s}/images", params={"limit": 500}), 400, "validation", "limit")


async def test_set_not_found(api: Api) -> None:
    nope = "00000000-0000-4000-8000-000000000000"
    for p in (f"/v1/sets/{nope}", f"/v1/sets/{nope}/images", f"/v1/sets/{nope}/snapshots"):
        assert_error(await api.get(p), 404, "set_not_found")
    assert_error(await api.get("/v1/sets", params={"parent_public_uuid": nope}), 404, "set_not_found")
    assert_error(
        await api.write("POST", f"/v1/sets/{nope}/images", {"image_public_uuids": []}), 400, "validation"
    )


async def test_create_and_update(api: Api, sets: list[dict[str, Any]]) -> None:
    op = await api.ok_write("POST", "/v1/sets", {"name": "N" * 191, "colour": "green", "type": "event"})
    assert op["type"] == "set_create"
    new = op["set_public_uuid"]
    s = await api.set_(new)
    assert s["name"] == "N" * 191 and s["colour"] == "green" and s["type"] == "event"
    assert s["parent_public_uuid"] is None and s["image_count"] == 0
    assert (await children(api, None))[-1] == new
    parent = sets[0]["public_uuid"]
    op = await api.ok_write("POST", "/v1/sets", {"name": "Child", "parent_public_uuid": parent})
    child = op["set_public_uuid"]
    assert (await children(api, parent))[-1] == child
    # move, rename, recolour, lead image
    img = (await api.all_images(limit=1))[0]["public_uuid"]
    await api.ok_write("POST", f"/v1/sets/{child}/images", {"image_public_uuids": [img]})
    op = await api.ok_write(
        "PATCH",
        f"/v1/sets/{child}",
        {
            "name": "Moved",
            "colour": "grey",
            "type": "folder",
            "description": "d",
            "parent_public_uuid": new,
            "lead_image_public_uuid": img,
        },
    )
    assert op["type"] == "set_update"
    s = await api.set_(child)
    assert (s["name"], s["colour"], s["type"], s["parent_public_uuid"]) == ("Moved", "grey", "folder", new)
    assert s["lead_image_public_uuid"] == img
    assert child not in await children(api, parent)
    assert await children(api, new) == [child]
    # back to the top level
    await api.ok_write("PATCH", f"/v1/sets/{child}", {"parent_public_uuid": None})
    assert (await children(api, None))[-1] == child


async def test_no_cycles(api: Api) -> None:
    t = await tree(api)
    top = next(n for n in t if n.get("children"))
    kid = top["children"][0]["public_uuid"]
    digest = api.sb.state_digest()
    r = await api.write("PATCH", f"/v1/sets/{top['public_uuid']}", {"parent_public_uuid": kid})
    assert_error(r, 400, "validation", "parent_public_uuid")
    r = await api.write("PATCH", f"/v1/sets/{kid}", {"parent_public_uuid": kid})
    assert_error(r, 400, "validation", "parent_public_uuid")
    assert api.sb.state_digest() == digest


async def test_membership_with_snapshots(api: Api, images: list[dict[str, Any]]) -> None:
    s = await a_set(api)
    members = [i["public_uuid"] for i in await api.set_images(s)]
    outsiders = [i["public_uuid"] for i in images if i["public_uuid"] not in members][:3]
    n_snap = len(await snapshots(api, s))
    op = await api.ok_write("POST", f"/v1/sets/{s}/images", {"image_public_uuids": outsiders})
    assert op["type"] == "set_membership" and op["set_public_uuid"] == s
    after = [i["public_uuid"] for i in await api.set_images(s)]
    assert after == members + outsiders
    assert (await api.set_(s))["image_count"] == len(after)
    assert s in (await api.image(outsiders[0]))["set_public_uuids"]
    snaps = await snapshots(api, s)
    assert len(snaps) == n_snap + 1
    newest = max(snaps, key=lambda x: x["created_at"])
    assert newest["image_public_uuids"] == members  # taken BEFORE the change
    # adding a member again does not duplicate
    await api.ok_write("POST", f"/v1/sets/{s}/images", {"image_public_uuids": outsiders[:1]})
    assert [i["public_uuid"] for i in await api.set_images(s)] == after
    # remove: images kept in the library
    await api.ok_write("DELETE", f"/v1/sets/{s}/images", {"image_public_uuids": outsiders})
    assert [i["public_uuid"] for i in await api.set_images(s)] == members
    assert (await api.image(outsiders[0]))["public_uuid"] == outsiders[0]
    nope = "00000000-0000-4000-8000-000000000000"
    assert_error(
        await api.write("POST", f"/v1/sets/{s}/images", {"image_public_uuids": [nope]}),
        404,
        "image_not_found",
    )


async def test_order_and_restore(api: Api) -> None:
    s = await a_set(api)
    members = [i["public_uuid"] for i in await api.set_images(s)]
    n_snap = len(await snapshots(api, s))
    new_order = list(reversed(members))
    op = await api.ok_write("PATCH", f"/v1/sets/{s}/order", {"image_public_uuids": new_order})
    assert op["type"] == "set_order"
    assert [i["public_uuid"] for i in await api.set_images(s)] == new_order
    snaps = await snapshots(api, s)
    assert len(snaps) == n_snap + 1
    snap = max(snaps, key=lambda x: x["created_at"])
    assert snap["image_public_uuids"] == members and snap["set_public_uuid"] == s
    # restore puts the old order back and itself snapshots first
    op = await api.ok_write("POST", f"/v1/sets/{s}/restore", {"snapshot_uuid": snap["uuid"]})
    assert op["type"] == "set_restore"
    assert [i["public_uuid"] for i in await api.set_images(s)] == members
    assert len(await snapshots(api, s)) == n_snap + 2
    # not a permutation: refused
    r = await api.write("PATCH", f"/v1/sets/{s}/order", {"image_public_uuids": members[:-1]})
    assert_error(r, 400, "validation", "image_public_uuids")
    r = await api.write("PATCH", f"/v1/sets/{s}/order", {"image_public_uuids": [*members, members[0]]})
    assert_error(r, 400, "validation", "image_public_uuids")
    r = await api.write(
        "POST", f"/v1/sets/{s}/restore", {"snapshot_uuid": "00000000-0000-4000-8000-000000000000"}
    )
    assert_error(r, 404, "snapshot_not_found")


async def test_snapshot_of_other_set_refused(api: Api) -> None:
    nodes = [n for n in flatten(await tree(api)) if n["image_count"] >= 2]
    a, b = nodes[0]["public_uuid"], nodes[1]["public_uuid"]
    members = [i["public_uuid"] for i in await api.set_images(a)]
    await api.ok_write("PATCH", f"/v1/sets/{a}/order", {"image_public_uuids": members[::-1]})
    snap = (await snapshots(api, a))[0]["uuid"]
    r = await api.write("POST", f"/v1/sets/{b}/restore", {"snapshot_uuid": snap})
    assert_error(r, 404, "snapshot_not_found")


async def test_reorder_levels(api: Api, sets: list[dict[str, Any]]) -> None:
    top = [s["public_uuid"] for s in sets]
    op = await api.ok_write(
        "PATCH", "/v1/sets/reorder", {"parent_public_uuid": None, "set_public_uuids": top[::-1]}
    )
    assert op["type"] == "set_reorder"
    assert await children(api, None) == top[::-1]
    assert [n["public_uuid"] for n in await tree(api)] == top[::-1]
    parent = next(n for n in await tree(api) if len(n.get("children") or []) >= 2)
    kids = [c["public_uuid"] for c in parent["children"]]
    n_snap = len(await snapshots(api, parent["public_uuid"]))
    await api.ok_write(
        "PATCH",
        "/v1/sets/reorder",
        {"parent_public_uuid": parent["public_uuid"], "set_public_uuids": kids[::-1]},
    )
    assert await children(api, parent["public_uuid"]) == kids[::-1]
    assert len(await snapshots(api, parent["public_uuid"])) == n_snap + 1
    r = await api.write("PATCH", "/v1/sets/reorder", {"parent_public_uuid": None, "set_public_uuids": kids})
    assert_error(r, 400, "validation", "set_public_uuids")


async def test_visibility_and_embargo(api: Api, clock: FakeClock) -> None:
    s = await a_set(api, 4)
    members = [i for i in await api.set_images(s)]
    assert all("hidden" in i and "activation_time" in i for i in members)
    a, b, c = (m["public_uuid"] for m in members[:3])
    n_snap = len(await snapshots(api, s))
    op = await api.ok_write("PATCH", f"/v1/sets/{s}/visibility", {"image_public_uuids": [a], "hidden": True})
    assert op["type"] == "set_visibility"
    release = clock() + 3600
    from datetime import UTC, datetime

    at = datetime.fromtimestamp(release, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    await api.ok_write(
        "PATCH",
        f"/v1/sets/{s}/visibility",
        {"image_public_uuids": [b, c], "hidden": True, "activation_time": at},
    )
    assert len(await snapshots(api, s)) == n_snap + 2
    by = {i["public_uuid"]: i for i in await api.set_images(s)}
    assert by[a]["hidden"] is True and by[a]["activation_time"] is None
    assert by[b]["hidden"] is True and by[b]["activation_time"] == at
    clock.advance(3599)
    by = {i["public_uuid"]: i for i in await api.set_images(s)}
    assert by[b]["hidden"] is True
    clock.advance(2)  # embargo released lazily, by the clock
    by = {i["public_uuid"]: i for i in await api.set_images(s)}
    assert by[b]["hidden"] is False and by[c]["hidden"] is False
    assert by[a]["hidden"] is True  # hidden without a date stays hidden
    # hidden:false clears it at once; an embargo set again is cleared by hidden:false too
    await api.ok_write("PATCH", f"/v1/sets/{s}/visibility", {"image_public_uuids": [a], "hidden": False})
    assert {i["public_uuid"]: i for i in await api.set_images(s)}[a]["hidden"] is False
    # an image not in the set is refused
    outsider = next(
        i["public_uuid"] for i in await api.all_images(limit=200) if s not in i["set_public_uuids"]
    )
    r = await api.write(
        "PATCH", f"/v1/sets/{s}/visibility", {"image_public_uuids": [outsider], "hidden": True}
    )
    assert r.status_code in (400, 404), r.text


async def test_seed_embargo_lifts_with_time(api: Api, clock: FakeClock) -> None:
    nodes = flatten(await tree(api))
    embargoed = [
        (n["public_uuid"], i)
        for n in nodes
        for i in await api.set_images(n["public_uuid"])
        if i["hidden"] and i["activation_time"]
    ]
    assert embargoed
    s, img = embargoed[0]
    from datetime import datetime

    when = datetime.fromisoformat(img["activation_time"].replace("Z", "+00:00")).timestamp()
    clock.now = when + 1
    by = {i["public_uuid"]: i for i in await api.set_images(s)}
    assert by[img["public_uuid"]]["hidden"] is False


@pytest.mark.parametrize("n_images", [3])
async def test_large_move_takes_time(clock: FakeClock, n_images: int) -> None:
    sb = make_sandbox(clock, large_move_threshold=2, large_move_seconds=2.0)
    api = Api(sb)
    try:
        s = await a_set(api)
        members = [i["public_uuid"] for i in await api.set_images(s)]
        outsiders = [i["public_uuid"] for i in await api.all_images() if i["public_uuid"] not in members][
            :n_images
        ]
        r = await api.write("POST", f"/v1/sets/{s}/images", {"image_public_uuids": outsiders})
        assert r.status_code == 202
        op = r.json()
        assert op["status"] in ("pending", "running")
        r1 = await api.get(f"/v1/operations/{op['uuid']}")
        assert r1.json()["status"] in ("pending", "running")
        etag = r1.headers["ETag"]
        r2 = await api.get(f"/v1/operations/{op['uuid']}", headers={"If-None-Match": etag})
        assert r2.status_code == 304 and r2.content == b""
        clock.advance(2.1)
        r3 = await api.get(f"/v1/operations/{op['uuid']}", headers={"If-None-Match": etag})
        assert r3.status_code == 200 and r3.json()["status"] == "succeeded"
        assert r3.headers["ETag"] != etag
        r4 = await api.get(f"/v1/operations/{op['uuid']}", headers={"If-None-Match": r3.headers["ETag"]})
        assert r4.status_code == 304
        # a small move (≤ threshold) is done in the 202
        op2 = await api.ok_write("DELETE", f"/v1/sets/{s}/images", {"image_public_uuids": outsiders[:2]})
        assert op2["status"] == "succeeded"
    finally:
        await api.aclose()

"""Every list pages the same way; ETags move with the data; the store stays consistent across deletes,
moves, restores and rotations."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest
from PIL import Image as PILImage

from .conftest import UPLOADER, Api, assert_error


async def some_set(api: Api, min_images: int = 3) -> str:
    tree = (await api.get("/v1/sets/tree")).json()

    def walk(ns: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [x for n in ns for x in [n, *walk(n.get("children") or [])]]

    return str(next(n["public_uuid"] for n in walk(tree) if n["image_count"] >= min_images))


async def list_paths(api: Api) -> list[tuple[str, str]]:
    s = await some_set(api)
    members = [i["public_uuid"] for i in await api.set_images(s)]
    for order in (members[::-1], members):  # two snapshots
        await api.ok_write("PATCH", f"/v1/sets/{s}/order", {"image_public_uuids": order})
    imgs = [i["public_uuid"] for i in (await api.get("/v1/images", params={"limit": 3})).json()]
    for n in range(1, 3):
        await api.ok_write("POST", "/v1/archives", {"image_public_uuids": imgs[:n]})
    return [
        ("/v1/images", "public_uuid"),
        ("/v1/keywords", "value"),
        ("/v1/keywords/namespaces", "namespace"),
        ("/v1/metadata_profiles", "uuid"),
        ("/v1/sets", "public_uuid"),
        (f"/v1/sets/{s}/images", "public_uuid"),
        (f"/v1/sets/{s}/snapshots", "uuid"),
        ("/v1/archives", "uuid"),
    ]


async def test_every_list_pages_consistently(api: Api) -> None:
    for path, key in await list_paths(api):
        full = await api.get(path, params={"limit": 200})
        assert full.status_code == 200, (path, full.text)
        everything = full.json()
        total = int(full.headers["X-Total-Count"])
        assert total >= 2, path
        if total <= 200:
            assert len(everything) == total and full.headers["X-Has-More"] == "false"
        walked: list[Any] = []
        offset, step = 0, max(1, min(total, 200) // 3)
        for _ in range(20):
            r = await api.get(path, params={"limit": step, "offset": offset})
            walked += [x[key] if key != "value" else (x["namespace"], x["value"]) for x in r.json()]
            assert int(r.headers["X-Total-Count"]) == total
            if r.headers["X-Has-More"] == "false":
                assert "X-Next-Offset" not in r.headers
                break
            offset = int(r.headers["X-Next-Offset"])
            if offset >= 200:
                break
        ref = [x[key] if key != "value" else (x["namespace"], x["value"]) for x in everything]
        n = min(len(walked), len(ref))
        assert walked[:n] == ref[:n], path
        if total <= 200:
            assert len(walked) == total, path
        assert_error(await api.get(path, params={"limit": 201}), 400, "validation", "limit")
        assert_error(await api.get(path, params={"offset": -1}), 400, "validation", "offset")
        etag = full.headers["ETag"]
        assert (
            await api.get(path, params={"limit": 200}, headers={"If-None-Match": etag})
        ).status_code == 304


async def test_etags_follow_changes(api: Api, images: list[dict[str, Any]]) -> None:
    u = images[0]["public_uuid"]
    paths = ["/v1/keywords", "/v1/keywords/namespaces", f"/v1/images/{u}", "/v1/images", "/v1/facets"]
    before = {p: (await api.get(p)).headers["ETag"] for p in paths}
    await api.ok_write("POST", f"/v1/images/{u}/keywords", {"keywords": ["brandnewaxis:brand new"]})
    for p in paths:
        r = await api.get(p, headers={"If-None-Match": before[p]})
        assert r.status_code == 200, f"{p} still 304 after a change"
    assert all(x.startswith(('"', 'W/"')) for x in before.values())  # quoted entity tags


async def test_move_set_renumbers(api: Api) -> None:
    tree = (await api.get("/v1/sets/tree")).json()
    parent = next(n for n in tree if len(n.get("children") or []) >= 3)
    kids = [c["public_uuid"] for c in parent["children"]]
    other = next(n for n in tree if n["public_uuid"] != parent["public_uuid"])
    before_other = (await api.set_(other["public_uuid"]))["child_count"]
    await api.ok_write("PATCH", f"/v1/sets/{kids[0]}", {"parent_public_uuid": other["public_uuid"]})
    p = await api.set_(parent["public_uuid"])
    assert p["child_count"] == len(kids) - 1
    assert (await api.set_(other["public_uuid"]))["child_count"] == before_other + 1
    assert [(await api.set_(k))["position"] for k in kids[1:]] == list(range(len(kids) - 1))
    moved = await api.set_(kids[0])
    assert moved["parent_public_uuid"] == other["public_uuid"] and moved["position"] == before_other


async def test_restore_after_image_deleted(api: Api) -> None:
    s = await some_set(api)
    members = [i["public_uuid"] for i in await api.set_images(s)]
    await api.ok_write("PATCH", f"/v1/sets/{s}/order", {"image_public_uuids": members[::-1]})
    snap = max((await api.get(f"/v1/sets/{s}/snapshots")).json(), key=lambda x: x["created_at"])
    await api.ok_write("DELETE", f"/v1/images/{members[0]}")
    r = await api.write("POST", f"/v1/sets/{s}/restore", {"snapshot_uuid": snap["uuid"]})
    assert r.status_code == 202, r.text
    after = [i["public_uuid"] for i in await api.set_images(s)]
    assert after == members[1:]  # the deleted image does not come back as a ghost
    assert (await api.set_(s))["image_count"] == len(members) - 1


async def test_rotation_swaps_version_sizes(api: Api, images: list[dict[str, Any]]) -> None:
    u = images[2]["public_uuid"]
    before = {v["name"]: (v["width"], v["height"]) for v in images[2]["versions"]}
    await api.ok_write("PATCH", f"/v1/images/{u}", {"rotation": 90})
    im = await api.image(u)
    for v in im["versions"]:
        if v["name"] != "original":
            assert (v["width"], v["height"]) == before[v["name"]][::-1]
            pic = PILImage.open(io.BytesIO((await api.get(v["url"], None)).content))
            assert pic.size == (v["width"], v["height"])


@pytest.mark.parametrize("version", ["medium", "thumbnail", None])
async def test_archive_version(api: Api, images: list[dict[str, Any]], version: str | None) -> None:
    ids = [i["public_uuid"] for i in images[:2]]
    body: dict[str, Any] = {"image_public_uuids": ids}
    if version:
        body["version"] = version
    else:
        version = "large"  # the default
    op = await api.ok_write("POST", "/v1/archives", body, token=UPLOADER)
    z = await api.get(op["result"]["url"], None)
    want = {(v["width"], v["height"]) for i in images[:2] for v in i["versions"] if v["name"] == version}
    with zipfile.ZipFile(io.BytesIO(z.content)) as zf:
        got = {PILImage.open(io.BytesIO(zf.read(n))).size for n in zf.namelist()}
    assert got == want


async def test_archive_filename_rules(api: Api, images: list[dict[str, Any]]) -> None:
    ids = [images[0]["public_uuid"]]
    op = await api.ok_write("POST", "/v1/archives", {"image_public_uuids": ids, "filename": "friday-selects"})
    assert op["result"]["filename"] == "friday-selects.zip"
    r = await api.write("POST", "/v1/archives", {"image_public_uuids": ids, "filename": "../etc/passwd"})
    assert_error(r, 400, "validation", "filename")


async def test_request_id_everywhere(api: Api, images: list[dict[str, Any]]) -> None:
    v = next(v for v in images[0]["versions"] if v["name"] == "thumbnail")
    r = await api.get(v["url"], None)
    assert r.headers.get("X-Request-Id")
    r2 = await api.get(f"/v1/images/{images[0]['public_uuid']}")
    r3 = await api.get(
        f"/v1/images/{images[0]['public_uuid']}", headers={"If-None-Match": r2.headers["ETag"]}
    )
    assert r3.status_code == 304 and r3.headers.get("X-Request-Id")
    assert (await api.get("/llms.txt", None)).headers.get("X-Request-Id")


async def test_hidden_images_stay_in_the_library(api: Api) -> None:
    s = await some_set(api)
    u = next(i["public_uuid"] for i in await api.set_images(s) if not i.get("hidden"))
    before = (await api.set_(s))["hidden_count"]
    await api.ok_write("PATCH", f"/v1/sets/{s}/visibility", {"image_public_uuids": [u], "hidden": True})
    assert (await api.set_(s))["hidden_count"] == before + 1
    assert u in [i["public_uuid"] for i in await api.all_images()]
    assert u in [i["public_uuid"] for i in await api.set_images(s)]

"""GET /v1/images (paging, every filter, query syntax), one image, versions, media, ETag, PATCH, DELETE."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import pytest
from PIL import Image as PILImage

from .conftest import JPEG_MAGIC, Api, FakeClock, assert_error

IMAGE_KEYS = {
    "public_uuid",
    "filename",
    "title",
    "description",
    "alt_text",
    "creation_date",
    "created_at",
    "updated_at",
    "rating",
    "rotation",
    "keywords",
    "metadata",
    "exif",
    "geo",
    "has_video",
    "credits",
    "crops",
    "set_public_uuids",
    "versions",
}


def ts(s: str) -> float:
    if len(s) == 10:
        s += "T00:00:00Z"
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def uuids(items: list[dict[str, Any]]) -> list[str]:
    return [i["public_uuid"] for i in items]


def text_of(im: dict[str, Any]) -> str:
    parts = [im["title"], im["description"], im["filename"], im["alt_text"], im.get("creation_date") or ""]
    parts += [f"{k.get('namespace') or ''} {k['value']}" for k in im["keywords"]]
    parts += [str(v) for v in (im.get("metadata") or {}).values()]
    return " ".join(parts).lower()


async def test_default_page(api: Api, images: list[dict[str, Any]]) -> None:
    r = await api.get("/v1/images")
    assert r.status_code == 200
    assert isinstance(r.json(), list)
    assert len(r.json()) == min(50, len(images))
    assert int(r.headers["X-Total-Count"]) == len(images)
    assert len(images) > 200  # the seed is big enough to page at the max limit
    assert r.headers["X-Has-More"] == "true"
    assert r.headers["X-Next-Offset"] == "50"
    assert r.headers["ETag"]


async def test_newest_first_and_full_objects(api: Api, images: list[dict[str, Any]]) -> None:
    created = [ts(i["created_at"]) for i in images]
    assert created == sorted(created, reverse=True)
    assert len(set(uuids(images))) == len(images)
    for im in images[:5]:
        assert set(im) >= IMAGE_KEYS


@pytest.mark.parametrize("limit", [1, 7, 50, 200])
async def test_paging_walk(api: Api, images: list[dict[str, Any]], limit: int) -> None:
    seen: list[str] = []
    offset = 0
    jumped = False
    for _ in range(400):
        r = await api.get("/v1/images", params={"limit": limit, "offset": offset})
        page = r.json()
        assert len(page) <= limit
        seen += uuids(page)
        if r.headers["X-Has-More"] == "false":
            assert "X-Next-Offset" not in r.headers
            break
        assert int(r.headers["X-Next-Offset"]) == offset + limit
        offset = int(r.headers["X-Next-Offset"])
        if limit == 1 and offset >= 5 and not jumped:  # the 1-by-1 walk is long: jump near the end
            jumped = True
            offset = len(images) - 3
            seen = uuids(images)[:offset]
    assert seen == uuids(images)


async def test_offset_past_end(api: Api, images: list[dict[str, Any]]) -> None:
    r = await api.get("/v1/images", params={"offset": len(images) + 10})
    assert r.status_code == 200 and r.json() == []
    assert r.headers["X-Has-More"] == "false"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 201}, "limit"),
        ({"limit": 0}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": "x"}, "offset"),
        ({"rating": 6}, "rating"),
        ({"min_rating": -1}, "min_rating"),
        ({"rating": "high"}, "rating"),
        ({"has_video": "yes"}, "has_video"),
        ({"has_geo": "1"}, "has_geo"),
        ({"bbox": "1,2,3"}, "bbox"),
        ({"bbox": "a,b,c,d"}, "bbox"),
        ({"created_at_from": "yesterday"}, "created_at_from"),
        ({"updated_at_to": "2026-13-45"}, "updated_at_to"),
        ({"creation_date_from": "nope"}, "creation_date_from"),
    ],
)
async def test_bad_list_params(api: Api, params: dict[str, Any], field: str) -> None:
    assert_error(await api.get("/v1/images", params=params), 400, "validation", field)


async def test_filter_rating(api: Api, images: list[dict[str, Any]]) -> None:
    for n in range(6):
        got = await api.all_images(rating=n)
        assert uuids(got) == [i["public_uuid"] for i in images if i["rating"] == n]
    got = await api.all_images(min_rating=4)
    assert uuids(got) == [i["public_uuid"] for i in images if i["rating"] >= 4]
    assert got


async def test_filter_keyword_and_namespace(api: Api, images: list[dict[str, Any]]) -> None:
    def has(im: dict[str, Any], value: str, ns: str | None) -> bool:
        return any(
            k["value"].lower() == value.lower() and (ns is None or (k.get("namespace") or "") == ns)
            for k in im["keywords"]
        )

    exp = [i["public_uuid"] for i in images if has(i, "sunset", None)]
    assert exp and uuids(await api.all_images(keyword="sunset")) == exp
    assert uuids(await api.all_images(keyword="SUNSET")) == exp  # keywords compare case-insensitively
    artist = next(k["value"] for i in images for k in i["keywords"] if k.get("namespace") == "artist")
    exp = [i["public_uuid"] for i in images if has(i, artist, "artist")]
    assert exp and uuids(await api.all_images(keyword=artist, namespace="artist")) == exp
    assert await api.all_images(keyword=artist, namespace="stage") == []
    # full form works too
    assert uuids(await api.all_images(keyword=f"artist:{artist}")) == exp


async def test_filter_exif(api: Api, images: list[dict[str, Any]]) -> None:
    make = images[0]["exif"]["make"]
    exp = [i["public_uuid"] for i in images if i["exif"].get("make") == make]
    assert 0 < len(exp) < len(images)
    assert uuids(await api.all_images(exif_property="make", exif_value=make)) == exp
    iso_v = images[0]["exif"]["iso"]
    exp = [i["public_uuid"] for i in images if str(i["exif"].get("iso")) == str(iso_v)]
    assert uuids(await api.all_images(exif_property="iso", exif_value=str(iso_v))) == exp


@pytest.mark.parametrize("name", ["created_at", "updated_at", "creation_date"])
async def test_filter_date_ranges(api: Api, images: list[dict[str, Any]], name: str) -> None:
    vals = sorted({ts(i[name]) for i in images if i.get(name)})
    lo = (vals[len(vals) // 4] + vals[len(vals) // 4 + 1]) / 2  # between two values: no boundary ambiguity
    hi = (vals[len(vals) // 2] + vals[len(vals) // 2 + 1]) / 2
    exp = [i["public_uuid"] for i in images if i.get(name) and lo <= ts(i[name]) <= hi]
    got = await api.all_images(**{f"{name}_from": iso(lo + 0.5), f"{name}_to": iso(hi)})
    assert exp and uuids(got) == exp
    got = await api.all_images(**{f"{name}_from": iso(hi)})
    assert uuids(got) == [i["public_uuid"] for i in images if i.get(name) and ts(i[name]) >= hi]
    # a bare date is accepted too (start of that day)
    day = iso(hi)[:10]
    got = await api.all_images(**{f"{name}_from": day})
    assert uuids(got) == [i["public_uuid"] for i in images if i.get(name) and ts(i[name]) >= ts(day)]
    # and a bare `_to` date includes that whole day
    got = await api.all_images(**{f"{name}_to": day})
    assert uuids(got) == [i["public_uuid"] for i in images if i.get(name) and ts(i[name]) < ts(day) + 86400]


async def test_filter_video_geo(api: Api, images: list[dict[str, Any]]) -> None:
    vids = [i["public_uuid"] for i in images if i["has_video"]]
    assert vids and uuids(await api.all_images(has_video="true")) == vids
    assert uuids(await api.all_images(has_video="false")) == [
        i["public_uuid"] for i in images if not i["has_video"]
    ]
    geo = [i["public_uuid"] for i in images if i["geo"]]
    assert 0 < len(geo) < len(images)
    assert uuids(await api.all_images(has_geo="true")) == geo
    assert uuids(await api.all_images(has_geo="false")) == [i["public_uuid"] for i in images if not i["geo"]]


async def test_filter_bbox(api: Api, images: list[dict[str, Any]]) -> None:
    pts = sorted((i["geo"]["lon"], i["geo"]["lat"]) for i in images if i["geo"])
    mid_lon = pts[len(pts) // 2][0]
    lats = sorted(p[1] for p in pts)
    min_lon, max_lon = pts[0][0] - 0.1, mid_lon
    min_lat, max_lat = lats[len(lats) // 3], lats[-1] + 0.1
    exp = [
        i["public_uuid"]
        for i in images
        if i["geo"] and min_lon <= i["geo"]["lon"] <= max_lon and min_lat <= i["geo"]["lat"] <= max_lat
    ]
    got = await api.all_images(bbox=f"{min_lon},{min_lat},{max_lon},{max_lat}")
    assert exp and len(exp) < len(pts) and uuids(got) == exp


async def test_filters_combine(api: Api, images: list[dict[str, Any]]) -> None:
    exp = [i["public_uuid"] for i in images if i["rating"] >= 3 and i["geo"] and not i["has_video"]]
    got = await api.all_images(min_rating=3, has_geo="true", has_video="false")
    assert exp and uuids(got) == exp


def title_word(images: list[dict[str, Any]], word: str) -> set[str]:
    return {i["public_uuid"] for i in images if word.lower() in i["title"].lower().split()}


async def test_query_plain(api: Api, images: list[dict[str, Any]]) -> None:
    got = uuids(await api.all_images(query="encore"))
    assert title_word(images, "encore") <= set(got)
    by = {i["public_uuid"]: i for i in images}
    assert all("encore" in text_of(by[u]) for u in got)


async def test_query_required_and_excluded(api: Api, images: list[dict[str, Any]]) -> None:
    by = {i["public_uuid"]: i for i in images}
    both = uuids(await api.all_images(query="+sunset +crowd"))
    assert both and all("sunset" in text_of(by[u]) and "crowd" in text_of(by[u]) for u in both)
    excl = uuids(await api.all_images(query="sunset -crowd"))
    assert excl and all("sunset" in text_of(by[u]) and "crowd" not in text_of(by[u]) for u in excl)
    assert not set(both) & set(excl)


async def test_query_phrase_and_prefix(api: Api, images: list[dict[str, Any]]) -> None:
    by = {i["public_uuid"]: i for i in images}
    phrase = uuids(await api.all_images(query='"low tides"'))
    assert phrase and all("low tides" in text_of(by[u]) for u in phrase)
    words = uuids(await api.all_images(query="low tides"))
    assert set(phrase) <= set(words)
    pre = uuids(await api.all_images(query="junip*"))
    assert {i["public_uuid"] for i in images if "juniper" in i["title"].lower()} <= set(pre)
    assert all("junip" in text_of(by[u]) for u in pre)
    assert await api.all_images(query="zzzqqqxxx") == []


async def test_query_ranks_title_hits_first(api: Api, images: list[dict[str, Any]]) -> None:
    got = await api.all_images(query="soundcheck")
    titles = ["soundcheck" in i["title"].lower() for i in got]
    assert titles and titles == sorted(titles, reverse=True), "title matches should outrank keyword-only ones"


async def test_get_one_image_and_versions(api: Api, images: list[dict[str, Any]]) -> None:
    im = images[0]
    full = await api.image(im["public_uuid"])
    assert set(full) >= IMAGE_KEYS
    assert full["public_uuid"] == im["public_uuid"]
    r = await api.get(f"/v1/images/{im['public_uuid']}/versions")
    assert r.status_code == 200
    versions = r.json()
    assert versions == full["versions"]
    names = [v["name"] for v in versions]
    assert set(names) == {"original", "large", "medium", "thumbnail"}
    orig = next(v for v in versions if v["name"] == "original")
    assert orig["url"] is None
    for v in versions:
        assert set(v) >= {"name", "width", "height", "url"}
        if v["name"] != "original":
            assert v["url"].startswith("http://dpg.test/media/")


@pytest.mark.parametrize("version", ["large", "medium", "thumbnail"])
async def test_version_urls_serve_jpeg(api: Api, images: list[dict[str, Any]], version: str) -> None:
    im = images[3]
    v = next(v for v in im["versions"] if v["name"] == version)
    r = await api.get(v["url"], None)  # public: no token
    assert r.status_code == 200
    assert r.content.startswith(JPEG_MAGIC)
    assert r.headers["Content-Type"].startswith("image/jpeg")
    pic = PILImage.open(io.BytesIO(r.content))
    assert pic.size == (v["width"], v["height"])
    if version == "thumbnail":
        assert max(pic.size) <= 320


async def test_missing_image_404(api: Api) -> None:
    nope = "00000000-0000-4000-8000-000000000000"
    assert_error(await api.get(f"/v1/images/{nope}"), 404, "image_not_found")
    assert_error(await api.get(f"/v1/images/{nope}/versions"), 404, "image_not_found")


async def test_etag_304(api: Api, images: list[dict[str, Any]], clock: FakeClock) -> None:
    u = images[0]["public_uuid"]
    r = await api.get(f"/v1/images/{u}")
    etag = r.headers["ETag"]
    r2 = await api.get(f"/v1/images/{u}", headers={"If-None-Match": etag})
    assert r2.status_code == 304 and r2.content == b""
    assert r2.headers["ETag"] == etag
    lst = await api.get("/v1/images", params={"limit": 5})
    lst2 = await api.get("/v1/images", params={"limit": 5}, headers={"If-None-Match": lst.headers["ETag"]})
    assert lst2.status_code == 304
    clock.advance(5)
    await api.ok_write("PATCH", f"/v1/images/{u}", {"title": "changed"})
    r3 = await api.get(f"/v1/images/{u}", headers={"If-None-Match": etag})
    assert r3.status_code == 200 and r3.headers["ETag"] != etag
    assert r3.json()["title"] == "changed"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/me",
        "/v1/keywords",
        "/v1/keywords/namespaces",
        "/v1/sets",
        "/v1/sets/tree",
        "/v1/facets",
        "/v1/metadata_profiles",
        "/v1/archives",
    ],
)
async def test_every_get_has_etag(api: Api, path: str) -> None:
    r = await api.get(path)
    assert r.status_code == 200, r.text
    r2 = await api.get(path, headers={"If-None-Match": r.headers["ETag"]})
    assert r2.status_code == 304, path


async def test_patch_fields(api: Api, images: list[dict[str, Any]], clock: FakeClock) -> None:
    u = images[5]["public_uuid"]
    before = await api.image(u)
    clock.advance(60)
    op = await api.ok_write(
        "PATCH",
        f"/v1/images/{u}",
        {"title": "T" * 191, "description": "D" * 5000, "rotation": 270, "creation_date": "2026-07-03"},
    )
    assert op["type"] == "update" and op["image_public_uuids"] == [u]
    after = await api.image(u)
    assert after["title"] == "T" * 191 and after["description"] == "D" * 5000 and after["rotation"] == 270
    assert after["creation_date"].startswith("2026-07-03")
    assert ts(after["updated_at"]) == pytest.approx(clock(), abs=1)
    assert after["created_at"] == before["created_at"]
    for rot in (0, 90, 180):
        await api.ok_write("PATCH", f"/v1/images/{u}", {"rotation": rot})
        assert (await api.image(u))["rotation"] == rot


async def test_delete_image(api: Api, images: list[dict[str, Any]]) -> None:
    im = next(i for i in images if i["set_public_uuids"])
    u = im["public_uuid"]
    s = im["set_public_uuids"][0]
    count = (await api.set_(s))["image_count"]
    op = await api.ok_write("DELETE", f"/v1/images/{u}")
    assert op["type"] == "delete"
    assert_error(await api.get(f"/v1/images/{u}"), 404, "image_not_found")
    assert u not in uuids(await api.all_images())
    assert (await api.set_(s))["image_count"] == count - 1
    assert u not in uuids(await api.set_images(s))
    assert_error(await api.write("DELETE", f"/v1/images/{u}"), 404, "image_not_found")


async def test_filter_namespace_alone_and_exif_halves(api: Api, images: list[dict[str, Any]]) -> None:
    exp = [i["public_uuid"] for i in images if any(k.get("namespace") == "stage" for k in i["keywords"])]
    assert 0 < len(exp) < len(images)
    assert uuids(await api.all_images(namespace="stage")) == exp
    # exif_property alone: images that have it; exif_value alone: any property with that value
    assert uuids(await api.all_images(exif_property="lens")) == [
        i["public_uuid"] for i in images if i["exif"].get("lens")
    ]
    iso_v = str(images[0]["exif"]["iso"])
    exp = [i["public_uuid"] for i in images if iso_v in {str(v) for v in i["exif"].values()}]
    assert uuids(await api.all_images(exif_value=iso_v)) == exp

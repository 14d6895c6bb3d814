"""Keywords (add, remove, rename, vocabulary, namespaces), metadata, rating, crop, alt text, credits,
extract_metadata, metadata profiles, facets."""

from __future__ import annotations

from collections import Counter
from typing import Any

from .catalog import kw_full
from .conftest import Api, assert_error


def kwset(im: dict[str, Any]) -> set[str]:
    return {kw_full(k) for k in im["keywords"]}


async def vocabulary(api: Api) -> dict[str, int]:
    out: dict[str, int] = {}
    offset = 0
    for _ in range(100):
        r = await api.get("/v1/keywords", params={"limit": 200, "offset": offset})
        assert r.status_code == 200
        for k in r.json():
            out[kw_full(k)] = k["count"]
        if r.headers["X-Has-More"] == "false":
            return out
        offset = int(r.headers["X-Next-Offset"])
    raise AssertionError("keyword paging did not end")


async def test_vocabulary_counts_match_images(api: Api, images: list[dict[str, Any]]) -> None:
    counts: Counter[str] = Counter()
    for im in images:
        counts.update(kwset(im))
    assert await vocabulary(api) == dict(counts)
    r = await api.get("/v1/keywords/namespaces")
    ns: Counter[str] = Counter()
    for im in images:
        ns.update({k["namespace"] for k in im["keywords"] if k.get("namespace")})
    got = {n["namespace"]: n["count"] for n in r.json()}
    assert {"artist", "stage", "day", "photographer"} <= set(got)
    assert got == dict(ns), got  # count = images carrying a keyword of that axis


async def test_keywords_add_remove(api: Api, images: list[dict[str, Any]]) -> None:
    u = images[0]["public_uuid"]
    before = kwset(await api.image(u))
    op = await api.ok_write("POST", f"/v1/images/{u}/keywords", {"keywords": ["zebra", "artist:Zed Q"]})
    assert op["type"] == "keywords"
    im = await api.image(u)
    assert {"namespace": "artist", "value": "Zed Q"} in [
        {"namespace": k["namespace"], "value": k["value"]} for k in im["keywords"]
    ]
    assert kwset(im) == before | {"zebra", "artist:Zed Q"}
    # adding again (other case) does not duplicate
    await api.ok_write("POST", f"/v1/images/{u}/keywords", {"keywords": ["ZEBRA"]})
    assert len((await api.image(u))["keywords"]) == len(im["keywords"])
    vocab = await vocabulary(api)
    assert vocab["zebra"] == 1 and vocab["artist:Zed Q"] == 1
    # remove: full form, then bare value + namespace
    await api.ok_write("DELETE", f"/v1/images/{u}/keywords", {"keyword": "zebra"})
    await api.ok_write("DELETE", f"/v1/images/{u}/keywords", {"keyword": "Zed Q", "namespace": "artist"})
    assert kwset(await api.image(u)) == before
    assert "zebra" not in await vocabulary(api)


async def test_keywords_limit_200_per_call(api: Api, images: list[dict[str, Any]]) -> None:
    u = images[1]["public_uuid"]
    await api.ok_write("POST", f"/v1/images/{u}/keywords", {"keywords": [f"k{i}" for i in range(200)]})
    assert len(kwset(await api.image(u))) >= 200
    await api.ok_write("POST", f"/v1/images/{u}/keywords", {"keywords": ["x" * 100]})
    r = await api.write("POST", f"/v1/images/{u}/keywords", {"keywords": [f"j{i}" for i in range(201)]})
    assert_error(r, 400, "validation", "keywords")


async def test_rename_across_account_and_merge(api: Api, images: list[dict[str, Any]]) -> None:
    old = "crowd"
    holders = [i["public_uuid"] for i in images if old in kwset(i)]
    assert holders
    op = await api.ok_write("POST", "/v1/keywords/rename", {"from": old, "to": "audience"})
    assert op["type"] == "keyword_rename"
    vocab = await vocabulary(api)
    assert old not in vocab and vocab["audience"] == len(holders)
    # merge into an existing keyword: nobody ends with it twice
    both = [i["public_uuid"] for i in images if {"sunset", "night"} <= kwset(i)]
    await api.ok_write("POST", "/v1/keywords/rename", {"from": "sunset", "to": "night"})
    for u in both[:3]:
        vals = [kw_full(k) for k in (await api.image(u))["keywords"]]
        assert vals.count("night") == 1 and "sunset" not in vals


async def test_rename_limited_to_images(api: Api, images: list[dict[str, Any]]) -> None:
    holders = [i["public_uuid"] for i in images if "guitar" in kwset(i)]
    chosen, rest = holders[:2], holders[2:]
    assert rest
    await api.ok_write(
        "POST", "/v1/keywords/rename", {"from": "guitar", "to": "bass", "image_public_uuids": chosen}
    )
    for u in chosen:
        assert "bass" in kwset(await api.image(u)) and "guitar" not in kwset(await api.image(u))
    assert "guitar" in kwset(await api.image(rest[0]))


async def test_metadata_partial_put(api: Api, images: list[dict[str, Any]]) -> None:
    u = images[2]["public_uuid"]
    before = (await api.image(u))["metadata"]
    op = await api.ok_write(
        "PUT", f"/v1/images/{u}/metadata", {"creator": "Jane Q", "copyright_marked": True}
    )
    assert op["type"] == "metadata"
    await api.ok_write("PUT", f"/v1/images/{u}/metadata", {"copyright_notice": "© 2026 Jane Q"})
    md = (await api.image(u))["metadata"]
    assert md["creator"] == "Jane Q" and md["copyright_marked"] is True
    assert md["copyright_notice"] == "© 2026 Jane Q"
    for k, v in before.items():
        if k not in ("creator", "copyright_notice", "copyright_marked"):
            assert md[k] == v


async def test_rating(api: Api, images: list[dict[str, Any]]) -> None:
    u = images[3]["public_uuid"]
    for n in (0, 5, 3):
        op = await api.ok_write("PUT", f"/v1/images/{u}/rating", {"rating": n})
        assert op["type"] == "rating"
        assert (await api.image(u))["rating"] == n


async def test_crop(api: Api, images: list[dict[str, Any]]) -> None:
    im = images[4]
    u = im["public_uuid"]
    orig = next(v for v in im["versions"] if v["name"] == "original")
    w, h = orig["width"], orig["height"]
    side = min(w, h)
    crop = {
        "aspect_ratio": "1:1",
        "x": w - side,
        "y": h - side,
        "width": side,
        "height": side,
    }  # flush right/bottom
    op = await api.ok_write("PUT", f"/v1/images/{u}/crop", crop)
    assert op["type"] == "crop"
    assert crop in (await api.image(u))["crops"]
    crop2 = {**crop, "x": 0, "y": 0, "width": side - 1, "height": side - 1}
    await api.ok_write("PUT", f"/v1/images/{u}/crop", crop2)  # same ratio: replaced
    crops = [c for c in (await api.image(u))["crops"] if c["aspect_ratio"] == "1:1"]
    assert crops == [crop2]
    bad = {**crop, "x": crop["x"] + 1}  # one pixel past the right edge
    assert_error(await api.write("PUT", f"/v1/images/{u}/crop", bad), 400, "validation", "width")
    bad = {**crop, "y": crop["y"] + 1}
    assert_error(await api.write("PUT", f"/v1/images/{u}/crop", bad), 400, "validation", "height")
    await api.ok_write("DELETE", f"/v1/images/{u}/crop", {"aspect_ratio": "1:1"})
    assert not [c for c in (await api.image(u))["crops"] if c["aspect_ratio"] == "1:1"]


async def test_alt_text_and_credits(api: Api, images: list[dict[str, Any]]) -> None:
    u = images[6]["public_uuid"]
    op = await api.ok_write("PUT", f"/v1/images/{u}/alt_text", {"alt_text": "a" * 1000})
    assert op["type"] == "alt_text"
    assert (await api.image(u))["alt_text"] == "a" * 1000
    before = (await api.image(u))["credits"]
    credit = {"role": "agency", "name": "Riverside Press"}
    op = await api.ok_write("POST", f"/v1/images/{u}/credits", {"credits": [credit]})
    assert op["type"] == "credits"
    assert (await api.image(u))["credits"] == [*before, credit]
    await api.ok_write("DELETE", f"/v1/images/{u}/credits", {"credits": [credit]})
    assert (await api.image(u))["credits"] == before


async def test_extract_metadata_fills_empty_fields(api: Api, images: list[dict[str, Any]]) -> None:
    fresh = next(i for i in images if not i["title"])  # imported without editing: text only in the file
    u = fresh["public_uuid"]
    op = await api.ok_write("POST", f"/v1/images/{u}/extract_metadata", {})
    assert op["type"] == "extract_metadata"
    im = await api.image(u)
    assert im["title"] and im["description"] and im["creation_date"]
    assert len(im["keywords"]) > len(fresh["keywords"])


async def test_metadata_profiles(api: Api) -> None:
    r = await api.get("/v1/metadata_profiles")
    assert r.status_code == 200
    profiles = r.json()
    assert isinstance(profiles, list) and profiles
    for p in profiles:
        assert p["uuid"] and p["name"] and isinstance(p["fields"], dict)


async def test_facets_match_the_list(api: Api, images: list[dict[str, Any]]) -> None:
    await check_facets(api, images, {})
    sub = await api.all_images(min_rating=3, has_geo="true")
    await check_facets(api, sub, {"min_rating": 3, "has_geo": "true"})


async def check_facets(api: Api, imgs: list[dict[str, Any]], params: dict[str, Any]) -> None:
    r = await api.get("/v1/facets", params=params)
    assert r.status_code == 200, r.text
    f = r.json()
    assert set(f) >= {"keywords", "ratings", "cameras", "years"}
    assert f["ratings"] == {str(n): sum(1 for i in imgs if i["rating"] == n) for n in range(6)}
    kws: Counter[str] = Counter()
    for im in imgs:
        kws.update(kwset(im))
    got = {kw_full(k): k["count"] for k in f["keywords"]}
    assert got == dict(kws)
    counts = [k["count"] for k in f["keywords"]]
    assert counts == sorted(counts, reverse=True)  # most used first
    cams = Counter((i["exif"].get("make"), i["exif"].get("model")) for i in imgs if i["exif"].get("make"))
    assert {(c["make"], c["model"]): c["count"] for c in f["cameras"]} == dict(cams)
    years = Counter(int(i["creation_date"][:4]) for i in imgs if i.get("creation_date"))
    assert {y["year"]: y["count"] for y in f["years"]} == dict(years)
    assert "X-Has-More" not in r.headers


async def test_facets_bad_filter(api: Api) -> None:
    assert_error(await api.get("/v1/facets", params={"rating": 9}), 400, "validation", "rating")


async def test_vocabulary_filters(api: Api) -> None:
    full = await vocabulary(api)
    r = await api.get("/v1/keywords", params={"namespace": "stage", "limit": 200})
    assert {kw_full(k): k["count"] for k in r.json()} == {
        k: n for k, n in full.items() if k.startswith("stage:")
    }
    r = await api.get("/v1/keywords", params={"prefix": "SUN", "limit": 200})
    got = {kw_full(k) for k in r.json()}
    assert got == {k for k in full if k.split(":")[-1].lower().startswith("sun")}
    assert got
    ns = (await api.get("/v1/keywords/namespaces")).json()
    stage = next(n for n in ns if n["namespace"] == "stage")
    assert stage["keyword_count"] == len([k for k in full if k.startswith("stage:")])

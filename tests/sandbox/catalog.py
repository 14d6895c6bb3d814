"""Every write endpoint of DPG v1 with a good body and bad bodies, built from live sandbox data."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dpg_mcp.sandbox import Sandbox

from .conftest import Api


def kw_full(k: dict[str, Any]) -> str:
    return f"{k['namespace']}:{k['value']}" if k.get("namespace") else str(k["value"])


@dataclass
class Ctx:
    img: str
    img2: str
    img_keyword: str
    set_uuid: str
    set_members: list[str]
    snapshot: str
    top_sets: list[str]
    orig_w: int
    orig_h: int


_CTX: weakref.WeakKeyDictionary[Sandbox, Ctx] = weakref.WeakKeyDictionary()


async def shared_ctx(api: Api) -> Ctx:
    """build_ctx once per sandbox (for tests that leave the store unchanged)."""
    if api.sb not in _CTX:
        _CTX[api.sb] = await build_ctx(api)
    return _CTX[api.sb]


async def build_ctx(api: Api) -> Ctx:
    images = (await api.get("/v1/images", params={"limit": 20})).json()
    with_kw = [i for i in images if i["keywords"]]
    img = with_kw[0]
    img2 = next(i for i in images if i["public_uuid"] != img["public_uuid"])
    r = await api.get("/v1/sets", params={"limit": 200})
    top = [s["public_uuid"] for s in r.json()]
    tree = (await api.get("/v1/sets/tree")).json()

    def walk(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for n in nodes:
            out.append(n)
            out.extend(walk(n.get("children") or []))
        return out

    full = next(s for s in walk(tree) if s["image_count"] >= 3)
    members = [i["public_uuid"] for i in await api.set_images(full["public_uuid"])]
    snaps = (await api.get(f"/v1/sets/{full['public_uuid']}/snapshots")).json()
    if not snaps:  # an order write (same order) takes one
        await api.ok_write("PATCH", f"/v1/sets/{full['public_uuid']}/order", {"image_public_uuids": members})
        snaps = (await api.get(f"/v1/sets/{full['public_uuid']}/snapshots")).json()
    orig = next(v for v in img["versions"] if v["name"] == "original")
    return Ctx(
        img=img["public_uuid"],
        img2=img2["public_uuid"],
        img_keyword=kw_full(img["keywords"][0]),
        set_uuid=full["public_uuid"],
        set_members=members,
        snapshot=snaps[0]["uuid"],
        top_sets=top,
        orig_w=int(orig["width"]),
        orig_h=int(orig["height"]),
    )


Body = Callable[[Ctx], Any]


@dataclass
class WriteCase:
    name: str
    method: str
    path: Callable[[Ctx], str]
    scope: str
    good: Body
    # (bad body, the field the 400 must name: exact, or "prefix*" for a prefix match)
    bads: list[tuple[Body, str]] = field(default_factory=list)
    ok_status: int = 202


def _c(v: Any) -> Body:
    return lambda _c: v


WRITES: list[WriteCase] = [
    WriteCase(
        "image_update",
        "PATCH",
        lambda c: f"/v1/images/{c.img}",
        "api.images.write",
        _c({"title": "A new title"}),
        [
            (_c({"title": "x" * 192}), "title"),
            (_c({"title": 5}), "title"),
            (_c({"rotation": 45}), "rotation"),
            (_c({"rotation": "90"}), "rotation"),
            (_c({"description": "d" * 5001}), "description"),
            (_c({"creation_date": "not a date"}), "creation_date"),
            # the year range (1800..2200) holds for bare dates as for timestamps
            (_c({"creation_date": "2201-01-01"}), "creation_date"),
            (_c({"creation_date": "0001-01-01"}), "creation_date"),
        ],
    ),
    WriteCase("image_delete", "DELETE", lambda c: f"/v1/images/{c.img2}", "api.images.delete", _c(None)),
    WriteCase(
        "keywords_add",
        "POST",
        lambda c: f"/v1/images/{c.img}/keywords",
        "api.keywords.write",
        _c({"keywords": ["sunset", "artist:Marina"]}),
        [
            (_c({"keywords": ["k"] * 201}), "keywords"),
            (_c({"keywords": ["x" * 101]}), "keywords*"),
            (_c({"keywords": "sunset"}), "keywords"),
            (_c({}), "keywords"),
        ],
    ),
    WriteCase(
        "keywords_remove",
        "DELETE",
        lambda c: f"/v1/images/{c.img}/keywords",
        "api.keywords.write",
        lambda c: {"keyword": c.img_keyword},
        [(_c({}), "keyword"), (_c({"keyword": 5}), "keyword")],
    ),
    WriteCase(
        "keyword_rename",
        "POST",
        lambda _c: "/v1/keywords/rename",
        "api.keywords.write",
        lambda c: {"from": c.img_keyword, "to": "renamed-keyword"},
        [
            (lambda c: {"from": c.img_keyword}, "to"),
            (lambda c: {"from": c.img_keyword, "to": "x" * 101}, "to"),
            (lambda c: {"from": c.img_keyword, "to": "y", "image_public_uuids": "z"}, "image_public_uuids"),
        ],
    ),
    WriteCase(
        "metadata",
        "PUT",
        lambda c: f"/v1/images/{c.img}/metadata",
        "api.metadata.write",
        _c({"creator": "Jane Doe", "copyright_notice": "© 2026 Jane Doe", "copyright_marked": True}),
        [(_c({"copyright_marked": "yes"}), "copyright_marked"), (_c({"creator": 5}), "creator")],
    ),
    WriteCase(
        "rating",
        "PUT",
        lambda c: f"/v1/images/{c.img}/rating",
        "api.ratings.write",
        _c({"rating": 4}),
        [
            (_c({"rating": 6}), "rating"),
            (_c({"rating": -1}), "rating"),
            (_c({"rating": True}), "rating"),
            (_c({"rating": 2.5}), "rating"),
            (_c({"rating": "3"}), "rating"),
            (_c({}), "rating"),
        ],
    ),
    WriteCase(
        "crop_set",
        "PUT",
        lambda c: f"/v1/images/{c.img}/crop",
        "api.metadata.write",
        _c({"aspect_ratio": "1:1", "x": 0, "y": 0, "width": 10, "height": 10}),
        [
            (_c({"aspect_ratio": "1:1", "x": 0, "y": 0, "width": 10.5, "height": 10}), "width"),
            (_c({"aspect_ratio": "1:1", "x": -1, "y": 0, "width": 10, "height": 10}), "x"),
            (
                lambda c: {
                    "aspect_ratio": "1:1",
                    "x": 0,
                    "y": 0,
                    "width": c.orig_w + 1,
                    "height": c.orig_w + 1,
                },
                "width",
            ),
            (lambda c: {"aspect_ratio": "1:1", "x": 0, "y": c.orig_h, "width": 10, "height": 10}, "height"),
            (_c({"aspect_ratio": "1:1", "x": 0, "y": 0, "width": 30, "height": 10}), "height"),
            (_c({"aspect_ratio": "wide", "x": 0, "y": 0, "width": 10, "height": 10}), "aspect_ratio"),
            (_c({"x": 0, "y": 0, "width": 10, "height": 10}), "aspect_ratio"),
        ],
    ),
    WriteCase(
        "crop_clear",
        "DELETE",
        lambda c: f"/v1/images/{c.img}/crop",
        "api.metadata.write",
        _c({"aspect_ratio": "1:1"}),
        [(_c({"aspect_ratio": 5}), "aspect_ratio")],
    ),
    WriteCase(
        "alt_text",
        "PUT",
        lambda c: f"/v1/images/{c.img}/alt_text",
        "api.metadata.write",
        _c({"alt_text": "A stage at dusk"}),
        [(_c({"alt_text": "a" * 1001}), "alt_text"), (_c({"alt_text": 5}), "alt_text"), (_c({}), "alt_text")],
    ),
    WriteCase(
        "credits_add",
        "POST",
        lambda c: f"/v1/images/{c.img}/credits",
        "api.metadata.write",
        _c({"credits": [{"role": "stylist", "name": "Ann"}]}),
        [(_c({"credits": [{"role": "stylist"}]}), "credits*"), (_c({"credits": "Ann"}), "credits")],
    ),
    WriteCase(
        "credits_remove",
        "DELETE",
        lambda c: f"/v1/images/{c.img}/credits",
        "api.metadata.write",
        _c({"credits": [{"role": "stylist", "name": "Ann"}]}),
        [(_c({"credits": 5}), "credits")],
    ),
    WriteCase(
        "extract_metadata",
        "POST",
        lambda c: f"/v1/images/{c.img}/extract_metadata",
        "api.metadata.write",
        _c({}),
    ),
    WriteCase(
        "set_create",
        "POST",
        lambda _c: "/v1/sets",
        "api.sets.write",
        _c({"name": "Saturday selects", "colour": "red", "type": "gallery"}),
        [
            (_c({"name": ""}), "name"),
            (_c({"name": "n" * 192}), "name"),
            (_c({"name": "A", "colour": "pink"}), "colour"),
            (_c({"name": "A", "type": "album"}), "type"),
            (_c({}), "name"),
        ],
    ),
    WriteCase(
        "set_update",
        "PATCH",
        lambda c: f"/v1/sets/{c.set_uuid}",
        "api.sets.write",
        _c({"name": "Renamed set", "colour": "blue"}),
        [(_c({"colour": "pink"}), "colour"), (_c({"name": ""}), "name"), (_c({"type": 3}), "type")],
    ),
    WriteCase(
        "set_add",
        "POST",
        lambda c: f"/v1/sets/{c.set_uuid}/images",
        "api.sets.write",
        lambda c: {"image_public_uuids": [c.img2]},
        [(_c({"image_public_uuids": "x"}), "image_public_uuids"), (_c({}), "image_public_uuids")],
    ),
    WriteCase(
        "set_remove",
        "DELETE",
        lambda c: f"/v1/sets/{c.set_uuid}/images",
        "api.sets.write",
        lambda c: {"image_public_uuids": c.set_members[:1]},
        [(_c({"image_public_uuids": 5}), "image_public_uuids"), (_c({}), "image_public_uuids")],
    ),
    WriteCase(
        "set_order",
        "PATCH",
        lambda c: f"/v1/sets/{c.set_uuid}/order",
        "api.sets.write",
        lambda c: {"image_public_uuids": list(reversed(c.set_members))},
        [
            (lambda c: {"image_public_uuids": c.set_members[1:]}, "image_public_uuids"),
            (_c({"image_public_uuids": "x"}), "image_public_uuids"),
        ],
    ),
    WriteCase(
        "set_reorder",
        "PATCH",
        lambda _c: "/v1/sets/reorder",
        "api.sets.write",
        lambda c: {"parent_public_uuid": None, "set_public_uuids": list(reversed(c.top_sets))},
        [
            (lambda c: {"parent_public_uuid": None, "set_public_uuids": c.top_sets[1:]}, "set_public_uuids"),
            (_c({"parent_public_uuid": None}), "set_public_uuids"),
        ],
    ),
    WriteCase(
        "set_visibility",
        "PATCH",
        lambda c: f"/v1/sets/{c.set_uuid}/visibility",
        "api.sets.write",
        lambda c: {"image_public_uuids": c.set_members[:1], "hidden": True},
        [
            (lambda c: {"image_public_uuids": c.set_members[:1], "hidden": "true"}, "hidden"),
            (lambda c: {"image_public_uuids": c.set_members[:1], "hidden": 1}, "hidden"),
            (lambda c: {"image_public_uuids": c.set_members[:1]}, "hidden"),
            (
                lambda c: {
                    "image_public_uuids": c.set_members[:1],
                    "hidden": True,
                    "activation_time": "soon",
                },
                "activation_time",
            ),
        ],
    ),
    WriteCase(
        "set_restore",
        "POST",
        lambda c: f"/v1/sets/{c.set_uuid}/restore",
        "api.sets.write",
        lambda c: {"snapshot_uuid": c.snapshot},
        [(_c({}), "snapshot_uuid"), (_c({"snapshot_uuid": 5}), "snapshot_uuid")],
    ),
    WriteCase(
        "upload_ticket",
        "POST",
        lambda _c: "/v1/uploads",
        "api.upload",
        _c({"filename": "IMG_1.png", "title": "Sound check", "keywords": ["stage"]}),
        [
            (_c({"filename": "IMG_1.png", "title": "t" * 192}), "title"),
            (_c({"filename": "IMG_1.png", "keywords": "stage"}), "keywords"),
            (_c({"title": "no filename"}), "filename"),
        ],
        ok_status=201,
    ),
    WriteCase(
        "download_link",
        "POST",
        lambda _c: "/v1/downloads",
        "api.download",
        lambda c: {"image_public_uuid": c.img, "version": "original"},
        [
            (lambda c: {"image_public_uuid": c.img, "version": "huge"}, "version"),
            (_c({}), "image_public_uuid"),
        ],
        ok_status=200,
    ),
    WriteCase(
        "archive",
        "POST",
        lambda _c: "/v1/archives",
        "api.download",
        lambda c: {"image_public_uuids": [c.img], "filename": "friday-selects"},
        [
            (_c({"image_public_uuids": []}), "image_public_uuids"),
            (lambda c: {"image_public_uuids": [c.img] * 501}, "image_public_uuids"),
            (lambda c: {"image_public_uuids": [c.img], "version": "huge"}, "version"),
        ],
    ),
    WriteCase(
        "batch",
        "POST",
        lambda _c: "/v1/operations/batch",
        "",  # each item's own scope
        lambda c: {
            "operations": [{"method": "PUT", "path": f"/v1/images/{c.img}/rating", "body": {"rating": 1}}]
        },
        [
            (_c({"operations": []}), "operations"),
            (
                lambda c: {
                    "operations": [
                        {"method": "PUT", "path": f"/v1/images/{c.img}/rating", "body": {"rating": 1}}
                    ]
                    * 51
                },
                "operations",
            ),
            (
                lambda c: {
                    "operations": [
                        {"method": "PUT", "path": f"/v1/images/{c.img}/rating", "body": {"rating": 1}},
                        {"method": "PUT", "path": f"/v1/images/{c.img}/rating", "body": {"rating": 9}},
                    ]
                },
                "operations[1].body.rating",
            ),
        ],
    ),
]

WRITE_BY_NAME = {w.name: w for w in WRITES}
BAD_CASES = [(w.name, i) for w in WRITES for i in range(len(w.bads))]


def field_matches(got: str | None, want: str) -> bool:
    if want.endswith("*"):
        return got is not None and got.startswith(want[:-1])
    return got == want

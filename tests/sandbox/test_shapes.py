"""Pinned shapes of Me, Image, Set, Operation and the error envelope (volatile values replaced)."""

from __future__ import annotations

import re
from typing import Any

from inline_snapshot import snapshot

from .conftest import ADMIN, Api, assert_error

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def norm(v: Any) -> Any:
    """Replace ids and times by placeholders; keep one item of each list (plus its length)."""
    if isinstance(v, dict):
        return {k: norm(x) for k, x in sorted(v.items())}
    if isinstance(v, list):
        return [f"<list of {len(v)}>", norm(v[0])] if v else []
    if isinstance(v, str):
        v = re.sub(r"op-" + UUID, "<op>", v)
        v = re.sub(UUID, "<uuid>", v)
        v = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", "<datetime>", v)
        return v
    return v


async def test_me_shape(api: Api) -> None:
    me = (await api.get("/v1/me", ADMIN)).json()
    assert re.fullmatch(r"[0-9a-f]{32}", me["instance_id"])  # fresh on every sandbox start
    me["instance_id"] = "<per start>"
    assert norm(me) == snapshot(
        {
            "account": {"name": "Riverside Sound Festival", "unique_id": "riverside", "uuid": "<uuid>"},
            "capabilities": ["<list of 9>", "api.images.read"],
            "instance_id": "<per start>",
            "service_token": {"name": "Sandbox admin", "uuid": "<uuid>"},
            "user": None,
        }
    )


async def test_image_shape(api: Api, images: list[dict[str, Any]]) -> None:
    im = await api.image(images[0]["public_uuid"])
    shape = norm(im)
    for k in ("title", "description", "filename", "alt_text"):
        shape[k] = type(im[k]).__name__
    assert shape == snapshot(
        {
            "alt_text": "str",
            "created_at": "<datetime>",
            "creation_date": "<datetime>",
            "credits": ["<list of 1>", {"name": "Lucía Ferreira", "role": "photographer"}],
            "crops": [],
            "description": "str",
            "exif": {
                "aperture": 2.8,
                "focal_length": 70,
                "iso": 200,
                "lens": "NIKKOR Z 24-120mm f/4 S",
                "make": "Nikon",
                "model": "Z 9",
                "shutter": "1/250",
            },
            "filename": "str",
            "geo": None,
            "has_video": False,
            "height": 5504,
            "keywords": ["<list of 7>", {"namespace": "artist", "value": "Tomas Ruiz"}],
            "metadata": {
                "city": "Riverside",
                "copyright_notice": "© 2026 Lucía Ferreira",
                "country": "United Kingdom",
                "creator": "Lucía Ferreira",
                "credit_line": "Lucía Ferreira / Riverside Sound Festival",
            },
            "metadata_profile_uuid": None,
            "public_uuid": "<uuid>",
            "rating": 5,
            "rotation": 0,
            "set_public_uuids": ["<list of 2>", "<uuid>"],
            "title": "str",
            "transaction_uuid": None,
            "updated_at": "<datetime>",
            "versions": [
                "<list of 4>",
                {
                    "access": "private",
                    "content_type": "image/jpeg",
                    "height": 5504,
                    "name": "original",
                    "url": None,
                    "width": 8256,
                },
            ],
            "width": 8256,
        }
    )
    assert sorted(images[0]) == sorted(im)  # list items are the full object


async def test_set_shape(api: Api, sets: list[dict[str, Any]]) -> None:
    s = await api.set_(sets[0]["public_uuid"])
    assert norm(s) == snapshot(
        {
            "child_count": 3,
            "colour": "blue",
            "created_at": "<datetime>",
            "description": "Everything shot at Riverside Sound Festival 2026, by day and stage.",
            "hidden_count": 0,
            "image_count": 0,
            "lead_image_public_uuid": None,
            "name": "Festival 2026",
            "parent_public_uuid": None,
            "position": 0,
            "public_uuid": "<uuid>",
            "type": "folder",
            "updated_at": "<datetime>",
            "website": {
                "name": "Riverside Sound Festival",
                "url": "https://gallery.riversidesound.test/festival-2026",
            },
        }
    )
    node = (await api.get("/v1/sets/tree")).json()[0]
    assert sorted(node) == snapshot(
        [
            "child_count",
            "children",
            "colour",
            "created_at",
            "description",
            "hidden_count",
            "image_count",
            "lead_image_public_uuid",
            "name",
            "parent_public_uuid",
            "position",
            "public_uuid",
            "type",
            "updated_at",
            "website",
        ]
    )
    img = (await api.set_images(sets[1]["public_uuid"]))[0]
    assert sorted(set(img) - set(images_keys())) == snapshot(
        ["activation_time", "height", "hidden", "metadata_profile_uuid", "transaction_uuid", "width"]
    )


def images_keys() -> list[str]:
    from .test_images import IMAGE_KEYS

    return sorted(IMAGE_KEYS)


async def test_operation_shape(api: Api, images: list[dict[str, Any]]) -> None:
    op = await api.ok_write("PATCH", f"/v1/images/{images[0]['public_uuid']}", {"title": "x"})
    assert norm(op) == snapshot(
        {
            "created_at": "<datetime>",
            "error": None,
            "image_public_uuids": ["<list of 1>", "<uuid>"],
            "result": {"changed": ["<list of 1>", "title"], "message": "Updated successfully."},
            "set_public_uuid": None,
            "status": "succeeded",
            "type": "update",
            "updated_at": "<datetime>",
            "uuid": "<op>",
        }
    )
    polled = (await api.get(f"/v1/operations/{op['uuid']}")).json()
    assert polled == op


async def test_error_shape(api: Api) -> None:
    err = assert_error(await api.write("PUT", "/v1/images/x/rating", {"rating": 9}), 400, "validation")
    err["request_id"] = "<rid>"
    assert err == snapshot(
        {
            "code": "validation",
            "message": "The request is not valid.",
            "detail": "rating must be between 0 and 5",
            "field": "rating",
            "request_id": "<rid>",
        }
    )
    err = assert_error(await api.write("PUT", "/v1/images/x/rating", {"rating": 1}), 404, "image_not_found")
    err["request_id"] = "<rid>"
    assert err == snapshot(
        {
            "code": "image_not_found",
            "message": "No image has that public_uuid.",
            "detail": "image x does not exist",
            "field": None,
            "request_id": "<rid>",
        }
    )
    err = assert_error(await api.get("/v1/me", None), 401, "unauthorized")
    err["request_id"] = "<rid>"
    assert err == snapshot(
        {
            "code": "unauthorized",
            "message": "A bearer token is required.",
            "detail": "send the header Authorization: Bearer <token>",
            "field": None,
            "request_id": "<rid>",
        }
    )

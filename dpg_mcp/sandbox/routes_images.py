"""Images: list/search, get, versions, facets; PATCH and DELETE."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from . import search
from .auth import Principal
from .common import need_image, norm_date, path_field, read_endpoint
from .core import Engine, Plan, WriteCtx, WriteRoute
from .http import MISSING, Fields, check_query, json_get, page_reply, paging, validation
from .views import image_json, versions

READ = "api.images.read"
ROTATIONS = (0, 90, 180, 270)


def base_of(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def routes(eng: Engine) -> list[BaseRoute]:
    async def list_images(request: Request, p: Principal) -> Response:
        check_query(request, search.FILTERS | {"limit", "offset"})
        limit, offset = paging(request)
        found, total = search.page(eng.store, search.parse_filters(request), limit, offset)
        base = base_of(request)
        return page_reply(request, found, total, offset, lambda im: image_json(eng.store, im, base))

    async def facets(request: Request, p: Principal) -> Response:
        check_query(request, search.FILTERS)
        return json_get(request, search.facets(search.find_all(eng.store, search.parse_filters(request))))

    async def get_image(request: Request, p: Principal) -> Response:
        check_query(request, set())
        im = need_image(eng, request.path_params["public_uuid"])
        return json_get(request, image_json(eng.store, im, base_of(request)))

    async def get_versions(request: Request, p: Principal) -> Response:
        check_query(request, set())
        im = need_image(eng, request.path_params["public_uuid"])
        return json_get(request, versions(im, base_of(request)))

    return [
        Route("/v1/images", read_endpoint(eng, READ, list_images), methods=["GET"]),
        Route("/v1/facets", read_endpoint(eng, READ, facets), methods=["GET"]),
        Route("/v1/images/{public_uuid}", read_endpoint(eng, READ, get_image), methods=["GET"]),
        Route("/v1/images/{public_uuid}/versions", read_endpoint(eng, READ, get_versions), methods=["GET"]),
    ]


def prepare_patch(ctx: WriteCtx) -> Plan:
    f = Fields(ctx.body, ctx.prefix, {"title", "description", "creation_date", "rotation"})
    changes: dict[str, Any] = {}
    title = f.string("title", max_len=191, nullable=True)
    if title is not MISSING:
        changes["title"] = title or ""
    desc = f.string("description", max_len=5000, nullable=True)
    if desc is not MISSING:
        changes["description"] = desc or ""
    cd = f.string("creation_date", nullable=True)
    if cd is not MISSING:
        changes["creation_date"] = None if cd is None else norm_date(cd, f.f("creation_date"))
    if f.has("rotation"):
        rot = f.body["rotation"]
        if isinstance(rot, bool) or not isinstance(rot, int) or rot not in ROTATIONS:
            raise validation(f.f("rotation"), "rotation must be one of 0, 90, 180, 270")
        changes["rotation"] = rot
    if not changes:
        raise validation(
            ctx.prefix.rstrip(".") or None, "send at least one of title, description, creation_date, rotation"
        )
    im = need_image(ctx, ctx.params["public_uuid"], path_field(ctx))

    def apply() -> dict[str, Any]:
        for k, v in changes.items():
            setattr(im, k, v)
        im.updated_at = ctx.eng.clock()
        return {"message": "Updated successfully.", "changed": sorted(changes)}

    return Plan(apply, [im.public_uuid])


def prepare_delete(ctx: WriteCtx) -> Plan:
    Fields(ctx.body, ctx.prefix, set(), optional=True)
    im = need_image(ctx, ctx.params["public_uuid"], path_field(ctx))
    store = ctx.eng.store

    def apply() -> dict[str, Any]:
        uid = im.public_uuid
        if uid not in store.images:
            raise validation(None, "the image was already deleted")
        del store.images[uid]
        for s in store.sets.values():
            if uid in s.images:
                s.images.remove(uid)
                s.hidden.pop(uid, None)
                if s.lead_image_public_uuid == uid:
                    s.lead_image_public_uuid = s.images[0] if s.images else None
        return {"message": "Deleted successfully."}

    return Plan(apply, [im.public_uuid])


WRITES = [
    WriteRoute("PATCH", "/v1/images/{public_uuid}", "api.images.write", "update", prepare_patch),
    WriteRoute(
        "DELETE",
        "/v1/images/{public_uuid}",
        "api.images.delete",
        "delete",
        prepare_delete,
        body_optional=True,
    ),
]

"""Keywords (add/remove/rename, vocabulary, namespaces) and per-image metadata writes."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .auth import Principal
from .common import dedupe, need_image, need_images, norm_date, parse_keyword, path_field, read_endpoint
from .core import Engine, Plan, WriteCtx, WriteRoute
from .http import MISSING, Fields, check_query, page_response, paging, validation
from .store import ImageRec, KeywordT, kw_full, kw_key

READ = "api.images.read"
MAX_KEYWORDS = 200
IPTC_TEXT = {
    "creator",
    "creator_job_title",
    "credit_line",
    "source",
    "copyright_notice",
    "copyright_url",
    "usage_terms",
    "contact_email",
    "contact_phone",
    "contact_url",
    "contact_address",
    "city",
    "state",
    "country",
    "country_code",
    "sublocation",
    "headline",
    "instructions",
    "job_id",
    "caption_writer",
    "event",
}
IPTC_BOOL = {"copyright_marked"}
_RATIO = re.compile(r"^([1-9]\d{0,2}):([1-9]\d{0,2})$")


def routes(eng: Engine) -> list[BaseRoute]:
    async def keywords(request: Request, p: Principal) -> Response:
        check_query(request, {"limit", "offset", "namespace", "prefix"})
        limit, offset = paging(request)
        ns = request.query_params.get("namespace")
        prefix = (request.query_params.get("prefix") or "").lower()
        counts: dict[tuple[str, str], list[Any]] = {}
        for im in eng.store.images.values():
            for k in im.keywords:
                counts.setdefault(kw_key(k), [k[0], k[1], 0])[2] += 1
        rows = [
            {"namespace": n, "value": v, "count": c}
            for n, v, c in counts.values()
            if (ns is None or (n or "") == ns.lower()) and (not prefix or v.lower().startswith(prefix))
        ]
        rows.sort(key=lambda r: (-r["count"], r["namespace"] or "", r["value"].lower()))
        return page_response(request, rows, limit, offset)

    async def namespaces(request: Request, p: Principal) -> Response:
        check_query(request, {"limit", "offset"})
        limit, offset = paging(request)
        imgs: dict[str, int] = {}
        values: dict[str, set[str]] = {}
        for im in eng.store.images.values():
            seen = set()
            for n, v in im.keywords:
                if n:
                    values.setdefault(n, set()).add(v.lower())
                    seen.add(n)
            for n in seen:
                imgs[n] = imgs.get(n, 0) + 1
        ordered = sorted(imgs.items(), key=lambda nc: (-nc[1], nc[0]))
        rows = [{"namespace": n, "count": c, "keyword_count": len(values[n])} for n, c in ordered]
        return page_response(request, rows, limit, offset)

    async def profiles(request: Request, p: Principal) -> Response:
        check_query(request, {"limit", "offset"})
        limit, offset = paging(request)
        return page_response(request, eng.store.metadata_profiles, limit, offset)

    return [
        Route("/v1/keywords", read_endpoint(eng, READ, keywords), methods=["GET"]),
        Route("/v1/keywords/namespaces", read_endpoint(eng, READ, namespaces), methods=["GET"]),
        Route("/v1/metadata_profiles", read_endpoint(eng, READ, profiles), methods=["GET"]),
    ]


def _image_plan(ctx: WriteCtx, change: Callable[[ImageRec], dict[str, Any]]) -> Plan:
    im = need_image(ctx, ctx.params["public_uuid"], path_field(ctx))

    def apply() -> dict[str, Any]:
        if im.public_uuid not in ctx.eng.store.images:
            raise validation(None, "the image was deleted meanwhile")
        result = change(im)
        im.updated_at = ctx.eng.clock()
        return result

    return Plan(apply, [im.public_uuid])


def add_keywords(im: ImageRec, kws: list[KeywordT]) -> tuple[list[str], list[str]]:
    have = {kw_key(k) for k in im.keywords}
    added, present = [], []
    for k in kws:
        if kw_key(k) in have:
            present.append(kw_full(k))
        else:
            im.keywords.append(k)
            have.add(kw_key(k))
            added.append(kw_full(k))
    return added, present


def prepare_add_keywords(ctx: WriteCtx) -> Plan:
    f = Fields(ctx.body, ctx.prefix, {"keywords"})
    raw = f.str_list("keywords", required=True, min_items=1, max_items=MAX_KEYWORDS, max_len=100)
    kws = [parse_keyword(k, f.f(f"keywords[{i}]")) for i, k in enumerate(raw)]

    def change(im: ImageRec) -> dict[str, Any]:
        added, present = add_keywords(im, kws)
        return {"message": f"Added {len(added)} keyword(s).", "added": added, "already_present": present}

    return _image_plan(ctx, change)


def prepare_remove_keyword(ctx: WriteCtx) -> Plan:
    f = Fields(ctx.body, ctx.prefix, {"keyword", "namespace"})
    raw = f.string("keyword", required=True, min_len=1, max_len=100)
    ns = f.string("namespace", min_len=1, max_len=50)
    kw = parse_keyword(raw, f.f("keyword"), None if ns is MISSING else ns)

    def change(im: ImageRec) -> dict[str, Any]:
        before = len(im.keywords)
        im.keywords = [k for k in im.keywords if kw_key(k) != kw_key(kw)]
        removed = len(im.keywords) < before
        msg = (
            f"Removed '{kw_full(kw)}'."
            if removed
            else f"'{kw_full(kw)}' was not on the image; nothing removed."
        )
        return {"message": msg, "removed": removed, "keyword": kw_full(kw)}

    return _image_plan(ctx, change)


def prepare_rename(ctx: WriteCtx) -> Plan:
    f = Fields(ctx.body, ctx.prefix, {"from", "to", "image_public_uuids"})
    src = parse_keyword(f.string("from", required=True, min_len=1, max_len=100), f.f("from"))
    dst = parse_keyword(f.string("to", required=True, min_len=1, max_len=100), f.f("to"))
    if src == dst:
        raise validation(f.f("to"), "to must differ from from")
    uuids = f.str_list("image_public_uuids", min_items=1, max_items=500)
    store = ctx.eng.store
    scope = need_images(ctx, dedupe(uuids), f.f("image_public_uuids")) if uuids is not MISSING else None
    pool = scope if scope is not None else sorted(store.images.values(), key=lambda im: im.public_uuid)
    targets = [im for im in pool if any(kw_key(k) == kw_key(src) for k in im.keywords)]

    def apply() -> dict[str, Any]:
        renamed = merged = 0
        now = ctx.eng.clock()
        for im in targets:
            if im.public_uuid not in store.images:
                continue
            idx = next((i for i, k in enumerate(im.keywords) if kw_key(k) == kw_key(src)), None)
            if idx is None:
                continue
            if kw_key(src) != kw_key(dst) and any(kw_key(k) == kw_key(dst) for k in im.keywords):
                del im.keywords[idx]
                merged += 1
            else:
                im.keywords[idx] = dst
            renamed += 1
            im.updated_at = now
        msg = (
            f"Renamed '{kw_full(src)}' to '{kw_full(dst)}' on {renamed} image(s)."
            if renamed
            else f"No image carries '{kw_full(src)}'; nothing renamed."
        )
        return {
            "message": msg,
            "renamed": renamed,
            "merged": merged,
            "from": kw_full(src),
            "to": kw_full(dst),
        }

    return Plan(apply, [im.public_uuid for im in targets])


def prepare_metadata(ctx: WriteCtx) -> Plan:
    f = Fields(ctx.body, ctx.prefix, IPTC_TEXT | IPTC_BOOL)
    changes: dict[str, Any] = {}
    for name in sorted(f.body):
        if name in IPTC_BOOL:
            v = f.body[name]
            if v is not None and not isinstance(v, bool):
                raise validation(f.f(name), f"{name} must be a JSON boolean (or null to clear)")
            changes[name] = v
        else:
            changes[name] = f.string(name, max_len=2000, nullable=True)
    if not changes:
        raise validation(ctx.prefix.rstrip(".") or None, "send at least one metadata field")

    def change(im: ImageRec) -> dict[str, Any]:
        for k, v in changes.items():
            if v is None:
                im.metadata.pop(k, None)
            else:
                im.metadata[k] = v
        return {"message": "Metadata updated.", "changed": sorted(changes)}

    return _image_plan(ctx, change)


def prepare_rating(ctx: WriteCtx) -> Plan:
    f = Fields(ctx.body, ctx.prefix, {"rating"})
    rating = f.integer("rating", required=True, lo=0, hi=5)

    def change(im: ImageRec) -> dict[str, Any]:
        im.rating = rating
        return {"message": f"Rating set to {rating}.", "rating": rating}

    return _image_plan(ctx, change)


def _aspect(f: Fields) -> tuple[str, int, int]:
    ar = f.string("aspect_ratio", required=True, min_len=1, max_len=7)
    m = _RATIO.match(ar)
    if not m:
        raise validation(f.f("aspect_ratio"), "aspect_ratio must look like 3:2 or 1:1 (whole numbers)")
    return ar, int(m[1]), int(m[2])


def prepare_crop(ctx: WriteCtx) -> Plan:
    f = Fields(ctx.body, ctx.prefix, {"aspect_ratio", "x", "y", "width", "height"})
    ar, rw, rh = _aspect(f)
    x, y = f.integer("x", required=True, lo=0), f.integer("y", required=True, lo=0)
    w, h = f.integer("width", required=True, lo=1), f.integer("height", required=True, lo=1)
    im = need_image(ctx, ctx.params["public_uuid"], path_field(ctx))
    if x + w > im.width:
        raise validation(f.f("width"), f"x + width must be at most the original width ({im.width})")
    if y + h > im.height:
        raise validation(f.f("height"), f"y + height must be at most the original height ({im.height})")
    if abs(w * rh - h * rw) > max(rw, rh):
        raise validation(f.f("height"), f"width x height ({w}x{h}) does not match aspect_ratio {ar}")

    def change(im: ImageRec) -> dict[str, Any]:
        im.crops = [c for c in im.crops if c["aspect_ratio"] != ar]
        im.crops.append({"aspect_ratio": ar, "x": x, "y": y, "width": w, "height": h})
        return {"message": f"Crop {ar} set.", "aspect_ratio": ar}

    return _image_plan(ctx, change)


def prepare_uncrop(ctx: WriteCtx) -> Plan:
    f = Fields(ctx.body, ctx.prefix, {"aspect_ratio"})
    ar, _, _ = _aspect(f)

    def change(im: ImageRec) -> dict[str, Any]:
        before = len(im.crops)
        im.crops = [c for c in im.crops if c["aspect_ratio"] != ar]
        removed = len(im.crops) < before
        return {"message": f"Crop {ar} cleared." if removed else f"No {ar} crop was set.", "removed": removed}

    return _image_plan(ctx, change)


def prepare_alt_text(ctx: WriteCtx) -> Plan:
    f = Fields(ctx.body, ctx.prefix, {"alt_text"})
    if not f.has("alt_text"):
        raise f.err("alt_text", "alt_text is required (send an empty string to clear it)")
    text = f.string("alt_text", max_len=1000, nullable=True) or ""

    def change(im: ImageRec) -> dict[str, Any]:
        im.alt_text = text
        return {"message": "Alt text updated." if text else "Alt text cleared."}

    return _image_plan(ctx, change)


def _credits(f: Fields) -> list[dict[str, str]]:
    items = f.body.get("credits")
    if "credits" not in f.body:
        raise f.err("credits", "credits is required: [{role, name}]")
    if not isinstance(items, list) or not items:
        raise f.err("credits", "credits must be a non-empty array of {role, name}")
    if len(items) > 50:
        raise f.err("credits", "at most 50 credits a call")
    out = []
    for i, c in enumerate(items):
        cf = Fields(c, f.f(f"credits[{i}]."), {"role", "name"})
        role = cf.string("role", required=True, min_len=1, max_len=50)
        name = cf.string("name", required=True, min_len=1, max_len=200)
        out.append({"role": role.strip(), "name": name.strip()})
    return out


def prepare_add_credits(ctx: WriteCtx) -> Plan:
    credits = _credits(Fields(ctx.body, ctx.prefix, {"credits"}))

    def change(im: ImageRec) -> dict[str, Any]:
        added = 0
        for c in credits:
            if c not in im.credits:
                im.credits.append(c)
                added += 1
        return {"message": f"Added {added} credit line(s).", "added": added}

    return _image_plan(ctx, change)


def prepare_remove_credits(ctx: WriteCtx) -> Plan:
    credits = _credits(Fields(ctx.body, ctx.prefix, {"credits"}))

    def change(im: ImageRec) -> dict[str, Any]:
        before = len(im.credits)
        im.credits = [c for c in im.credits if c not in credits]
        removed = before - len(im.credits)
        return {"message": f"Removed {removed} credit line(s).", "removed": removed}

    return _image_plan(ctx, change)


def prepare_extract(ctx: WriteCtx) -> Plan:
    Fields(ctx.body, ctx.prefix, set(), optional=True)

    def change(im: ImageRec) -> dict[str, Any]:
        emb = im.embedded
        copied = []
        if emb.get("title"):
            im.title = str(emb["title"])[:191]
            copied.append("title")
        if emb.get("caption"):
            im.description = str(emb["caption"])[:5000]
            copied.append("description")
        if emb.get("keywords"):
            kws = []
            for k in emb["keywords"]:
                try:
                    kws.append(parse_keyword(str(k), "keywords"))
                except Exception:
                    continue
            add_keywords(im, kws)
            copied.append("keywords")
        if emb.get("date"):
            try:
                im.creation_date = norm_date(str(emb["date"]), "creation_date")
                copied.append("creation_date")
            except Exception:
                pass
        msg = (
            f"Copied {', '.join(copied)} from the file."
            if copied
            else "The file carries no embedded metadata."
        )
        return {"message": msg, "copied": copied}

    return _image_plan(ctx, change)


IMG = "/v1/images/{public_uuid}"
WRITES = [
    WriteRoute("POST", IMG + "/keywords", "api.keywords.write", "keywords", prepare_add_keywords),
    WriteRoute("DELETE", IMG + "/keywords", "api.keywords.write", "keywords", prepare_remove_keyword),
    WriteRoute("POST", "/v1/keywords/rename", "api.keywords.write", "keyword_rename", prepare_rename),
    WriteRoute("PUT", IMG + "/metadata", "api.metadata.write", "metadata", prepare_metadata),
    WriteRoute("PUT", IMG + "/rating", "api.ratings.write", "rating", prepare_rating),
    WriteRoute("PUT", IMG + "/crop", "api.metadata.write", "crop", prepare_crop),
    WriteRoute("DELETE", IMG + "/crop", "api.metadata.write", "crop", prepare_uncrop),
    WriteRoute("PUT", IMG + "/alt_text", "api.metadata.write", "alt_text", prepare_alt_text),
    WriteRoute("POST", IMG + "/credits", "api.metadata.write", "credits", prepare_add_credits),
    WriteRoute("DELETE", IMG + "/credits", "api.metadata.write", "credits", prepare_remove_credits),
    WriteRoute(
        "POST",
        IMG + "/extract_metadata",
        "api.metadata.write",
        "extract_metadata",
        prepare_extract,
        body_optional=True,
    ),
]

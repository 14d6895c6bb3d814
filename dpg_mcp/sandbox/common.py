"""Helpers shared by the route modules: lookups that 404, keyword and date parsing, read endpoints."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime

from starlette.requests import Request
from starlette.responses import Response

from .auth import Principal
from .core import Engine, WriteCtx
from .http import ApiError, error_response, validation
from .store import ImageRec, KeywordT, SetRec

ReadFn = Callable[[Request, Principal], Awaitable[Response]]
_NS = re.compile(r"^[A-Za-z0-9_\- ]{1,50}$")


def read_endpoint(eng: Engine, scope: str | None, fn: ReadFn) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            eng.tick()
            p = eng.principal(request, scope)
            return await fn(request, p)
        except ApiError as e:
            return error_response(request, e)

    endpoint.__name__ = fn.__name__
    return endpoint


def path_field(ctx: WriteCtx) -> str | None:
    """Inside a batch, a bad id in an item's path is reported as operations[i].path."""
    return ctx.prefix.replace("body.", "path") if ctx.prefix else None


def need_image(ctx: WriteCtx | Engine, uuid: str, field: str | None = None) -> ImageRec:
    eng = ctx.eng if isinstance(ctx, WriteCtx) else ctx
    im = eng.store.images.get(uuid)
    if im is None:
        raise ApiError(
            "image_not_found",
            "No image has that public_uuid.",
            detail=f"image {uuid} does not exist",
            field=field,
        )
    return im


def need_images(ctx: WriteCtx, uuids: list[str], field: str) -> list[ImageRec]:
    missing = [u for u in uuids if u not in ctx.eng.store.images]
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise ApiError(
            "image_not_found",
            "Some images do not exist.",
            detail=f"unknown image_public_uuids: {shown}",
            field=field,
        )
    return [ctx.eng.store.images[u] for u in uuids]


def need_set(eng: Engine, uuid: str, field: str | None = None) -> SetRec:
    s = eng.store.sets.get(uuid)
    if s is None:
        raise ApiError(
            "set_not_found", "No set has that public_uuid.", detail=f"set {uuid} does not exist", field=field
        )
    return s


def dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def parse_keyword(raw: str, field: str, namespace: str | None = None) -> KeywordT:
    text = raw.strip()
    if namespace is not None:
        ns, value = namespace.strip(), text
    elif ":" in text:
        ns, _, value = text.partition(":")
        ns, value = ns.strip(), value.strip()
    else:
        ns, value = "", text
    if not value:
        raise validation(field, f"keyword '{raw}' has an empty value")
    if ns and not _NS.match(ns):
        raise validation(field, f"namespace '{ns}' may use letters, digits, spaces, '-' and '_' (at most 50)")
    return (ns.lower() or None, value)


def norm_date(raw: str, field: str) -> str:
    """Any ISO 8601 date/datetime (or Exif 'YYYY:MM:DD HH:MM:SS'), normalised; datetimes to UTC."""
    text = raw.strip()
    exif = re.match(r"^(\d{4}):(\d{2}):(\d{2})[ T](\d{2}:\d{2}:\d{2})$", text)
    if exif:
        text = f"{exif[1]}-{exif[2]}-{exif[3]}T{exif[4]}"
    name = field.rsplit(".", 1)[-1]
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            if not 1800 <= d.year <= 2200:
                raise validation(field, f"{name}: the year must be between 1800 and 2200")
            return d.isoformat()
        dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise validation(
            field,
            f"{name} must be a date or timestamp such as 2026-07-03 or 2026-07-03T18:30:00Z",
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    if not 1800 <= dt.year <= 2200:
        raise validation(field, f"{name}: the year must be between 1800 and 2200")
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

"""HTTP plumbing shared by every route: the error envelope, ETags, paging, body and query parsing."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

MAX_LIMIT = 200
_INT = re.compile(r"-?[0-9]{1,18}")
DEFAULT_LIMIT = 50

_STATUS = {
    "validation": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "api_not_enabled": 403,
    "invalid_signature": 403,
    "ticket_expired": 403,
    "link_expired": 403,
    "image_not_found": 404,
    "set_not_found": 404,
    "operation_not_found": 404,
    "snapshot_not_found": 404,
    "archive_not_found": 404,
    "not_found": 404,
    "method_not_allowed": 405,
    "idempotency_key_conflict": 409,
    "ticket_used": 409,
    "payload_too_large": 413,
    "rate_limited": 429,
    "internal": 500,
}


class ApiError(Exception):
    """Raised anywhere in a handler; rendered as the documented error envelope."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        detail: str | None = None,
        field: str | None = None,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail
        self.field = field
        self.status = status or _STATUS.get(code, 400)
        self.headers = dict(headers or {})

    def inner(self, request_id: str | None) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "detail": self.detail,
            "field": self.field,
            "request_id": request_id,
        }


def validation(field: str | None, detail: str, message: str = "The request is not valid.") -> ApiError:
    return ApiError("validation", message, detail=detail, field=field)


def request_id(request: Request) -> str:
    return str(request.scope.get("dpg.request_id", "req-unknown"))


def error_response(request: Request, err: ApiError) -> Response:
    body = json.dumps({"error": err.inner(request_id(request))}).encode()
    return Response(body, status_code=err.status, media_type="application/json", headers=err.headers)


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def etag_of(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\x00")
    return f'"{h.hexdigest()[:32]}"'


def if_none_match(request: Request, etag: str) -> bool:
    header = request.headers.get("if-none-match")
    if not header:
        return False
    tags = [t.strip() for t in header.split(",")]
    return "*" in tags or any(t.removeprefix("W/") == etag for t in tags)


def conditional(
    request: Request,
    body: bytes,
    *,
    media_type: str = "application/json",
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """Every GET answers with an ETag; a matching If-None-Match gets an empty 304."""
    hdrs = dict(headers or {})
    etag = etag_of(body, canonical(sorted(hdrs.items())))
    hdrs["ETag"] = etag
    if request.method in ("GET", "HEAD") and if_none_match(request, etag):
        return Response(b"", status_code=304, headers=hdrs)
    return Response(body, status_code=status, media_type=media_type, headers=hdrs)


def json_get(request: Request, obj: Any, headers: Mapping[str, str] | None = None) -> Response:
    return conditional(request, dumps(obj), headers=headers)


def json_reply(obj: Any, status: int, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        dumps(obj), status_code=status, media_type="application/json", headers=dict(headers or {})
    )


# --- query strings ------------------------------------------------------------------


def check_query(request: Request, allowed: set[str]) -> None:
    """Unknown query parameters are refused by name, so a typo is never silently ignored."""
    for name in request.query_params:
        if name not in allowed:
            raise validation(name, f"unknown query parameter '{name}'; allowed: {', '.join(sorted(allowed))}")


def q_int(
    request: Request, name: str, *, lo: int, hi: int | None = None, default: int | None = None
) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    # Plain ASCII digits only: int() would also take "1_0", " 7", "٣" or 4000-digit numbers.
    if not _INT.fullmatch(raw):
        raise validation(name, f"{name} must be a whole number")
    value = int(raw)
    if value < lo or (hi is not None and value > hi):
        rng = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise validation(name, f"{name} must be {rng}")
    return value


def q_bool(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if raw not in ("true", "false"):
        raise validation(name, f"{name} must be true or false")
    return raw == "true"


def parse_when(raw: str, field: str, *, end_of_day: bool = False) -> float:
    """ISO 8601 date or datetime -> epoch seconds (UTC when no offset is given)."""
    text = raw.strip()
    name = field.rsplit(".", 1)[-1]
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            dt = datetime(d.year, d.month, d.day, tzinfo=UTC)
            if not 1800 <= dt.year <= 2200:
                raise validation(field, f"{name}: the year must be between 1800 and 2200")
            return dt.timestamp() + (86400 - 0.001 if end_of_day else 0)
        dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise validation(
            field, f"{name} must be an ISO 8601 date or datetime, e.g. 2026-07-03 or 2026-07-03T18:00:00Z"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    # Bounded like every other date: year 9999 in a far time zone would not even print back in UTC.
    if not 1800 <= dt.year <= 2200:
        raise validation(field, f"{name}: the year must be between 1800 and 2200")
    return dt.timestamp()


def paging(request: Request) -> tuple[int, int]:
    limit = q_int(request, "limit", lo=1, hi=MAX_LIMIT, default=DEFAULT_LIMIT)
    offset = q_int(request, "offset", lo=0, default=0)
    assert limit is not None and offset is not None
    return limit, offset


def page_response(
    request: Request, items: list[Any], limit: int, offset: int, render: Callable[[Any], Any] | None = None
) -> Response:
    return page_reply(request, items[offset : offset + limit], len(items), offset, render)


def page_reply(
    request: Request, chunk: list[Any], total: int, offset: int, render: Callable[[Any], Any] | None = None
) -> Response:
    """A page already cut out of `total` items starting at `offset`, with the paging headers."""
    if render is not None:
        chunk = [render(x) for x in chunk]
    has_more = offset + len(chunk) < total
    headers = {"X-Has-More": "true" if has_more else "false", "X-Total-Count": str(total)}
    if has_more:
        headers["X-Next-Offset"] = str(offset + len(chunk))
    return json_get(request, chunk, headers)


# --- JSON bodies --------------------------------------------------------------------


MISSING: Any = object()


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to pass `limit` (never read whole first)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError("payload_too_large", "The request body is too large.", detail=f"at most {limit} bytes")
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > limit:
            raise ApiError(
                "payload_too_large", "The request body is too large.", detail=f"at most {limit} bytes"
            )
    return bytes(buf)


def parse_json_body(raw: bytes, *, allow_empty: bool) -> Any:
    if not raw.strip():
        if allow_empty:
            return None
        raise validation(None, "the request body must be a JSON object")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise validation(None, "the request body is not valid JSON") from None
    except RecursionError:  # "{"a":{"a":... thousands deep: refused, never a 500
        raise validation(None, f"the request body is nested deeper than {MAX_JSON_DEPTH} levels") from None
    if _depth(data) > MAX_JSON_DEPTH:
        raise validation(None, f"the request body is nested deeper than {MAX_JSON_DEPTH} levels")
    return data


MAX_JSON_DEPTH = 32


def _depth(value: Any) -> int:
    """Nesting depth, iteratively (a recursive walk would itself hit the recursion limit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            if level > MAX_JSON_DEPTH:
                return level
            deepest = max(deepest, level)
            stack.extend((v, level + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


class Fields:
    """Strict reader for a JSON object body: every check names its field (with a batch prefix)."""

    def __init__(
        self, body: Any, prefix: str = "", allowed: set[str] | None = None, *, optional: bool = False
    ):
        self.prefix = prefix
        if body is None and optional:
            body = {}
        if not isinstance(body, dict):
            raise validation(prefix.rstrip(".") or None, "the request body must be a JSON object")
        self.body: dict[str, Any] = body
        if allowed is not None:
            for name in body:
                if name not in allowed:
                    raise validation(
                        prefix + name, f"unknown field '{name}'; allowed fields: {', '.join(sorted(allowed))}"
                    )

    def f(self, name: str) -> str:
        return self.prefix + name

    def has(self, name: str) -> bool:
        return name in self.body

    def err(self, name: str, detail: str) -> ApiError:
        return validation(self.f(name), detail)

    def string(
        self,
        name: str,
        *,
        required: bool = False,
        max_len: int | None = None,
        min_len: int = 0,
        nullable: bool = False,
    ) -> Any:
        if name not in self.body:
            if required:
                raise self.err(name, f"{name} is required")
            return MISSING
        v = self.body[name]
        if v is None and nullable:
            return None
        if not isinstance(v, str):
            raise self.err(name, f"{name} must be a string")
        if len(v) < min_len or (min_len and not v.strip()):
            raise self.err(
                name,
                f"{name} must not be empty"
                if min_len <= 1
                else f"{name} must be at least {min_len} characters",
            )
        if max_len is not None and len(v) > max_len:
            raise self.err(name, f"{name} must be at most {max_len} characters")
        return v

    def integer(
        self, name: str, *, required: bool = False, lo: int | None = None, hi: int | None = None
    ) -> Any:
        if name not in self.body:
            if required:
                raise self.err(name, f"{name} is required")
            return MISSING
        v = self.body[name]
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.err(name, f"{name} must be a whole number (not a string, boolean or decimal)")
        if lo is not None and v < lo:
            raise self.err(
                name,
                f"{name} must be at least {lo}" if hi is None else f"{name} must be between {lo} and {hi}",
            )
        if hi is not None and v > hi:
            raise self.err(
                name,
                f"{name} must be at most {hi}" if lo is None else f"{name} must be between {lo} and {hi}",
            )
        return v

    def boolean(self, name: str, *, required: bool = False) -> Any:
        if name not in self.body:
            if required:
                raise self.err(name, f"{name} is required")
            return MISSING
        v = self.body[name]
        if not isinstance(v, bool):
            raise self.err(name, f"{name} must be a JSON boolean (true or false), not {json.dumps(v)}")
        return v

    def str_list(
        self,
        name: str,
        *,
        required: bool = False,
        min_items: int = 0,
        max_items: int | None = None,
        max_len: int | None = None,
    ) -> Any:
        if name not in self.body:
            if required:
                raise self.err(name, f"{name} is required")
            return MISSING
        v = self.body[name]
        if not isinstance(v, list):
            raise self.err(name, f"{name} must be an array of strings")
        if len(v) < min_items:
            raise self.err(name, f"{name} must hold at least {min_items} item{'s' if min_items != 1 else ''}")
        if max_items is not None and len(v) > max_items:
            raise self.err(name, f"{name} must hold at most {max_items} items (got {len(v)})")
        for i, item in enumerate(v):
            if not isinstance(item, str) or not item.strip():
                raise validation(self.f(f"{name}[{i}]"), f"{name}[{i}] must be a non-empty string")
            if max_len is not None and len(item) > max_len:
                raise validation(self.f(f"{name}[{i}]"), f"{name}[{i}] must be at most {max_len} characters")
        return list(v)

"""Async client for the DPG REST API (v1) over httpx2.

- Bearer auth is sent only to the API's own /v1 paths: never to media/CDN, download or upload-processor URLs.
- Reads retry connection errors, timeouts and 5xx with capped exponential backoff + jitter (bounded attempts);
  a 429 waits its Retry-After (each wait capped, number of waits bounded) and tries again: one policy,
  dpg.retry. Every attempt, read or write, is also cut at the tool call's deadline (dpg.retry.call_deadline),
  and no retry starts whose wait would pass it.
- Writes go out ONCE per `send_write` call: retrying with the same Idempotency-Key is the write runner's job
  (dpg_mcp.dpg.operations), which owns the time budget.
- The token lives in one private attribute. It is never logged, never put in an exception text and never in a
  repr; error texts that echo request data are scrubbed of it anyway.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlsplit

import anyio
import httpx2
from pydantic import BaseModel, ValidationError

from dpg_mcp import __version__
from dpg_mcp.dpg.errors import DPGError, Redactor, TransportFailure
from dpg_mcp.dpg.models import (
    Archive,
    Facets,
    Image,
    KeywordCount,
    Me,
    NamespaceCount,
    Operation,
    Page,
    Set,
    SetImage,
    SetNode,
    Snapshot,
    UploadTicket,
    Version,
    items_from_json,
    page_of,
)
from dpg_mcp.dpg.retry import RetryPolicy, attempt_limit, out_of_time, with_retries
from dpg_mcp.ledger.canonical import canonical_bytes

DEFAULT_BASE_URL = "https://api.digitalphotogallery.com"
ENV_BASE_URL = "DPG_API_URL"
USER_AGENT = f"dpg-mcp/{__version__}"

log = logging.getLogger("dpg_mcp.dpg")

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")
SleepFn = Callable[[float], Awaitable[None]]

# Keys under which an object-wrapped list body may carry its items (tolerance: the guides say bare arrays).
# Each endpoint names its own key first (e.g. "versions"), so an Image-shaped body with several lists
# still yields the right one.
_GENERIC_LIST_KEYS = ("items", "data", "results")
# Bound on auto-paging for endpoints the client returns whole (snapshots, namespaces, tree ...).
_MAX_AUTO_PAGES = 20


def normalize_base_url(url: str | None) -> str:
    """The API root without a trailing /v1 or slash: API paths are then always "/v1/..."."""
    root = (url or DEFAULT_BASE_URL).strip().rstrip("/")
    if root.endswith("/v1"):
        root = root[: -len("/v1")].rstrip("/")
    return root


def seg(value: str) -> str:
    """Quote one path segment so an id from an agent cannot change the path ("../", "?", "/")."""
    return quote(str(value), safe="")


@dataclass(frozen=True)
class WriteReply:
    """One write's answer: `operation` for a 202 (or an Operation-shaped body), else the direct body."""

    status: int
    operation: Operation | None
    body: Any
    replayed: bool | None = None  # the server's replay marker (Idempotent-Replayed), when it sends one


class _SchemeTransport(httpx2.AsyncBaseTransport):
    """httpx2's default transport, with its TLS trust store loaded only when an https:// request is made.

    Loading the system CA bundle costs ~0.1 s at start, for nothing when DPG is reached over http://
    (the sandbox, a local proxy). https:// requests (API, upload URLs, redirects) go through a transport
    with httpx2's default verification, built on the first one; http:// requests never do TLS, so their
    transport needs no trust store.
    """

    def __init__(self) -> None:
        self._plain = httpx2.AsyncHTTPTransport(verify=False)  # only ever sees http:// (no TLS)
        self._tls: httpx2.AsyncHTTPTransport | None = None

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.scheme == "http":
            return await self._plain.handle_async_request(request)
        if self._tls is None:
            self._tls = httpx2.AsyncHTTPTransport()  # verify=True: httpx2's default trust store
        return await self._tls.handle_async_request(request)

    async def aclose(self) -> None:
        await self._plain.aclose()
        if self._tls is not None:
            await self._tls.aclose()


class DPGClient:
    """Async DPG API client. Use `async with DPGClient(...) as client:` or call `aclose()`."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        token: str = "",
        transport: httpx2.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        *,
        max_attempts: int = 4,
        max_rate_limit_waits: int = 4,
        max_retry_after: float = 15.0,
        backoff_base: float = 0.2,
        backoff_cap: float = 4.0,
        upload_timeout: float = 120.0,
        sleep: SleepFn | None = None,
        rng: random.Random | None = None,
        token_source: Callable[[], Awaitable[str]] | None = None,
    ) -> None:
        self.base_url = normalize_base_url(base_url)
        # A signed-in member's access token lasts minutes: when given, each attempt asks for the current one
        # (refreshed as needed), so a poll that outlives a token goes on with the next.
        self._token_source = token_source
        self.timeout = timeout
        # One policy for every read and poll (dpg.retry); writes are sent once here, resent by the runner.
        self.policy = RetryPolicy(
            max_attempts=max(1, max_attempts),
            max_rate_limit_waits=max(0, max_rate_limit_waits),
            max_retry_after=max_retry_after,
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
        )
        self.upload_timeout = upload_timeout
        # A token read from a file or env often ends in a newline; sent as is, it would be an illegal header
        # whose error text (from the HTTP layer) quotes the header value.
        self._token = token.strip()
        # Every DPG text this client turns into an error passes it; the tools' one way out uses it too.
        self.redactor = Redactor(self._token)
        self._sleep: SleepFn = sleep or anyio.sleep
        self._rng = rng or random.Random()
        # Moves whenever a write reply or a changed Operation comes back through this client: a reader that
        # keeps DPG data (the tools' visibility cache) revalidates it when this is not what it saw.
        self.changes = 0
        self._http = httpx2.AsyncClient(
            base_url=self.base_url,
            transport=transport if transport is not None else _SchemeTransport(),
            timeout=httpx2.Timeout(timeout),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"DPGClient(base_url={self.base_url!r}, token=<redacted>)"

    async def __aenter__(self) -> DPGClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # ---- reads -------------------------------------------------------------------------------------------

    async def me(self) -> Me:
        return _parse(Me, await self._get_json("/v1/me"))

    async def list_images(self, limit: int = 50, offset: int = 0, **filters: Any) -> Page[Image]:
        return await self._page("/v1/images", Image, limit, offset, filters, "images")

    async def get_image(self, uuid: str) -> Image:
        return _parse(Image, await self._get_json(f"/v1/images/{seg(uuid)}"))

    async def image_versions(self, uuid: str) -> list[Version]:
        return await self._all(f"/v1/images/{seg(uuid)}/versions", Version, "versions")

    async def keywords(self, limit: int = 50, offset: int = 0, **params: Any) -> Page[KeywordCount]:
        return await self._page("/v1/keywords", KeywordCount, limit, offset, params, "keywords")

    async def namespaces(self) -> list[NamespaceCount]:
        return await self._all("/v1/keywords/namespaces", NamespaceCount, "namespaces")

    async def facets(self, **filters: Any) -> Facets:
        return _parse(Facets, await self._get_json("/v1/facets", params=_params(filters)))

    async def metadata_profiles(self) -> list[dict[str, Any]]:
        raw = await self._all_raw("/v1/metadata_profiles", "metadata_profiles")
        return [x for x in raw if isinstance(x, dict)]

    async def list_sets(
        self, parent_public_uuid: str | None = None, limit: int = 50, offset: int = 0
    ) -> Page[Set]:
        return await self._page(
            "/v1/sets", Set, limit, offset, {"parent_public_uuid": parent_public_uuid}, "sets"
        )

    async def set_tree(self) -> list[SetNode]:
        return await self._all("/v1/sets/tree", SetNode, "sets")

    async def set_tree_if_changed(self, etag: str | None) -> tuple[list[SetNode] | None, str | None]:
        """The set tree, or `(None, etag)` when DPG answers 304 to `If-None-Match: etag`. A tree DPG pages is
        read whole and comes back with no ETag (its first page's tag would not cover the rest)."""
        resp = await self._get("/v1/sets/tree", headers={"If-None-Match": etag} if etag else None)
        if resp.status_code == 304:
            return None, etag
        raw, wrapper = _extract_list(_json(resp), resp.status_code, ("sets",))
        if _paging(resp, wrapper, 0, len(raw))[0]:
            return await self.set_tree(), None
        return [_parse(SetNode, x) for x in raw], resp.headers.get("etag")

    async def set_images_if_changed(
        self, uuid: str, limit: int, offset: int, etag: str | None
    ) -> tuple[Page[SetImage] | None, str | None]:
        """One page of a set's images, or `(None, etag)` when DPG answers 304 to `If-None-Match: etag`."""
        params = _params({"limit": limit, "offset": offset})
        headers = {"If-None-Match": etag} if etag else None
        resp = await self._get(f"/v1/sets/{seg(uuid)}/images", params=params, headers=headers)
        if resp.status_code == 304:
            return None, etag
        return _build_page(resp, SetImage, offset, "images"), resp.headers.get("etag")

    async def get_set(self, uuid: str) -> Set:
        return _parse(Set, await self._get_json(f"/v1/sets/{seg(uuid)}"))

    async def set_images(self, uuid: str, limit: int = 50, offset: int = 0) -> Page[SetImage]:
        return await self._page(f"/v1/sets/{seg(uuid)}/images", SetImage, limit, offset, {}, "images")

    async def snapshots(self, set_uuid: str) -> list[Snapshot]:
        return await self._all(f"/v1/sets/{seg(set_uuid)}/snapshots", Snapshot, "snapshots")

    async def archives(self, limit: int = 50, offset: int = 0) -> Page[Archive]:
        return await self._page("/v1/archives", Archive, limit, offset, {}, "archives")

    async def get_operation(self, uuid: str, etag: str | None = None) -> tuple[Operation | None, str | None]:
        """One operation. `(None, etag)` when the server answers 304 to `If-None-Match: etag`."""
        headers = {"If-None-Match": etag} if etag else None
        resp = await self._get(f"/v1/operations/{seg(uuid)}", headers=headers)
        new_etag = resp.headers.get("etag") or etag
        if resp.status_code == 304:
            return None, new_etag
        self.changes += 1
        data = _json(resp)
        if isinstance(data, dict) and "uuid" not in data:
            for wrapper in ("operation", "data"):
                if isinstance(data.get(wrapper), dict):
                    data = data[wrapper]
                    break
        return _parse(Operation, data), new_etag

    async def guide(self, full: bool = False) -> str:
        """DPG's agent brief (/llms.txt, or /llms-full.txt) from the API host root. Public: no token sent."""
        path = "/llms-full.txt" if full else "/llms.txt"
        resp = await self._get(path, auth=False, headers={"Accept": "text/plain, text/markdown, */*"})
        return resp.text

    # ---- writes (one attempt each) -----------------------------------------------------------------------

    async def send_write(
        self,
        method: str,
        path: str,
        body: Any,
        idempotency_key: str,
        *,
        attempt_timeout: float | None = None,
    ) -> WriteReply:
        """Send one write, once. Raises DPGError for non-2xx, httpx2.TransportError when no answer came.

        A 202 carries an Operation (or at least a Location to one); a 200/201 is a direct body (upload ticket,
        download link), unless that body is itself Operation-shaped.
        """
        headers = {"Idempotency-Key": idempotency_key}
        content: bytes | None = None
        if body is not None:
            # Same bytes on every retry of this key: the server fingerprints method + path + body.
            content = canonical_bytes(body)  # the bytes the ledger's request digest is made of
            headers["Content-Type"] = "application/json"
        try:
            resp = await self._attempt(
                method.upper(), path, content=content, headers=headers, attempt_timeout=attempt_timeout
            )
        finally:
            self.changes += 1  # even unanswered, it may have been applied
        if not resp.is_success:
            raise self._error(resp)
        # The write is committed now: an unreadable body must not turn it into an error (Tolerance).
        try:
            data = _json(resp)
        except DPGError:
            data = resp.text
        op: Operation | None = None
        if resp.status_code == 202 or _looks_like_operation(data):
            op = _operation_from(data, resp.headers.get("location"))
            if op is None:
                log.warning("%s %s: 202 without an operation in body or Location", method.upper(), path)
        marker = resp.headers.get("idempotent-replayed")
        replayed = None if marker is None else marker.strip().lower() in ("true", "1", "yes")
        return WriteReply(resp.status_code, op, data, replayed)

    async def upload_file(
        self, ticket: UploadTicket, filename: str, data: bytes, content_type: str
    ) -> dict[str, Any]:
        """POST the file to the ticket's processor URL: every signed field unchanged, plus the file part.

        One attempt only: a ticket is single-use, so a blind retry could only meet "ticket_used".
        """
        files = {ticket.file_field or "file": (filename, data, content_type)}
        limit = attempt_limit(self.upload_timeout, "upload")
        try:
            with anyio.fail_after(limit):
                resp = await self._http.post(ticket.upload_url, data=dict(ticket.fields), files=files)
        except TimeoutError:
            if limit < self.upload_timeout:
                raise out_of_time("upload") from None
            raise TransportFailure(f"upload: no answer within {self.upload_timeout:g}s") from None
        except (httpx2.TransportError, httpx2.DecodingError) as exc:
            raise TransportFailure(f"upload: {_describe(exc)}") from exc
        log.debug("POST %s -> %s (upload)", _loggable(ticket.upload_url), resp.status_code)
        if not resp.is_success:
            raise self._error(resp)
        out = _json(resp) if resp.content else {}
        return out if isinstance(out, dict) else {"body": out}

    async def fetch_bytes(self, url: str, max_bytes: int) -> tuple[bytes, str]:
        """GET a version/download URL (absolute, or a path on the API host), streaming, at most `max_bytes`.

        Raises DPGError 413 "payload_too_large" as soon as the file is known to be bigger (Content-Length or
        bytes read): it stops reading there instead of returning a cut file. No token is sent: these URLs
        are public CDN links or signed.
        """
        target = url if urlsplit(url).scheme else self.base_url + "/" + url.lstrip("/")
        where = _loggable(target)

        async def once() -> tuple[bytes, str]:
            limit = attempt_limit(self.timeout, f"GET {where}")
            try:
                with anyio.fail_after(limit):
                    async with self._http.stream("GET", target, follow_redirects=True) as resp:
                        if not resp.is_success:
                            await resp.aread()
                            raise self._error(resp)
                        declared = _int(resp.headers.get("content-length"))
                        if declared is not None and declared > max_bytes:
                            raise _too_large(where, max_bytes)
                        buf = bytearray()
                        async for chunk in resp.aiter_bytes():
                            buf += chunk
                            if len(buf) > max_bytes:
                                raise _too_large(where, max_bytes)
                        ctype = resp.headers.get("content-type", "application/octet-stream")
                        return bytes(buf), ctype.split(";")[0].strip()
            except TimeoutError:
                if limit < self.timeout:  # cut at the call's deadline: final, not worth a retry
                    raise out_of_time(f"GET {where}") from None
                raise httpx2.ReadTimeout(f"no answer within {limit:g}s") from None
            except httpx2.DecodingError as exc:
                raise httpx2.ReadError(f"undecodable response ({type(exc).__name__})") from exc
            except httpx2.TooManyRedirects:
                raise DPGError(502, "invalid_response", f"{where} redirects in a loop; not fetched") from None

        return await self._with_retries(f"GET {where}", once)

    # ---- plumbing ----------------------------------------------------------------------------------------

    async def _attempt(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        auth: bool = True,
        attempt_timeout: float | None = None,
    ) -> httpx2.Response:
        """One HTTP exchange, body read, bounded by a per-attempt timeout (also for in-process transports)."""
        # Each attempt is cut at the tool call's deadline too (dpg.retry.call_deadline).
        own = attempt_timeout if attempt_timeout is not None else self.timeout
        limit = attempt_limit(own, f"{method} {path}")
        all_headers = dict(headers or {})
        if auth:
            token = self._token
            if self._token_source is not None:
                token = (await self._token_source()).strip()
                self.redactor.add(token)
            all_headers["Authorization"] = f"Bearer {token}"
        started = time.monotonic()
        try:
            with anyio.fail_after(limit):
                resp = await self._http.request(
                    method, path, params=params, headers=all_headers, content=content
                )
        except TimeoutError:
            log.info("%s %s: no answer within %.1fs", method, path, limit)
            if limit < own:  # cut at the call's deadline: final, not worth a retry
                raise out_of_time(f"{method} {path}") from None
            raise httpx2.ReadTimeout(f"no answer within {limit:g}s") from None
        except httpx2.DecodingError as exc:
            # A garbled body (bad gzip from a proxy) is a broken exchange like a reset: retried (same key).
            log.info("%s %s: %s", method, path, type(exc).__name__)
            raise httpx2.ReadError(f"undecodable response ({type(exc).__name__})") from exc
        except httpx2.TransportError as exc:
            log.info("%s %s: %s", method, path, type(exc).__name__)
            raise
        log.debug(
            "%s %s -> %s in %.0f ms", method, path, resp.status_code, (time.monotonic() - started) * 1000
        )
        return resp

    async def _get(
        self,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: bool = True,
    ) -> httpx2.Response:
        """A GET with read retries. Returns 2xx or 304 responses; raises DPGError otherwise."""

        async def once() -> httpx2.Response:
            resp = await self._attempt("GET", path, params=params, headers=headers, auth=auth)
            if resp.is_success or resp.status_code == 304:
                return resp
            raise self._error(resp)

        return await self._with_retries(f"GET {path}", once)

    async def _with_retries(self, label: str, once: Callable[[], Awaitable[R]]) -> R:
        return await with_retries(label, once, self.policy, sleep=self._sleep, rng=self._rng)

    async def _get_json(self, path: str, *, params: Mapping[str, str] | None = None) -> Any:
        return _json(await self._get(path, params=params))

    async def _page(
        self, path: str, model: type[M], limit: int, offset: int, filters: Mapping[str, Any], key: str
    ) -> Page[M]:
        params = _params({**filters, "limit": limit, "offset": offset})
        resp = await self._get(path, params=params)
        return _build_page(resp, model, offset, key)

    async def _all_raw(self, path: str, key: str) -> list[Any]:
        """Every item of a list the client returns whole, following the server's paging if it pages."""
        items: list[Any] = []
        params: dict[str, str] = {}
        for _ in range(_MAX_AUTO_PAGES):
            resp = await self._get(path, params=params or None)
            raw, wrapper = _extract_list(_json(resp), resp.status_code, (key,))
            items.extend(raw)
            has_more, next_offset = _paging(resp, wrapper, int(params.get("offset", "0")), len(raw))
            if not has_more or next_offset is None or not raw:
                break
            params = {"offset": str(next_offset)}
        return items

    async def _all(self, path: str, model: type[M], key: str) -> list[M]:
        return [_parse(model, x) for x in await self._all_raw(path, key)]

    def _error(self, resp: httpx2.Response) -> DPGError:
        headers = {k.lower(): v for k, v in resp.headers.items()}
        return DPGError.from_http(resp.status_code, resp.content, headers, redact=self.redactor)


# ---- pure helpers ----------------------------------------------------------------------------------------


def _params(values: Mapping[str, Any]) -> dict[str, str]:
    """Query parameters as the API wants them: booleans true|false, lists comma-joined, dates ISO 8601."""
    out: dict[str, str] = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, list | tuple):
            out[key] = ",".join(str(v) for v in value)
        elif isinstance(value, date | datetime):
            out[key] = value.isoformat()
        else:
            out[key] = str(value)
    return out


def _json(resp: httpx2.Response) -> Any:
    if not resp.content:
        return None
    try:
        return resp.json()
    except ValueError:
        raise DPGError(
            resp.status_code, "invalid_response", "the API answered with a body that is not JSON"
        ) from None


def _parse(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise DPGError(
            200,
            "invalid_response",
            f"unexpected {model.__name__} shape from the API ({exc.error_count()} problem(s))",
            detail=str(exc.errors(include_url=False, include_input=False))[:300],
        ) from None


def _extract_list(
    data: Any, status: int = 200, prefer: tuple[str, ...] = ()
) -> tuple[list[Any], dict[str, Any]]:
    """Items of a list body: a bare array (documented) or an object with a list inside (tolerated)."""
    if isinstance(data, list):
        return data, {}
    if data is None:
        return [], {}
    if isinstance(data, dict):
        for key in (*prefer, *_GENERIC_LIST_KEYS):
            if isinstance(data.get(key), list):
                return data[key], data
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) == 1:
            return lists[0], data
    raise DPGError(status, "invalid_response", "expected a list from the API")


def _paging_meta(wrapper: Mapping[str, Any]) -> Mapping[str, Any]:
    """Paging facts of an object-wrapped list: at the top, or under "meta"/"pagination"/"paging"."""
    for key in ("meta", "pagination", "paging", "page_info"):
        inner = wrapper.get(key)
        if isinstance(inner, dict):
            return {**inner, **{k: v for k, v in wrapper.items() if k in _PAGING_KEYS}}
    return wrapper


_PAGING_KEYS = ("has_more", "next_offset", "total", "total_count")


def _paging(
    resp: httpx2.Response, wrapper: Mapping[str, Any], offset: int, count: int
) -> tuple[bool, int | None]:
    wrapper = _paging_meta(wrapper)
    header = resp.headers.get("x-has-more")
    if header is not None:
        has_more = header.strip().lower() in ("true", "1", "yes")
    else:
        flag = wrapper.get("has_more")
        has_more = flag is True or (isinstance(flag, str) and flag.lower() == "true")
    if not has_more:
        return False, None
    next_offset = _int(resp.headers.get("x-next-offset"))
    if next_offset is None:
        next_offset = _int(wrapper.get("next_offset"))
    if next_offset is None:
        # The server said "more" without an offset: plain offset paging continues after this page.
        next_offset = offset + count
    return True, next_offset


def _build_page(resp: httpx2.Response, model: type[M], offset: int, key: str) -> Page[M]:
    fast = items_from_json(model, resp.content)  # a bare array of well-formed items, in one pass
    wrapper: dict[str, Any] = {}
    if fast is not None:
        items = fast
    else:
        raw, wrapper = _extract_list(_json(resp), resp.status_code, (key,))
        items = [_parse(model, x) for x in raw]
    has_more, next_offset = _paging(resp, wrapper, offset, len(items))
    total = _int(resp.headers.get("x-total-count"))
    if total is None:
        meta = _paging_meta(wrapper)
        total = _int(meta.get("total", meta.get("total_count")))
    return page_of(model, items, has_more=has_more, next_offset=next_offset, total=total)


def _int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _looks_like_operation(data: Any) -> bool:
    if not isinstance(data, dict):
        return False
    if isinstance(data.get("operation"), dict):
        return True
    inner = data.get("data")
    if isinstance(inner, dict) and "uuid" not in data:
        data = inner
    return "uuid" in data and isinstance(data.get("status"), str) and "type" in data


def _operation_from(data: Any, location: str | None) -> Operation | None:
    if isinstance(data, dict):
        candidate = data
        for wrapper in ("operation", "data"):
            inner = data.get(wrapper)
            if isinstance(inner, dict) and "uuid" not in data:
                candidate = inner
                break
        if isinstance(candidate, dict) and candidate.get("uuid"):
            try:
                return Operation.model_validate(candidate)
            except ValidationError:
                pass
    if location:
        # "/v1/operations/op-1", an absolute URL, maybe with a query: the id is the last path segment.
        loc_path = unquote(urlsplit(location).path).rstrip("/")
        if "/operations/" in loc_path:
            op_id = loc_path.rsplit("/", 1)[-1]
            if op_id:
                return Operation(uuid=op_id, status="running")
    return None


def _too_large(where: str, max_bytes: int) -> DPGError:
    return DPGError(413, "payload_too_large", f"{where} is larger than {max_bytes} bytes; not fetched")


def _loggable(url: str) -> str:
    """scheme://host/path only: signed URLs carry their signature in the query."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.scheme else parts.path


def _describe(exc: BaseException) -> str:
    kind = type(exc).__name__
    if isinstance(exc, httpx2.TimeoutException):
        return f"timed out ({kind})"
    return f"connection failed ({kind})"

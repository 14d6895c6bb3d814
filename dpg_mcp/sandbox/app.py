"""The Sandbox: a Starlette app emulating DPG API v1, with fault injection and test hooks."""

from __future__ import annotations

import random
from collections.abc import Iterable, MutableMapping
from pathlib import Path
from typing import Any

import anyio
import httpx2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from . import routes_auth, routes_files, routes_images, routes_keywords, routes_ops, routes_sets
from .config import Faults, SandboxConfig
from .core import WRITE_METHODS, Engine, WriteRoute
from .http import ApiError, conditional, error_response
from .store import Store

SPEC_PATH = Path(__file__).with_name("openapi.v1.yaml")
PUBLIC_DOCS = ("/llms.txt", "/llms-full.txt", "/openapi.v1.yaml")


class ResponseDropped(Exception):
    """Raised after a committed write's response has started: the connection dies mid-response."""


def _default_llms_path() -> Path | None:
    import dpg_mcp

    # The packaged copy; in a checkout it is a symlink to the repo-root llms.txt, so both see the same file.
    cand = Path(dpg_mcp.__file__).parent / "bundled" / "llms.txt"
    return cand if cand.is_file() else None


FALLBACK_LLMS = """# DPG API v1 (sandbox)

Base URL: {base}/v1. Auth: `Authorization: Bearer <token>`. GET /v1/me shows the token's capabilities.
Writes need an `Idempotency-Key` header and answer 202 with an Operation: poll GET /v1/operations/{{uuid}}
(send If-None-Match with its ETag). Lists take limit (≤200) and offset; follow X-Has-More / X-Next-Offset.
Errors: {{"error": {{code, message, detail, field, request_id}}}}; 429 carries Retry-After.
Full contract: /openapi.v1.yaml and /llms-full.txt.
"""


class FaultMiddleware:
    """Request ids on every response; latency, 500s, 429 bursts and dropped write responses on demand."""

    def __init__(self, app: ASGIApp, sandbox: Sandbox) -> None:
        self.app = app
        self.sb = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sb = self.sb
        sb.request_seq += 1
        rid = f"req-{sb.config.seed:x}-{sb.request_seq:06d}"
        scope["dpg.request_id"] = rid
        path, method = scope["path"], scope["method"]
        faults = sb.config.faults
        op_poll = method == "GET" and path.startswith("/v1/operations/")
        exempt = path in PUBLIC_DOCS or op_poll

        delay = 0.0
        for prefix, secs in faults.latency.items():
            # Exempt paths are slowed only by a prefix that names them ("/v1/operations", "/llms.txt").
            names_it = (
                prefix.startswith("/v1/operations")
                if op_poll
                else path.startswith(prefix) and len(prefix) > 1
            )
            if path.startswith(prefix) and (not exempt or names_it):
                delay += secs
        if delay > 0:
            await anyio.sleep(delay)

        async def send_with_id(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        drop = False
        targeted = not faults.paths or path.startswith(faults.paths)
        if not exempt and targeted and faults.active:
            n = sb.fault_seq
            sb.fault_seq += 1
            r_err, r_drop = sb.fault_rng.random(), sb.fault_rng.random()
            every, length = faults.burst_429_every, faults.burst_429_len
            if every > 0 and length > 0 and n % (every + length) >= every:
                err = ApiError(
                    "rate_limited",
                    "Too many requests; slow down.",
                    detail=f"retry after {faults.retry_after} s",
                    headers={"Retry-After": str(faults.retry_after)},
                )
                await self._reply(scope, receive, send_with_id, err)
                return
            if r_err < faults.error_rate:
                err = ApiError(
                    "internal", "Something went wrong on our side. Please retry.", detail="injected fault"
                )
                await self._reply(scope, receive, send_with_id, err)
                return
            # The image processor's upload commits too: its reply can be lost like any write's.
            is_write = method in WRITE_METHODS and (
                (path.startswith("/v1/") and not path.startswith("/v1/auth/")) or path == "/processor/upload"
            )
            drop = is_write and r_drop < faults.drop_rate

        if drop:
            await self._run_and_drop(scope, receive, send_with_id)
            return
        started = False

        async def tracking_send(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send_with_id(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            if started:
                raise
            err = ApiError(
                "internal",
                "Something went wrong on our side. Please retry.",
                detail="unexpected server error",
            )
            await self._reply(scope, receive, send_with_id, err)

    async def _reply(self, scope: Scope, receive: Receive, send: Send, err: ApiError) -> None:
        await error_response(Request(scope, receive), err)(scope, receive, send)

    async def _run_and_drop(self, scope: Scope, receive: Receive, send: Send) -> None:
        captured: list[MutableMapping[str, Any]] = []

        async def capture(message: MutableMapping[str, Any]) -> None:
            captured.append(message)

        await self.app(scope, receive, capture)
        start = next((m for m in captured if m["type"] == "http.response.start"), None)
        if start is None or not 200 <= int(start["status"]) < 300:
            for m in captured:  # not committed: answer normally
                await send(m)
            return
        await send(start)
        raise ResponseDropped(f"{scope['method']} {scope['path']}: response dropped after commit")


class SandboxTransport(httpx2.AsyncBaseTransport):
    """In-process network to the sandbox; a dropped response surfaces as httpx2.ReadError."""

    def __init__(self, app: ASGIApp) -> None:
        self._inner = httpx2.ASGITransport(app=app)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        try:
            return await self._inner.handle_async_request(request)
        except ResponseDropped as e:
            raise httpx2.ReadError("connection reset by peer", request=request) from e

    async def aclose(self) -> None:
        await self._inner.aclose()


class Sandbox:
    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.engine = Engine(self.config)
        self.request_seq = 0
        self.fault_seq = 0
        self.fault_rng = random.Random(self.config.faults.seed)
        self.app = self._build_app()

    @property
    def store(self) -> Store:
        return self.engine.store

    def transport(self) -> httpx2.AsyncBaseTransport:
        return SandboxTransport(self.app)

    def apply_counts(self) -> dict[str, int]:
        return dict(self.engine.store.apply_counts)

    def applied_total(self) -> int:
        return sum(self.engine.store.apply_counts.values())

    def state_digest(self) -> str:
        return self.engine.store.digest()

    def token_id(self, token: str) -> str:
        """The id apply_counts() keys use for a service token (also /v1/me service_token.uuid)."""
        return self.engine.auth.principal(f"Bearer {token}").token_id

    def set_scopes(self, token: str, scopes: Iterable[str]) -> None:
        """Change a service token's scopes live (the next request sees them)."""
        name, _, account, enabled = self.engine.auth.service_tokens[token]
        self.engine.auth.service_tokens[token] = (name, list(scopes), account, enabled)

    def set_api_enabled(self, token: str, enabled: bool) -> None:
        """Flip the account API switch as seen by one service token."""
        name, scopes, account, _ = self.engine.auth.service_tokens[token]
        self.engine.auth.service_tokens[token] = (name, scopes, account, enabled)

    def set_faults(self, faults: Faults) -> None:
        """Switch faults live; decisions restart from faults.seed (assigning config.faults works too)."""
        self.config.faults = faults
        self.fault_rng = random.Random(faults.seed)
        self.fault_seq = 0

    # --- assembly ---------------------------------------------------------------------
    def llms_txt(self, base: str) -> str:
        path = self.config.llms_txt_path
        p = Path(path) if path is not None else _default_llms_path()
        if p is not None and p.is_file():
            return p.read_text(encoding="utf-8")
        return FALLBACK_LLMS.format(base=base)

    def _build_app(self) -> Starlette:
        eng = self.engine
        writes: list[WriteRoute] = [
            *routes_images.WRITES,
            *routes_keywords.WRITES,
            *routes_sets.WRITES,
            *routes_files.WRITES,
            *routes_ops.WRITES,
        ]
        # Literal segments win over {params} (PATCH /v1/sets/reorder before PATCH /v1/sets/{public_uuid}).
        writes.sort(key=lambda r: r.path.count("{"))
        eng.write_routes = writes
        routes: list[BaseRoute] = [
            *routes_auth.routes(eng),
            *routes_images.routes(eng),
            *routes_keywords.routes(eng),
            *routes_sets.routes(eng),
            *routes_files.routes(eng),
            *routes_ops.routes(eng),
        ]
        routes.sort(key=lambda r: getattr(r, "path", "").count("{"))
        routes += [Route(w.path, eng.write_endpoint(w), methods=[w.method]) for w in writes]
        routes.sort(key=lambda r: getattr(r, "path", "").count("{"))
        routes += self._public_routes()
        for r in routes:  # no implicit HEAD: the app serves exactly what the OpenAPI file lists
            if isinstance(r, Route) and r.methods is not None:
                r.methods.discard("HEAD")

        async def not_found(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, HTTPException)
            if exc.status_code == 405:
                err = ApiError(
                    "method_not_allowed",
                    "This path does not accept that method.",
                    detail=f"{request.method} is not allowed on {request.url.path}",
                    status=405,
                )
            else:
                err = ApiError(
                    "not_found",
                    "No such endpoint.",
                    detail=f"{request.method} {request.url.path} does not exist",
                    status=exc.status_code,
                )
            return error_response(request, err)

        return Starlette(
            routes=routes,
            middleware=[Middleware(FaultMiddleware, sandbox=self)],
            exception_handlers={404: not_found, 405: not_found},
        )

    def _public_routes(self) -> list[BaseRoute]:
        async def llms(request: Request) -> Response:
            text = self.llms_txt(str(request.base_url).rstrip("/"))
            return conditional(request, text.encode(), media_type="text/plain; charset=utf-8")

        async def llms_full(request: Request) -> Response:
            base = str(request.base_url).rstrip("/")
            spec = SPEC_PATH.read_text(encoding="utf-8")
            text = (
                self.llms_txt(base).rstrip()
                + "\n\n## The full OpenAPI 3.1 specification (openapi.v1.yaml)\n\n"
                "```yaml\n" + spec.rstrip() + "\n```\n"
            )
            return conditional(request, text.encode(), media_type="text/plain; charset=utf-8")

        async def openapi(request: Request) -> Response:
            return conditional(request, SPEC_PATH.read_bytes(), media_type="application/yaml")

        return [
            Route("/llms.txt", llms, methods=["GET"]),
            Route("/llms-full.txt", llms_full, methods=["GET"]),
            Route("/openapi.v1.yaml", openapi, methods=["GET"]),
        ]


def describe_routes(app: Starlette) -> list[tuple[str, str]]:
    """(METHOD, path) of every route: used to keep the OpenAPI file and the app in step."""
    out = []
    for r in app.routes:
        if isinstance(r, Route) and r.methods:
            out += [(m, r.path) for m in sorted(r.methods)]
    return out

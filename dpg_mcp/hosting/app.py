"""The hosted ASGI app: streamable HTTP at /mcp for any number of callers, plus health and metadata."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx2
from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend
from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.routes import build_resource_metadata_url, create_protected_resource_routes
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import AnyHttpUrl
from starlette.applications import Starlette
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from dpg_mcp import __version__
from dpg_mcp.config import Settings
from dpg_mcp.dpg.client import DPGClient
from dpg_mcp.guide import fetch_guide
from dpg_mcp.hosting.callers import HostedCallers
from dpg_mcp.hosting.clients import ClientPool
from dpg_mcp.hosting.frontdoor import CallerGate, FrontDoor
from dpg_mcp.hosting.limits import Limiter, MemoryLimiter, RedisLimiter
from dpg_mcp.hosting.me_cache import MeCache, MemoryMeCache, RedisMeCache
from dpg_mcp.hosting.options import HostingOptions
from dpg_mcp.hosting.verifier import DPGTokenVerifier
from dpg_mcp.ledger import Ledger, MemoryLedger
from dpg_mcp.server.factory import DPGServer, assemble
from dpg_mcp.server.uploads import AllowList, fetch_image_url
from dpg_mcp.tools.base import UploadPolicy

log = logging.getLogger(__name__)

SANDBOX_PATH = "/sandbox"


@dataclass
class Hosted:
    """The parts of a running hosted server (tests and the CLI's banner read them)."""

    app: Starlette
    server: DPGServer
    callers: HostedCallers
    api_url: str


def transport_security(options: HostingOptions) -> TransportSecuritySettings:
    """Host/Origin allow-list: the bound address, the public URL's host, and what the flags add."""
    hosts = {"127.0.0.1:*", "localhost:*", "[::1]:*", *options.allowed_hosts}
    if options.host not in ("0.0.0.0", "::", ""):
        hosts.add(f"{options.host}:*")
    public = urlsplit(options.base_url)
    if public.netloc:
        hosts.update({public.netloc, f"{public.hostname}:*", public.hostname or ""})
    origins = set(options.allowed_origins)
    if options.host in ("127.0.0.1", "localhost", "::1"):
        # Bound to loopback (a developer's machine): pages served from this machine may call it, as the SDK
        # allows by default. A server bound elsewhere accepts only the origins it is told.
        origins |= {"http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"}
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=sorted(h for h in hosts if h),
        allowed_origins=sorted(origins),
    )


class _MountedSandbox:
    """The mounted sandbox builds its links from the request's base URL (Starlette: the app's root path, not
    the mount's): make that the mount, and with --public-url the public URL, so a caller on another machine
    can open them although the server itself reaches the sandbox over loopback."""

    def __init__(self, app: ASGIApp, public_url: str | None) -> None:
        self.app = app
        parts = urlsplit(public_url or "")
        self.scheme, self.netloc = parts.scheme, parts.netloc.encode()
        self.prefix = parts.path.rstrip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = {**scope, "app_root_path": self.prefix + scope.get("root_path", "")}
            if self.netloc:
                headers = [(k, v) for k, v in scope["headers"] if k != b"host"] + [(b"host", self.netloc)]
                scope |= {"scheme": self.scheme, "headers": headers}
        await self.app(scope, receive, send)


def build_app(
    settings: Settings,
    options: HostingOptions,
    *,
    ledger: Ledger | None = None,
    redis: Any | None = None,
    log_level: Any = "WARNING",
    signin_store: Any | None = None,
) -> Hosted:
    """Everything but the network: DPG and Redis are first reached in the app's lifespan."""
    routes: list[BaseRoute] = []
    on_stop: list[Callable[[], object]] = []
    api_url = settings.api_url
    if options.sandbox:
        from dpg_mcp.sandbox import Sandbox, SandboxConfig

        sandbox = Sandbox(SandboxConfig())
        if settings.sandbox_state:  # --sandbox-state: the gallery is read now and written back at shutdown
            from dpg_mcp.sandbox.persist import load_into, save

            load_into(sandbox, settings.sandbox_state)
            state_dir = settings.sandbox_state
            on_stop.append(lambda: save(sandbox, state_dir))
        sandbox_app = _MountedSandbox(sandbox.app, options.public_url)
        routes.append(Mount(SANDBOX_PATH, app=sandbox_app))
        connect = "127.0.0.1" if options.host in ("0.0.0.0", "::", "") else options.host
        connect = f"[{connect}]" if ":" in connect else connect
        api_url = f"http://{connect}:{options.port}{SANDBOX_PATH}"

    pool = ClientPool(api_url)
    cache: MeCache = RedisMeCache(redis) if redis is not None else MemoryMeCache()
    limiter: Limiter = (
        RedisLimiter(redis, options.limits) if redis is not None else MemoryLimiter(options.limits)
    )
    dpg_verifier = DPGTokenVerifier(pool, cache, ttl_s=options.me_ttl_s)
    verifier: TokenVerifier = dpg_verifier
    if signin_store is not None:
        # Team sign-in: dpg-mcp is also the OAuth authorization server; its own tokens are tried first.
        from dpg_mcp.hosting.auth import SignIn

        signin = SignIn.build(
            signin_store,
            api_url=api_url,
            base_url=options.base_url,
            mcp_url=options.mcp_url,
            dpg=dpg_verifier,
        )
        routes += signin.routes
        verifier = signin.verifier
    allow = AllowList.parse(options.upload_allow)
    uploads = UploadPolicy(
        local_files=False,
        max_bytes=options.upload_max_bytes,
        fetch_url=functools.partial(fetch_image_url, allow=allow),
    )
    callers = HostedCallers(
        settings, pool, dpg_verifier, ledger or MemoryLedger(), guide="", guide_origin="", uploads=uploads
    )
    server = assemble(
        callers,
        instructions="dpg-mcp: tools for a Digital Photo Gallery account.",
        log_level=log_level,
        hosted=True,
        apps=settings.apps,
    )
    # Creates the session manager (stateful sessions for 2025-11-25 clients unless --stateless; 2026-07-28
    # requests are stateless either way). Its own Starlette wrapper is not used: ours adds the front door.
    server.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=options.stateless,
        transport_security=transport_security(options),
        max_request_body_size=options.max_body_bytes,
        host=options.host,
    )
    metadata_url = str(build_resource_metadata_url(AnyHttpUrl(options.mcp_url)))
    mcp_asgi: ASGIApp = StreamableHTTPASGIApp(server.session_manager)
    mcp_asgi = CallerGate(mcp_asgi, limiter=limiter, resource_metadata_url=metadata_url)
    mcp_asgi = AuthContextMiddleware(mcp_asgi)
    mcp_asgi = AuthenticationMiddleware(mcp_asgi, backend=BearerAuthBackend(verifier))
    mcp_asgi = FrontDoor(
        mcp_asgi,
        security=transport_security(options),
        max_body_bytes=options.max_body_bytes,
        replica_id=options.replica_id,
    )

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "version": __version__})

    async def readyz(request: Request) -> JSONResponse:
        checks: dict[str, str] = {}
        with anyio.move_on_after(5):
            checks["dpg"] = await _dpg_reachable(pool)
        checks.setdefault("dpg", "timeout")
        if redis is not None:
            try:
                with anyio.fail_after(2):
                    await redis.ping()
                checks["redis"] = "ok"
            except Exception as exc:
                checks["redis"] = type(exc).__name__
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"ready": ok, **checks}, status_code=200 if ok else 503)

    routes += [
        Route("/mcp", endpoint=mcp_asgi, methods=["GET", "POST", "DELETE"]),
        Route("/healthz", endpoint=healthz, methods=["GET"]),
        Route("/readyz", endpoint=readyz, methods=["GET"]),
        *create_protected_resource_routes(
            resource_url=AnyHttpUrl(options.mcp_url),
            authorization_servers=[AnyHttpUrl(options.base_url)],
            resource_name="dpg-mcp (Digital Photo Gallery)",
        ),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for hook in on_stop:
                stack.callback(hook)
            stack.push_async_callback(pool.aclose)
            # The guide is public (no token): read once for all callers. A mounted sandbox is not listening
            # yet, so it is asked in-process.
            inproc = httpx2.ASGITransport(app=app) if options.sandbox else None
            async with DPGClient(base_url=api_url, token="", transport=inproc) as anon:
                callers.guide, callers.guide_origin = await fetch_guide(anon)
            await stack.enter_async_context(server.session_manager.run())
            yield

    app = Starlette(routes=routes, lifespan=lifespan)
    return Hosted(app=app, server=server, callers=callers, api_url=api_url)


async def _dpg_reachable(pool: ClientPool) -> str:
    """Any HTTP answer from the API root counts (no token is sent): DPG is up and reachable."""
    try:
        async with httpx2.AsyncClient(base_url=pool.base_url, timeout=4) as http:
            resp = await http.get("/v1/me")
    except Exception as exc:
        return type(exc).__name__
    return "ok" if resp.status_code < 500 else f"http {resp.status_code}"

"""`dpg-mcp`: serve MCP on stdio (default), `dpg-mcp serve --transport http` for a team, `dpg-mcp check`,
`dpg-mcp sandbox …`.

stdout is the MCP protocol on stdio, so everything human goes to stderr, except `check`, which is for people.
Configuration problems print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import anyio

from dpg_mcp import __version__
from dpg_mcp.config import ConfigError, Settings, load_settings
from dpg_mcp.dpg.errors import redacted_logs

log = logging.getLogger("dpg_mcp")

EXIT_CONFIG = 2


def _common(parser: argparse.ArgumentParser, *, sub: bool = False) -> None:
    # On the subcommand, defaults are SUPPRESSed so `dpg-mcp --sandbox check` keeps the flag given before it.
    def d(value: Any) -> Any:
        return argparse.SUPPRESS if sub else value

    parser.add_argument(
        "--sandbox",
        action="store_true",
        default=d(False),
        help="run against the embedded DPG sandbox, served on a free 127.0.0.1 port (no token needed)",
    )
    parser.add_argument(
        "--sandbox-port",
        type=int,
        default=d(None),
        metavar="PORT",
        help="with --sandbox: serve it on this 127.0.0.1 port, so its links stay the same between runs",
    )
    parser.add_argument(
        "--sandbox-state",
        default=d(None),
        metavar="DIR",
        help="with --sandbox: keep its gallery in DIR between runs (without it, the sandbox resets when it "
        "stops)",
    )
    parser.add_argument(
        "--api-url", default=d(None), help="DPG API base URL (default: $DPG_API_URL or the public API)"
    )
    parser.add_argument("--read-only", action="store_true", default=d(None), help="expose read tools only")
    parser.add_argument(
        "--toolsets",
        default=d(None),
        help="comma-separated toolsets: images,metadata,sets,files (account tools always stay)",
    )
    parser.add_argument(
        "--wait-seconds",
        type=float,
        default=d(None),
        help="how long a write waits for DPG before returning a handle",
    )
    parser.add_argument(
        "--no-apps",
        dest="apps",
        action="store_false",
        default=d(None),
        help="no MCP Apps views (hosts without Apps see no difference either way)",
    )
    parser.add_argument(
        "--allow-http",
        action="store_true",
        default=d(False),
        help="allow a plain http DPG_API_URL on a host other than loopback (the token then travels in clear)",
    )
    parser.add_argument(
        "--upload-root",
        action="append",
        metavar="DIR",
        default=d(None),
        help="a folder upload_image may read files from (repeatable); used when the host offers no MCP roots."
        " Default: your pictures folder",
    )
    parser.add_argument(
        "--ledger",
        default=d(None),
        metavar="PATH|memory",
        help="the write ledger: a SQLite file (default: one in the user's state dir, or Redis when "
        "$REDIS_URL is set), or 'memory'",
    )
    parser.add_argument("-v", "--verbose", action="count", default=d(0), help="more logging on stderr")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dpg-mcp",
        description="MCP server for the Digital Photo Gallery API. The token comes from $DPG_TOKEN.",
    )
    parser.add_argument("--version", action="version", version=f"dpg-mcp {__version__}")
    parser.add_argument(
        "--stdio",
        action="store_true",
        help="serve MCP on stdio (the default without a command; says so in `docker run -i … --stdio`)",
    )
    _common(parser)
    sub = parser.add_subparsers(dest="command")
    check = sub.add_parser("check", help="show the account, scopes and the tools this token would expose")
    _common(check, sub=True)
    check.add_argument("--json", action="store_true", help="machine-readable output")
    serve = sub.add_parser(
        "serve",
        help="serve MCP over stdio (the default) or over streamable HTTP for a team (--transport http)",
    )
    _common(serve, sub=True)
    add_http_arguments(serve)
    # Listed for --help only; `dpg-mcp sandbox ...` is parsed by sandbox_parser() (imported only when used).
    sub.add_parser(
        "sandbox", help="serve the DPG sandbox over HTTP for experiments (see: dpg-mcp sandbox -h)"
    )
    return parser


def _env_list(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def add_http_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument("--transport", choices=["stdio", "http"], default="stdio", help="default: stdio")
    http = parser.add_argument_group("HTTP (--transport http): each request's bearer DPG token is its caller")
    http.add_argument(
        "--host", default=env("DPG_MCP_HOST", "127.0.0.1"), help="interface (default 127.0.0.1)"
    )
    http.add_argument("--port", type=int, default=int(env("DPG_MCP_PORT", "8000")), help="default 8000")
    http.add_argument(
        "--public-url",
        default=env("DPG_MCP_PUBLIC_URL"),
        help="the server's external URL behind a TLS proxy (links, metadata); $DPG_MCP_PUBLIC_URL",
    )
    http.add_argument(
        "--stateless",
        action="store_true",
        default=env("DPG_MCP_STATELESS", "") in ("1", "true"),
        help="no sessions: any replica serves any request (2025-11-25 clients lose mid-call questions)",
    )
    http.add_argument(
        "--allowed-host",
        action="append",
        default=_env_list("DPG_MCP_ALLOWED_HOSTS"),
        metavar="HOST[:PORT|:*]",
        help="accept this Host header too (DNS-rebinding protection; repeatable; $DPG_MCP_ALLOWED_HOSTS)",
    )
    http.add_argument(
        "--allowed-origin",
        action="append",
        default=_env_list("DPG_MCP_ALLOWED_ORIGINS"),
        metavar="ORIGIN",
        help="accept browser requests from this Origin (repeatable; $DPG_MCP_ALLOWED_ORIGINS)",
    )
    http.add_argument(
        "--replica-id",
        default=env("DPG_MCP_REPLICA_ID"),
        metavar="ID",
        help="prefix of this replica's session ids, for a load balancer that routes sessions by it",
    )
    http.add_argument(
        "--redis-url",
        default=env("REDIS_URL"),
        help="share the write ledger, the /v1/me cache and the limits across replicas ($REDIS_URL)",
    )
    http.add_argument(
        "--rate-limit", type=int, default=1200, help="requests per minute per token (0: off; default 1200)"
    )
    http.add_argument(
        "--max-concurrent", type=int, default=16, help="requests in flight per token (0: off; default 16)"
    )
    http.add_argument(
        "--upload-max-mb", type=float, default=20.0, help="largest upload by bytes or URL (default 20)"
    )
    http.add_argument(
        "--upload-allow",
        action="append",
        default=_env_list("DPG_MCP_UPLOAD_ALLOW"),
        metavar="HOST|CIDR",
        help="upload URLs may reach this private/loopback host or network (repeatable)",
    )


def hosting_options(args: argparse.Namespace) -> Any:
    from dpg_mcp.hosting.limits import LimitSettings
    from dpg_mcp.hosting.options import HostingOptions

    if args.public_url:
        public = urlsplit(args.public_url)
        if public.scheme not in ("http", "https") or not public.hostname or public.query:
            raise ConfigError(
                f"--public-url must be an http(s) URL like https://mcp.example.com, got {args.public_url!r}"
            )
    if getattr(args, "sandbox_port", None):
        raise ConfigError(
            "--sandbox-port is for stdio: serving HTTP, the sandbox is mounted at /sandbox on --port"
        )
    if args.replica_id and not re.fullmatch(r"[a-z0-9-]{1,16}", args.replica_id):
        raise ConfigError("--replica-id must be 1-16 lowercase letters, digits or dashes")
    if not 0 < args.upload_max_mb <= 50:
        raise ConfigError("--upload-max-mb must be more than 0 and at most 50")
    return HostingOptions(
        host=args.host,
        port=args.port,
        public_url=args.public_url,
        stateless=bool(args.stateless),
        allowed_hosts=tuple(args.allowed_host),
        allowed_origins=tuple(args.allowed_origin),
        redis_url=args.redis_url or None,
        limits=LimitSettings(
            requests_per_window=max(0, args.rate_limit), window_s=60.0, concurrent=max(0, args.max_concurrent)
        ),
        upload_max_bytes=int(args.upload_max_mb * 1024 * 1024),
        upload_allow=tuple(args.upload_allow),
        sandbox=bool(getattr(args, "sandbox", False)),
        replica_id=args.replica_id or None,
    )


def sandbox_parser() -> argparse.ArgumentParser:
    from dpg_mcp.sandbox.cli import add_arguments

    parser = argparse.ArgumentParser(prog="dpg-mcp sandbox", description="Serve the DPG sandbox over HTTP.")
    add_arguments(parser)
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    return load_settings(
        read_only=args.read_only,
        toolsets=args.toolsets,
        api_url=args.api_url,
        wait_budget_s=args.wait_seconds,
        sandbox=args.sandbox,
        apps=getattr(args, "apps", None),
        allow_http=args.allow_http,
        upload_roots=args.upload_root,
        sandbox_port=args.sandbox_port,
        sandbox_state=args.sandbox_state,
    )


@asynccontextmanager
async def open_client(settings: Settings) -> AsyncIterator[Any]:
    """A DPGClient for the settings. With --sandbox, the embedded sandbox is first served on a free loopback
    port, so the client talks real HTTP to it and the links the tools return open in a browser."""
    from dpg_mcp.dpg.client import DPGClient

    async with AsyncExitStack() as stack:
        api_url = settings.api_url
        if settings.sandbox:
            from dpg_mcp.sandbox import Sandbox, SandboxConfig, serve_in_thread

            sb = Sandbox(SandboxConfig())
            if settings.sandbox_state:
                from dpg_mcp.sandbox.persist import load_into, save

                state_dir = settings.sandbox_state
                kept = load_into(sb, state_dir)
                print(
                    f"dpg-mcp: sandbox gallery {'read from' if kept else 'will be kept in'} {state_dir}",
                    file=sys.stderr,
                    flush=True,
                )
                _STOP_HOOKS.append(lambda: save(sb, state_dir))
                stack.callback(_run_stop_hooks)
            port = settings.sandbox_port or 0
            try:
                api_url = stack.enter_context(serve_in_thread(sb, port=port))
            except OSError as exc:
                raise ConfigError(f"cannot serve the sandbox on 127.0.0.1:{port} ({exc.strerror})") from None
        client = await stack.enter_async_context(DPGClient(base_url=api_url, token=settings.secret()))
        # Whatever a log line quotes (a URL, DPG's words), it goes to stderr without the live secrets.
        stack.enter_context(redacted_logs(client.redactor))
        yield client


async def tools_list_bytes(server: Any) -> tuple[int, list[dict[str, Any]]]:
    """The exact tools/list payload a host pays for on every turn, measured over an in-process client."""
    from mcp import Client

    async with Client(server) as client:
        result = await client.list_tools()
    tools = [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in result.tools]
    payload = json.dumps({"tools": tools}, separators=(",", ":"), ensure_ascii=False)
    return len(payload.encode("utf-8")), tools


async def _serve(settings: Settings, ledger_spec: str | None = None) -> None:
    from dpg_mcp.ledger import open_ledger
    from dpg_mcp.server import account_of, build_server

    # The ledger outlives this process (SQLite file, Redis): a resend after a restart still finds its entry.
    try:
        ledger = open_ledger(ledger_spec, redis_url=os.environ.get("REDIS_URL") or None)
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(
            f"cannot open the write ledger ({type(exc).__name__}: {exc}): pass --ledger PATH to a writable "
            "file, or --ledger memory"
        ) from None
    async with open_client(settings) as client:
        server = await build_server(client, settings, ledger=ledger)
        name, _, _ = account_of(server.dpg.me)
        where = f"the embedded DPG sandbox at {client.base_url}" if settings.sandbox else settings.api_url
        print(
            f"dpg-mcp: serving MCP on stdio against {where} ({name}, {len(server.dpg.visible)} tools). "
            "Connect an MCP host; Ctrl-C stops.",
            file=sys.stderr,
            flush=True,
        )
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_stop_on_signal, ledger)
                await server.run_stdio_async()
                tg.cancel_scope.cancel()  # input ended: stop watching for signals
        finally:
            await ledger.aclose()


# Run when the server stops, however it stops (end of input, Ctrl-C, SIGTERM): e.g. keep the sandbox state.
_STOP_HOOKS: list[Callable[[], object]] = []


def _run_stop_hooks() -> None:
    while _STOP_HOOKS:
        hook = _STOP_HOOKS.pop()
        try:
            hook()
        except Exception as exc:  # a failed hook must not keep the process alive
            print(f"dpg-mcp: while stopping: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)


async def _stop_on_signal(ledger: Any) -> None:
    """Ctrl-C (or SIGTERM) stops the stdio server at once.

    The stdio transport reads stdin in a worker thread that no cancellation can interrupt, so waiting for it
    would hang until the next line or end of input. Instead: run the stop hooks, close the ledger (bounded),
    and leave the process.
    """
    if sys.platform == "win32":  # no signal receiver there: KeyboardInterrupt ends the run as before
        return
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            print("dpg-mcp: stopped.", file=sys.stderr, flush=True)
            _run_stop_hooks()
            with anyio.move_on_after(1):
                await ledger.aclose()
            sys.stderr.flush()
            os._exit(130 if signum == signal.SIGINT else 143)


async def _check(settings: Settings, as_json: bool) -> None:
    from dpg_mcp.server import account_of, build_server

    async with open_client(settings) as client:
        server = await build_server(client, settings)
        state = server.dpg
        size, tools = await tools_list_bytes(server)
    name, unique_id, _ = account_of(state.me)
    report = {
        "api_url": client.base_url,
        "account": {"name": name, "unique_id": unique_id},
        "scopes": sorted(state.capabilities),
        "read_only": settings.read_only,
        "toolsets": sorted(settings.toolsets) if settings.toolsets else "all",
        "guide": state.guide_origin,
        "tools": sorted(t["name"] for t in tools),
        "tools_list_bytes": size,
        "tools_list_tokens_approx": size // 4,
        "instructions_bytes": len((server.instructions or "").encode("utf-8")),
    }
    if as_json:
        print(json.dumps(report, indent=2))
        return
    print(f"DPG API     {report['api_url']}{'  (embedded sandbox)' if settings.sandbox else ''}")
    print(f"account     {name}" + (f" ({unique_id})" if unique_id else ""))
    print(f"scopes      {', '.join(sorted(state.capabilities)) or '(none)'}")
    print(f"guide       from {state.guide_origin}")
    print(f"tools ({len(tools)}):")
    for t in sorted(tools, key=lambda t: t["name"]):
        ann = t.get("annotations", {})
        kind = (
            "read"
            if ann.get("readOnlyHint")
            else ("destructive write" if ann.get("destructiveHint") else "write")
        )
        print(f"  {t['name']:<20} {kind}")
    print(
        f"context     tools/list {size} bytes ≈ {size // 4} tokens; "
        f"instructions {report['instructions_bytes']} bytes"
    )


# Libraries whose own lines stay at WARNING even at -vv (httpx2 would log every URL, signed ones included).
NOISY_LOGGERS = ("httpx2", "httpcore2", "mcp")


async def _serve_http(settings: Settings, options: Any, ledger_spec: str | None = None) -> None:
    import uvicorn

    from dpg_mcp.hosting.app import build_app
    from dpg_mcp.ledger import open_ledger

    redis = None
    if options.redis_url:
        redis = await _connect_redis(options.redis_url)
    # With Redis every replica shares the ledger; without, the SQLite file (one replica, survives restarts).
    ledger = open_ledger(ledger_spec, redis_url=options.redis_url)
    from dpg_mcp.hosting.auth import open_store

    # Team sign-in (OAuth) state: in Redis with replicas, else SQLite beside the ledger.
    signin_store = open_store(ledger_spec, redis=redis)
    try:
        hosted = build_app(settings, options, redis=redis, ledger=ledger, signin_store=signin_store)
        where = "the DPG sandbox mounted at /sandbox" if options.sandbox else hosted.api_url
        mode = "stateless" if options.stateless else "sessions for 2025-11-25 clients"
        print(
            f"dpg-mcp: serving MCP over streamable HTTP at {options.mcp_url} ({mode}) against {where}"
            f"{'; shared state in Redis' if redis is not None else ''}. "
            "Each request's Authorization: Bearer <DPG token> is its caller. Ctrl-C stops.",
            file=sys.stderr,
            flush=True,
        )
        config = uvicorn.Config(
            hosted.app,
            host=options.host,
            port=options.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=5,
            server_header=False,
        )
        await uvicorn.Server(config).serve()
    finally:
        signin_store.close()
        await ledger.aclose()
        if redis is not None:
            await redis.aclose()


async def _connect_redis(url: str) -> Any:
    try:
        import redis.asyncio as aioredis
    except ImportError:
        raise ConfigError(
            "REDIS_URL is set but the redis package is missing: pip install 'dpg-mcp[hosted]'"
        ) from None
    client = aioredis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    try:
        with anyio.fail_after(6):
            await client.ping()
    except Exception as exc:
        await client.aclose()
        where = (
            urlsplit(url)._replace(netloc=urlsplit(url).hostname or "").geturl()
        )  # no password in the text
        raise ConfigError(f"cannot reach Redis at {where} ({type(exc).__name__}): check REDIS_URL") from None
    return client


def _configure_logging(verbose: int) -> None:
    level = logging.WARNING - 10 * min(verbose, 2)
    # Set up before MCPServer does (its basicConfig is then a no-op): plain lines on stderr, never stdout.
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    # Hosted: one JSON line per request on stderr, always (principal hash, tool, status, duration).
    access = logging.getLogger("dpg_mcp.access")
    if not access.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(handler)
        access.setLevel(logging.INFO)
        access.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sandbox"]:
        from dpg_mcp.sandbox.cli import run

        _configure_logging(1)
        result = run(sandbox_parser().parse_args(argv[1:]))
        return int(result) if isinstance(result, int) else 0
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    try:
        settings = settings_from(args)
        if args.command == "serve" and args.transport == "http":
            # No process token: each request brings its caller's.
            anyio.run(_serve_http, settings, hosting_options(args), args.ledger)
            return 0
        settings.secret()  # fail fast and clearly when no token is set
        if args.command == "check":
            anyio.run(_check, settings, bool(args.json))
        else:
            anyio.run(_serve, settings, args.ledger)
    except ConfigError as exc:
        print(f"dpg-mcp: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

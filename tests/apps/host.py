"""The test host for the MCP Apps views: a Starlette app on 127.0.0.1 that serves host.html and relays what
the page asks (tools/list, resources/read, tools/call) to a real dpg-mcp through the MCP client, one a
token.

dpg-mcp talks real HTTP to the DPG sandbox (served on loopback too), so the image URLs in results are URLs the
browser can load, and the archive links are links it can open.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from mcp import Client
from mcp.client.extension import ClientExtension
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID
from mcp.types import ElicitRequestParams, ElicitResult
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from dpg_mcp.config import Settings
from dpg_mcp.dpg.client import DPGClient
from dpg_mcp.sandbox import listening_socket
from dpg_mcp.server import build_server

HOST_PAGE = Path(__file__).with_name("host.html")


class AppsSupport(ClientExtension):
    """What a host that renders MCP Apps advertises."""

    identifier = EXTENSION_ID

    def settings(self) -> dict[str, Any]:
        return {"mimeTypes": [APP_MIME_TYPE]}


def _dump(result: Any) -> Any:
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)


def host_app(
    sandbox_url: str, tokens: dict[str, str], wait_budget_s: float, *, asking: frozenset[str] = frozenset()
) -> Starlette:
    """`asking`: callers whose host can ask the user (elicitation); this user always says no. The questions
    asked are kept, and read back from GET /asked/{who}."""
    clients: dict[str, Client] = {}
    asked: dict[str, list[str]] = {who: [] for who in tokens}

    def user_says_no(who: str) -> Any:
        async def on_elicit(_ctx: Any, params: ElicitRequestParams) -> ElicitResult:
            asked[who].append(params.message)
            return ElicitResult(action="decline")

        return on_elicit

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for who, token in tokens.items():
                dpg = await stack.enter_async_context(DPGClient(base_url=sandbox_url, token=token))
                settings = Settings(token=SecretStr(token), api_url=sandbox_url, wait_budget_s=wait_budget_s)
                server = await build_server(dpg, settings)
                ask = user_says_no(who) if who in asking else None
                clients[who] = await stack.enter_async_context(
                    Client(server, mode="legacy", extensions=[AppsSupport()], elicitation_callback=ask)
                )
            yield

    async def page(_request: Request) -> HTMLResponse:
        return HTMLResponse(HOST_PAGE.read_text(encoding="utf-8"))

    async def rpc(request: Request) -> JSONResponse:
        client = clients[request.path_params["who"]]
        body = json.loads(await request.body())
        method, params = body["method"], body.get("params") or {}
        try:
            if method == "tools/list":
                result = _dump(await client.list_tools())
            elif method == "resources/read":
                result = _dump(await client.read_resource(params["uri"]))
            elif method == "tools/call":
                result = _dump(await client.call_tool(params["name"], params.get("arguments") or {}))
            else:
                return JSONResponse({"error": f"the test host does not relay {method}"})
        except Exception as exc:  # the page shows it; the test sees it in hostLog.errors
            return JSONResponse({"error": f"{type(exc).__name__}: {exc}"})
        return JSONResponse({"result": result})

    async def questions(request: Request) -> JSONResponse:
        return JSONResponse(asked[request.path_params["who"]])

    routes = [Route("/", page), Route("/rpc/{who}", rpc, methods=["POST"]), Route("/asked/{who}", questions)]
    return Starlette(routes=routes, lifespan=lifespan)


@contextmanager
def serve_host(app: Starlette, start_timeout: float = 20.0) -> Iterator[str]:
    """Serve the host app on a free 127.0.0.1 port from a thread (its own loop); yields its URL."""
    sock = listening_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="apps-host", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the MCP Apps test host did not start")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()

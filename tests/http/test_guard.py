"""The guard inside tools/call holds over HTTP even with the caller middleware taken out (in-process app on a
loopback port, so the middleware can be removed; the admin token could caption, only --read-only forbids)."""

from __future__ import annotations

import socket

import anyio
import httpx2
import uvicorn
from mcp.types import TextContent

from dpg_mcp.config import SANDBOX_TOKEN, load_settings
from dpg_mcp.hosting.app import build_app
from dpg_mcp.hosting.options import HostingOptions

from .conftest import TOKENS, connect


async def test_hidden_tool_refused_even_without_the_middleware(mode: str) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    settings = load_settings(env={}, read_only=True, sandbox=True)
    hosted = build_app(settings, HostingOptions(port=port, sandbox=True))
    chain = hosted.server.middleware
    ours = [m for m in chain if "caller_middleware" in getattr(m, "__qualname__", "")]
    assert len(ours) == 1
    chain.remove(ours[0])
    server = uvicorn.Server(uvicorn.Config(hosted.app, log_level="warning", lifespan="on"))
    url = f"http://127.0.0.1:{port}"
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve, [sock])
        with anyio.fail_after(10):
            while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
                await anyio.sleep(0.05)
        try:
            async with connect(url + "/mcp", TOKENS["admin"], mode) as client:
                listed = {t.name for t in (await client.list_tools()).tools}
                page = await client.call_tool("search_images", {"limit": 1})
                image = page.structured_content["images"][0]["uuid"]  # type: ignore[index]
                result = await client.call_tool(
                    "caption_image", {"image_uuid": image, "title": "not allowed"}
                )
            async with httpx2.AsyncClient(timeout=10) as http:  # the server runs in this loop: no sync calls
                raw = (
                    await http.get(
                        f"{url}/sandbox/v1/images/{image}",
                        headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"},
                    )
                ).json()
        finally:
            server.should_exit = True
    assert "caption_image" in listed  # the list is unfiltered: the middleware really is gone
    assert result.is_error
    assert isinstance(result.content[0], TextContent) and "runs read-only" in result.content[0].text
    assert raw["title"] != "not allowed"

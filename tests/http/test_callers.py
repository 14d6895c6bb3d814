"""Each request's bearer token is its caller: tools, prompts and results differ per token, in both eras."""

from __future__ import annotations

import json

import anyio
import httpx2
from mcp.types import TextContent, TextResourceContents

from .conftest import LEGACY, MODERN, TOKENS, Proc, connect

READONLY_TOOLS = [
    "browse_sets",
    "check_operation",
    "get_guide",
    "get_image",
    "list_keywords",
    "search_images",
]


async def _view(url: str, who: str, mode: str) -> dict[str, object]:
    async with connect(url, TOKENS[who], mode) as client:
        tools = sorted(t.name for t in (await client.list_tools()).tools)
        prompts = sorted(p.name for p in (await client.list_prompts()).prompts)
        me = await client.read_resource("dpg://me")
        first = me.contents[0]
        assert isinstance(first, TextResourceContents)
        page = await client.call_tool("search_images", {"limit": 1})
        image = page.structured_content["images"][0]["uuid"]  # type: ignore[index]
        caption = await client.call_tool("caption_image", {"image_uuid": image, "title": f"by {who}"})
    text = caption.content[0].text if isinstance(caption.content[0], TextContent) else ""
    return {
        "tools": tools,
        "prompts": prompts,
        "me_tools": json.loads(first.text)["tools"],
        "caption_error": caption.is_error,
        "caption_text": text,
    }


async def test_two_tokens_at_once_see_their_own_tools_prompts_and_results(hosted: Proc, mode: str) -> None:
    views: dict[str, dict[str, object]] = {}

    async def one(who: str) -> None:
        views[who] = await _view(hosted.mcp, who, mode)

    async with anyio.create_task_group() as tg:  # at the same time, on the same server
        tg.start_soon(one, "admin")
        tg.start_soon(one, "readonly")
    admin, readonly = views["admin"], views["readonly"]
    assert readonly["tools"] == READONLY_TOOLS
    assert len(admin["tools"]) == 22 and set(READONLY_TOOLS) < set(admin["tools"])  # type: ignore[arg-type]
    assert admin["me_tools"] == admin["tools"] and readonly["me_tools"] == READONLY_TOOLS
    # Prompts follow the tools their steps call: the read-only token can run none of the workflows.
    assert admin["prompts"] == ["best_shots_archive", "caption_set", "schedule_release", "tidy_keywords"]
    assert readonly["prompts"] == []
    assert admin["caption_error"] is False
    assert readonly["caption_error"] is True
    assert "needs the api.images.write scope" in str(readonly["caption_text"])


async def test_a_hidden_prompt_cannot_be_fetched(hosted: Proc, mode: str) -> None:
    async with connect(hosted.mcp, TOKENS["readonly"], mode) as client:
        try:
            await client.get_prompt("caption_set", {"set_uuid": "x"})
        except Exception as exc:  # a JSON-RPC error, as for a prompt that does not exist
            assert "Unknown prompt: caption_set" in str(exc)
        else:
            raise AssertionError("the read-only token fetched a prompt it cannot run")


def _post(url: str, token: str, body: dict[str, object], version: str) -> httpx2.Response:
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": version,
    }
    if version == MODERN:
        headers["Mcp-Method"] = str(body["method"])
    return httpx2.post(url, json=body, headers=headers, timeout=10)


def _rpc(resp: httpx2.Response) -> dict[str, object]:
    """The JSON-RPC message of a response, whether sent as JSON or as one SSE event."""
    if resp.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:].strip() for line in resp.text.splitlines() if line.startswith("data:")]
        return json.loads(data[-1])  # type: ignore[no-any-return]
    return resp.json()  # type: ignore[no-any-return]


def test_per_caller_lists_are_private_to_the_cache_under_2026(hosted: Proc) -> None:
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    for method in ("tools/list", "prompts/list"):
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {"_meta": meta}}
        resp = _post(hosted.mcp, TOKENS["admin"], body, MODERN)
        assert resp.status_code == 200, resp.text
        result = _rpc(resp)["result"]
        assert isinstance(result, dict) and result.get("cacheScope") == "private", (method, result.keys())


def test_legacy_sessions_are_bound_to_the_token_that_made_them(hosted: Proc) -> None:
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": LEGACY,
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    resp = _post(hosted.mcp, TOKENS["admin"], init, LEGACY)
    session = resp.headers["mcp-session-id"]
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
    stolen = httpx2.post(
        hosted.mcp,
        json=listing,
        headers={
            "Authorization": f"Bearer {TOKENS['readonly']}",
            "Mcp-Session-Id": session,
            "MCP-Protocol-Version": LEGACY,
            "Accept": "application/json, text/event-stream",
        },
        timeout=10,
    )
    assert stolen.status_code in (403, 404), stolen.status_code
    assert "add_to_set" not in stolen.text

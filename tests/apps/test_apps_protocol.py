"""MCP Apps on the wire, without a browser: what an Apps host sees, what any other host sees (byte for byte
the same as a --no-apps build), the per-caller CSP and actions, and the views' own constraints."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.server.apps import APP_MIME_TYPE

from dpg_mcp.cli import build_parser, settings_from
from dpg_mcp.config import load_settings
from dpg_mcp.sandbox import Sandbox, SandboxConfig
from dpg_mcp.server.apps import TOOL_VIEWS, VIEW_URIS, view_html
from tests.apps.host import AppsSupport
from tests.mcp.conftest import dpg_server

MODES = ["auto", "legacy"]
READS: list[tuple[str, dict[str, Any]]] = [
    ("search_images", {"min_rating": 4, "limit": 5}),
    ("browse_sets", {}),
    ("get_image", {"image_uuid": "first"}),
]


@asynccontextmanager
async def session(apps: bool, mode: str, *, host_apps: bool, who: str = "admin") -> AsyncIterator[Client]:
    sb = Sandbox(SandboxConfig(seed=7))  # same seed: the same gallery for both builds
    async with dpg_server(sb, who, apps=apps) as server:
        extensions = [AppsSupport()] if host_apps else []
        async with Client(server, mode=mode, extensions=extensions) as client:
            yield client


async def wire(client: Client) -> list[str]:
    """What a host reads: tools/list, resources/list and a few results, as JSON."""
    out = [(await client.list_tools()).model_dump_json(by_alias=True)]
    out.append((await client.list_resources()).model_dump_json(by_alias=True))
    first = (await client.call_tool("search_images", {"limit": 1})).structured_content or {}
    for name, args in READS:
        if args.get("image_uuid") == "first":
            args = {"image_uuid": first["images"][0]["uuid"]}
        out.append((await client.call_tool(name, args)).model_dump_json(by_alias=True))
    return out


@pytest.mark.parametrize("mode", MODES)
async def test_host_without_apps_sees_the_no_apps_build_byte_for_byte(mode: str) -> None:
    async with session(True, mode, host_apps=False) as with_apps:
        seen = await wire(with_apps)
    async with session(False, mode, host_apps=False) as without:
        baseline = await wire(without)
    assert seen == baseline
    assert "ui://" not in "".join(seen) and "resourceUri" not in seen[0]


@pytest.mark.parametrize("mode", MODES)
async def test_apps_host_gets_views_bound_to_tools(mode: str) -> None:
    async with session(True, mode, host_apps=True) as client:
        bound = {t.name: (t.meta or {}).get("ui") for t in (await client.list_tools()).tools if t.meta}
        assert bound == {name: {"resourceUri": uri} for name, uri in TOOL_VIEWS.items()}
        listed = {r.uri: r.mime_type for r in (await client.list_resources()).resources}
        assert {uri: listed.get(uri) for uri in VIEW_URIS.values()} == dict.fromkeys(
            VIEW_URIS.values(), APP_MIME_TYPE
        )
        # Results are the same for an Apps host: the view reads the structured content every host gets.
        result = await client.call_tool("search_images", {"limit": 3})
        assert result.structured_content and len(result.structured_content["images"]) == 3


@pytest.mark.parametrize("mode", MODES)
async def test_no_apps_build_shows_an_apps_host_nothing_of_apps(mode: str) -> None:
    async with session(False, mode, host_apps=True) as client:
        assert not any(t.meta for t in (await client.list_tools()).tools)
        assert not [r for r in (await client.list_resources()).resources if str(r.uri).startswith("ui://")]


async def read_view(client: Client, uri: str) -> tuple[str, dict[str, Any]]:
    content = (await client.read_resource(uri)).contents[0]
    assert content.mime_type == APP_MIME_TYPE
    return str(getattr(content, "text", "")), dict((content.meta or {}).get("ui") or {})


async def test_csp_names_exactly_the_media_origins_dpg_returned() -> None:
    async with session(True, "legacy", host_apps=True) as client:
        result = await client.call_tool("search_images", {"limit": 20})
        urls = [i["thumbnail_url"] for i in (result.structured_content or {})["images"]]
        origins = sorted({re.match(r"https?://[^/]+", u).group(0) for u in urls if u})  # type: ignore[union-attr]
        assert origins == [
            "http://sandbox.dpg.local"
        ]  # the sandbox's in-process host, not a constant of ours
        for uri in VIEW_URIS.values():
            _, ui = await read_view(client, uri)
            assert ui["csp"] == {"resourceDomains": origins}


async def test_csp_before_any_call_comes_from_dpg_too() -> None:
    async with session(True, "legacy", host_apps=True) as client:
        _, ui = await read_view(client, VIEW_URIS["grid"])
        assert ui["csp"] == {"resourceDomains": ["http://sandbox.dpg.local"]}


def config_of(html: str) -> dict[str, Any]:
    found = re.search(r'<script id="dpg-config" type="application/json">(.*?)</script>', html)
    assert found, "the view carries the caller's config"
    data: dict[str, Any] = json.loads(found.group(1))
    return data


async def test_view_offers_only_the_callers_tools() -> None:
    async with session(True, "legacy", host_apps=True, who="readonly") as client:
        visible = {t.name for t in (await client.list_tools()).tools}
        html, _ = await read_view(client, VIEW_URIS["grid"])
        tools = set(config_of(html)["tools"])
        assert tools <= visible
        assert not tools & {"rate_images", "add_to_set", "build_archive", "caption_image", "delete_image"}
    async with session(True, "legacy", host_apps=True) as client:
        html, _ = await read_view(client, VIEW_URIS["grid"])
        assert {"rate_images", "add_to_set", "build_archive", "delete_image"} <= set(config_of(html)["tools"])


@pytest.mark.parametrize("name", sorted(VIEW_URIS))
def test_each_view_is_one_small_self_contained_document(name: str) -> None:
    html = view_html(name)
    assert len(html.encode("utf-8")) <= 60_000
    assert html.count("<!doctype html>") == 1 and "<!--DPG_COMMON-->" not in html
    # Nothing fetched from elsewhere: no external script, style sheet, font or import.
    assert not re.search(r"<script[^>]+src=|<link\b|@import|url\(", html, re.IGNORECASE)
    # Gallery text is set as text: no HTML sinks in the script.
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(", html)


def test_no_apps_flag_and_env() -> None:
    assert load_settings(env={}).apps is True
    assert load_settings(env={"DPG_NO_APPS": "1"}).apps is False
    assert settings_from(build_parser().parse_args(["--no-apps"])).apps is False
    assert settings_from(build_parser().parse_args([])).apps is True
    assert settings_from(build_parser().parse_args(["serve", "--no-apps"])).apps is False  # hosted too


# ------------------------------------------------------------------------------ raw bytes over stdio

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stdio_exchange(api_url: str, *flags: str) -> list[bytes]:
    """Raw JSON-RPC lines a host without Apps receives from `dpg-mcp` over stdio (handshake era)."""
    hello = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    requests = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "resources/list"},
        {"jsonrpc": "2.0", "id": 4, "method": "tools/call",
         "params": {"name": "search_images", "arguments": {"min_rating": 4, "limit": 5}}},
        {"jsonrpc": "2.0", "id": 5, "method": "tools/call",
         "params": {"name": "browse_sets", "arguments": {}}},
    ]  # fmt: skip
    env = {**os.environ, "DPG_TOKEN": "dpg_api_live_sandbox_admin", "DPG_API_URL": api_url}
    env.pop("DPG_NO_APPS", None)
    stdin = "".join(json.dumps(r) + "\n" for r in requests).encode()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dpg_mcp.cli", *flags],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(stdin)
    proc.stdin.flush()
    answers: dict[int, bytes] = {}
    try:
        deadline = time.monotonic() + 30
        while len(answers) < 5:  # bounded: five answers or the deadline
            assert time.monotonic() < deadline, f"dpg-mcp answered {sorted(answers)} only"
            line = proc.stdout.readline()
            assert line, "dpg-mcp closed stdout"
            msg = json.loads(line)
            if "id" in msg:
                answers[msg["id"]] = line
    finally:
        proc.kill()
        proc.wait(timeout=10)
    return [answers[i] for i in (2, 3, 4, 5)]


@pytest.mark.slow
def test_stdio_bytes_for_a_host_without_apps_equal_the_no_apps_build() -> None:
    port = _free_port()
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "dpg_mcp.cli", "sandbox", "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:  # bounded readiness poll
            try:
                if httpx2.get(f"{url}/llms.txt", timeout=1).status_code == 200:
                    break
            except httpx2.HTTPError:
                pass
            assert time.monotonic() < deadline, "sandbox did not start"
            time.sleep(0.1)
        with_apps = _stdio_exchange(url)
        without = _stdio_exchange(url, "--no-apps")
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)
    assert with_apps == without
    assert b'"isError":false' in with_apps[2] and b"ui://" not in b"".join(with_apps)

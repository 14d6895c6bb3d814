"""The dpg-mcp command: check, config errors, and a real stdio subprocess driven by the SDK's stdio client."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters

from dpg_mcp.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_check_with_sandbox(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--sandbox", "check", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["account"] == {"name": "Riverside Sound Festival", "unique_id": "riverside"}
    assert len(report["scopes"]) == 9 and "search_images" in report["tools"]
    assert 0 < report["tools_list_bytes"] <= 20_000
    assert report["tools_list_tokens_approx"] == report["tools_list_bytes"] // 4


def test_check_human_output(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DPG_TOKEN", "dpg_api_live_sandbox_readonly")
    assert main(["check", "--sandbox"]) == 0
    out = capsys.readouterr().out
    assert "Riverside Sound Festival" in out and "api.images.read" in out and "search_images" in out
    assert "caption_image" not in out and "tokens" in out


@pytest.mark.parametrize(
    ("env", "argv", "message"),
    [
        ({}, [], "dpg-mcp: no DPG token: set DPG_TOKEN"),
        ({"DPG_TOKEN": "dpg_api_live_sandbox_disabled"}, ["--sandbox"], "the DPG API is switched off"),
        ({"DPG_TOKEN": "nope"}, ["--sandbox", "check"], "DPG rejected the token (401 unauthorized)"),
        ({"DPG_TOKEN": "t", "DPG_API_URL": "file:///etc"}, [], "DPG_API_URL must be an http(s) URL"),
        ({"DPG_TOKEN": "t"}, ["--toolsets", "images,nope"], "unknown toolset nope"),
        ({"DPG_TOKEN": "t"}, ["--ledger", "/proc/absent/ledger.sqlite3"], "cannot open the write ledger"),
        (
            {"DPG_TOKEN": "t", "DPG_API_URL": "http://127.0.0.1:9"},
            ["check"],
            "cannot reach DPG at http://127.0.0.1:9",
        ),
        ({"DPG_TOKEN": "t", "DPG_API_URL": "http://dpg.example"}, [], "DPG_API_URL must use https"),
        ({"DPG_TOKEN": "dpg_api_liv\u00e9_x"}, ["check"], "DPG_TOKEN holds a space, line break or non-ASCII"),
        ({"DPG_TOKEN": "dpg_api\nlive"}, ["check"], "DPG_TOKEN holds a space, line break or non-ASCII"),
        ({"DPG_TOKEN": "dpg api"}, [], "DPG_TOKEN holds a space, line break or non-ASCII"),
        (
            {"DPG_TOKEN": "t", "DPG_API_URL": "http://127.0.0.1:9"},
            ["--allow-http", "check"],
            "cannot reach DPG at http://127.0.0.1:9",
        ),
    ],
)
def test_config_errors_exit_2_with_one_line(
    env: dict[str, str],
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key in ("DPG_TOKEN", "DPG_API_URL", "DPG_TOOLSETS", "DPG_READ_ONLY"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], captured.err
    assert "nope" not in lines[0] or "toolset" in lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_stdio_subprocess(mode: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DPG_")}
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "dpg_mcp.cli", "--sandbox"],
        env=env,
        cwd=REPO,  # works whether or not the package is installed
    )
    with anyio.fail_after(60):
        async with Client(params, mode=mode) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            result = await client.call_tool("search_images", {"query": "sunset", "limit": 3})
            assert not result.is_error and isinstance(result.structured_content, dict)
            first = result.structured_content["images"][0]["uuid"]
            link = await client.call_tool("get_download_link", {"image_uuid": first})
            assert not link.is_error and isinstance(link.structured_content, dict)
            # --sandbox serves the sandbox on loopback, so the link works from outside the server process,
            # the way a user's browser would open it.
            async with httpx2.AsyncClient() as http:
                download = await http.get(link.structured_content["url"])
    assert {"search_images", "caption_image", "build_archive", "check_operation"} <= tools
    assert link.structured_content["url"].startswith("http://127.0.0.1:")
    assert download.status_code == 200 and download.content.startswith(b"\xff\xd8\xff")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_check_against_the_sandbox_over_real_http(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`dpg-mcp sandbox` serves over HTTP; `dpg-mcp check --api-url` reads it over the real network."""
    port = _free_port()
    proc = subprocess.Popen(
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
        monkeypatch.setenv("DPG_TOKEN", "dpg_api_live_sandbox_uploader")
        assert main(["check", "--json", "--api-url", url]) == 0
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    report = json.loads(capsys.readouterr().out)
    assert report["api_url"] == url and report["guide"] == "api"
    assert report["scopes"] == ["api.download", "api.images.read", "api.upload"]
    assert {"upload_image", "build_archive", "get_download_link"} <= set(report["tools"])

"""A first run without friction: Ctrl-C stops the stdio server at once, banners stay off stdout, the sandbox
can keep its port and its gallery, and the README agrees with --help."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

from dpg_mcp.cli import build_parser

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DPG_")}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "dpg_mcp.cli", "--sandbox", "--ledger", "memory", *args],
        cwd=REPO,
        env=_env(),
        stdin=subprocess.PIPE,  # held open: the server waits for a host that never writes
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _wait_for_banner(proc: subprocess.Popen[bytes], deadline_s: float = 30) -> str:
    assert proc.stderr is not None
    os.set_blocking(proc.stderr.fileno(), False)
    seen = b""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end and b"Ctrl-C stops" not in seen:
        chunk = proc.stderr.read() or b""
        seen += chunk
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    assert b"Ctrl-C stops" in seen, seen.decode(errors="replace")
    return seen.decode()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is a POSIX matter")
def test_sigint_stops_the_stdio_server_within_2_seconds() -> None:
    proc = _start()
    try:
        _wait_for_banner(proc)
        proc.send_signal(signal.SIGINT)
        start = time.monotonic()
        code = proc.wait(timeout=10)
        took = time.monotonic() - start
        out = proc.stdout.read() if proc.stdout else b""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert took < 2, took
    assert code == 130
    assert out == b""  # the banner and the goodbye went to stderr: stdout is the protocol's alone


@pytest.mark.anyio
async def test_sandbox_port_and_state_keep_links_and_gallery_between_runs(tmp_path: Path) -> None:
    port = _free_port()
    keep = ["--sandbox-port", str(port), "--sandbox-state", str(tmp_path)]
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "dpg_mcp.cli", "--sandbox", "--ledger", "memory", *keep],
        env=_env(),
        cwd=REPO,
    )
    with anyio.fail_after(90):
        async with Client(params) as client:
            found = await client.call_tool("search_images", {"query": "sunset", "limit": 1})
            assert isinstance(found.structured_content, dict)
            uuid = found.structured_content["images"][0]["uuid"]
            done = await client.call_tool(
                "caption_image", {"photos": [{"image_uuid": uuid, "title": "Kept between runs"}]}
            )
            assert not done.is_error
            first = await client.call_tool("get_image", {"image_uuid": uuid, "preview": False})
        assert (tmp_path / "dpg-sandbox-state.pickle").is_file()
        async with Client(params) as client:
            again = await client.call_tool("get_image", {"image_uuid": uuid, "preview": False})
    assert isinstance(first.structured_content, dict) and isinstance(again.structured_content, dict)
    assert again.structured_content["title"] == "Kept between runs"
    thumb = next(v for v in again.structured_content["versions"] if v["name"] == "thumbnail")
    assert thumb["url"].startswith(f"http://127.0.0.1:{port}/")
    assert (
        thumb["url"]
        == next(v for v in first.structured_content["versions"] if v["name"] == "thumbnail")["url"]
    )


def test_readme_configuration_table_lists_every_flag_of_help() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    flags = {
        opt
        for action in build_parser()._actions
        for opt in action.option_strings
        if opt.startswith("--") and opt not in ("--help", "--version")
    }
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    missing = sorted(f for f in flags if f"`{f}" not in section)
    assert not missing, f"README's configuration table lacks {missing}"
    assert "account" not in re.findall(r"--toolsets ([\w,]+)", section)[0].split(",")  # account always stays


def test_readme_first_command_checks_python_first() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    command = readme.split("<!-- run-command -->", 1)[1].split("<!-- /run-command -->", 1)[0]
    assert command.index("sys.version_info") < command.index("pip install")
    assert "3.11" in command and (REPO / "LICENSE").read_text().startswith("MIT License")

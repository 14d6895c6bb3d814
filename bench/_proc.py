"""Processes for the benches: a standalone sandbox, dpg-mcp over stdio, and what can be read off them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, closing, contextmanager
from pathlib import Path
from typing import Any

import httpx2

ROOT = Path(__file__).resolve().parents[1]
ADMIN = "dpg_api_live_sandbox_admin"


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child: no DPG_* from the caller, the checkout importable without installing."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DPG_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return {**env, **extra}


@contextmanager
def sandbox_process(*flags: str, budget_s: float = 30.0) -> Iterator[str]:
    """`dpg-mcp sandbox` on a free loopback port, as DPG would be: another process over real HTTP."""
    port = free_port()
    cmd = [sys.executable, "-m", "dpg_mcp.cli", "sandbox", "--host", "127.0.0.1", "--port", str(port), *flags]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + budget_s
        while True:  # bounded readiness poll
            if proc.poll() is not None:
                raise RuntimeError(f"the sandbox exited early with code {proc.returncode}")
            with contextlib.suppress(httpx2.TransportError):
                if httpx2.get(f"{base}/llms.txt", timeout=1.0).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the sandbox did not start in time")
            time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def raw_client(base: str, token: str = ADMIN) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30.0)


def request_seq(resp: httpx2.Response) -> int:
    """The sandbox numbers every request it serves (x-request-id: req-<seed>-<n>)."""
    return int(resp.headers["x-request-id"].rsplit("-", 1)[1])


async def sandbox_requests_since(raw: httpx2.AsyncClient, before: int) -> int:
    """Requests the sandbox served after the one numbered `before`, not counting this probe."""
    probe = await raw.get("/v1/me")
    return request_seq(probe) - before - 1


async def sandbox_seq(raw: httpx2.AsyncClient) -> int:
    return request_seq(await raw.get("/v1/me"))


@asynccontextmanager
async def stdio_session(base: str, token: str = ADMIN, *flags: str) -> AsyncIterator[Any]:
    """An MCP client on `dpg-mcp` over stdio (a subprocess, real framing), against the sandbox at `base`."""
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "dpg_mcp.cli", *flags],
        env=child_env(DPG_TOKEN=token, DPG_API_URL=base),
        cwd=str(ROOT),
    )
    async with Client(params) as client:
        yield client


def children_rss_kb(marker: str = "dpg_mcp.cli") -> dict[int, int]:
    """VmRSS (kB) of this process's children whose command line holds `marker` (Linux /proc)."""
    me = os.getpid()
    out: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid != me or marker.encode() not in (entry / "cmdline").read_bytes():
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out[int(entry.name)] = int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return out


async def spawn_until_tools_list(cmd: list[str], env: dict[str, str], budget_s: float = 60.0) -> float:
    """Seconds from spawning an MCP server on stdio to its answer to the first tools/list (raw JSON-RPC)."""
    import json

    start = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        cwd=ROOT,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdin is not None and proc.stdout is not None
    stdin, stdout = proc.stdin, proc.stdout

    def send(msg: dict[str, Any]) -> None:
        stdin.write(json.dumps(msg).encode() + b"\n")

    async def answer(msg_id: int) -> dict[str, Any]:
        while True:
            line = await stdout.readline()
            if not line:
                raise RuntimeError("the server closed stdout before answering")
            msg: dict[str, Any] = json.loads(line)
            if msg.get("id") == msg_id:
                return msg

    try:
        async with asyncio.timeout(budget_s):
            send(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {
                        "protocolVersion": "2025-06-18",
                        "capabilities": {},
                        "clientInfo": {"name": "bench", "version": "0"},
                    },
                }
            )
            await answer(1)
            send({"jsonrpc": "2.0", "method": "notifications/initialized"})
            send({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}})
            listed = await answer(2)
            elapsed = time.perf_counter() - start
            if not listed.get("result", {}).get("tools"):
                raise RuntimeError(f"tools/list answered without tools: {str(listed)[:200]}")
            return elapsed
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


async def run_until_exit(cmd: list[str], env: dict[str, str]) -> float:
    """Seconds from spawning `cmd` to its exit (the baseline: the SDK's own import)."""
    start = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(*cmd, cwd=ROOT, env=env)
    code = await proc.wait()
    if code != 0:
        raise RuntimeError(f"{cmd} exited with {code}")
    return time.perf_counter() - start

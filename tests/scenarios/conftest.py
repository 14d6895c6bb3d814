"""Scenario harness: the agent's view of a resend, in-process and over a real stdio subprocess.

The sandbox is served over real HTTP on loopback from this process (so a write the client gave up on still
commits, as on the real network, and the test can inject faults, move the sandbox clock and end Operations).
dpg-mcp runs either in-process (an MCP client bound to the server object) or as `python -m dpg_mcp.cli` over
stdio; both use the same SQLite ledger file, so "restart" is a new server (a killed subprocess) on that file.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from pydantic import SecretStr

from dpg_mcp.config import Settings
from dpg_mcp.dpg.client import DPGClient
from dpg_mcp.ledger.sqlite import SQLiteLedger
from dpg_mcp.sandbox import Faults, Sandbox, SandboxConfig, serve_in_thread
from dpg_mcp.server import build_server

REPO = Path(__file__).resolve().parents[2]
ADMIN = "dpg_api_live_sandbox_admin"
EDITOR = "dpg_api_live_sandbox_editor"
WAIT_S = 2.0  # the server's wait budget: errors come quickly, and a write past it returns a handle
MODES = ("inproc", "stdio")
SERVE = ["-m", "dpg_mcp.cli", "--wait-seconds", str(WAIT_S)]


@dataclass
class Clock:
    """The sandbox's clock: real time plus a jump the test can make (ticket expiry, archive links)."""

    offset: float = 0.0

    def __call__(self) -> float:
        import time

        return time.time() + self.offset


@dataclass
class Result:
    is_error: bool
    text: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class World:
    sandbox: Sandbox
    url: str
    clock: Clock
    ledger_path: Path

    def faults(self, **kw: Any) -> None:
        self.sandbox.set_faults(Faults(**kw))

    def calm(self) -> None:
        self.sandbox.set_faults(Faults())


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    clock = Clock()
    sb = Sandbox(SandboxConfig(seed=7, clock=clock))
    with serve_in_thread(sb) as url:
        yield World(sb, url, clock, tmp_path / "ledger.sqlite3")


class Agent:
    """One dpg-mcp server as an agent sees it; `restart()` replaces it with a new one on the same ledger."""

    def __init__(self, world: World, mode: str, token: str = ADMIN) -> None:
        self.world, self.mode, self.token = world, mode, token
        self._stack: AsyncExitStack | None = None
        self._client: Client | None = None

    async def start(self) -> None:
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            if self.mode == "stdio":
                env = {k: v for k, v in os.environ.items() if not k.startswith(("DPG_", "REDIS_"))}
                env["DPG_TOKEN"] = self.token
                params = StdioServerParameters(
                    command=sys.executable,
                    args=[*SERVE, "--api-url", self.world.url, "--ledger", str(self.world.ledger_path)],
                    env=env,
                    cwd=REPO,
                )
                self._client = await stack.enter_async_context(Client(params))
            else:
                http = await stack.enter_async_context(DPGClient(base_url=self.world.url, token=self.token))
                ledger = SQLiteLedger(self.world.ledger_path)
                stack.push_async_callback(ledger.aclose)
                settings = Settings(token=SecretStr(self.token), api_url=self.world.url, wait_budget_s=WAIT_S)
                server = await build_server(http, settings, ledger=ledger)
                self._client = await stack.enter_async_context(Client(server))
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack

    async def stop(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()
        self._stack = self._client = None

    async def restart(self) -> None:
        """The host restarts the server (a stdio subprocess is killed): only the ledger file carries over."""
        await self.stop()
        await self.start()

    async def call(self, tool: str, args: dict[str, Any]) -> Result:
        assert self._client is not None
        with anyio.fail_after(60):
            r = await self._client.call_tool(tool, args)
        text = "\n".join(getattr(c, "text", "") for c in r.content)
        data = r.structured_content if isinstance(r.structured_content, dict) else {}
        return Result(bool(r.is_error), text, data)


@asynccontextmanager
async def agent(world: World, mode: str, token: str = ADMIN) -> AsyncIterator[Agent]:
    a = Agent(world, mode, token)
    await a.start()
    try:
        yield a
    finally:
        await a.stop()


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)

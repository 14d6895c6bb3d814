"""Benchmark set-up: an in-process sandbox, a DPG client on it, and an MCP server for one token."""

from __future__ import annotations

import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from pydantic import SecretStr

from dpg_mcp.config import SANDBOX_API_URL, Settings
from dpg_mcp.dpg.client import DPGClient
from dpg_mcp.sandbox import Sandbox, SandboxConfig
from dpg_mcp.server import DPGServer, build_server


@dataclass
class Rig:
    sandbox: Sandbox
    client: DPGClient
    server: DPGServer


@asynccontextmanager
async def rig(
    token: str = "dpg_api_live_sandbox_admin", config: SandboxConfig | None = None
) -> AsyncIterator[Rig]:
    sandbox = Sandbox(config or SandboxConfig())
    settings = Settings(token=SecretStr(token), api_url=SANDBOX_API_URL)
    async with DPGClient(base_url=SANDBOX_API_URL, token=token, transport=sandbox.transport()) as client:
        server = await build_server(client, settings)
        yield Rig(sandbox, client, server)


async def median_seconds(fn: Callable[[int], Awaitable[object]], *, rounds: int, warmup: int = 3) -> float:
    """Median wall time of `fn(i)` over `rounds` calls, after a few warm-up calls."""
    for i in range(warmup):
        await fn(-1 - i)
    samples: list[float] = []
    for i in range(rounds):
        start = time.perf_counter()
        await fn(i)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)

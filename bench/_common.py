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


async def paired_medians(
    base: Callable[[int], Awaitable[object]],
    ours: Callable[[int], Awaitable[object]],
    *,
    rounds: int,
    warmup: int = 3,
) -> tuple[float, float]:
    """Median wall time of `base(i)` and of `ours(i)`, timed in alternation after a few warm-up calls.

    Alternating puts both under the same machine load at the same moment, which keeps their ratio
    meaningful on a noisy machine.
    """
    for i in range(warmup):
        await base(-1 - i)
        await ours(-1 - i)
    base_s: list[float] = []
    ours_s: list[float] = []
    for i in range(rounds):
        for fn, samples in ((base, base_s), (ours, ours_s)):
            start = time.perf_counter()
            await fn(i)
            samples.append(time.perf_counter() - start)
    return statistics.median(base_s), statistics.median(ours_s)

"""Ledger fixtures: one contract, three backends. Redis is a real redis-server on a free loopback port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dpg_mcp.ledger import Ledger, MemoryLedger
from dpg_mcp.ledger.sqlite import SQLiteLedger

BACKENDS = ("memory", "sqlite", "redis")


@dataclass
class Clock:
    """Wall-clock stand-in shared by a ledger and its test (entries compare times across processes)."""

    now: float = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A throwaway redis-server (no persistence) on 127.0.0.1, stopped at the end of the session."""
    exe = shutil.which("redis-server")
    if exe is None:
        if os.environ.get("DPG_MCP_REQUIRE_REDIS"):
            pytest.fail("redis-server is not installed, and DPG_MCP_REQUIRE_REDIS is set (CI)")
        pytest.skip("redis-server is not installed (apt-get install redis-server; .ci/run does)")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


_prefix_seq = 0


async def make_ledger(
    backend: str,
    tmp_path: Path,
    clock: Clock,
    redis_url: str | None,
    *,
    max_entries: int = 1000,
    name: str = "l",
) -> Ledger:
    """A fresh ledger of `backend`; two calls with the same `name` share one store (two "processes")."""
    if backend == "memory":
        return MemoryLedger(max_entries=max_entries, clock=clock)
    if backend == "sqlite":
        return SQLiteLedger(tmp_path / f"{name}.sqlite3", max_entries=max_entries, clock=clock)
    from dpg_mcp.ledger.redis import RedisLedger

    assert redis_url is not None
    prefix = f"test:{tmp_path.name}:{name}:"
    return RedisLedger.from_url(redis_url, prefix=prefix, max_entries=max_entries, clock=clock)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def ledger(
    backend: str, tmp_path: Path, clock: Clock, request: pytest.FixtureRequest
) -> AsyncIterator[Ledger]:
    url = request.getfixturevalue("redis_url") if backend == "redis" else None
    led = await make_ledger(backend, tmp_path, clock, url)
    try:
        yield led
    finally:
        await led.aclose()

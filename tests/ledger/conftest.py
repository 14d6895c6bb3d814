"""Ledger fixtures: one contract, three backends. Redis is a real redis-server on a free loopback port."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dpg_mcp.ledger import Ledger, MemoryLedger
from dpg_mcp.ledger.sqlite import SQLiteLedger
from tests.redis_server import redis_server

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
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway redis-server (no persistence) on 127.0.0.1, stopped at the end of the session."""
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


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

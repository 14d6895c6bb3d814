"""Server-side state that outlives one tool call: a tiny TTL cache, and the principal id of a token.

The write memo that used to live here is now the write ledger (`dpg_mcp.ledger`): a durable record of write
actions whose state, not a guess about what happened in between, decides which Idempotency-Key a resend uses.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Generic, TypeVar

Clock = Callable[[], float]


def principal_for_token(token: str) -> str:
    """A stable, non-secret principal id for a token: ledger entries (and Redis keys) never hold the token."""
    return "tok:" + hashlib.sha256(token.encode()).hexdigest()[:24]


V = TypeVar("V")


class TTLCache(Generic[V]):
    """A small async-shaped TTL cache (e.g. GET /v1/me per principal). Redis-ready: string keys, TTLs."""

    def __init__(self, ttl_s: float = 60.0, clock: Clock = time.monotonic, max_items: int = 1024) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._max = max_items
        self._items: dict[str, tuple[float, V]] = {}

    async def get(self, key: str) -> V | None:
        hit = self._items.get(key)
        if hit is None:
            return None
        if hit[0] <= self._clock():
            del self._items[key]
            return None
        return hit[1]

    async def set(self, key: str, value: V, ttl_s: float | None = None) -> None:
        if len(self._items) >= self._max and key not in self._items:
            self._items.pop(next(iter(self._items)))  # oldest insert
        self._items[key] = (self._clock() + (self.ttl_s if ttl_s is None else ttl_s), value)

    async def delete(self, key: str) -> None:
        self._items.pop(key, None)

"""A brief cache of GET /v1/me answers, keyed by a hash of the token: in memory, or in Redis for replicas.

Each entry is a small JSON object: {"status": "ok", "me": {...}} or {"status": "unauthorized" |
"api_not_enabled", "detail": "..."}. The token itself is never stored.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from typing import Any, Protocol

REDIS_PREFIX = "dpg-mcp:me:"


class MeCache(Protocol):
    async def get(self, key: str) -> dict[str, Any] | None: ...
    async def put(self, key: str, entry: dict[str, Any], ttl_s: float) -> None: ...
    async def drop(self, key: str) -> None: ...


class MemoryMeCache:
    """Per process; bounded (oldest out first) so a flood of random tokens cannot grow it without end."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._entries: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._max = max_entries

    async def get(self, key: str) -> dict[str, Any] | None:
        hit = self._entries.get(key)
        if hit is None:
            return None
        expires, entry = hit
        if time.monotonic() >= expires:
            self._entries.pop(key, None)
            return None
        return entry

    async def put(self, key: str, entry: dict[str, Any], ttl_s: float) -> None:
        self._entries[key] = (time.monotonic() + ttl_s, entry)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    async def drop(self, key: str) -> None:
        self._entries.pop(key, None)


class RedisMeCache:
    """Shared by every replica: a token verified on one is known to all for the TTL."""

    def __init__(self, redis: Any) -> None:
        self._redis = redis

    async def get(self, key: str) -> dict[str, Any] | None:
        raw = await self._redis.get(REDIS_PREFIX + key)
        if raw is None:
            return None
        try:
            entry = json.loads(raw)
        except ValueError:
            return None
        return entry if isinstance(entry, dict) else None

    async def put(self, key: str, entry: dict[str, Any], ttl_s: float) -> None:
        payload = json.dumps(entry, separators=(",", ":"))
        await self._redis.set(REDIS_PREFIX + key, payload, px=max(1, int(ttl_s * 1000)))

    async def drop(self, key: str) -> None:
        await self._redis.delete(REDIS_PREFIX + key)

"""Per-principal limits: requests per window and requests in flight. In memory, or in Redis so that every
replica counts against the same numbers. A refusal carries how long to wait (the 429's Retry-After)."""

from __future__ import annotations

import math
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

REDIS_PREFIX = "dpg-mcp:limit:"
# A request in flight longer than this is counted as ended (its replica died without saying so).
LEASE_S = 600.0


@dataclass(frozen=True)
class LimitSettings:
    requests_per_window: int = 1200  # 0 = no rate limit
    window_s: float = 60.0
    concurrent: int = 16  # 0 = no concurrency limit


class Limiter(Protocol):
    async def admit(self, key: str) -> tuple[str | None, float]:
        """(ticket, 0) when admitted (pass the ticket to release), (None, retry_after_s) when refused."""
        ...

    async def release(self, key: str, ticket: str) -> None: ...


class MemoryLimiter:
    def __init__(self, settings: LimitSettings, max_keys: int = 10_000) -> None:
        self.s = settings
        self._windows: OrderedDict[str, tuple[int, int]] = OrderedDict()  # key -> (window index, count)
        self._inflight: dict[str, int] = {}
        self._max = max_keys

    async def admit(self, key: str) -> tuple[str | None, float]:
        now = time.time()
        if self.s.requests_per_window:
            index = int(now // self.s.window_s)
            seen_index, count = self._windows.get(key, (index, 0))
            count = count + 1 if seen_index == index else 1
            self._windows[key] = (index, count)
            self._windows.move_to_end(key)
            while len(self._windows) > self._max:
                self._windows.popitem(last=False)
            if count > self.s.requests_per_window:
                return None, (index + 1) * self.s.window_s - now
        if self.s.concurrent:
            if self._inflight.get(key, 0) >= self.s.concurrent:
                return None, 1.0
            self._inflight[key] = self._inflight.get(key, 0) + 1
        return "m", 0.0

    async def release(self, key: str, ticket: str) -> None:
        if self.s.concurrent:
            left = self._inflight.get(key, 1) - 1
            if left > 0:
                self._inflight[key] = left
            else:
                self._inflight.pop(key, None)


class RedisLimiter:
    """Rate: one counter per principal and window (INCR + PEXPIRE). Concurrency: a sorted set of tickets
    scored by start time, so a replica that dies mid-request leaks nothing beyond LEASE_S."""

    def __init__(self, redis: Any, settings: LimitSettings) -> None:
        self._redis = redis
        self.s = settings

    async def admit(self, key: str) -> tuple[str | None, float]:
        now = time.time()
        if self.s.requests_per_window:
            index = int(now // self.s.window_s)
            rkey = f"{REDIS_PREFIX}rate:{key}:{index}"
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(rkey)
                pipe.pexpire(rkey, int(self.s.window_s * 1000) + 1000)
                count, _ = await pipe.execute()
            if int(count) > self.s.requests_per_window:
                return None, (index + 1) * self.s.window_s - now
        if not self.s.concurrent:
            return "r", 0.0
        ticket = uuid.uuid4().hex
        ckey = f"{REDIS_PREFIX}inflight:{key}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(ckey, "-inf", now - LEASE_S)
            pipe.zadd(ckey, {ticket: now})
            pipe.zcard(ckey)
            pipe.pexpire(ckey, int(LEASE_S * 1000))
            _, _, inflight, _ = await pipe.execute()
        if int(inflight) > self.s.concurrent:
            await self._redis.zrem(ckey, ticket)
            return None, 1.0
        return ticket, 0.0

    async def release(self, key: str, ticket: str) -> None:
        if self.s.concurrent and ticket != "r":
            await self._redis.zrem(f"{REDIS_PREFIX}inflight:{key}", ticket)


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))

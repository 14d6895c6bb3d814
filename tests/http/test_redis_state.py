"""The hosted server's own Redis pieces against a real redis-server: the /v1/me cache and the limits are
shared, so every replica sees the same numbers."""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from dpg_mcp.hosting.limits import LimitSettings, RedisLimiter
from dpg_mcp.hosting.me_cache import RedisMeCache

from .conftest import Redis


async def test_me_cache_entries_are_shared_expire_and_hold_no_token(redis: Redis) -> None:
    a, b = aioredis.from_url(redis.url), aioredis.from_url(redis.url)
    try:
        one, two = RedisMeCache(a), RedisMeCache(b)
        await one.put("k" * 64, {"status": "ok", "me": {"capabilities": ["api.images.read"]}}, ttl_s=30)
        assert await two.get("k" * 64) == {"status": "ok", "me": {"capabilities": ["api.images.read"]}}
        ttl = await a.pttl("dpg-mcp:me:" + "k" * 64)
        assert 0 < ttl <= 30_000
        await two.drop("k" * 64)
        assert await one.get("k" * 64) is None
    finally:
        await a.aclose()
        await b.aclose()


async def test_rate_and_concurrency_limits_are_counted_across_limiters(redis: Redis) -> None:
    a, b = aioredis.from_url(redis.url), aioredis.from_url(redis.url)
    try:
        settings = LimitSettings(requests_per_window=1000, window_s=60, concurrent=2)
        first, second = RedisLimiter(a, settings), RedisLimiter(b, settings)
        t1, _ = await first.admit("p1")
        t2, _ = await second.admit("p1")
        t3, wait = await first.admit("p1")  # a third in flight, on either replica, is refused
        other, _ = await second.admit("p2")  # another principal has its own count
        assert t1 and t2 and t3 is None and wait >= 1 and other
        await second.release("p1", t1)
        t4, _ = await first.admit("p1")
        assert t4
        hour = LimitSettings(requests_per_window=3, window_s=3600, concurrent=0)
        rate, rate_b = RedisLimiter(a, hour), RedisLimiter(b, hour)
        window = int(time.time() // 3600)
        got = [(await (rate if i % 2 else rate_b).admit("p3")) for i in range(4)]
        if int(time.time() // 3600) == window:  # (an hour boundary mid-test would reset the count)
            assert [t is not None for t, _ in got] == [True, True, True, False]
            assert 0 < got[3][1] <= 3600
    finally:
        await a.aclose()
        await b.aclose()

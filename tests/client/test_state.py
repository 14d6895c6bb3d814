"""What stays in dpg_mcp.state: the TTL cache and the token's principal id (the write memo became the
ledger, whose contract lives in tests/ledger)."""

from __future__ import annotations

from dpg_mcp.state import TTLCache, principal_for_token
from tests.client.helpers import FakeClock


async def test_ttl_cache(clock: FakeClock) -> None:
    cache: TTLCache[str] = TTLCache(ttl_s=10, clock=clock, max_items=2)
    await cache.set("a", "1")
    assert await cache.get("a") == "1"
    clock.now += 11
    assert await cache.get("a") is None
    await cache.set("a", "1")
    await cache.set("b", "2")
    await cache.set("c", "3")  # over max_items: the oldest insert goes
    assert await cache.get("a") is None and await cache.get("c") == "3"
    await cache.delete("c")
    assert await cache.get("c") is None


def test_principal_for_token_is_stable_and_never_the_token() -> None:
    token = "Zq7-odd-shaped-live-secret-9f8e"
    p = principal_for_token(token)
    assert token not in p and p == principal_for_token(token) and p != principal_for_token("other")

from __future__ import annotations

from dpg_mcp.state import (
    InMemoryWriteMemo,
    TTLCache,
    WriteMemo,
    make_fingerprint,
    principal_for_token,
    write_group,
)
from tests.client.helpers import FakeClock


def test_in_memory_memo_satisfies_protocol() -> None:
    assert isinstance(InMemoryWriteMemo(), WriteMemo)


async def test_same_call_reuses_key(clock: FakeClock) -> None:
    memo = InMemoryWriteMemo(clock=clock)
    k1, reused1 = await memo.claim("p", "add_to_set:{a}")
    k2, reused2 = await memo.claim("p", "add_to_set:{a}")
    assert (reused1, reused2) == (False, True) and k1 == k2


async def run(
    memo: InMemoryWriteMemo, principal: str, fp: str, request: str | None = None
) -> tuple[str, bool]:
    """One whole (sequential) run: claim, then release when the write is over."""
    key, reused = await memo.claim(principal, fp, request=request)
    await memo.release(principal, fp, key)
    return key, reused


async def test_add_remove_add_gets_a_new_key(clock: FakeClock) -> None:
    memo = InMemoryWriteMemo(clock=clock)
    add1, _ = await run(memo, "p", "add")
    await run(memo, "p", "remove")
    add2, reused = await run(memo, "p", "add")
    assert not reused and add2 != add1
    # ...and that new key is then the one a repeat reuses
    add3, reused = await run(memo, "p", "add")
    assert reused and add3 == add2


async def test_overlapping_writes_do_not_end_reuse_of_one_in_flight(clock: FakeClock) -> None:
    memo = InMemoryWriteMemo(clock=clock)
    a, _ = await memo.claim("p", "add")  # still running (e.g. the host gave up waiting)
    r, _ = await memo.claim("p", "rate")  # a parallel call starts meanwhile
    # the agent resends the add: it is a retry of a call still in flight, not a new action
    a2, reused = await memo.claim("p", "add")
    assert reused and a2 == a
    for fp, key in (("add", a), ("add", a2), ("rate", r)):
        await memo.release("p", fp, key)
    # both are over; a write that starts NOW ends reuse of both
    await run(memo, "p", "remove")
    a3, reused = await run(memo, "p", "add")
    assert not reused and a3 != a


async def test_a_write_started_after_another_ended_ends_its_reuse(clock: FakeClock) -> None:
    memo = InMemoryWriteMemo(clock=clock)
    a, _ = await run(memo, "p", "add")
    await memo.claim("p", "remove")  # starts after add ended, still running
    a2, reused = await memo.claim("p", "add")  # add → remove → add: a new action even while remove runs
    assert not reused and a2 != a


async def test_a_run_that_died_without_release_ends_after_its_lease(clock: FakeClock) -> None:
    memo = InMemoryWriteMemo(clock=clock, inflight_lease_s=100)
    a, _ = await memo.claim("p", "add")  # never released (crashed run)
    clock.now += 101
    await run(memo, "p", "remove")
    a2, reused = await run(memo, "p", "add")
    assert not reused and a2 != a


async def test_a_different_request_never_reuses_the_key(clock: FakeClock) -> None:
    memo = InMemoryWriteMemo(clock=clock)
    k1, _ = await run(memo, "p", "arrange", request="order-1,2")
    k2, reused = await run(memo, "p", "arrange", request="order-2,1")
    assert not reused and k2 != k1
    assert await run(memo, "p", "arrange", request="order-2,1") == (k2, True)


async def test_release_and_forget_are_guarded_by_the_key(clock: FakeClock) -> None:
    memo = InMemoryWriteMemo(clock=clock)
    old, _ = await run(memo, "p", "f", request="a")
    new, _ = await memo.claim("p", "f", request="b")  # replaced by another request, still running
    await memo.release("p", "f", old)  # the old run's late release must not end the new run
    await memo.forget("p", "f", old)  # ...nor its late forget drop the new entry
    await run(memo, "p", "g")  # starts while "f" (new) still runs: does not end its reuse
    assert await memo.claim("p", "f", request="b") == (new, True)


async def test_other_principals_do_not_interfere(clock: FakeClock) -> None:
    memo = InMemoryWriteMemo(clock=clock)
    k1, _ = await memo.claim("alice", "add")
    await memo.claim("bob", "remove")
    k2, reused = await memo.claim("alice", "add")
    assert reused and k1 == k2
    kb, reused_b = await memo.claim("bob", "add")
    assert not reused_b and kb != k1


async def test_ttl_expiry(clock: FakeClock) -> None:
    memo = InMemoryWriteMemo(ttl_s=600, clock=clock)
    k1, _ = await memo.claim("p", "f")
    clock.now += 599
    assert (await memo.claim("p", "f")) == (k1, True)
    clock.now += 2  # 601 s after the first claim
    k2, reused = await memo.claim("p", "f")
    assert not reused and k2 != k1
    await memo.claim("p", "g", ttl_s=1)
    clock.now += 1.5
    assert (await memo.claim("p", "g"))[1] is False


async def test_record_and_forget(clock: FakeClock) -> None:
    memo = InMemoryWriteMemo(clock=clock)
    k1, _ = await memo.claim("p", "f")
    await memo.record("p", "f", "op-1")
    assert memo.operation_of("p", "f") == "op-1"
    await memo.forget("p", "f")
    k2, reused = await memo.claim("p", "f")
    assert not reused and k2 != k1 and memo.operation_of("p", "f") is None


async def test_ttl_cache(clock: FakeClock) -> None:
    cache: TTLCache[str] = TTLCache(ttl_s=10, clock=clock, max_items=2)
    await cache.set("a", "1")
    assert await cache.get("a") == "1"
    clock.now += 11
    assert await cache.get("a") is None
    await cache.set("a", "1")
    await cache.set("b", "2")
    await cache.set("c", "3")  # evicts the oldest
    assert await cache.get("a") is None and await cache.get("c") == "3"
    await cache.delete("c")
    assert await cache.get("c") is None


def test_principal_and_fingerprint_helpers() -> None:
    token = "dpg_api_live_secret"
    p = principal_for_token(token)
    assert token not in p and p == principal_for_token(token) and p != principal_for_token("other")
    a = make_fingerprint("rate_images", {"rating": 4, "ids": ["a", "b"]})
    b = make_fingerprint("rate_images", {"ids": ["a", "b"], "rating": 4})
    assert a == b and a.startswith("rate_images:")
    assert a != make_fingerprint("rate_images", {"ids": ["a", "b"], "rating": 5})


async def test_batch_parts_are_one_logical_write(clock: FakeClock) -> None:
    memo = InMemoryWriteMemo(clock=clock)
    k0, _ = await run(memo, "p", 'tag:{"ids":["#1"]}#0')
    k1, _ = await run(memo, "p", 'tag:{"ids":["#1"]}#1')
    # the agent repeats the whole call: every chunk reuses its own key
    assert await run(memo, "p", 'tag:{"ids":["#1"]}#0') == (k0, True)
    assert await run(memo, "p", 'tag:{"ids":["#1"]}#1') == (k1, True)
    # a different write in between ends reuse for all parts
    await run(memo, "p", "untag:{}#0")
    n0, reused = await run(memo, "p", 'tag:{"ids":["#1"]}#0')
    assert not reused and n0 != k0
    assert write_group("a#b#12") == "a#b" and write_group("a#b") == "a#b" and write_group("x") == "x"

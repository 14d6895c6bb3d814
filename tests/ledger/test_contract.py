"""The ledger contract, run against every backend (memory, SQLite, a real redis-server).

Each rule of the state table (issue 6) is one transition pinned here: which resend reuses the key, which
gets a fresh one, which joins a run in flight; plus expiry, the cap on entries and what an entry may hold.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from dpg_mcp.ledger import (
    CREATE_REPLAY_WINDOW_S,
    KEY_TTL_S,
    LEASE_S,
    MAX_LABEL_CHARS,
    Kind,
    Ledger,
    Mode,
    State,
    action_digest,
    ops,
    request_digest,
    subject_digest,
)
from tests.ledger.conftest import Clock, make_ledger

A = action_digest("https://api.test|inst-1", "acct:tok", "create_set", {"name": "Friday"})


async def run_once(
    led: Ledger, clock: Clock, kind: Kind, end: State, *, run: str = "r1", request: str = ""
) -> tuple[Mode, str]:
    """One whole run: claim, then settle in `end`."""
    c = await ops.claim(led, A, now=clock(), kind=kind, run=run, request=request)
    await ops.settle(led, A, now=clock(), run=run, state=end)
    return c.mode, c.key


async def test_first_claim_is_fresh_and_in_flight(ledger: Ledger, clock: Clock) -> None:
    c = await ops.claim(ledger, A, now=clock(), kind=Kind.CREATE, run="r1")
    assert c.mode is Mode.FRESH and c.previous is None
    entry = await ledger.get(A)
    assert entry is not None and entry.state is State.IN_FLIGHT and entry.key == c.key and entry.owner == "r1"


@pytest.mark.parametrize("kind", list(Kind))
async def test_a_resend_while_in_flight_joins_that_run(ledger: Ledger, clock: Clock, kind: Kind) -> None:
    first = await ops.claim(ledger, A, now=clock(), kind=kind, run="r1")
    second = await ops.claim(ledger, A, now=clock(), kind=kind, run="r2")
    assert second.mode is Mode.JOIN and second.key == first.key
    entry = await ledger.get(A)
    assert entry is not None and entry.owner == "r1"  # the joiner took nothing over


async def test_the_heartbeat_keeps_the_lease_past_its_first_term(ledger: Ledger, clock: Clock) -> None:
    first = await ops.claim(ledger, A, now=clock(), kind=Kind.SET, run="r1")
    for _ in range(5):  # the run lives 5 leases long, renewing as it goes
        clock.now += LEASE_S * 0.6
        assert await ops.renew(ledger, A, now=clock(), run="r1")
    later = await ops.claim(ledger, A, now=clock(), kind=Kind.SET, run="r2")
    assert later.mode is Mode.JOIN and later.key == first.key


async def test_a_lapsed_lease_counts_as_unknown(ledger: Ledger, clock: Clock) -> None:
    # the process died mid-run: nobody renews, the lease lapses
    first = await ops.claim(ledger, A, now=clock(), kind=Kind.CREATE, run="r1")
    clock.now += LEASE_S + 1
    again = await ops.claim(ledger, A, now=clock(), kind=Kind.CREATE, run="r2")
    assert again.mode is Mode.REUSE and again.key == first.key
    assert not await ops.renew(ledger, A, now=clock(), run="r1")  # the dead run's heartbeat is refused


async def test_unknown_create_reuses_its_key_for_24_hours(ledger: Ledger, clock: Clock) -> None:
    _, key = await run_once(ledger, clock, Kind.CREATE, State.UNKNOWN)
    clock.now += 3600
    mode, key2 = await run_once(ledger, clock, Kind.CREATE, State.UNKNOWN, run="r2")
    assert (mode, key2) == (Mode.REUSE, key)
    clock.now += KEY_TTL_S  # DPG has forgotten the key; so has the ledger
    mode, key3 = await run_once(ledger, clock, Kind.CREATE, State.UNKNOWN, run="r3")
    assert mode is Mode.FRESH and key3 != key


async def test_unknown_set_value_gets_a_fresh_key(ledger: Ledger, clock: Clock) -> None:
    _, key = await run_once(ledger, clock, Kind.SET, State.UNKNOWN)
    mode, key2 = await run_once(ledger, clock, Kind.SET, State.UNKNOWN, run="r2")
    assert mode is Mode.FRESH and key2 != key


async def test_done_set_value_gets_a_fresh_key(ledger: Ledger, clock: Clock) -> None:
    _, key = await run_once(ledger, clock, Kind.SET, State.DONE)
    mode, key2 = await run_once(ledger, clock, Kind.SET, State.DONE, run="r2")
    assert mode is Mode.FRESH and key2 != key


async def test_done_create_replays_within_ten_minutes_then_starts_over(ledger: Ledger, clock: Clock) -> None:
    _, key = await run_once(ledger, clock, Kind.CREATE, State.DONE)
    clock.now += CREATE_REPLAY_WINDOW_S - 5
    mode, key2 = await run_once(ledger, clock, Kind.CREATE, State.DONE, run="r2")
    assert (mode, key2) == (Mode.REUSE, key)
    clock.now += CREATE_REPLAY_WINDOW_S + 1
    mode, key3 = await run_once(ledger, clock, Kind.CREATE, State.DONE, run="r3")
    assert mode is Mode.FRESH and key3 != key


@pytest.mark.parametrize("kind", list(Kind))
async def test_failed_gets_a_fresh_key(ledger: Ledger, clock: Clock, kind: Kind) -> None:
    _, key = await run_once(ledger, clock, kind, State.FAILED)
    mode, key2 = await run_once(ledger, clock, kind, State.FAILED, run="r2")
    assert mode is Mode.FRESH and key2 != key


async def test_partial_gets_a_fresh_key_and_keeps_what_was_applied(ledger: Ledger, clock: Clock) -> None:
    c = await ops.claim(ledger, A, now=clock(), kind=Kind.SET, run="r1")
    await ops.settle(ledger, A, now=clock(), run="r1", state=State.PARTIAL, done_items=("i1", "i2"))
    again = await ops.claim(ledger, A, now=clock(), kind=Kind.SET, run="r2")
    assert again.mode is Mode.FRESH and again.key != c.key
    assert again.previous is not None and again.previous.state is State.PARTIAL
    assert again.entry.done_items == ("i1", "i2")


async def test_a_create_with_another_request_never_reuses_the_key(ledger: Ledger, clock: Clock) -> None:
    r1, r2 = (
        request_digest("POST", "/v1/sets", {"name": "a"}),
        request_digest("POST", "/v1/sets", {"name": "b"}),
    )
    _, key = await run_once(ledger, clock, Kind.CREATE, State.UNKNOWN, request=r1)
    mode, key2 = await run_once(ledger, clock, Kind.CREATE, State.UNKNOWN, run="r2", request=r2)
    assert mode is Mode.FRESH and key2 != key


async def test_notes_and_settle_belong_to_the_run_holding_the_entry(ledger: Ledger, clock: Clock) -> None:
    await ops.claim(ledger, A, now=clock(), kind=Kind.CREATE, run="r1")
    await ops.note(ledger, A, run="r1", op="op-1", tx="tx-1")
    await ops.note(ledger, A, run="intruder", op="op-2")  # not the holder: ignored
    await ops.settle(ledger, A, now=clock(), run="intruder", state=State.FAILED)  # ignored
    await ops.settle(ledger, A, now=clock(), run="r1", state=State.DONE, made="set-9")
    entry = await ledger.get(A)
    assert entry is not None
    assert (entry.state, entry.op, entry.tx, entry.made, entry.owner) == (
        State.DONE,
        "op-1",
        "tx-1",
        "set-9",
        "",
    )


async def test_entries_expire_after_24_hours(ledger: Ledger, clock: Clock) -> None:
    await run_once(ledger, clock, Kind.SET, State.DONE)
    clock.now += KEY_TTL_S - 1
    assert await ledger.get(A) is not None
    clock.now += 2
    assert await ledger.get(A) is None


async def test_the_cap_on_entries_is_enforced_oldest_first(
    backend: str, tmp_path: Path, clock: Clock, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("redis_url") if backend == "redis" else None
    led = await make_ledger(backend, tmp_path, clock, url, max_entries=5, name="capped")
    try:
        actions = [action_digest("o", "p", "rate", {"n": i}) for i in range(12)]
        for a in actions:
            clock.now += 1
            await ops.claim(led, a, now=clock(), kind=Kind.SET, run="r")
        assert await led.count() == 5
        assert [await led.get(a) is not None for a in actions] == [False] * 7 + [True] * 5
        # rewriting a kept entry does not evict anything
        await ops.settle(led, actions[-1], now=clock(), run="r", state=State.DONE)
        assert await led.count() == 5
    finally:
        await led.aclose()


async def test_concurrent_claims_elect_exactly_one_run(
    backend: str, tmp_path: Path, clock: Clock, request: pytest.FixtureRequest
) -> None:
    """Two "processes" (two ledger objects on one store), 16 identical calls at once: one run, 15 joins."""
    url = request.getfixturevalue("redis_url") if backend == "redis" else None
    first = await make_ledger(backend, tmp_path, clock, url, name="shared")
    second = first if backend == "memory" else await make_ledger(backend, tmp_path, clock, url, name="shared")
    modes: list[Mode] = []
    keys: set[str] = set()

    async def one(i: int) -> None:
        led = first if i % 2 else second
        c = await ops.claim(led, A, now=clock(), kind=Kind.CREATE, run=f"r{i}")
        modes.append(c.mode)
        keys.add(c.key)

    try:
        async with anyio.create_task_group() as tg:
            for i in range(16):
                tg.start_soon(one, i)
        assert sorted(modes).count(Mode.FRESH) == 1 and modes.count(Mode.JOIN) == 15
        assert len(keys) == 1
    finally:
        await first.aclose()
        if second is not first:
            await second.aclose()


async def test_entries_hold_digests_never_the_token_or_argument_values(
    backend: str, tmp_path: Path, clock: Clock, request: pytest.FixtureRequest
) -> None:
    token = "Zq7-odd-shaped-live-secret-9f8e"  # not dpg_api_…: nothing may rely on the token's shape
    caption = "Vernissage chez Marguerite"
    url = request.getfixturevalue("redis_url") if backend == "redis" else None
    led = await make_ledger(backend, tmp_path, clock, url, name="privacy")
    try:
        from dpg_mcp.state import principal_for_token

        action = action_digest("https://api.test|i", principal_for_token(token), "caption", {"text": caption})
        req = request_digest("PUT", "/v1/images/x", {"title": caption})
        await ops.claim(led, action, now=clock(), kind=Kind.SET, run="r", request=req)
        await ops.settle(led, action, now=clock(), run="r", state=State.DONE, op="op-1")
        stored = await _raw_store(backend, led, tmp_path)
        assert stored  # the entry is really there
        for secret in (token, caption, "Vernissage", "Marguerite"):
            assert secret not in stored
    finally:
        await led.aclose()


async def _raw_store(backend: str, led: Ledger, tmp_path: Path, name: str = "privacy") -> str:
    if backend == "memory":
        return repr(led._entries) + repr(led._labels)
    if backend == "sqlite":
        return _file_bytes(tmp_path, f"{name}.sqlite3*").decode("latin-1")
    client = led._r
    keys = [k async for k in client.scan_iter(match=f"test:*:{name}:*")]
    values = [str(await client.get(k)) for k in keys if not k.endswith("index")]
    values += [str(await client.zrange(k, 0, -1)) for k in keys if k.endswith("index")]
    return "\n".join(keys + values)


def _file_bytes(folder: Path, pattern: str) -> bytes:
    """The database file plus its WAL: an entry not yet checkpointed lives in the -wal file."""
    return b"".join(p.read_bytes() for p in sorted(folder.glob(pattern)))


# ---- annotations: a short label of ours per subject, kept by the entries' rules --------------------------

SNAP = subject_digest("https://api.test|inst-1", "acct:tok", "snapshot", "snap-1")


async def test_an_annotation_is_read_back_and_a_later_one_replaces_it(ledger: Ledger, clock: Clock) -> None:
    other = subject_digest("https://api.test|inst-1", "acct:tok", "snapshot", "snap-2")
    assert await ledger.labels([SNAP, other]) == {}
    await ledger.annotate(SNAP, "before publish_set: show 3 images")
    await ledger.annotate(other, "before arrange_set: order 5 images")
    assert await ledger.labels([SNAP, other, "never-written"]) == {
        SNAP: "before publish_set: show 3 images",
        other: "before arrange_set: order 5 images",
    }
    await ledger.annotate(SNAP, "before restore_set: restore the snapshot of 2026-12-01T09:00:00Z")
    assert await ledger.labels([SNAP]) == {
        SNAP: "before restore_set: restore the snapshot of 2026-12-01T09:00:00Z"
    }
    assert await ledger.labels([]) == {}
    assert await ledger.count() == 0  # annotations are not entries


async def test_annotations_are_one_plain_line_of_bounded_length(ledger: Ledger) -> None:
    await ledger.annotate(SNAP, "before add_to_set:\n\x1b[31madd\tone  image" + "x" * 500)
    label = (await ledger.labels([SNAP]))[SNAP]
    assert label.startswith("before add_to_set: [31madd one image")
    assert len(label) == MAX_LABEL_CHARS and label.endswith("…") and label.isprintable()


async def test_annotations_expire_after_24_hours(ledger: Ledger, clock: Clock) -> None:
    await ledger.annotate(SNAP, "before publish_set: hide 2 images")
    clock.now += KEY_TTL_S - 1
    assert await ledger.labels([SNAP]) == {SNAP: "before publish_set: hide 2 images"}
    clock.now += 2
    assert await ledger.labels([SNAP]) == {}


async def test_the_cap_on_annotations_is_enforced_oldest_first(
    backend: str, tmp_path: Path, clock: Clock, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("redis_url") if backend == "redis" else None
    led = await make_ledger(backend, tmp_path, clock, url, max_entries=5, name="capped-notes")
    try:
        subjects = [subject_digest("o", "p", "snapshot", f"s{i}") for i in range(12)]
        for i, s in enumerate(subjects):
            clock.now += 1
            await led.annotate(s, f"label {i}")
        kept = await led.labels(subjects)
        assert kept == {s: f"label {i}" for i, s in enumerate(subjects) if i >= 7}
        await led.annotate(subjects[-1], "label again")  # rewriting a kept one evicts nothing
        assert len(await led.labels(subjects)) == 5
    finally:
        await led.aclose()


@pytest.mark.parametrize("backend", ["sqlite", "redis"])  # the memory ledger lives in one process
async def test_annotations_are_shared_by_every_process_on_the_store(
    backend: str, tmp_path: Path, clock: Clock, request: pytest.FixtureRequest
) -> None:
    """What one process (or replica) labelled, another one reads: same store, another ledger object."""
    url = request.getfixturevalue("redis_url") if backend == "redis" else None
    first = await make_ledger(backend, tmp_path, clock, url, name="notes-shared")
    await first.annotate(SNAP, "before arrange_set: order 4 images")
    await first.aclose()
    second = await make_ledger(backend, tmp_path, clock, url, name="notes-shared")
    try:
        assert await second.labels([SNAP]) == {SNAP: "before arrange_set: order 4 images"}
    finally:
        await second.aclose()


async def test_annotations_hold_digests_and_our_words_only(
    backend: str, tmp_path: Path, clock: Clock, request: pytest.FixtureRequest
) -> None:
    token = "Zq7-odd-shaped-live-secret-9f8e"
    url = request.getfixturevalue("redis_url") if backend == "redis" else None
    led = await make_ledger(backend, tmp_path, clock, url, name="privacy-notes")
    try:
        from dpg_mcp.state import principal_for_token

        subject = subject_digest("https://api.test|i", principal_for_token(token), "snapshot", "snap-77")
        await led.annotate(subject, "before publish_set: show 3 images")
        stored = await _raw_store(backend, led, tmp_path, "privacy-notes")
        assert "before publish_set: show 3 images" in stored  # really stored
        for secret in (token, "snap-77"):
            assert secret not in stored
    finally:
        await led.aclose()

"""The poll schedule: often while an Operation is young (a 304 is cheap), then a tenth of its age."""

from __future__ import annotations

import math
from typing import Any

import httpx2
import pytest

from dpg_mcp.dpg.models import Operation
from dpg_mcp.dpg.operations import WriteOutcome, WriteRunner, poll_delay
from dpg_mcp.ledger import MemoryLedger
from tests.client.helpers import FakeClock, Recorder, envelope, jresp, make_client, op


def test_poll_delay_shape() -> None:
    assert poll_delay(0.0, floor=0.02, cap=1.0) == 0.02
    assert poll_delay(0.15, floor=0.02, cap=1.0) == 0.02
    assert poll_delay(3.0, floor=0.02, cap=1.0) == pytest.approx(0.3)
    assert poll_delay(60.0, floor=0.02, cap=1.0) == 1.0
    assert poll_delay(0.0, floor=0.02, cap=1.0, hint=4.0) == 4.0  # DPG says 4 s left: no poll before
    assert poll_delay(3.0, floor=0.02, cap=1.0, hint=0.01) == pytest.approx(0.3)


async def follow(clock: FakeClock, done_after: float, **extra: Any) -> tuple[float, Recorder, list[float]]:
    """Run one write whose Operation finishes `done_after` seconds after it is sent; when was it seen done?"""
    sent_at: list[float] = []

    def handler(r: httpx2.Request) -> httpx2.Response:
        if r.method == "PATCH":
            sent_at.append(clock.now)
            return jresp(202, op("op-1", "running", **extra), {"ETag": '"r"'})
        if clock.now - sent_at[0] >= done_after:
            return jresp(200, op("op-1", "succeeded"), {"ETag": '"s"'})
        if r.headers.get("if-none-match") == '"r"':
            return httpx2.Response(304, headers={"ETag": '"r"'})
        return jresp(200, op("op-1", "running", **extra), {"ETag": '"r"'})

    client, rec = make_client(handler, clock)
    runner = WriteRunner(client, MemoryLedger(), 120.0, clock=clock, sleep=clock.sleep)
    out = await runner.run("PATCH", "/v1/images/i", {"title": "x"}, principal="p", fingerprint="f")
    assert out.state == "succeeded"
    return clock.now - sent_at[0], rec, clock.sleeps


@pytest.mark.parametrize("work_s", [0.2, 1.0, 3.0, 30.0])
async def test_the_end_is_seen_within_a_tenth_of_the_work(clock: FakeClock, work_s: float) -> None:
    seen, rec, _ = await follow(clock, work_s)
    polls = sum(1 for r in rec.requests if r.method == "GET")
    assert seen <= work_s * 1.1 + 0.02 + 1e-9
    # ~10 polls in the first 200 ms, ~23 per tenfold of the work's time up to 10 s, then one a second
    # (the old doubling took 4 polls and 300 ms to see a 200 ms Operation end).
    assert polls <= 14 + 10 * math.log(min(work_s, 10.0) / 0.2) + max(0.0, work_s - 10.0)


async def test_an_estimate_in_the_operation_skips_polls_that_cannot_succeed(clock: FakeClock) -> None:
    seen, rec, sleeps = await follow(clock, 5.0, eta_seconds=5)
    assert sleeps[0] == 5.0 and seen == pytest.approx(5.0)
    assert sum(1 for r in rec.requests if r.method == "GET") == 1


async def test_a_429_on_a_poll_waits_its_retry_after(clock: FakeClock) -> None:
    polls = 0

    def handler(r: httpx2.Request) -> httpx2.Response:
        nonlocal polls
        if r.method == "PATCH":
            return jresp(202, op("op-1", "running"))
        polls += 1
        if polls == 1:
            return jresp(429, envelope("rate_limited"), {"Retry-After": "3"})
        return jresp(200, op("op-1", "succeeded"))

    client, _ = make_client(handler, clock, max_rate_limit_waits=0)
    runner = WriteRunner(client, MemoryLedger(), 45.0, clock=clock, sleep=clock.sleep)
    out = await runner.run("PATCH", "/v1/images/i", {"title": "x"}, principal="p", fingerprint="f")
    assert out.state == "succeeded" and polls == 2
    assert 3.0 in clock.sleeps


def batch_world(
    clock: FakeClock, ends: dict[str, float], lost: frozenset[str] = frozenset()
) -> tuple[WriteRunner, Recorder]:
    """Operations op-<n> that end `ends[op]` seconds after the start; a poll of one in `lost` is a 404."""
    t0 = clock.now

    def handler(r: httpx2.Request) -> httpx2.Response:
        uuid = r.url.path.rsplit("/", 1)[1]
        if uuid in lost:
            return jresp(404, envelope("not_found"))
        if clock.now - t0 >= ends[uuid]:
            return jresp(200, op(uuid, "succeeded"), {"ETag": f'"{uuid}-s"'})
        if r.headers.get("if-none-match") == f'"{uuid}-r"':
            return httpx2.Response(304, headers={"ETag": f'"{uuid}-r"'})
        return jresp(200, op(uuid, "running"), {"ETag": f'"{uuid}-r"'})

    client, rec = make_client(handler, clock)
    return WriteRunner(client, MemoryLedger(), 45.0, clock=clock, sleep=clock.sleep), rec


def running(uuid: str) -> WriteOutcome:
    return WriteOutcome(state="running", operation=Operation(uuid=uuid, status="running"), replayed=True)


async def test_writes_sent_together_are_followed_together_with_few_polls(clock: FakeClock) -> None:
    ends = {f"op-{n}": 0.2 for n in range(10)}
    runner, rec = batch_world(clock, ends)
    start = clock.now
    out = await runner.follow_together(
        [running(u) for u in ends], start=start, deadline=start + 45, progress=None
    )
    assert all(isinstance(o, WriteOutcome) and o.state == "succeeded" and o.replayed for o in out)
    assert clock.now - start <= 0.2 + 0.02 + 1e-9  # seen within one poll of the end
    # one lead polled every 20 ms, then one look at each other: ~20 polls where polling each of the ten
    # every 20 ms takes ~100
    assert len(rec.requests) <= 10 + 1 + 9


async def test_parts_that_end_apart_are_each_seen_and_a_lost_one_does_not_stop_the_rest(
    clock: FakeClock,
) -> None:
    ends = {"op-0": 3.0, "op-1": 0.5, "op-2": 0.1, "op-3": 9.0}
    runner, _ = batch_world(clock, ends, lost=frozenset({"op-2"}))
    start = clock.now
    out = await runner.follow_together(
        [running(u) for u in ends], start=start, deadline=start + 5.0, progress=None
    )
    assert [o.state if isinstance(o, WriteOutcome) else o.code for o in out] == [
        "succeeded",
        "succeeded",
        "operation_lost",
        "running",  # past the shared deadline: still running, and not "applied earlier"
    ]
    assert isinstance(out[3], WriteOutcome) and not out[3].replayed
    assert clock.now - start == pytest.approx(5.0)

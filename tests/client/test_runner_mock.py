"""WriteRunner against scripted transports, with a fake clock so budgets and polls cost no real time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
import pytest

from dpg_mcp.dpg.errors import DPGError, TransportFailure
from dpg_mcp.dpg.operations import WriteOutcome, WriteRunner
from dpg_mcp.ledger import Kind, MemoryLedger, State
from tests.client.helpers import FakeClock, Recorder, envelope, jresp, make_client, op


def runner_for(
    handler: Callable[[httpx2.Request], httpx2.Response], clock: FakeClock, budget_s: float = 45.0, **kw: Any
) -> tuple[WriteRunner, Recorder, MemoryLedger]:
    client, rec = make_client(handler, clock)
    ledger = MemoryLedger()
    return WriteRunner(client, ledger, budget_s, clock=clock, sleep=clock.sleep, **kw), rec, ledger


async def state_of(runner: WriteRunner, fingerprint: str = "f", principal: str = "p") -> State | None:
    entry = await runner.ledger.get(runner.action_of(principal, fingerprint))
    return entry.state if entry is not None else None


def writes(rec: Recorder) -> list[httpx2.Request]:
    return [r for r in rec.requests if r.method != "GET"]


async def test_drops_and_5xx_are_resent_with_the_same_key(clock: FakeClock) -> None:
    script = ["drop", "500", "timeout", "ok"]

    def handler(r: httpx2.Request) -> httpx2.Response:
        step = script.pop(0)
        if step == "drop":
            raise httpx2.ReadError("connection reset", request=r)
        if step == "timeout":
            raise httpx2.ReadTimeout("slow", request=r)
        if step == "500":
            return jresp(500, envelope("internal"))
        return jresp(202, op(status="succeeded"))

    runner, rec, _ = runner_for(handler, clock)
    out = await runner.run("PATCH", "/v1/images/i", {"title": "x"}, principal="p", fingerprint="f")
    assert out.state == "succeeded" and out.attempts == 4 and not out.replayed
    keys = {r.headers["idempotency-key"] for r in writes(rec)}
    assert len(keys) == 1 and len(writes(rec)) == 4


async def test_429_waits_retry_after_then_resends(clock: FakeClock) -> None:
    calls: list[int] = []

    def handler(r: httpx2.Request) -> httpx2.Response:
        calls.append(1)
        if len(calls) == 1:
            return jresp(429, envelope("rate_limited"), {"Retry-After": "2"})
        return jresp(202, op())

    runner, _, _ = runner_for(handler, clock)
    out = await runner.run("PUT", "/v1/images/i/rating", {"rating": 4}, principal="p", fingerprint="f")
    assert out.state == "succeeded" and out.attempts == 2
    assert 2.0 in clock.sleeps


async def test_429_longer_than_budget_is_raised(clock: FakeClock) -> None:
    runner, rec, _ = runner_for(
        lambda r: jresp(429, envelope("rate_limited"), {"Retry-After": "100"}), clock, budget_s=10
    )
    with pytest.raises(DPGError) as info:
        await runner.run("PUT", "/v1/x", {}, principal="p", fingerprint="f")
    assert info.value.status == 429 and info.value.retry_after == 100.0 and len(rec.requests) == 1


async def test_4xx_is_not_retried_and_the_action_is_failed(clock: FakeClock) -> None:
    runner, rec, _ = runner_for(
        lambda r: jresp(400, envelope("validation", field="title", detail="too long")), clock
    )
    for _ in range(2):
        with pytest.raises(DPGError) as info:
            await runner.run("PATCH", "/v1/images/i", {"title": "x"}, principal="p", fingerprint="f")
        assert info.value.field == "title" and info.value.resend is None  # refused: nothing to resend
        assert await state_of(runner) is State.FAILED
    keys = [r.headers["idempotency-key"] for r in rec.requests]
    assert len(keys) == 2 and keys[0] != keys[1]  # a refused action starts over under a fresh key


async def test_idempotency_conflict_is_resent_with_the_same_key_then_raised(clock: FakeClock) -> None:
    runner, rec, _ = runner_for(lambda r: jresp(409, envelope("idempotency_key_conflict")), clock)
    with pytest.raises(DPGError) as info:
        await runner.run("POST", "/v1/sets", {"name": "a"}, principal="p", fingerprint="f", kind=Kind.CREATE)
    # our key is only ever used for this one request: a 409 means "still in progress", never "take a new key"
    assert info.value.code == "idempotency_key_conflict" and len(rec.requests) == 4
    assert len({r.headers["idempotency-key"] for r in rec.requests}) == 1
    assert await state_of(runner) is State.UNKNOWN  # may have been applied: a create's resend reuses it
    with pytest.raises(DPGError):
        await runner.run("POST", "/v1/sets", {"name": "a"}, principal="p", fingerprint="f", kind=Kind.CREATE)
    assert len({r.headers["idempotency-key"] for r in rec.requests}) == 1


@pytest.mark.parametrize("kind", list(Kind))
async def test_transport_budget_spent_raises_and_the_resend_follows_the_kind(
    clock: FakeClock, kind: Kind
) -> None:
    def handler(r: httpx2.Request) -> httpx2.Response:
        raise httpx2.ReadError("reset", request=r)

    runner, rec, _ = runner_for(handler, clock, budget_s=5, max_send_attempts=4)
    with pytest.raises(TransportFailure) as info:
        await runner.run(
            "POST", "/v1/sets", {"name": "a"}, principal="p", fingerprint="f", kind=kind, tool="t"
        )
    assert "at most once" in str(info.value)
    # what may have happened, and exactly what the resend will do
    assert info.value.resend is not None and "may or may not have been applied" in info.value.resend
    said = "same idempotency key" if kind is Kind.CREATE else "sends it again"
    assert said in info.value.resend and "Calling t again" in info.value.resend
    first = {r.headers["idempotency-key"] for r in rec.requests}
    assert len(first) == 1 and 1 < len(rec.requests) <= 4
    assert await state_of(runner) is State.UNKNOWN
    with pytest.raises(TransportFailure):
        await runner.run("POST", "/v1/sets", {"name": "a"}, principal="p", fingerprint="f", kind=kind)
    keys = {r.headers["idempotency-key"] for r in rec.requests}
    assert (keys == first) is (kind is Kind.CREATE)


async def test_direct_body_reply(clock: FakeClock) -> None:
    link = {"url": "https://dl/x?sig=1", "filename": "a.jpg", "access": "private", "expires_at": 1}
    runner, _, _ = runner_for(lambda r: jresp(200, link), clock)
    out = await runner.run(
        "POST", "/v1/downloads", {"image_public_uuid": "i"}, principal="p", fingerprint="f"
    )
    assert out.state == "succeeded" and out.operation is None and out.body == link


async def test_polls_with_etag_and_backoff_and_reports_progress(clock: FakeClock) -> None:
    polls = 0

    def handler(r: httpx2.Request) -> httpx2.Response:
        nonlocal polls
        if r.method == "POST":
            return jresp(202, op("op-7", "pending", type="archive"))
        polls += 1
        if polls < 6:
            if r.headers.get("if-none-match") == '"e"':
                return httpx2.Response(304, headers={"ETag": '"e"'})
            return jresp(200, op("op-7", "running", type="archive"), {"ETag": '"e"'})
        return jresp(200, op("op-7", "succeeded", type="archive", result={"url": "u"}), {"ETag": '"f"'})

    seen: list[tuple[float, float | None, str]] = []

    async def progress(p: float, total: float | None, msg: str) -> None:
        seen.append((p, total, msg))

    runner, rec, _ = runner_for(handler, clock)
    out = await runner.run(
        "POST", "/v1/archives", {"x": 1}, principal="p", fingerprint="f", progress=progress
    )
    assert out.state == "succeeded" and out.operation is not None and out.operation.result == {"url": "u"}
    gets = [r for r in rec.requests if r.method == "GET"]
    assert [g.url.path for g in gets] == ["/v1/operations/op-7"] * 6
    assert "if-none-match" not in gets[0].headers and gets[1].headers["if-none-match"] == '"e"'
    assert clock.sleeps == pytest.approx([0.02] * 6)  # young work: poll every 20 ms (a 304 is cheap)
    assert seen and seen[0][1] == 45.0 and "op-7 (archive): pending" in seen[0][2]
    assert "succeeded" in seen[-1][2]
    assert [p for p, _, _ in seen] == sorted(p for p, _, _ in seen)


async def test_failed_operation(clock: FakeClock) -> None:
    err = {"code": "internal", "message": "processor crashed"}
    runner, rec, _ = runner_for(lambda r: jresp(202, op(status="failed", error=err)), clock)
    out = await runner.run("POST", "/v1/archives", {}, principal="p", fingerprint="f", kind=Kind.CREATE)
    assert out.state == "failed" and out.error == err
    assert await state_of(runner) is State.FAILED
    await runner.run("POST", "/v1/archives", {}, principal="p", fingerprint="f", kind=Kind.CREATE)
    keys = [r.headers["idempotency-key"] for r in rec.requests if r.method == "POST"]
    assert keys[0] != keys[1]  # an Operation that ended badly is not replayed: a fresh key


@pytest.mark.parametrize("status", ["cancelled", "canceled", "expired", "rejected"])
async def test_bad_terminal_statuses_end_the_wait(clock: FakeClock, status: str) -> None:
    polls = 0

    def handler(r: httpx2.Request) -> httpx2.Response:
        nonlocal polls
        if r.method == "POST":
            return jresp(202, op("op-5", "pending"))
        polls += 1
        return jresp(200, op("op-5", status))

    runner, _, _ = runner_for(handler, clock)
    out = await runner.run("POST", "/v1/archives", {}, principal="p", fingerprint="f")
    assert out.state == "failed" and out.operation is not None and out.operation.status == status
    assert polls == 1 and clock.now - 1000.0 < 1.0  # ended at once, not at the end of the budget
    assert await state_of(runner) is State.FAILED
    done = await runner.wait("op-5")  # check_operation follows the same rule
    assert done.state == "failed"


async def test_an_unknown_status_is_in_progress_until_the_budget_and_named(clock: FakeClock) -> None:
    def handler(r: httpx2.Request) -> httpx2.Response:
        return jresp(202 if r.method == "POST" else 200, op("op-6", "awaiting_review"))

    runner, _, _ = runner_for(handler, clock, budget_s=3)
    out = await runner.run("POST", "/v1/archives", {}, principal="p", fingerprint="f")
    assert out.state == "running" and out.operation is not None and out.operation.status == "awaiting_review"
    assert clock.now - 1000.0 >= 3.0
    assert await state_of(runner) is State.UNKNOWN  # accepted, no final word yet
    again = await runner.wait("op-6", budget_s=2)
    assert again.state == "running" and again.operation is not None
    assert again.operation.status == "awaiting_review"


async def test_a_404_while_polling_an_accepted_write_is_an_unknown_outcome(clock: FakeClock) -> None:
    def handler(r: httpx2.Request) -> httpx2.Response:
        if r.method == "POST":
            return jresp(202, op("op-8", "running"))
        return jresp(404, envelope("operation_not_found"))

    runner, _, _ = runner_for(handler, clock)
    with pytest.raises(DPGError) as info:
        await runner.run("POST", "/v1/sets", {"name": "a"}, principal="p", fingerprint="f", kind=Kind.CREATE)
    err = info.value
    assert err.code == "operation_lost" and err.status != 404  # never "check the id you passed"
    assert err.resend is not None and "same idempotency key" in err.resend
    assert await state_of(runner) is State.UNKNOWN


async def test_budget_spent_returns_running_then_wait_finishes(clock: FakeClock) -> None:
    finish_at = clock.now + 8

    def handler(r: httpx2.Request) -> httpx2.Response:
        if r.method == "POST":
            return jresp(202, op("op-3", "running", type="archive"))
        status = "succeeded" if clock.now >= finish_at else "queued"
        return jresp(200, op("op-3", status, type="archive"))

    runner, _, _ = runner_for(handler, clock, budget_s=3)
    out = await runner.run("POST", "/v1/archives", {}, principal="p", fingerprint="f")
    assert out.state == "running" and out.operation is not None and out.operation.uuid == "op-3"
    assert out.attempts == 1
    assert clock.now - (finish_at - 8) <= 3.0 + 1e-9
    again = await runner.wait("op-3", budget_s=2)
    assert again.state == "running"
    done = await runner.wait("op-3")
    assert done.state == "succeeded" and done.attempts == 0


async def test_wait_unknown_operation_raises(clock: FakeClock) -> None:
    runner, _, _ = runner_for(lambda r: jresp(404, envelope("operation_not_found")), clock)
    with pytest.raises(DPGError) as info:
        await runner.wait("op-nope")
    assert info.value.code == "operation_not_found"


async def test_set_value_calls_take_a_fresh_key_every_time_and_never_claim_a_replay(clock: FakeClock) -> None:
    runner, rec, _ = runner_for(lambda r: jresp(202, op(), {"Idempotent-Replayed": "false"}), clock)
    a = await runner.run("POST", "/v1/sets/s/images", {"i": [1]}, principal="p", fingerprint="add")
    b = await runner.run("POST", "/v1/sets/s/images", {"i": [1]}, principal="p", fingerprint="add")
    await runner.run("DELETE", "/v1/sets/s/images", {"i": [1]}, principal="p", fingerprint="remove")
    c = await runner.run("POST", "/v1/sets/s/images", {"i": [1]}, principal="p", fingerprint="add")
    assert (a.replayed, b.replayed, c.replayed) == (False, False, False)
    keys = [r.headers["idempotency-key"] for r in rec.requests]
    assert len(set(keys)) == 4


async def test_identical_calls_at_once_join_one_run(clock: FakeClock) -> None:
    import anyio

    gate = anyio.Event()

    async def handler(r: httpx2.Request) -> httpx2.Response:
        await gate.wait()
        return jresp(202, op("op-9", "succeeded"))

    runner, rec, _ = runner_for(handler, clock)  # type: ignore[arg-type]
    outs: list[WriteOutcome] = []

    async def call() -> None:
        outs.append(await runner.run("POST", "/v1/sets", {"name": "x"}, principal="p", fingerprint="f"))

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(call)
        await anyio.wait_all_tasks_blocked()
        gate.set()
    assert len([r for r in rec.requests if r.method == "POST"]) == 1
    assert sorted(o.joined for o in outs) == [False, True, True, True, True]
    assert {o.operation.uuid for o in outs if o.operation} == {"op-9"} and all(
        o.state == "succeeded" for o in outs
    )


async def test_poll_errors_keep_waiting(clock: FakeClock) -> None:
    polls = 0

    def handler(r: httpx2.Request) -> httpx2.Response:
        nonlocal polls
        if r.method == "POST":
            return jresp(202, op("op-1", "running"))
        polls += 1
        if polls == 1:
            return jresp(503, envelope("internal"))  # client retries this read itself
        return jresp(200, op("op-1", "succeeded"))

    runner, _, _ = runner_for(handler, clock)
    out = await runner.run("POST", "/v1/x", {}, principal="p", fingerprint="f")
    assert out.state == "succeeded"


async def test_broken_progress_callback_does_not_break_the_write(clock: FakeClock) -> None:
    async def progress(p: float, total: float | None, msg: str) -> None:
        raise RuntimeError("host went away")

    runner, _, _ = runner_for(lambda r: jresp(202, op()), clock)
    out = await runner.run("POST", "/v1/x", {}, principal="p", fingerprint="f", progress=progress)
    assert isinstance(out, WriteOutcome) and out.state == "succeeded"


async def test_same_call_with_a_changed_body_takes_a_fresh_key(clock: FakeClock) -> None:
    bodies: dict[str, bytes] = {}

    def handler(r: httpx2.Request) -> httpx2.Response:
        key = r.headers["idempotency-key"]
        if key in bodies and bodies[key] != r.content:
            return jresp(409, envelope("idempotency_key_conflict"))
        bodies[key] = r.content
        return jresp(202, op())

    runner, rec, _ = runner_for(handler, clock)
    await runner.run("PATCH", "/v1/sets/s/order", {"o": [1, 2]}, principal="p", fingerprint="arrange")
    out = await runner.run("PATCH", "/v1/sets/s/order", {"o": [2, 1]}, principal="p", fingerprint="arrange")
    assert out.state == "succeeded" and not out.replayed
    # the memo knows the request changed: no 409 round trip, a fresh key at once
    keys = [r.headers["idempotency-key"] for r in rec.requests]
    assert len(keys) == 2 and keys[0] != keys[1]


async def test_a_long_run_keeps_its_lease_by_heartbeat_and_a_resend_joins_it(clock: FakeClock) -> None:
    """The lease is renewed while the run lives, not counted from the first claim."""
    import anyio

    sent: list[str] = []

    async def handler(r: httpx2.Request) -> httpx2.Response:
        if r.method == "GET":  # the joiner reads the Operation the run it joined recorded
            return jresp(200, op("op-h", "succeeded"))
        sent.append(r.headers["idempotency-key"])
        await anyio.sleep(1.0)  # DPG takes 1 s to answer: over three leases of 0.3 s
        return jresp(202, op("op-h", "succeeded"))

    runner, _, _ = runner_for(handler, clock, lease_s=0.3)  # type: ignore[arg-type]
    outs: list[WriteOutcome] = []

    async def call() -> None:
        outs.append(
            await runner.run("PUT", "/v1/images/i/rating", {"rating": 4}, principal="p", fingerprint="f")
        )

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await anyio.sleep(0.7)  # the first claim is two leases old; its heartbeat kept it
        tg.start_soon(call)
    assert len(sent) == 1 and sorted(o.joined for o in outs) == [False, True]

"""WriteRunner against scripted transports, with a fake clock so budgets and polls cost no real time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
import pytest

from dpg_mcp.dpg.errors import DPGError, TransportFailure
from dpg_mcp.dpg.operations import WriteOutcome, WriteRunner
from dpg_mcp.state import InMemoryWriteMemo
from tests.client.helpers import FakeClock, Recorder, envelope, jresp, make_client, op


def runner_for(
    handler: Callable[[httpx2.Request], httpx2.Response], clock: FakeClock, budget_s: float = 45.0, **kw: Any
) -> tuple[WriteRunner, Recorder, InMemoryWriteMemo]:
    client, rec = make_client(handler, clock)
    memo = InMemoryWriteMemo(clock=clock)
    return WriteRunner(client, memo, budget_s, clock=clock, sleep=clock.sleep, **kw), rec, memo


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


async def test_4xx_is_not_retried_and_memo_forgets(clock: FakeClock) -> None:
    runner, rec, memo = runner_for(
        lambda r: jresp(400, envelope("validation", field="title", detail="too long")), clock
    )
    with pytest.raises(DPGError) as info:
        await runner.run("PATCH", "/v1/images/i", {"title": "x"}, principal="p", fingerprint="f")
    assert info.value.field == "title" and len(rec.requests) == 1
    _, reused = await memo.claim("p", "f")
    assert not reused


async def test_idempotency_conflict_is_resent_with_the_same_key_then_raised(clock: FakeClock) -> None:
    runner, rec, memo = runner_for(lambda r: jresp(409, envelope("idempotency_key_conflict")), clock)
    with pytest.raises(DPGError) as info:
        await runner.run("POST", "/v1/sets", {"name": "a"}, principal="p", fingerprint="f")
    # our key is only ever used for this one request: a 409 means "still in progress", never "take a new key"
    assert info.value.code == "idempotency_key_conflict" and len(rec.requests) == 4
    assert len({r.headers["idempotency-key"] for r in rec.requests}) == 1
    assert (await memo.claim("p", "f", request=None))[1] is True  # kept: a repeat must not apply it again


async def test_transport_budget_spent_raises_and_repeat_reuses_key(clock: FakeClock) -> None:
    def handler(r: httpx2.Request) -> httpx2.Response:
        raise httpx2.ReadError("reset", request=r)

    runner, rec, _ = runner_for(handler, clock, budget_s=5, max_send_attempts=4)
    with pytest.raises(TransportFailure) as info:
        await runner.run("POST", "/v1/sets", {"name": "a"}, principal="p", fingerprint="f")
    assert "at most once" in str(info.value)
    first = {r.headers["idempotency-key"] for r in rec.requests}
    assert len(first) == 1 and 1 < len(rec.requests) <= 4
    with pytest.raises(TransportFailure):
        await runner.run("POST", "/v1/sets", {"name": "a"}, principal="p", fingerprint="f")
    assert {r.headers["idempotency-key"] for r in rec.requests} == first


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
    runner, _, memo = runner_for(lambda r: jresp(202, op(status="failed", error=err)), clock)
    out = await runner.run("POST", "/v1/archives", {}, principal="p", fingerprint="f")
    assert out.state == "failed" and out.error == err
    assert (await memo.claim("p", "f"))[1] is False  # a failed op is not replayed on the next call


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


async def test_memo_replay_flag_and_new_key_after_other_write(clock: FakeClock) -> None:
    runner, rec, _ = runner_for(lambda r: jresp(202, op()), clock)
    a = await runner.run("POST", "/v1/sets/s/images", {"i": [1]}, principal="p", fingerprint="add")
    b = await runner.run("POST", "/v1/sets/s/images", {"i": [1]}, principal="p", fingerprint="add")
    await runner.run("DELETE", "/v1/sets/s/images", {"i": [1]}, principal="p", fingerprint="remove")
    c = await runner.run("POST", "/v1/sets/s/images", {"i": [1]}, principal="p", fingerprint="add")
    assert (a.replayed, b.replayed, c.replayed) == (False, True, False)
    keys = [r.headers["idempotency-key"] for r in rec.requests]
    assert keys[0] == keys[1] and len({keys[0], keys[2], keys[3]}) == 3


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

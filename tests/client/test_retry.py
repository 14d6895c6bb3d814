"""dpg.retry: one policy for reads, writes and polls; Retry-After honoured, jitter, the call's deadline."""

from __future__ import annotations

import random

import httpx2
import pytest

from dpg_mcp.dpg.errors import DPGError, TransportFailure
from dpg_mcp.dpg.retry import RetryPolicy, call_deadline, remaining, with_retries


class Script:
    """`once` that fails with the given exceptions in turn, then answers "ok"; records the waits."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0
        self.waits: list[float] = []

    async def once(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)


def rate_limited(after: float) -> DPGError:
    return DPGError(429, "rate_limited", "slow down", retry_after=after)


async def run(script: Script, policy: RetryPolicy | None = None) -> str:
    return await with_retries(
        "GET /v1/x", script.once, policy or RetryPolicy(), sleep=script.sleep, rng=random.Random(1)
    )


async def test_retry_after_is_honoured_and_backoff_is_jittered_within_its_cap() -> None:
    script = Script(rate_limited(3), DPGError(503, "internal", "x"), httpx2.ReadError("reset"))
    assert await run(script, RetryPolicy(backoff_base=0.2, backoff_cap=4.0)) == "ok"
    assert script.calls == 4
    assert script.waits[0] == 3  # Retry-After, exactly
    # equal jitter: half fixed, half random, of a ceiling that doubles per failure
    assert 0.1 <= script.waits[1] <= 0.2 and 0.2 <= script.waits[2] <= 0.4


async def test_refusals_are_not_retried_and_attempts_are_bounded() -> None:
    script = Script(DPGError(404, "not_found", "no"))
    with pytest.raises(DPGError, match="404"):
        await run(script)
    assert script.calls == 1 and script.waits == []
    script = Script(*[httpx2.ConnectError("down") for _ in range(10)])
    with pytest.raises(TransportFailure, match="gave up after 3 attempts"):
        await run(script, RetryPolicy(max_attempts=3))
    assert script.calls == 3


async def test_a_retry_after_longer_than_allowed_is_left_to_the_agent() -> None:
    script = Script(rate_limited(60))
    with pytest.raises(DPGError) as info:
        await run(script, RetryPolicy(max_retry_after=15))
    assert info.value.retry_after == 60 and script.waits == []


async def test_no_wait_starts_that_would_pass_the_call_deadline() -> None:
    script = Script(rate_limited(3))
    with call_deadline(2.0):
        assert remaining() is not None
        with pytest.raises(DPGError, match="429"):
            await run(script)
    assert script.waits == []  # the 3 s wait would pass the 2 s budget: given up at once
    assert remaining() is None  # the deadline belongs to the block


async def test_a_write_runner_deadline_on_its_own_clock_also_stops_retries() -> None:
    now = [100.0]
    script = Script(DPGError(503, "internal", "x"), DPGError(503, "internal", "x"))
    with pytest.raises(DPGError, match="503"):
        await with_retries(
            "POST /v1/x",
            script.once,
            RetryPolicy(backoff_base=1.0, backoff_cap=1.0),
            sleep=script.sleep,
            rng=random.Random(1),
            deadline=100.4,  # less than the smallest backoff (0.5 s) away
            clock=lambda: now[0],
        )
    assert script.calls == 1 and script.waits == []

"""One retry policy and one deadline for every request to DPG (reads, writes, polls).

- The deadline belongs to the tool call: `call_deadline(seconds)` sets it for everything the call does
  (a contextvar, so concurrent calls each keep their own). Every attempt is cut at it, and no retry starts
  whose wait would pass it: a read never outlives its call's budget, however many attempts it makes.
- The policy: connection errors, timeouts, 5xx and 408 are retried with capped exponential backoff and
  "equal jitter" (half fixed, half random); a 429 waits its Retry-After when that fits (each wait capped);
  everything else is raised at once. Attempts and 429 waits are bounded in number too.

Built on tenacity's AsyncRetrying: its stop hook sees the wait it is about to make, which is what a
deadline needs, and its sleep is injectable, so tests run on a fake clock.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TypeVar

import httpx2
from tenacity import AsyncRetrying, RetryCallState

from dpg_mcp.dpg.errors import DPGError, TransportFailure

log = logging.getLogger("dpg_mcp.dpg")

R = TypeVar("R")
SleepFn = Callable[[float], Awaitable[None]]

_DEADLINE: ContextVar[float | None] = ContextVar("dpg_call_deadline", default=None)
_BUDGET: ContextVar[float | None] = ContextVar("dpg_call_budget", default=None)


@contextmanager
def call_deadline(seconds: float) -> Iterator[None]:
    """Everything sent to DPG inside this block ends within `seconds` from now (time.monotonic)."""
    deadline = time.monotonic() + seconds
    outer = _DEADLINE.get()
    token = _DEADLINE.set(deadline if outer is None else min(outer, deadline))
    budget = _BUDGET.set(seconds)
    try:
        yield
    finally:
        _DEADLINE.reset(token)
        _BUDGET.reset(budget)


def restart_deadline() -> None:
    """The current call's deadline starts again from now (after the user answered a question)."""
    budget = _BUDGET.get()
    if budget is not None:
        _DEADLINE.set(time.monotonic() + budget)


def remaining() -> float | None:
    """Seconds left before the current call's deadline; None when no deadline is set."""
    deadline = _DEADLINE.get()
    return None if deadline is None else deadline - time.monotonic()


def out_of_time(label: str) -> TransportFailure:
    budget = _BUDGET.get()
    within = f"within this call's {budget:g} s time budget" if budget is not None else "in time"
    return TransportFailure(f"{label}: no answer {within}", code="timeout")


def attempt_limit(timeout: float, label: str) -> float:
    """How long one attempt may take: its own timeout, cut at the call's deadline (raises when none left)."""
    left = remaining()
    if left is None:
        return timeout
    if left <= 0:
        raise out_of_time(label)
    return min(timeout, left)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4  # tries in all, for transport errors, timeouts, 5xx and 408
    max_rate_limit_waits: int = 4  # 429 answers waited out
    max_retry_after: float = 15.0  # a longer Retry-After is not waited: the agent is told to wait
    backoff_base: float = 0.2
    backoff_cap: float = 4.0

    def backoff(self, failures: int, rng: random.Random) -> float:
        ceiling = min(self.backoff_cap, self.backoff_base * (2 ** (max(failures, 1) - 1)))
        return float(ceiling / 2 + rng.random() * ceiling / 2)


class _Counts:
    def __init__(self) -> None:
        self.failures = 0
        self.waits = 0
        self.last_wait_was_429 = False


async def with_retries(
    label: str,
    once: Callable[[], Awaitable[R]],
    policy: RetryPolicy,
    *,
    sleep: SleepFn,
    rng: random.Random,
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    on_retry: Callable[[int, BaseException, float], Awaitable[None]] | None = None,
    give_up: Callable[[BaseException, int], DPGError] | None = None,
) -> R:
    """Run `once` under the policy, the current call's deadline and, if given, `deadline` on `clock`
    (the write runner's own budget).

    Raises the last DPGError as is; a transport failure (no answer) as `give_up(exc, attempts)` or a
    TransportFailure; running out of the call's time as TransportFailure with code "timeout".
    `on_retry(attempt, exc, wait)` runs before each wait (logs, progress).
    """
    counts = _Counts()
    tries = {"n": 0}

    def retryable(state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TransportFailure):  # our own verdict (e.g. out of time): final
            return False
        if isinstance(exc, httpx2.TransportError):
            counts.failures += 1
            counts.last_wait_was_429 = False
            return counts.failures < policy.max_attempts
        if isinstance(exc, DPGError):
            if exc.status == 429:
                counts.waits += 1
                counts.last_wait_was_429 = True
                wait = exc.retry_after if exc.retry_after is not None else 1.0
                return counts.waits <= policy.max_rate_limit_waits and wait <= policy.max_retry_after
            if exc.retryable:
                counts.failures += 1
                counts.last_wait_was_429 = False
                return counts.failures < policy.max_attempts
        return False

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if counts.last_wait_was_429 and isinstance(exc, DPGError):
            return exc.retry_after if exc.retry_after is not None else 1.0  # Retry-After honoured
        return policy.backoff(counts.failures, rng)

    def stop(state: RetryCallState) -> bool:
        # the wait alone would pass the call's deadline, or the caller's own: stop here
        left = remaining()
        if left is not None and state.upcoming_sleep >= left:
            return True
        return deadline is not None and clock() + state.upcoming_sleep >= deadline

    async def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if on_retry is not None and exc is not None:
            await on_retry(state.attempt_number, exc, state.upcoming_sleep)
            return
        kind = f"HTTP {exc.status}" if isinstance(exc, DPGError) else type(exc).__name__
        log.info("%s: %s; retry in %.2fs", label, kind, state.upcoming_sleep)

    async def counted() -> R:
        tries["n"] += 1
        return await once()

    retrying = AsyncRetrying(
        sleep=sleep,
        retry=retryable,
        wait=wait,
        stop=stop,
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        return await retrying(counted)
    except httpx2.TransportError as exc:
        if remaining() is not None and (remaining() or 0) <= 0.05:
            raise out_of_time(label) from exc
        if give_up is not None:
            raise give_up(exc, tries["n"]) from exc
        attempts = counts.failures
        raise TransportFailure(f"{label}: {_describe(exc)} (gave up after {attempts} attempts)") from exc


def _describe(exc: BaseException) -> str:
    kind = type(exc).__name__
    if isinstance(exc, httpx2.TimeoutException):
        return f"timed out ({kind})"
    return f"connection failed ({kind})"

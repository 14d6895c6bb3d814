"""The write runner: every write tool goes through `WriteRunner.run`.

One logical write = one Idempotency-Key (uuid4, or the memo's key when the agent repeats the same call).
The runner sends the write and, when no usable answer comes (timeout, dropped connection, 5xx, 429), sends it
AGAIN WITH THE SAME KEY: DPG then either applies it for the first time or replays the original Operation, so
the work happens at most once. It then polls the Operation until it is terminal or the time budget is spent;
in that case it returns state "running" with the Operation, which `wait()` (check_operation) can finish later.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import anyio
import httpx2
from pydantic import BaseModel

from dpg_mcp.dpg.client import DPGClient, WriteReply
from dpg_mcp.dpg.errors import DPGError, TransportFailure
from dpg_mcp.dpg.models import Operation
from dpg_mcp.state import WriteMemo

log = logging.getLogger("dpg_mcp.dpg")

ProgressFn = Callable[[float, float | None, str], Awaitable[None]]
Clock = Callable[[], float]
SleepFn = Callable[[float], Awaitable[None]]

DEFAULT_BUDGET_S = 45.0
# Never give one send less than this, even at the end of the budget: a too-short attempt only adds retries.
_MIN_ATTEMPT_S = 1.0


class WriteOutcome(BaseModel):
    """What a write came to, within the runner's time budget."""

    state: Literal["succeeded", "failed", "running"]  # running = budget spent; resumable with wait()
    operation: Operation | None = None
    body: Any = None  # the direct body of a 200/201 reply (upload ticket, download link)
    replayed: bool = False  # the memo reused an earlier key: already applied earlier, nothing done twice
    attempts: int = 0  # how many times the write was sent (0 for wait())

    @property
    def error(self) -> dict[str, Any] | None:
        """The failed Operation's error object (same shape as the error envelope's inner object)."""
        return self.operation.error if self.operation is not None else None


class WriteRunner:
    def __init__(
        self,
        client: DPGClient,
        memo: WriteMemo,
        budget_s: float = DEFAULT_BUDGET_S,
        *,
        max_send_attempts: int = 10,
        backoff_base_s: float = 0.1,
        backoff_cap_s: float = 2.0,
        poll_initial_s: float = 0.02,
        poll_max_s: float = 1.0,
        clock: Clock = time.monotonic,
        sleep: SleepFn | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.memo = memo
        self.budget_s = budget_s
        self.max_send_attempts = max(1, max_send_attempts)
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.poll_initial_s = poll_initial_s
        self.poll_max_s = poll_max_s
        self._clock = clock
        self._sleep: SleepFn = sleep or anyio.sleep
        self._rng = rng or random.Random()

    async def run(
        self,
        method: str,
        path: str,
        body: Any,
        *,
        principal: str,
        fingerprint: str,
        progress: ProgressFn | None = None,
    ) -> WriteOutcome:
        """Send one logical write exactly once (as far as DPG's idempotency allows) and follow it.

        Raises DPGError for a refusal (4xx other than 429, incl. 409 idempotency_key_conflict), and
        DPGError/TransportFailure when the budget or attempts ran out before any answer (the write may or may
        not have been applied, but at most once: a repeat of the same call reuses the key via the memo).
        """
        start = self._clock()
        deadline = start + self.budget_s
        request = request_digest(method, path, body)
        key, reused = await self.memo.claim(principal, fingerprint, request=request)
        try:
            return await self._run_claimed(
                method, path, body, key, reused, principal, fingerprint, start, deadline, progress
            )
        finally:
            # Success, refusal or cancellation: this run of the key is over (shielded: it must happen even
            # when the tool call is being cancelled, or the entry would look in flight until its lease ends).
            with anyio.CancelScope(shield=True):
                await self.memo.release(principal, fingerprint, key)

    async def _run_claimed(
        self,
        method: str,
        path: str,
        body: Any,
        key: str,
        reused: bool,
        principal: str,
        fingerprint: str,
        start: float,
        deadline: float,
        progress: ProgressFn | None,
    ) -> WriteOutcome:
        conflicts = 0
        while True:
            try:
                reply, attempts = await self._send(method, path, body, key, deadline, progress, start)
                break
            except DPGError as err:
                # We only ever send a key with one request (the memo reuses keys only for the very same
                # request), so a 409 is not a changed body: most likely an earlier attempt with this key (a
                # timed-out send, or the agent's first call) is still in progress on the server. A new key
                # could apply the write twice: wait and resend with the same key, and keep it in the memo.
                conflict = err.code == "idempotency_key_conflict"
                delay = self._backoff(conflicts + 3)
                if conflict and conflicts < 3 and self._clock() + delay < deadline:
                    conflicts += 1
                    log.warning("%s %s: key still busy (409); resending in %.2fs", method, path, delay)
                    await self._sleep(delay)
                    continue
                if not err.retryable and not conflict:
                    # Refused before anything was applied: a corrected or later repeat is a new action.
                    await self.memo.forget(principal, fingerprint, key)
                raise
        op = reply.operation
        await self.memo.record(principal, fingerprint, op.uuid if op else None)
        # The server's own replay marker, when it sends one, beats our guess: a reused key whose first run
        # never reached DPG was applied now, for the first time.
        replayed = reused if reply.replayed is None else (reused and reply.replayed)
        if op is None:
            return WriteOutcome(state="succeeded", body=reply.body, replayed=replayed, attempts=attempts)
        outcome = await self._follow(op, start, deadline, progress, etag=None, total=self.budget_s)
        if outcome.state == "failed":
            await self.memo.forget(principal, fingerprint, key)
        return outcome.model_copy(update={"replayed": replayed, "attempts": attempts})

    async def wait(
        self, operation_uuid: str, *, progress: ProgressFn | None = None, budget_s: float | None = None
    ) -> WriteOutcome:
        """Finish waiting on an Operation (check_operation). Raises DPGError 404 for an unknown id."""
        start = self._clock()
        total = self.budget_s if budget_s is None else budget_s
        deadline = start + total
        # A hanging API must not hold check_operation past its budget (the in-process transport has no
        # socket timeouts, and the client's own read retries could add up to minutes).
        with anyio.move_on_after(max(total, _MIN_ATTEMPT_S)) as scope:
            op, etag = await self.client.get_operation(operation_uuid)
        if scope.cancelled_caught:
            raise TransportFailure(f"operation {operation_uuid}: no answer within {total:g}s")
        if op is None:  # cannot happen without If-None-Match; keep mypy and odd servers honest
            raise DPGError(502, "invalid_response", "the API answered 304 to an unconditional GET")
        return await self._follow(op, start, deadline, progress, etag=etag, total=total)

    # ---- sending -----------------------------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        body: Any,
        key: str,
        deadline: float,
        progress: ProgressFn | None,
        start: float,
    ) -> tuple[WriteReply, int]:
        attempts = 0
        while True:
            attempts += 1
            remaining = deadline - self._clock()
            # The client's own timeout caps each try; near the end of the budget, still give it a fair chance.
            per_attempt = min(self.client.timeout, max(_MIN_ATTEMPT_S, remaining))
            last: Exception
            retry_after: float | None = None
            try:
                return await self.client.send_write(
                    method, path, body, key, attempt_timeout=per_attempt
                ), attempts
            except httpx2.TransportError as exc:
                last = exc
            except DPGError as err:
                if not err.retryable:
                    raise
                last = err
                retry_after = err.retry_after if err.status == 429 else None
            delay = retry_after if retry_after is not None else self._backoff(attempts)
            if attempts >= self.max_send_attempts or self._clock() + delay >= deadline:
                if isinstance(last, DPGError):
                    raise last
                raise TransportFailure(
                    f"{method} {path}: no answer after {attempts} attempt(s) ({type(last).__name__}); "
                    "every attempt used the same Idempotency-Key, so it was applied at most once"
                ) from last
            log.warning(
                "%s %s: attempt %d failed (%s); resending with the same key in %.2fs",
                method,
                path,
                attempts,
                _kind(last),
                delay,
            )
            await self._report(
                progress, start, self.budget_s, f"{method} {path}: retrying (attempt {attempts + 1})"
            )
            await self._sleep(delay)

    def _backoff(self, attempts: int) -> float:
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * (2 ** (attempts - 1)))
        return float(ceiling / 2 + self._rng.random() * ceiling / 2)

    # ---- polling -----------------------------------------------------------------------------------------

    async def _follow(
        self,
        op: Operation,
        start: float,
        deadline: float,
        progress: ProgressFn | None,
        *,
        etag: str | None,
        total: float,
    ) -> WriteOutcome:
        floor: float | None = None  # a 429's Retry-After: wait at least that before the next poll
        while not op.is_terminal:
            await self._report(progress, start, total, _status_line(op))
            remaining = deadline - self._clock()
            if remaining <= 0:
                return WriteOutcome(state="running", operation=op)
            delay = poll_delay(
                self._clock() - start, floor=self.poll_initial_s, cap=self.poll_max_s, hint=operation_hint(op)
            )
            await self._sleep(min(max(delay, floor or 0.0), remaining))
            floor = None
            fresh: Operation | None = None
            # A hanging poll must not outlast the budget: the write is accepted, "running" is the truth.
            with anyio.move_on_after(max(deadline - self._clock(), _MIN_ATTEMPT_S)):
                try:
                    fresh, etag = await self.client.get_operation(op.uuid, etag)
                except DPGError as err:
                    # A 404 (unknown op) is the truth; an odd body (a proxy's page) is not worth failing over.
                    if not err.retryable and err.code != "invalid_response":
                        raise
                    floor = err.retry_after if err.status == 429 else None
                    log.warning("poll %s failed (%s); still waiting", op.uuid, err.code)
            if fresh is not None:
                op = fresh
        await self._report(progress, start, total, _status_line(op))
        return WriteOutcome(state="succeeded" if op.succeeded else "failed", operation=op)

    async def _report(self, progress: ProgressFn | None, start: float, total: float, message: str) -> None:
        if progress is None:
            return
        try:
            await progress(round(self._clock() - start, 3), total, message)
        except Exception:  # a broken progress channel must not break the write
            log.debug("progress callback failed", exc_info=True)


# A finished Operation is noticed within this share of the time it has run (plus one round trip).
POLL_SHARE = 0.1
# Operation fields some APIs use to say how long the work has left, in seconds (DPG documents none yet).
_HINT_FIELDS = (
    "retry_after",
    "poll_after",
    "eta_seconds",
    "estimated_seconds",
    "estimated_seconds_remaining",
)


def poll_delay(elapsed: float, *, floor: float, cap: float, hint: float | None = None) -> float:
    """Seconds to wait before polling an Operation that has been running for `elapsed` seconds.

    The limit is the work's own time plus one round trip. With If-None-Match a poll is a bodiless 304, so
    poll every `floor` seconds while the work is young, then wait a tenth of the time it has run: the end is
    seen within ~10 % of the work's own time, and a long Operation costs ~23 polls per tenfold of its
    duration, never more than one per `cap` seconds after that. `hint`, the time DPG says is left, skips
    the polls that cannot find it done.
    """
    delay = min(max(floor, elapsed * POLL_SHARE), cap)
    if hint is not None and hint > delay:
        delay = hint
    return delay


def operation_hint(op: Operation) -> float | None:
    """Seconds the Operation itself says are left (a tolerated extra field), if any and sane."""
    for name in _HINT_FIELDS:
        value = (op.model_extra or {}).get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= 3600:
            return float(value)
    return None


def request_digest(method: str, path: str, body: Any) -> str:
    """What DPG fingerprints for idempotency: method + path + canonical JSON body."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(f"{method.upper()} {path}\n{canonical}".encode()).hexdigest()[:32]


def _status_line(op: Operation) -> str:
    kind = f" ({op.type})" if op.type else ""
    return f"operation {op.uuid}{kind}: {op.status}"


def _kind(exc: BaseException) -> str:
    if isinstance(exc, DPGError):
        return f"HTTP {exc.status} {exc.code}"
    return type(exc).__name__

"""The write runner: every write tool goes through `WriteRunner`.

A write is an *action* (DPG origin, principal, tool, canonical arguments) with an entry in the ledger
(`dpg_mcp.ledger`). The runner claims the action there before sending anything: the entry's state decides the
Idempotency-Key (a fresh one, or the earlier one again), or that an identical call already running is joined
instead of sending twice. While the run lives a heartbeat renews its lease; when it ends, the entry records
what DPG said (done, failed, partial) or that DPG's final word never came (unknown).

Inside one run the runner sends the write and, when no usable answer comes (timeout, dropped connection, 5xx,
429), sends it AGAIN WITH THE SAME KEY: DPG then applies it for the first time or replays the original
Operation. It then polls the Operation until it ends or the time budget is spent; in that case it returns
state "running" with the Operation, which `wait()` (check_operation) can finish later.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import anyio
from pydantic import BaseModel

from dpg_mcp.dpg.client import DPGClient, WriteReply
from dpg_mcp.dpg.errors import DPGError, TransportFailure
from dpg_mcp.dpg.models import Operation
from dpg_mcp.dpg.retry import RetryPolicy, remaining, with_retries
from dpg_mcp.ledger import (
    LEASE_S,
    Entry,
    Kind,
    Ledger,
    Mode,
    State,
    action_digest,
    request_digest,
    subject_digest,
)
from dpg_mcp.ledger import ops as ledger_ops
from dpg_mcp.ledger.rules import Claim

log = logging.getLogger("dpg_mcp.dpg")

ProgressFn = Callable[[float, float | None, str], Awaitable[None]]
Clock = Callable[[], float]
SleepFn = Callable[[float], Awaitable[None]]
T = TypeVar("T")

DEFAULT_BUDGET_S = 45.0
# Never give one send less than this, even at the end of the budget: a too-short attempt only adds retries.
_MIN_ATTEMPT_S = 1.0
# How often a joiner looks whether the run it joined (maybe in another process) has ended.
_JOIN_POLL_S = 0.1
# A joiner whose run ended without a usable outcome claims again; this bounds those rounds.
_MAX_CLAIMS = 4


class WriteOutcome(BaseModel):
    """What a write came to, within the runner's time budget."""

    state: Literal["succeeded", "failed", "running"]  # running = budget spent; resumable with wait()
    operation: Operation | None = None
    body: Any = None  # the direct body of a 200/201 reply (upload ticket, download link)
    replayed: bool = False  # DPG replayed this key with a final outcome: applied earlier, not by this call
    joined: bool = False  # an identical call was running: this one waited for it and sent nothing
    previous: str | None = None  # the ledger state this call found ("unknown", "done", "partial"...)
    attempts: int = 0  # how many times the write was sent (0 for wait() and for a joined run)

    @property
    def error(self) -> dict[str, Any] | None:
        """The failed Operation's error object (same shape as the error envelope's inner object)."""
        return self.operation.error if self.operation is not None else None


def resend_advice(kind: Kind, tool: str | None = None) -> str:
    """What may have happened to a write whose outcome is unknown, and exactly what a resend will do."""
    again = f"Calling {tool} again" if tool else "Calling again"
    if kind is Kind.CREATE:
        return (
            "It may or may not have been applied. "
            f"{again} with the same arguments resends it under the same idempotency key, so DPG creates it "
            "at most once and reports the one it made."
        )
    return (
        "It may or may not have been applied. "
        f"{again} with the same arguments sends it again (setting the same value twice changes nothing) "
        "and reports DPG's state after it."
    )


@dataclass
class Held:
    """One run's hold on an action in the ledger (or, joined, the entry of the run it waited for)."""

    runner: WriteRunner
    action: str
    kind: Kind
    tool: str | None
    claim: Claim
    run: str
    joined_entry: Entry | None = None  # joined: the entry after the holder ended (None: still running)
    settled: bool = False
    _notes: dict[str, str] = field(default_factory=dict)

    @property
    def joined(self) -> bool:
        return self.claim.mode is Mode.JOIN

    @property
    def key(self) -> str:
        return self.claim.key

    @property
    def previous(self) -> Entry | None:
        return self.claim.previous

    async def note(
        self,
        *,
        op: str | None = None,
        made: str | None = None,
        tx: str | None = None,
        request: str | None = None,
        key: str | None = None,
    ) -> None:
        """Record what became known mid-run (shielded: a cancel must not lose the operation id)."""
        if self.joined:
            return
        with anyio.CancelScope(shield=True):
            await ledger_ops.note(
                self.runner.ledger,
                self.action,
                run=self.run,
                op=op,
                made=made,
                tx=tx,
                request=request,
                key=key,
                now=self.runner._wall(),
            )

    async def settle(
        self,
        state: State,
        *,
        op: str | None = None,
        made: str | None = None,
        done_items: tuple[str, ...] | None = None,
    ) -> None:
        if self.joined or self.settled:
            return
        self.settled = True
        with anyio.CancelScope(shield=True):
            await ledger_ops.settle(
                self.runner.ledger,
                self.action,
                now=self.runner._wall(),
                run=self.run,
                state=state,
                op=op,
                made=made,
                done_items=done_items,
            )

    async def settle_outcome(self, outcome: WriteOutcome, *, made: str | None = None) -> None:
        """The state DPG's answer puts the action in: done, failed (ended badly), unknown (running)."""
        op = outcome.operation.uuid if outcome.operation is not None else None
        state = {"succeeded": State.DONE, "failed": State.FAILED}.get(outcome.state, State.UNKNOWN)
        await self.settle(state, op=op, made=made)


class WriteRunner:
    def __init__(
        self,
        client: DPGClient,
        ledger: Ledger,
        budget_s: float = DEFAULT_BUDGET_S,
        *,
        origin: str = "",
        max_send_attempts: int = 10,
        backoff_base_s: float = 0.1,
        backoff_cap_s: float = 2.0,
        poll_initial_s: float = 0.02,
        poll_max_s: float = 1.0,
        lease_s: float = LEASE_S,
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
        sleep: SleepFn | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.ledger = ledger
        self.budget_s = budget_s
        # Which gallery: the API URL plus, for the embedded sandbox, its per-start instance id. A ledger
        # entry never answers for another gallery (or for a sandbox that was reset).
        self.origin = origin or client.base_url
        self.max_send_attempts = max(1, max_send_attempts)
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.poll_initial_s = poll_initial_s
        self.poll_max_s = poll_max_s
        self.lease_s = lease_s
        self._clock = clock
        self._wall = wall  # ledger times are compared across processes: wall clock
        self._sleep: SleepFn = sleep or anyio.sleep
        self._rng = rng or random.Random()
        # Writes resend under the same policy as reads (dpg.retry), with the same key each time; a 429's
        # Retry-After is waited however long, as long as it fits in the budget.
        self._policy = RetryPolicy(
            max_attempts=self.max_send_attempts,
            max_rate_limit_waits=self.max_send_attempts,
            max_retry_after=float("inf"),
            backoff_base=backoff_base_s,
            backoff_cap=backoff_cap_s,
        )
        self._ended: dict[str, anyio.Event] = {}  # runs of this process, by action: joiners wake at once

    # ---- the action in the ledger ------------------------------------------------------------------------

    def action_of(self, principal: str, fingerprint: str) -> str:
        """The ledger's name for an action: digest of (origin, principal, what is done)."""
        return action_digest(self.origin, principal, "", fingerprint)

    # ---- annotations: our own labels for what a write caused (a snapshot: the action it preceded) ------

    async def annotate(self, principal: str, kind: str, ref: str, label: str) -> bool:
        """Record `label` for object `ref` of this gallery, for this principal. False when the ledger could
        not (the write it follows is done all the same: a label is never worth failing a result for)."""
        try:
            await self.ledger.annotate(subject_digest(self.origin, principal, kind, ref), label)
        except Exception as exc:  # a store that is down: say so in the log, keep the result
            log.warning("ledger: could not record a %s label (%s)", kind, type(exc).__name__)
            return False
        return True

    async def labels(self, principal: str, kind: str, refs: Sequence[str]) -> dict[str, str]:
        """The labels this principal's writes left on these objects, in one lookup: ref -> label."""
        by_subject = {subject_digest(self.origin, principal, kind, ref): ref for ref in refs}
        try:
            found = await self.ledger.labels(list(by_subject))
        except Exception as exc:
            log.warning("ledger: could not read %s labels (%s)", kind, type(exc).__name__)
            return {}
        return {by_subject[s]: label for s, label in found.items() if s in by_subject}

    async def within(
        self,
        principal: str,
        fingerprint: str,
        body: Callable[[Held], Awaitable[T]],
        *,
        kind: Kind = Kind.SET,
        tool: str | None = None,
        request: str = "",
        deadline: float | None = None,
        usable: Callable[[Entry], bool] | None = None,
        fresh: bool = False,
    ) -> T:
        """Claim the action, run `body` holding it (lease renewed by a heartbeat), then settle it.

        A claim that finds the action in flight joins it: it waits (until `deadline`) for that run to end and
        calls `body` with a joined Held whose `joined_entry` is the entry the run left, when `usable` says it
        tells the outcome; otherwise (the run ended unknown) it claims again. A body that returns without
        settling, raises or is cancelled leaves the action `unknown`, except a refusal (a DPGError that is not
        retryable), which leaves it `failed`: nothing was applied.
        """
        action = self.action_of(principal, fingerprint)
        deadline = self._clock() + self.budget_s if deadline is None else deadline
        usable = usable or _tells_outcome
        run = uuid.uuid4().hex
        for _ in range(_MAX_CLAIMS):
            claim = await ledger_ops.claim(
                self.ledger,
                action,
                now=self._wall(),
                kind=kind,
                run=run,
                request=request,
                lease_s=self.lease_s,
                fresh=fresh,
            )
            held = Held(self, action, kind, tool, claim, run)
            if claim.mode is not Mode.JOIN:
                return await self._hold(held, body)
            log.info("an identical %s is in flight: joining it", tool or "write")
            ended = await self._await_end(action, claim.entry.owner, deadline)
            if ended is None:
                continue  # the entry is gone (expired, evicted): claim afresh
            still_held = ended.held(self._wall())
            if still_held or usable(ended):
                held.joined_entry = None if still_held else ended
                return await body(held)
            # The run it joined ended without an outcome to report (unknown): claim again, by the rules.
        raise TransportFailure(
            "the identical call in flight kept ending without an outcome; call again later"
        )

    async def _hold(self, held: Held, body: Callable[[Held], Awaitable[T]]) -> T:
        event = self._ended.setdefault(held.action, anyio.Event())
        try:
            try:
                return await self._with_heartbeat(held, body)
            except DPGError as err:
                if not err.retryable and err.code not in _UNSURE_CODES:
                    await held.settle(State.FAILED)  # refused: nothing was applied
                elif err.resend is None:
                    err.resend = resend_advice(held.kind, held.tool)
                raise
        finally:
            # Whatever happened (error, cancel, a body that forgot): no final word means unknown.
            if not held.settled:
                await held.settle(State.UNKNOWN)
            event.set()
            if self._ended.get(held.action) is event:
                del self._ended[held.action]

    async def _with_heartbeat(self, held: Held, body: Callable[[Held], Awaitable[T]]) -> T:
        # The body's own exception leaves the task group unwrapped: it is caught inside, raised outside.
        failure: BaseException | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._heartbeat, held)
            try:
                result = await body(held)
            except BaseException as exc:  # incl. cancellation: re-raised below, after the group
                failure = exc
            tg.cancel_scope.cancel()
        if failure is not None:
            raise failure
        return result

    async def _heartbeat(self, held: Held) -> None:
        """Renew the lease while the run lives, so a long run is never mistaken for a dead one."""
        while True:
            await anyio.sleep(self.lease_s / 3)
            if not await ledger_ops.renew(
                self.ledger, held.action, now=self._wall(), run=held.run, lease_s=self.lease_s
            ):
                return

    async def _await_end(self, action: str, owner: str, deadline: float) -> Entry | None:
        """Wait for the holder's run to end (here or in another process); the entry it left, or None."""
        while True:
            entry = await self.ledger.get(action)
            if entry is None or not entry.held(self._wall()) or entry.owner != owner:
                return entry
            remaining = deadline - self._clock()
            if remaining <= 0:
                return entry
            local = self._ended.get(action)
            with anyio.move_on_after(min(_JOIN_POLL_S, remaining)):
                if local is not None:
                    await local.wait()
                else:
                    await anyio.sleep(_JOIN_POLL_S)

    # ---- one request -------------------------------------------------------------------------------------

    async def run(
        self,
        method: str,
        path: str,
        body: Any,
        *,
        principal: str,
        fingerprint: str | None = None,
        kind: Kind = Kind.SET,
        tool: str | None = None,
        progress: ProgressFn | None = None,
        fresh: bool = False,
    ) -> WriteOutcome:
        """One write, claimed in the ledger under `fingerprint` (default: the request), sent and followed.

        Raises DPGError for a refusal (4xx other than 429, incl. 409 idempotency_key_conflict), and
        DPGError/TransportFailure when the budget or attempts ran out before any answer; those carry
        `resend` (what may have been applied, and what calling again will do).
        """
        start = self._clock()
        deadline = self._within_call(start + self.budget_s)
        request = request_digest(method, path, body)

        async def go(held: Held) -> WriteOutcome:
            if held.joined:
                return await self.joined_outcome(held, progress)
            outcome = await self.send(
                method, path, body, held, start=start, deadline=deadline, progress=progress
            )
            await held.settle_outcome(outcome)
            return outcome

        return await self.within(
            principal,
            fingerprint or request,
            go,
            kind=kind,
            tool=tool,
            request=request,
            deadline=deadline,
            fresh=fresh,
        )

    async def joined_outcome(self, held: Held, progress: ProgressFn | None = None) -> WriteOutcome:
        """The outcome of the run this call joined: its Operation, followed to its end within the budget."""
        entry = held.joined_entry
        previous = held.previous.state.value if held.previous is not None else None
        if entry is None or not entry.op:
            op = Operation(uuid=held.previous.op) if held.previous is not None and held.previous.op else None
            return WriteOutcome(state="running", operation=op, joined=True, previous=previous)
        outcome = await self.wait(entry.op, progress=progress)
        return outcome.model_copy(update={"joined": True, "previous": previous})

    async def send(
        self,
        method: str,
        path: str,
        body: Any,
        held: Held,
        *,
        start: float,
        deadline: float,
        progress: ProgressFn | None,
        key: str | None = None,
        follow: bool = True,
    ) -> WriteOutcome:
        """Send under `key` (default: the held action's key), retrying with it, and follow the Operation.

        follow=False returns as soon as DPG accepted it: a running Operation comes back "running", for
        `follow_together` to poll along with others.
        """
        key = key or held.key
        conflicts = 0
        while True:
            try:
                reply, attempts = await self._send(method, path, body, key, deadline, progress, start)
                break
            except DPGError as err:
                # We only ever send a key with one request (the ledger reuses keys only for the very same
                # request), so a 409 is not a changed body: most likely an earlier attempt with this key (a
                # timed-out send, or the agent's first call) is still in progress on the server. A new key
                # could apply the write twice: wait and resend with the same key.
                conflict = err.code == "idempotency_key_conflict"
                delay = self._backoff(conflicts + 3)
                if conflict and conflicts < 3 and self._clock() + delay < deadline:
                    conflicts += 1
                    log.warning("%s %s: key still busy (409); resending in %.2fs", method, path, delay)
                    await self._sleep(delay)
                    continue
                raise
        op = reply.operation
        if op is not None:
            await held.note(op=op.uuid)
        reused = held.claim.mode is Mode.REUSE and key == held.key
        previous = held.previous.state.value if held.previous is not None else None
        if op is None:
            replayed = bool(reused and reply.replayed)
            return WriteOutcome(
                state="succeeded", body=reply.body, replayed=replayed, attempts=attempts, previous=previous
            )
        if not follow and not op.is_terminal:
            replayed = bool(reused and reply.replayed)  # kept only if the Operation ends (follow_together)
            return WriteOutcome(
                state="running", operation=op, replayed=replayed, attempts=attempts, previous=previous
            )
        outcome = await self._follow(
            op, start, deadline, progress, etag=None, total=self.budget_s, accepted=True
        )
        # "Applied earlier" only when DPG itself said it replayed this key and the replayed outcome is final.
        replayed = bool(reused and reply.replayed and outcome.state != "running")
        return outcome.model_copy(update={"replayed": replayed, "attempts": attempts, "previous": previous})

    async def wait(
        self, operation_uuid: str, *, progress: ProgressFn | None = None, budget_s: float | None = None
    ) -> WriteOutcome:
        """Finish waiting on an Operation (check_operation). Raises DPGError 404 for an unknown id."""
        start = self._clock()
        total = self.budget_s if budget_s is None else budget_s
        deadline = self._within_call(start + total)
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
        """Send until DPG answers, always with the same key, under the one retry policy (dpg.retry): the
        runner's budget and the tool call's deadline both bound it."""
        attempts = 0

        async def once() -> WriteReply:
            nonlocal attempts
            attempts += 1
            remaining = deadline - self._clock()
            # The client's own timeout caps each try; near the end of the budget, still give it a fair chance.
            per_attempt = min(self.client.timeout, max(_MIN_ATTEMPT_S, remaining))
            return await self.client.send_write(method, path, body, key, attempt_timeout=per_attempt)

        async def on_retry(attempt: int, exc: BaseException, delay: float) -> None:
            log.warning(
                "%s %s: attempt %d failed (%s); resending with the same key in %.2fs",
                method,
                path,
                attempt,
                _kind(exc),
                delay,
            )
            await self._report(
                progress, start, self.budget_s, f"{method} {path}: retrying (attempt {attempt + 1})"
            )

        def give_up(exc: BaseException, sent: int) -> DPGError:
            return TransportFailure(
                f"{method} {path}: no answer after {sent} attempt(s) ({type(exc).__name__}); "
                "every attempt used the same Idempotency-Key, so it was applied at most once"
            )

        reply = await with_retries(
            f"{method} {path}",
            once,
            self._policy,
            sleep=self._sleep,
            rng=self._rng,
            deadline=deadline,
            clock=self._clock,
            on_retry=on_retry,
            give_up=give_up,
        )
        return reply, attempts

    def _within_call(self, deadline: float) -> float:
        """`deadline`, or the tool call's own deadline if that comes first (dpg.retry.call_deadline): a part
        of a write in chunks, or a write after a read, never runs past the call's budget; it returns its
        handle ("running") in time instead."""
        left = remaining()
        return deadline if left is None else min(deadline, self._clock() + max(left, 0.0))

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
        accepted: bool = False,
    ) -> WriteOutcome:
        """Poll until the Operation ends (DECISIONS.md: succeeded, or failed/cancelled/expired/rejected) or
        the budget is spent; any other status counts as in progress, and the "running" outcome carries it."""
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
            fresh, etag, floor = await self._poll_once(op, etag, deadline, accepted=accepted)
            if fresh is not None:
                op = fresh
        await self._report(progress, start, total, _status_line(op))
        return WriteOutcome(state="succeeded" if op.succeeded else "failed", operation=op)

    async def _poll_once(
        self, op: Operation, etag: str | None, deadline: float, *, accepted: bool
    ) -> tuple[Operation | None, str | None, float | None]:
        """One poll: (the Operation if changed, its ETag, a 429's Retry-After). Raises what ends the wait."""
        fresh: Operation | None = None
        floor: float | None = None
        # A hanging poll must not outlast the budget: the write is accepted, "running" is the truth.
        with anyio.move_on_after(max(deadline - self._clock(), _MIN_ATTEMPT_S)):
            try:
                fresh, etag = await self.client.get_operation(op.uuid, etag)
            except DPGError as err:
                if accepted and err.status == 404:
                    # DPG accepted the write, then forgot its Operation: the outcome is unknown, and the
                    # id came from DPG, not from the agent.
                    raise DPGError(
                        502,
                        "operation_lost",
                        f"DPG accepted the write as operation {op.uuid}, then no longer knew it",
                        request_id=err.request_id,
                    ) from err
                # A 404 (unknown op) is the truth; an odd body (a proxy's page) is not worth failing over.
                if not err.retryable and err.code != "invalid_response":
                    raise
                floor = err.retry_after if err.status == 429 else None
                log.warning("poll %s failed (%s); still waiting", op.uuid, err.code)
        return fresh, etag, floor

    async def follow_together(
        self,
        outcomes: Sequence[WriteOutcome],
        *,
        start: float,
        deadline: float,
        progress: ProgressFn | None,
    ) -> list[WriteOutcome | DPGError]:
        """Follow several accepted writes (sent with follow=False) to their end within one shared deadline.

        They were sent together, so they end together as a rule: one lead (the last one listed still
        running) is polled on `poll_delay`'s pace; when it ends, the others are polled once, together, and
        those still running go on with a new lead. A batch of writes costs about as many polls as one write,
        plus one per write at the end; at the deadline every part still open is looked at once more. A poll
        that ends a wait badly (the Operation lost) is that write's
        DPGError; the others go on.
        """
        out: list[WriteOutcome | DPGError] = list(outcomes)
        ops = {i: o.operation for i, o in enumerate(outcomes) if o.state == "running" and o.operation}
        etags: dict[int, str | None] = dict.fromkeys(ops)
        floor: float | None = None
        total = len(outcomes)

        async def poll(i: int) -> float | None:
            try:
                fresh, etags[i], at_least = await self._poll_once(ops[i], etags[i], deadline, accepted=True)
            except DPGError as err:
                out[i] = err
                del ops[i]
                return None
            if fresh is not None:
                ops[i] = fresh
                if fresh.is_terminal:
                    del ops[i]
                    done = outcomes[i]
                    out[i] = done.model_copy(
                        update={"state": "succeeded" if fresh.succeeded else "failed", "operation": fresh}
                    )
            return at_least

        async def report() -> None:  # progress counted in parts: it only ever goes up
            if progress is not None:
                with contextlib.suppress(Exception):  # a broken progress channel must not break the write
                    await progress(
                        float(total - len(ops)), float(total), f"{total - len(ops)} of {total} parts done"
                    )

        async def sweep() -> None:
            async with anyio.create_task_group() as tg:
                for i in list(ops):
                    tg.start_soon(poll, i)

        while ops:
            await report()
            remaining = deadline - self._clock()
            if remaining <= 0:
                await sweep()  # a last look at every part, so none that ended is reported running
                break
            lead = max(ops)
            hint = operation_hint(ops[lead])
            elapsed = self._clock() - start
            delay = poll_delay(elapsed, floor=self.poll_initial_s, cap=self.poll_max_s, hint=hint)
            await self._sleep(min(max(delay, floor or 0.0), remaining))
            floor = await poll(lead)
            if lead not in ops and ops:
                await sweep()  # the lead ended: look at the rest, together
        for i in ops:  # the shared deadline passed: still running, and not "applied earlier" yet
            running = out[i]
            if isinstance(running, WriteOutcome):
                out[i] = running.model_copy(update={"operation": ops[i], "replayed": False})
        await report()
        return out

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


# Non-retryable codes that still leave the outcome open: the write may have been applied.
_UNSURE_CODES = frozenset({"idempotency_key_conflict", "operation_lost", "invalid_response"})


def _tells_outcome(entry: Entry) -> bool:
    """A run that ended with DPG's word about an Operation: a joiner can report it without sending."""
    return bool(entry.op) and entry.state in (State.DONE, State.FAILED, State.PARTIAL)


def _status_line(op: Operation) -> str:
    kind = f" ({op.type})" if op.type else ""
    return f"operation {op.uuid}{kind}: {op.status}"


def _kind(exc: BaseException) -> str:
    if isinstance(exc, DPGError):
        return f"HTTP {exc.status} {exc.code}"
    return type(exc).__name__

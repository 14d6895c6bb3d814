"""Every write goes through the WriteRunner; several go as batches of 50, merged into one result.

A tool call is one action in the write ledger: the tool name plus its canonical validated arguments (plus,
via the runner, the DPG origin and the principal). The ledger entry's state decides the key a resend goes out
under (see `dpg_mcp.ledger.rules`), and the words of every result come from that state and DPG's answer:
- "already applied earlier" only when DPG replayed a key that had a final outcome;
- "done" (set, added, deleted...) only when DPG said succeeded;
- a failure says whether anything may have been applied and exactly what calling again will do.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
from pydantic import BaseModel

from dpg_mcp.dpg.errors import DPGError
from dpg_mcp.dpg.models import Operation
from dpg_mcp.dpg.operations import Held, ProgressFn, WriteOutcome, resend_advice
from dpg_mcp.ledger import Entry, Kind, State, canonical_json, digest
from dpg_mcp.tools.base import ToolContext
from dpg_mcp.tools.errors import NeedsConfirmation, error_from_operation, safe_code, safe_field
from dpg_mcp.tools.render import clip, fence, one_line, plural
from dpg_mcp.tools.shapes import RUNNING_NEXT, Failure, WriteResult, dump_failures

BATCH_SIZE = 50  # DPG's batch limit
MAX_FAILURES_SHOWN = 50
# Only when DPG itself replayed the key and its outcome was final (see WriteOutcome.replayed).
REPLAYED = "already applied earlier (DPG replayed it); nothing done twice"
# An identical call was in flight: this one waited for it and sent nothing.
JOINED = "done once, by the identical call that was already running"
_ITEM_FIELD = re.compile(r"^operations\[(\d+)\]\.?(.*)$")
# Refusals that concern one chunk's items only: later chunks may still go through.
_ITEM_STATUSES = {400, 404, 409, 413, 422}
MAX_RESENDS = 10  # refused entries dropped from one chunk before the chunk is given up
# A many-part write starts no new part once this share of the runner's wait budget is spent, so the whole
# call ends within the host's tool timeout (one part can still take up to the full budget).
CHUNKS_SHARE_OF_BUDGET = 0.33
# Chunks sent at once: ImageIds500 makes at most ten, so a 500-image call sends them all together.
MAX_IN_FLIGHT = 10
NOT_APPLIED = "refused with its batch because of other unknown ids; call again without those ids"

Done = Callable[[int], str]


@dataclass(frozen=True)
class WriteItem:
    method: str
    path: str
    body: Any = None
    images: tuple[str, ...] = ()

    def as_batch_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"method": self.method, "path": self.path}
        if self.body is not None:
            entry["body"] = self.body
        return entry

    @property
    def digest(self) -> str:
        """How the ledger names this item among an action's applied items (never its values in clear)."""
        return digest(canonical_json(self.as_batch_entry()))


def fingerprint(tool: str, args: BaseModel | dict[str, Any]) -> str:
    """What the action does: the tool plus its canonical validated arguments (the runner digests it)."""
    if isinstance(args, BaseModel):
        args = args.model_dump(mode="json", exclude_none=True)
    return f"{tool}:{canonical_json(args)}"


async def run_write(
    ctx: ToolContext,
    tool: str,
    args: BaseModel | dict[str, Any],
    method: str,
    path: str,
    body: Any,
    *,
    kind: Kind = Kind.SET,
    progress: ProgressFn | None = None,
) -> WriteOutcome:
    return await ctx.runner.run(
        method,
        path,
        body,
        principal=ctx.principal,
        fingerprint=fingerprint(tool, args),
        kind=kind,
        tool=tool,
        progress=progress if progress is not None else ctx.progress,
    )


def running_result(outcome: WriteOutcome, what: str, tool: str | None = None) -> WriteResult:
    """The handle for a write that outlived the wait: the same shape from every tool."""
    op = outcome.operation
    if op is None:
        # Joined a run (maybe in another process) that has not said which Operation it is yet.
        again = f"call {tool} again with the same arguments" if tool else "call again with the same arguments"
        return WriteResult(
            state="running",
            message="An identical call is still running; its outcome is not known yet. Later, "
            f"{again}: it joins that run or reports its result, and sends nothing twice.",
            next=again,
        )
    what = what if what[1:2].isupper() else what[:1].lower() + what[1:]  # "ZIP of…" stays, "Rating…" lowers
    status = f"; DPG's status: {safe_code(op.status)}" if op.status not in ("running", "pending") else ""
    message = f"Started, not finished within the wait ({what}{status}); nothing is lost"
    if outcome.joined:
        message += "; this call joined the identical one already running"
    return WriteResult(state="running", message=message + ".", operation_id=op.uuid, next=RUNNING_NEXT)


def failures_for(images: Sequence[str | None], err: dict[str, Any] | DPGError) -> list[Failure]:
    if isinstance(err, DPGError):
        code, field, rid = err.code, err.field, err.request_id
        detail: str | None = err.detail or err.message
    else:
        code = str(err.get("code") or "failed")
        detail = _s(err.get("detail")) or _s(err.get("message"))
        field, rid = _s(err.get("field")), _s(err.get("request_id"))
    targets: list[str | None] = list(images) or [None]
    return [Failure(image_uuid=i, code=code, detail=detail, field=field, request_id=rid) for i in targets]


def _s(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _name_item(err: DPGError, chunk: Sequence[WriteItem]) -> None:
    """DPG names a bad batch entry `operations[3].body.x`; the agent only knows its images."""
    m = _ITEM_FIELD.match(err.field or "")
    if m and int(m.group(1)) < len(chunk):
        item = chunk[int(m.group(1))]
        who = f"image {item.images[0]}" if item.images else f"request {item.path}"
        err.field = f"{who} {m.group(2)}".strip()


def operation_error(op: Operation) -> DPGError:
    """A failed, cancelled, expired or rejected Operation as the call's error, naming how it ended."""
    if op.error is None and op.status != "failed":
        op = op.model_copy(
            update={
                "error": {
                    "code": f"operation_{op.status}",
                    "message": f"DPG ended the operation {op.status}; nothing was applied",
                }
            }
        )
    return error_from_operation(op)


async def write_one(
    ctx: ToolContext,
    tool: str,
    fp_args: BaseModel | dict[str, Any],
    item: WriteItem,
    done: Done,
    *,
    kind: Kind = Kind.SET,
) -> tuple[WriteResult, WriteOutcome]:
    """One direct request. An Operation that ended badly is raised as an OperationFailed (a DPGError)."""
    outcome = await run_write(ctx, tool, fp_args, item.method, item.path, item.body, kind=kind)
    if outcome.state == "running":
        return running_result(outcome, done(len(item.images)), tool), outcome
    if outcome.state == "failed" and outcome.operation is not None:
        raise operation_error(outcome.operation)
    result = _finish(done, len(item.images) or 1, [], 0, 0)
    _say_how(result, outcome)
    return result, outcome


CREATED_EARLIER = "created earlier (DPG replayed the same call) and still there; nothing created twice"


async def create_one(
    ctx: ToolContext,
    tool: str,
    args: BaseModel | dict[str, Any],
    item: WriteItem,
    done: Done,
    *,
    made_of: Callable[[WriteOutcome], str | None],
    exists: Callable[[str], Awaitable[bool]],
) -> tuple[WriteResult, WriteOutcome]:
    """A create (create_set, build_archive): a resend reuses the key while the ledger says it may help.

    When DPG replays a creation, one read checks that what it made still exists: if so the result says it was
    created earlier; if it is gone, it is created anew under a fresh key.
    """
    outcome = await run_write(ctx, tool, args, item.method, item.path, item.body, kind=Kind.CREATE)
    made = made_of(outcome) if outcome.state == "succeeded" else None
    if outcome.replayed and made is not None and not await exists(made):
        outcome = await ctx.runner.run(
            item.method,
            item.path,
            item.body,
            principal=ctx.principal,
            fingerprint=fingerprint(tool, args),
            kind=Kind.CREATE,
            tool=tool,
            progress=ctx.progress,
            fresh=True,
        )
    if outcome.state == "running":
        return running_result(outcome, done(len(item.images)), tool), outcome
    if outcome.state == "failed" and outcome.operation is not None:
        raise operation_error(outcome.operation)
    result = _finish(done, len(item.images) or 1, [], 0, 0)
    if outcome.replayed:
        result.message = result.message[:-1] + f"; {CREATED_EARLIER}."
    else:
        _say_how(result, outcome)
    return result, outcome


def _say_how(result: WriteResult, outcome: WriteOutcome) -> None:
    """Append how the success came about, when it was not simply this call's own send."""
    if outcome.replayed:
        result.message = result.message[:-1] + f"; {REPLAYED}."
    elif outcome.joined:
        result.message = result.message[:-1] + f"; {JOINED}."


async def apply_writes(
    ctx: ToolContext,
    tool: str,
    args: BaseModel,
    items: Sequence[WriteItem],
    done: Done,
    *,
    fp_args: BaseModel | dict[str, Any] | None = None,
) -> WriteResult:
    """Send `items` (one direct request, or batches of 50) and merge everything into one WriteResult.

    `done(n)` says what changed on n images ("Rating 4 set on 3 images"). `fp_args` replaces `args` in the
    fingerprint when the body was computed from DPG's current state (so a changed state is a new action).
    The whole call is one action in the ledger: when part of it applied and part did not (`partial`), the
    same call again sends only the items that did not succeed, under a new key, and merges both.
    """
    fp = args if fp_args is None else fp_args
    if len(items) == 1:
        result, _ = await write_one(ctx, tool, fp, items[0], done)
        return result

    async def go(held: Held) -> WriteResult:
        if held.joined:
            return _joined_batch(held, items, done, tool)
        return await _send_batches(ctx, tool, held, items, done)

    return await ctx.runner.within(
        ctx.principal,
        fingerprint(tool, fp),
        go,
        kind=Kind.SET,
        tool=tool,
        usable=lambda e: e.state in (State.DONE, State.PARTIAL),
    )


def _joined_batch(held: Held, items: Sequence[WriteItem], done: Done, tool: str) -> WriteResult:
    """The result of the identical batch call this one waited for, from what the ledger recorded."""
    entry: Entry | None = held.joined_entry
    images = _images(items)
    if entry is None:
        return running_result(WriteOutcome(state="running"), done(len(images)), tool)
    applied = set(entry.done_items)
    ok_images = _images([i for i in items if i.digest in applied]) if entry.state is State.PARTIAL else images
    result = _finish(done, len(ok_images), [], 0, 0)
    if entry.state is State.PARTIAL:
        rest = len(images) - len(ok_images)
        result.state = "partial"
        result.message = result.message[:-1] + (
            " by the identical call that was already running; "
            f"{plural(rest, 'image')} did not succeed there. "
            f"Call {tool} again with the same arguments to send only those."
        )
        result.failed = rest
        return result
    result.message = result.message[:-1] + f"; {JOINED}."
    return result


def _images(items: Sequence[WriteItem]) -> list[str]:
    return list(dict.fromkeys(i for item in items for i in item.images))


async def _send_batches(
    ctx: ToolContext, tool: str, held: Held, items: Sequence[WriteItem], done: Done
) -> WriteResult:
    """Send the items not yet applied in chunks of 50, settle the action, and merge one result.

    The chunks go out at once (up to MAX_IN_FLIGHT), share one deadline, and their Operations are followed
    together (`WriteRunner.follow_together`); their outcomes are then merged in chunk order.
    """
    previous = held.previous
    applied_before = (
        set(previous.done_items) if previous is not None and previous.state is State.PARTIAL else set()
    )
    earlier = [item for item in items if item.digest in applied_before]
    todo = [item for item in items if item.digest not in applied_before]
    images = _images(todo)
    earlier_images = set(_images(earlier)) - set(images)
    chunks = [todo[i : i + BATCH_SIZE] for i in range(0, len(todo), BATCH_SIZE)]
    failures: list[Failure] = []
    bad: set[str] = set()
    unsent: set[str] = set()
    applied: list[str] = sorted(applied_before)
    runner = ctx.runner
    start = runner._clock()
    deadline = start + runner.budget_s  # one deadline for every chunk
    sent: list[_Sent | None] = [None] * len(chunks)
    started = ctx.clock()
    stopped = False
    limiter = anyio.CapacityLimiter(MAX_IN_FLIGHT)

    async def send(index: int, chunk: list[WriteItem]) -> None:
        nonlocal stopped
        async with limiter:
            # A chunk still queued when the call's share of the budget is spent is not started: the same
            # call again sends it (only when there are more chunks than MAX_IN_FLIGHT).
            if stopped or (index and ctx.clock() - started > runner.budget_s * CHUNKS_SHARE_OF_BUDGET):
                stopped = True
                return
            sent[index] = await _send_chunk(ctx, held, chunk, start=start, deadline=deadline)

    async with anyio.create_task_group() as tg:
        for index, chunk in enumerate(chunks):
            if MAX_IN_FLIGHT == 1:
                await send(index, chunk)  # one at a time, in order
            else:
                tg.start_soon(send, index, chunk)

    # Follow every accepted chunk's Operation together, on one pace.
    waiting = [i for i, x in enumerate(sent) if x is not None and x.outcome is not None]
    ended = await runner.follow_together(
        [x.outcome for i in waiting if (x := sent[i]) is not None and x.outcome is not None],
        start=start,
        deadline=deadline,
        progress=ctx.progress,
    )
    for i, final in zip(waiting, ended, strict=True):
        chunk_sent = sent[i]
        assert chunk_sent is not None
        if isinstance(final, DPGError):
            sent[i] = _Sent(None, chunk_sent.pending, chunk_sent.dropped, final)
        else:
            chunk_sent.outcome = final

    async def settle(state: State) -> None:
        await held.settle(state, done_items=tuple(dict.fromkeys(applied)))

    def finish(ok: int, failed: int, not_sent: int) -> WriteResult:
        return _finish(
            done, ok + len(earlier_images), failures, failed, not_sent, earlier=len(earlier_images)
        )

    answered = [x for x in sent if x is not None]
    if answered and all(x.error is not None and not x.dropped for x in answered) and not applied_before:
        first = answered[0].error
        assert first is not None
        if not any(x.error is not None and x.error.retryable for x in answered):
            await settle(State.FAILED)
        raise first  # nothing applied: the call's error (the runner adds what a resend does)
    unsent = {
        i for chunk, x in zip(chunks, sent, strict=True) if x is None for item in chunk for i in item.images
    }
    no_answer: DPGError | None = None
    running: list[WriteOutcome] = []
    for x in answered:
        for item, refusal in x.dropped:
            failures += failures_for(list(item.images), refusal)
            bad.update(item.images)
        if x.error is not None:
            chunk_images = [i for item in x.pending for i in item.images]
            failures += failures_for(chunk_images, x.error)
            bad.update(chunk_images)
            if x.error.status not in _ITEM_STATUSES:
                no_answer = no_answer or x.error  # this part may have been applied
            continue
        if x.outcome is None:
            continue
        if x.outcome.state == "running":
            running.append(x.outcome)
            continue
        ok_items, chunk_bad = _chunk_result(x.outcome.operation, x.pending)
        applied += [item.digest for item in ok_items]
        for image, facts in chunk_bad:
            failures += failures_for([image], facts)
            if image:
                bad.add(image)
    unsent -= bad
    if running:
        await settle(State.UNKNOWN)
        result = running_result(running[0], done(len(images)), tool)
        if len(running) > 1:
            result.message += (
                f" {len(running)} of {len(chunks)} parts are still running; after check_operation, call "
                f"{tool} again with the same arguments."
            )
        if unsent:
            result.message += (
                f" {plural(len(unsent), 'image')} not sent yet: after check_operation, call {tool} "
                "again with the same arguments."
            )
        result.failures = dump_failures(failures[:MAX_FAILURES_SHOWN])
        result.failed = len(bad)
        return result
    if no_answer is not None:
        # No answer for a part: it may have been applied.
        await settle(State.UNKNOWN)
        result = finish(_ok(images, bad, unsent), len(bad), len(unsent))
        result.message = result.message[:-1] + ". " + resend_advice(Kind.SET, tool)
        return result
    if unsent:
        # Stopped in time for the host's tool timeout; the same call again sends the rest.
        await settle(State.PARTIAL)
        result = finish(_ok(images, bad, unsent), len(bad), 0)
        result.state = "partial"
        result.message = result.message[:-1] + (
            f"; {plural(len(unsent), 'image')} not sent yet, to stay within the time limit. "
            f"Call {tool} again with the same arguments to send only those."
        )
        result.next = f"call {tool} again with the same arguments"
        return result
    ok = _ok(images, bad, unsent)
    if not failures:
        await settle(State.DONE)
    else:
        await settle(State.PARTIAL if applied else State.FAILED)
    result = finish(ok, len(bad), len(unsent))
    if failures and applied:
        result.message = result.message[:-1] + (
            f" Calling {tool} again with the same arguments sends only the {plural(len(bad), 'image')} "
            "that did not succeed."
        )
    return result


@dataclass
class _Sent:
    outcome: WriteOutcome | None  # None: the chunk was refused (`error`) or every entry was dropped
    pending: list[WriteItem]  # the items the outcome (or the error) is about
    dropped: list[tuple[WriteItem, DPGError]]  # entries DPG refused by name, with their refusal
    error: DPGError | None = None


async def _send_chunk(
    ctx: ToolContext, held: Held, chunk: Sequence[WriteItem], *, start: float, deadline: float
) -> _Sent:
    """Send one chunk as a batch under its own key; drop entries DPG refuses by name and send the rest again.

    Every other refusal of the chunk (or no answer at all) comes back as `error`, never raised, so the caller
    can merge it with what other chunks did.
    """
    pending = list(chunk)
    dropped: list[tuple[WriteItem, DPGError]] = []
    runner = ctx.runner
    while pending:
        body = {"operations": [item.as_batch_entry() for item in pending]}
        try:
            # Each body gets its own key (a chunk without a refused entry is another request); every retry
            # of one body reuses its key.
            outcome = await runner.send(
                "POST",
                "/v1/operations/batch",
                body,
                held,
                start=start,
                deadline=deadline,
                progress=None,
                key=_fresh_key(),
                follow=False,  # accepted is enough here: the caller follows every chunk together
            )
            return _Sent(outcome, pending, dropped)
        except DPGError as err:
            culprit = _refused_entry(err, pending)
            _name_item(err, pending)
            if culprit is None:
                return _Sent(None, pending, dropped, err)
            # DPG checks a batch whole: one unknown id refuses it all. Drop that entry, send the rest.
            dropped.append((pending.pop(culprit), err))
            if len(dropped) > MAX_RESENDS:
                # too many unknown ids: those are named, the rest of the chunk was not applied
                gave_up = DPGError(
                    409, "not_applied", "not applied", detail=NOT_APPLIED, request_id=err.request_id
                )
                return _Sent(None, pending, dropped, gave_up)
    return _Sent(None, pending, dropped)


def _fresh_key() -> str:
    from dpg_mcp.ledger.rules import new_key

    return new_key()


def _ok(images: list[str], bad: set[str], unsent: set[str]) -> int:
    return len([i for i in images if i not in bad and i not in unsent])


def _refused_entry(err: DPGError, chunk: Sequence[WriteItem]) -> int | None:
    """The position of the batch entry DPG refused for its own sake (an unknown image), else None.

    Only a not-found names one entry's own problem; a validation error usually repeats in every entry
    (the same keyword or value is sent for each image), so resending without one would only fail again.
    """
    if err.status != 404 and not err.code.endswith("not_found"):
        return None
    m = _ITEM_FIELD.match(err.field or "")
    if m is None or int(m.group(1)) >= len(chunk):
        return None
    return int(m.group(1))


def chunk_failures(
    op: Operation | None, chunk: Sequence[WriteItem]
) -> list[tuple[str | None, dict[str, Any]]]:
    """(image, error) for each failed child of a batch Operation (or of a failed batch without children)."""
    if op is None:
        return []
    result = op.result or {}
    children = result.get("children") if isinstance(result, dict) else None
    out: list[tuple[str | None, dict[str, Any]]] = []
    if not isinstance(children, list) or not children:
        if op.status == "failed":
            err = op.error or {"code": "failed"}
            targets: list[str | None] = [i for item in chunk for i in item.images] or list(
                op.image_public_uuids
            )
            out += [(i, err) for i in targets or [None]]
        return out
    for pos, raw in enumerate(children):
        child = Operation.model_validate(raw) if isinstance(raw, dict) and raw.get("uuid") else None
        status = child.status if child else str(raw.get("status") if isinstance(raw, dict) else "failed")
        if status == "succeeded":
            continue
        err = (child.error if child else None) or {"code": "failed" if status == "failed" else status}
        item_images: list[str | None] = list(chunk[pos].images) if pos < len(chunk) else []
        targets = item_images or list(child.image_public_uuids if child else []) or [None]
        out += [(i, err) for i in targets]
    return out


def _chunk_result(
    op: Operation | None, pending: Sequence[WriteItem]
) -> tuple[list[WriteItem], list[tuple[str | None, dict[str, Any]]]]:
    """(the items DPG applied, (image, error) of those it did not) for one ended batch Operation."""
    bad = chunk_failures(op, pending)
    if op is None:
        return list(pending), bad
    result = op.result or {}
    children = result.get("children") if isinstance(result, dict) else None
    if isinstance(children, list) and children:
        ok = [
            pending[pos]
            for pos, raw in enumerate(children)
            if pos < len(pending) and isinstance(raw, dict) and str(raw.get("status")).lower() == "succeeded"
        ]
        return ok, bad
    return (list(pending) if op.succeeded else []), bad


def _finish(
    done: Done, ok: int, failures: list[Failure], failed: int, not_sent: int, *, earlier: int = 0
) -> WriteResult:
    state = "succeeded" if not failures and not not_sent else ("failed" if ok == 0 else "partial")
    message = done(ok)
    if earlier:
        message += f" ({earlier} of them by the earlier call, the rest now)"
    if failed:
        message += f"; {plural(failed, 'image')} failed (see failures)"
    if not_sent:
        message += f"; {plural(not_sent, 'image')} not sent (an error stopped the rest)"
    return WriteResult(
        state=state,
        message=message + ".",
        succeeded=ok,
        failed=failed,
        failures=dump_failures(failures[:MAX_FAILURES_SHOWN]),
    )


def write_text(result: WriteResult) -> str:
    """The text block of a write: the message, the handle, and the first failures.

    A failure's code and image are ours to show; DPG's detail may repeat gallery text, so it is fenced.
    """
    lines = [result.message]
    if result.state == "running" and result.operation_id:
        lines.append(f"operation_id: {result.operation_id} — {RUNNING_NEXT}.")
    details: list[str] = []
    for f in result.failures[:5]:
        where = f"image {f['image_uuid']}" if f.get("image_uuid") else "request"
        field = safe_field(f.get("field"))
        if field and f.get("image_uuid"):
            # the line names the image already: "image X body.rating" -> "body.rating"
            field = field.removeprefix(f"image {f['image_uuid']}").strip()
            field = None if field in ("", "path") else field
        lines.append(f"- {where}: {safe_code(str(f.get('code')))}" + (f" (field `{field}`)" if field else ""))
        if f.get("detail"):
            details.append(f"{where}: {one_line(clip(str(f['detail']), 300))}")
    if len(result.failures) > 5:
        lines.append(f"- … {len(result.failures) - 5} more in the structured result.")
    if details:
        lines.append("DPG's words about them (quoted data):")
        lines.append(fence("\n".join(details)))
    return "\n".join(lines)


async def confirmed(ctx: ToolContext, confirm_arg: bool, question: str) -> bool:
    """Ask the user through the host when it can; else rely on the confirm=true argument.

    True = go ahead; False = the user declined or cancelled. Raises ToolInputError when nobody could be asked
    and confirm=true was not given.
    """
    if ctx.confirm is not None:
        answer = await ctx.confirm(question)
        if answer is not None:
            return answer
    if confirm_arg:
        return True
    # The question may quote gallery text (titles): it goes to the user, never into an error for the agent.
    raise NeedsConfirmation("the host cannot ask the user; check with them, then call with confirm=true")


def declined() -> WriteResult:
    return WriteResult(state="cancelled", message="Nothing was done: the user did not confirm.")

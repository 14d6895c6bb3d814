"""Every write goes through the WriteRunner; several go as batches of 50, merged into one result.

The fingerprint is the tool name plus its canonical arguments (plus the chunk index for batches), so calling a
tool again with the same arguments reuses the same Idempotency-Key and DPG does the work once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from dpg_mcp.dpg.errors import DPGError
from dpg_mcp.dpg.models import Operation
from dpg_mcp.dpg.operations import ProgressFn, WriteOutcome
from dpg_mcp.state import make_fingerprint
from dpg_mcp.tools.base import ToolContext
from dpg_mcp.tools.errors import NeedsConfirmation, error_from_operation, safe_code, safe_field
from dpg_mcp.tools.render import clip, fence, one_line, plural
from dpg_mcp.tools.shapes import RUNNING_NEXT, Failure, WriteResult, dump_failures

BATCH_SIZE = 50  # DPG's batch limit
MAX_FAILURES_SHOWN = 50
REPLAYED = "already applied earlier; nothing done twice"
_ITEM_FIELD = re.compile(r"^operations\[(\d+)\]\.?(.*)$")
# Refusals that concern one chunk's items only: later chunks may still go through.
_ITEM_STATUSES = {400, 404, 409, 413, 422}
RESEND_STRIDE = 1000  # part numbers of a chunk sent again without a refused entry: index + 1000 * n
MAX_RESENDS = 10  # refused entries dropped from one chunk before the chunk is given up
# A many-part write starts no new part once this share of the runner's wait budget is spent, so the whole
# call ends within the host's tool timeout (one part can still take up to the full budget).
CHUNKS_SHARE_OF_BUDGET = 0.33
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


def fingerprint(tool: str, args: BaseModel | dict[str, Any], part: int | None = None) -> str:
    """ "tool:<hash of canonical args>", plus "#<chunk>" for a batch part (the memo groups the parts)."""
    if isinstance(args, BaseModel):
        args = args.model_dump(mode="json", exclude_none=True)
    fp = make_fingerprint(tool, args)
    return fp if part is None else f"{fp}#{part}"


async def run_write(
    ctx: ToolContext,
    tool: str,
    args: BaseModel | dict[str, Any],
    method: str,
    path: str,
    body: Any,
    *,
    part: int | None = None,
    progress: ProgressFn | None = None,
) -> WriteOutcome:
    return await ctx.runner.run(
        method,
        path,
        body,
        principal=ctx.principal,
        fingerprint=fingerprint(tool, args, part),
        progress=progress if progress is not None else ctx.progress,
    )


def running_result(outcome: WriteOutcome, what: str) -> WriteResult:
    """The handle for a write that outlived the wait: the same shape from every tool."""
    op_id = outcome.operation.uuid if outcome.operation else None
    what = what if what[1:2].isupper() else what[:1].lower() + what[1:]  # "ZIP of…" stays, "Rating…" lowers
    message = f"Started, not finished within the wait ({what}); nothing is lost"
    if outcome.replayed:
        message += f"; {REPLAYED}"
    return WriteResult(state="running", message=message + ".", operation_id=op_id, next=RUNNING_NEXT)


def _chunk_progress(ctx: ToolContext, index: int, count: int) -> ProgressFn | None:
    """Runner progress of one chunk, mapped into the whole call so it only ever goes up."""
    report = ctx.progress
    if report is None:
        return None

    async def chunk_report(done: float, total: float | None, message: str) -> None:
        frac = min(max(done / total, 0.0), 1.0) if total else 0.0
        await report(index + frac, float(count), f"part {index + 1} of {count}: {message}")

    return chunk_report


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


async def write_one(
    ctx: ToolContext,
    tool: str,
    fp_args: BaseModel | dict[str, Any],
    item: WriteItem,
    done: Done,
) -> tuple[WriteResult, WriteOutcome]:
    """One direct request. A failed Operation is raised as an OperationFailed (a DPGError)."""
    outcome = await run_write(ctx, tool, fp_args, item.method, item.path, item.body)
    if outcome.state == "running":
        return running_result(outcome, done(len(item.images))), outcome
    if outcome.state == "failed" and outcome.operation is not None:
        raise error_from_operation(outcome.operation)
    return _finish(done, len(item.images) or 1, [], 0, 0, outcome.replayed), outcome


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
    fingerprint when the body was computed from DPG's current state (so a changed state is a new write).
    """
    fp = args if fp_args is None else fp_args
    if len(items) == 1:
        result, _ = await write_one(ctx, tool, fp, items[0], done)
        return result

    images = list(dict.fromkeys(i for item in items for i in item.images))
    chunks = [list(items[i : i + BATCH_SIZE]) for i in range(0, len(items), BATCH_SIZE)]
    failures: list[Failure] = []
    bad: set[str] = set()
    unsent: set[str] = set()
    replayed = False
    started = ctx.clock()
    for index, chunk in enumerate(chunks):
        later = {i for rest in chunks[index + 1 :] for item in rest for i in item.images}
        if index and ctx.clock() - started > ctx.runner.budget_s * CHUNKS_SHARE_OF_BUDGET:
            # Stop starting parts in time for the host's tool timeout; the same call again finishes the job.
            rest = {i for item in chunk for i in item.images} | later
            unsent = rest - bad
            result = _finish(done, _ok(images, bad, unsent), failures, len(bad), 0, replayed)
            result.state = "partial"
            result.message = result.message[:-1] + (
                f"; {plural(len(unsent), 'image')} not sent yet, to stay within the time limit. "
                f"Call {tool} again with the same arguments to send them (parts done are not done twice)."
            )
            result.next = f"call {tool} again with the same arguments"
            return result
        progress = _chunk_progress(ctx, index, len(chunks))
        pending = list(chunk)
        resends = 0
        outcome: WriteOutcome | None = None
        while pending:
            body = {"operations": [item.as_batch_entry() for item in pending]}
            # A chunk sent again without a refused entry is another body: another part, another key.
            part = index + RESEND_STRIDE * resends
            try:
                outcome = await run_write(
                    ctx, tool, fp, "POST", "/v1/operations/batch", body, part=part, progress=progress
                )
                break
            except DPGError as err:
                culprit = _refused_entry(err, pending)
                _name_item(err, pending)
                if culprit is not None:
                    # DPG checks a batch whole: one unknown id refuses it all. Drop that entry, send the rest.
                    item = pending.pop(culprit)
                    failures += failures_for(list(item.images), err)
                    bad.update(item.images)
                    if resends < MAX_RESENDS:
                        resends += 1
                        continue
                    # too many unknown ids: this one is named, the rest of the chunk was not applied
                    err = DPGError(
                        409, "not_applied", "not applied", detail=NOT_APPLIED, request_id=err.request_id
                    )
                elif index == 0 and not failures:
                    raise  # nothing applied yet: report it as the call's error
                chunk_images = [i for item in pending for i in item.images]
                failures += failures_for(chunk_images, err)
                bad.update(chunk_images)
                if err.status in _ITEM_STATUSES:
                    break
                unsent = later - bad
                return _finish(done, _ok(images, bad, unsent), failures, len(bad), len(unsent), replayed)
        if outcome is None:
            continue
        replayed = replayed or outcome.replayed
        if outcome.state == "running":
            result = running_result(outcome, done(len(images)))
            if later:
                result.message += (
                    f" {plural(len(later - bad), 'image')} not sent yet: after check_operation, call {tool} "
                    "again with the same arguments."
                )
            result.failures = dump_failures(failures[:MAX_FAILURES_SHOWN])
            result.failed = len(bad)
            return result
        for image, err_facts in chunk_failures(outcome.operation, pending):
            failures += failures_for([image], err_facts)
            if image:
                bad.add(image)
    return _finish(done, _ok(images, bad, unsent), failures, len(bad), len(unsent), replayed)


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


def _finish(
    done: Done, ok: int, failures: list[Failure], failed: int, not_sent: int, replayed: bool
) -> WriteResult:
    state = "succeeded" if not failures and not not_sent else ("failed" if ok == 0 else "partial")
    message = done(ok)
    if failed:
        message += f"; {plural(failed, 'image')} failed (see failures)"
    if not_sent:
        message += f"; {plural(not_sent, 'image')} not sent (an error stopped the rest; safe to call again)"
    if replayed:
        message += f"; {REPLAYED}"
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
    if result.state == "running":
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

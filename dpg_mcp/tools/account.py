"""Operations still running, and the DPG guide."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from dpg_mcp.dpg.models import Operation
from dpg_mcp.guide import fetch_guide
from dpg_mcp.tools.base import Args, Out, ToolContext, ToolResult
from dpg_mcp.tools.inputs import Id, Offset
from dpg_mcp.tools.render import fit, plural, stamp
from dpg_mcp.tools.shapes import Failure, WriteResult, dump_failures
from dpg_mcp.tools.writes import MAX_FAILURES_SHOWN, chunk_failures, failures_for, running_result, write_text

GUIDE_CHUNK = 50_000  # characters per call, in the text block only

# ------------------------------------------------------------------------------------------- check_operation


class CheckOperationArgs(Args):
    operation_id: Id = Field(description="From a running write's result")


class OperationResult(WriteResult):
    type: str | None = None
    result: dict[str, Any] | None = None


async def check_operation(ctx: ToolContext, args: CheckOperationArgs) -> ToolResult:
    outcome = await ctx.runner.wait(args.operation_id, progress=ctx.progress)
    op = outcome.operation or Operation(uuid=args.operation_id)
    kind = op.type or "write"
    if outcome.state == "running":
        base = running_result(outcome, f"Operation {op.uuid} ({kind})")
        out = OperationResult(**base.model_dump(), type=op.type)
        return ToolResult(out, write_text(out))
    failures: list[Failure] = []
    for image, err in chunk_failures(op, []):
        failures += failures_for([image], err)
    res = op.result if isinstance(op.result, dict) else None
    if res and isinstance(res.get("children"), list):
        res = {k: v for k, v in res.items() if k != "children"}  # children are summed up in the counts
    ok_count = _count(res, "succeeded")
    bad_count = _count(res, "failed")
    if outcome.state == "succeeded" and not failures:
        state = "succeeded"
        message = f"Operation {op.uuid} ({kind}) succeeded"
    else:
        state = "partial" if outcome.state == "succeeded" else "failed"
        ended = "failed" if op.status in ("failed", "succeeded") else f"ended {op.status}"
        message = f"Operation {op.uuid} ({kind}) {'partly failed' if state == 'partial' else ended}"
    if ok_count is not None or bad_count is not None:
        message += f": {plural(ok_count or 0, 'item')} succeeded, {bad_count or 0} failed"
    n_images = len(op.image_public_uuids)
    if n_images and ok_count is None:
        message += f" ({plural(n_images, 'image')})"
    out = OperationResult(
        state=state,
        message=message + ".",
        succeeded=ok_count if ok_count is not None else (n_images if state == "succeeded" else 0),
        failed=bad_count if bad_count is not None else len({f.image_uuid for f in failures}),
        failures=dump_failures(failures[:MAX_FAILURES_SHOWN]),
        operation_id=op.uuid,
        type=op.type,
        result=fit(res, 20_000) if res else None,
    )
    text = write_text(out)
    if isinstance(res, dict) and res.get("url"):
        text += f"\nLink (expires {stamp(res.get('expires_at'))}): {res['url']}"
    return ToolResult(out, text)


def _count(res: dict[str, Any] | None, key: str) -> int | None:
    value = (res or {}).get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# ------------------------------------------------------------------------------------------- get_guide


class GetGuideArgs(Args):
    full: bool = Field(False, description="With the whole API reference (long)")
    offset: Offset = Field(0, description="Character offset to read on from")


class GuideResult(Out):
    """Where the guide came from and how far this part reaches; the guide itself is the text block, once."""

    source: str = Field(description="api or bundled")
    chars: int = Field(description="characters of the guide in this part")
    next_offset: int | None = None


async def get_guide(ctx: ToolContext, args: GetGuideArgs) -> ToolResult:
    guide, origin = await fetch_guide(ctx.client, full=args.full)
    part = guide[args.offset : args.offset + GUIDE_CHUNK]
    end = args.offset + len(part)
    next_offset = end if end < len(guide) else None
    out = GuideResult(source=origin, chars=len(part), next_offset=next_offset)
    text = part
    if next_offset is not None:
        text += f"\n\n[guide continues: call get_guide with offset={next_offset}]"
    return ToolResult(out, text)

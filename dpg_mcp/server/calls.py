"""One tools/call: guard, validate, run the handler with progress and confirmation, shape the result."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult, InputRequiredResult
from pydantic import ValidationError

from dpg_mcp.dpg.errors import DPGError
from dpg_mcp.server.caller import CallerSource, DPGState
from dpg_mcp.server.confirm import AskUser, ask_user, confirm_fn, is_modern
from dpg_mcp.server.results import error_result, success_result
from dpg_mcp.server.schemas import annotations_for, input_schema, output_schema, pre_parse
from dpg_mcp.server.sdk_adapter import Tool, make_tool
from dpg_mcp.server.visibility import guard
from dpg_mcp.tools import ToolContext, ToolSpec
from dpg_mcp.tools.errors import ToolInputError, agent_message

log = logging.getLogger(__name__)


def _progress_fn(ctx: Context[Any, Any]) -> Callable[[float, float | None, str], Awaitable[None]]:
    # report_progress is a no-op when the caller sent no progress token, so it is always safe to pass.
    async def progress(done: float, total: float | None, message: str) -> None:
        try:
            await ctx.report_progress(done, total, message)
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:  # a lost progress note must never fail the write
            log.debug("progress notification failed: %s", type(exc).__name__)

    return progress


async def _announce_tools_changed(ctx: Context[Any, Any]) -> None:
    try:
        if is_modern(ctx):
            await ctx.notify_tools_changed()
        else:
            await ctx.session.send_tool_list_changed()
    except Exception as exc:
        log.info("could not announce the tool list change: %s", type(exc).__name__)


async def call_tool(
    state: DPGState, spec: ToolSpec, arguments: dict[str, Any], ctx: Context[Any, Any]
) -> CallToolResult | InputRequiredResult:
    # Checked here as well as in the middleware: whatever path reaches the tool, a hidden one never runs.
    refusal = guard(state, spec.name)
    if refusal is not None:
        return refusal
    try:
        args = spec.input_model.model_validate(pre_parse(spec.input_model, arguments))
    except ValidationError as exc:
        return error_result(agent_message(exc))
    tctx = ToolContext(
        client=state.client,
        runner=state.runner,
        principal=state.principal,
        progress=_progress_fn(ctx),
        confirm=confirm_fn(ctx),
    )
    try:
        result = await spec.handler(tctx, args)
    except AskUser as ask:
        return ask_user(ask.question)
    except DPGError as exc:
        if (
            exc.status == 403
            and exc.code in ("forbidden", "api_not_enabled")
            and await state.refresh_capabilities()
        ):
            await _announce_tools_changed(ctx)
        return error_result(agent_message(exc, read_only=spec.read_only))
    except (ToolInputError, ValidationError) as exc:
        return error_result(agent_message(exc))
    except anyio.get_cancelled_exc_class():
        raise
    except Exception:
        log.exception("tool %s failed unexpectedly", spec.name)
        return error_result(
            f"{spec.name} failed inside dpg-mcp (a bug, not your input). If it was a write, read the item "
            "back before calling again; calling again with the same arguments never creates anything twice."
        )
    return success_result(result)


def tool_for(source: CallerSource, spec: ToolSpec) -> Tool:
    async def run(arguments: dict[str, Any], ctx: Context[Any, Any]) -> CallToolResult | InputRequiredResult:
        # The caller is resolved from the request itself, not taken from the middleware: one less thing a
        # bypassed or reordered middleware could get wrong.
        state = await source.resolve(ctx.request_context.request)
        return await call_tool(state, spec, arguments, ctx)

    return make_tool(
        run,
        name=spec.name,
        title=spec.title,
        description=spec.description,
        input_schema=input_schema(spec.input_model),
        output_schema=output_schema(spec.output_model),
        annotations=annotations_for(spec),
    )

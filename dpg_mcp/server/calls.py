"""One tools/call: guard, validate, run the handler with progress and confirmation, shape the result."""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import anyio
import platformdirs
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult, InputRequiredResult
from pydantic import ValidationError

from dpg_mcp.dpg.errors import DPGError
from dpg_mcp.dpg.retry import call_deadline, restart_deadline
from dpg_mcp.server.caller import CallerSource, DPGState
from dpg_mcp.server.confirm import AskUser, ask_user, confirm_fn, is_modern
from dpg_mcp.server.results import error_result, success_result
from dpg_mcp.server.schemas import annotations_for, input_schema, output_schema
from dpg_mcp.server.sdk_adapter import Tool, make_tool
from dpg_mcp.server.visibility import guard
from dpg_mcp.tools import ToolContext, ToolSpec, input_model_for, publishes_output_schema
from dpg_mcp.tools.egress import seal, seal_text
from dpg_mcp.tools.errors import ToolInputError, agent_message
from dpg_mcp.tools.inputs import parse_args

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


def upload_roots_fn(state: DPGState, ctx: Context[Any, Any]) -> Callable[[], Awaitable[list[Path]]]:
    """Where upload_image may read files: the host's MCP roots when it offers them, else --upload-root,
    else the user's pictures folder."""

    async def roots() -> list[Path]:
        caps = ctx.client_capabilities
        if caps is not None and caps.roots is not None and not is_modern(ctx):
            try:
                with anyio.fail_after(5):
                    listed = await ctx.session.list_roots()
                uris = [urlsplit(str(r.uri)) for r in listed.roots]
                paths = [Path(url2pathname(u.path)) for u in uris if u.scheme == "file"]
                if paths:
                    return paths
            except Exception as exc:  # the host could not answer: fall back to the configured folders
                log.info("roots/list failed (%s); using the configured upload roots", type(exc).__name__)
        if state.settings.upload_roots:
            return [Path(r) for r in state.settings.upload_roots]
        return [Path(platformdirs.user_pictures_dir())]

    return roots


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
    model = input_model_for(spec, state.capabilities)  # the schema this caller was shown
    try:
        # Strictly as the published schema says: no JSON-in-a-string, no "true" for true, no null for absent.
        args = parse_args(model, arguments)
    except ToolInputError as exc:
        return error_result(agent_message(exc))
    budget = state.settings.wait_budget_s
    scope = anyio.CancelScope()
    tctx = ToolContext(
        client=state.client,
        runner=state.runner,
        principal=state.principal,
        progress=_progress_fn(ctx),
        confirm=_patient(confirm_fn(ctx), scope, budget),
        # A hosted server never reads its own disk for a caller (nor a remote host's roots on it).
        upload_roots=upload_roots_fn(state, ctx) if state.uploads.local_files else None,
        uploads=state.uploads,
        visibility=state.visibility,
    )
    # Every call ends within its budget: each request to DPG is cut at the call's deadline and no retry
    # starts that would pass it (dpg.retry); the scope is the backstop for anything else that hangs.
    with call_deadline(budget), scope:
        scope.deadline = anyio.current_time() + budget + DEADLINE_GRACE_S
        return await _run(state, spec, tctx, args, ctx)
    return error_result(
        f"{spec.name} did not finish within this call's time budget ({budget:g} s; the server's "
        "--wait-seconds). A read changed nothing; a write may have been applied, and calling again with "
        "the same arguments never applies it twice."
    )


# A call is stopped this long after its budget: the requests inside it are cut at the budget itself.
DEADLINE_GRACE_S = 0.5


def _patient(
    confirm: Callable[[str], Awaitable[bool | None]] | None, scope: anyio.CancelScope, budget: float
) -> Callable[[str], Awaitable[bool | None]] | None:
    """The user's time to answer a confirmation is not DPG's: the call's deadline restarts after it."""
    if confirm is None:
        return None

    async def ask(question: str) -> bool | None:
        scope.deadline = math.inf
        try:
            return await confirm(question)
        finally:
            restart_deadline()
            scope.deadline = anyio.current_time() + budget + DEADLINE_GRACE_S

    return ask


async def _run(
    state: DPGState, spec: ToolSpec, tctx: ToolContext, args: Any, ctx: Context[Any, Any]
) -> CallToolResult | InputRequiredResult:
    redact = state.client.redactor  # the one way out (tools.egress) removes the live secrets with it
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
        return error_result(seal_text(agent_message(exc, read_only=spec.read_only), redact))
    except (ToolInputError, ValidationError) as exc:
        return error_result(seal_text(agent_message(exc), redact))
    except anyio.get_cancelled_exc_class():
        raise
    except Exception:
        log.exception("tool %s failed unexpectedly", spec.name)
        return error_result(
            f"{spec.name} failed inside dpg-mcp (a bug, not your input). If it was a write, read the item "
            "back before calling again; calling again with the same arguments never creates anything twice."
        )
    return success_result(seal(result, redact))


def tool_for(source: CallerSource, spec: ToolSpec, *, unpublished: frozenset[str] = frozenset()) -> Tool:
    """The SDK tool for `spec`; `unpublished` arguments are left out of its schema (hosted: file_path)."""
    schema = input_schema(spec.input_model)
    for name in unpublished:
        schema.get("properties", {}).pop(name, None)

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
        input_schema=schema,
        output_schema=output_schema(spec.output_model) if publishes_output_schema(spec) else None,
        annotations=annotations_for(spec),
    )

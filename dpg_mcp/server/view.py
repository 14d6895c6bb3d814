"""The caller middleware: resolves who sent each MCP message, makes it the current caller for the handlers,
and shows it its own view (tools, prompts, instructions; the cache scope of per-caller lists)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mcp.server import ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, INVALID_REQUEST

from dpg_mcp.server.caller import CallerRefused, CallerSource, DPGState, calling_as
from dpg_mcp.server.schemas import input_schema
from dpg_mcp.server.visibility import guard, visible_prompt_names
from dpg_mcp.tools import input_model_for


def caller_schema(tool: dict[str, Any], state: DPGState) -> dict[str, Any]:
    """A listed tool with the input schema this caller may use (caption_image's alt_text needs a scope)."""
    spec = state.specs.get(str(tool.get("name")))
    if spec is None:
        return tool
    model = input_model_for(spec, state.capabilities)
    return tool if model is spec.input_model else {**tool, "inputSchema": input_schema(model)}


@dataclass(frozen=True)
class ViewOptions:
    """What the caller middleware adjusts besides the tool list."""

    prompt_needs: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # Hosted: the instructions name the caller's account and tools, so they are rebuilt per caller.
    instructions_for: Callable[[DPGState], str] | None = None
    # Hosted, 2026-07-28: lists that vary per caller say so (cacheScope private), whatever the SDK default.
    private_lists: bool = False


_CACHEABLE = ("tools/list", "prompts/list", "resources/list", "resources/templates/list", "server/discover")


def caller_middleware(source: CallerSource, options: ViewOptions | None = None) -> Any:
    """Resolves the caller of every message, makes it current for the handlers, and shows it its own view."""
    opts = options or ViewOptions()

    async def middleware(ctx: ServerRequestContext[Any, Any], call_next: Any) -> Any:
        try:
            state = await source.resolve(ctx.request)
        except CallerRefused as exc:
            raise MCPError(code=INVALID_REQUEST, message=str(exc)) from None
        params = ctx.params or {}
        if ctx.method == "tools/call":
            refusal = guard(state, params.get("name"))
            if refusal is not None:
                return refusal
        elif ctx.method == "prompts/get" and opts.prompt_needs:
            name = params.get("name")
            if name in opts.prompt_needs and name not in visible_prompt_names(
                opts.prompt_needs, state.visible
            ):
                raise MCPError(code=INVALID_PARAMS, message=f"Unknown prompt: {name}")
        with calling_as(state):
            result = await call_next(ctx)
        if ctx.method == "tools/list":
            if isinstance(result, dict) and isinstance(result.get("tools"), list):
                result["tools"] = [
                    caller_schema(t, state) for t in result["tools"] if t.get("name") in state.visible
                ]
            elif result is not None and hasattr(result, "tools"):
                result.tools = [t for t in result.tools if t.name in state.visible]
        elif ctx.method == "prompts/list" and opts.prompt_needs and isinstance(result, dict):
            shown = visible_prompt_names(opts.prompt_needs, state.visible)
            result["prompts"] = [
                p
                for p in result.get("prompts") or []
                if p.get("name") not in opts.prompt_needs or p.get("name") in shown
            ]
        elif ctx.method == "initialize" and isinstance(result, dict):
            # MCPServer never advertises listChanged on the handshake era; we do send it.
            caps = result.setdefault("capabilities", {})
            tools_cap = caps.get("tools")
            if not isinstance(tools_cap, dict):
                tools_cap = caps["tools"] = {}
            tools_cap["listChanged"] = True
        if isinstance(result, dict):
            if opts.instructions_for is not None and ctx.method in ("initialize", "server/discover"):
                result["instructions"] = opts.instructions_for(state)
            if opts.private_lists and ctx.method in _CACHEABLE and "cacheScope" in result:
                result["cacheScope"] = "private"  # this caller's view: no shared cache may hand it to another
        return result

    return middleware

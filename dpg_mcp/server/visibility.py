"""Which tools a caller sees, and the guard that refuses the others.

`visible_names` is the one pure decision (scopes × the server's flags), used by every transport; prompts
follow the tools they need (`visible_prompt_names`). Hiding is enforced twice: the caller middleware (view.py)
filters the lists and answers tools/call of a hidden tool, and `guard` runs again inside every call
(calls.call_tool), so a path that bypasses the middleware still cannot run a hidden tool. Neither is the
real guard: DPG checks every call, and its 403 becomes "this token lacks scope X".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from mcp.types import CallToolResult

from dpg_mcp.config import Settings
from dpg_mcp.server.results import error_result
from dpg_mcp.tools import ToolSpec, visible_tools

if TYPE_CHECKING:
    from dpg_mcp.server.caller import DPGState


def visible_names(capabilities: frozenset[str], settings: Settings) -> frozenset[str]:
    """The tools a principal with these capabilities sees on a server with these flags."""
    toolsets = settings.toolsets
    if toolsets is not None:
        # check_operation and get_guide belong to every selection: a write that outlasts the wait is
        # useless without check_operation.
        toolsets = toolsets | {"account"}
    specs = visible_tools(capabilities, read_only=settings.read_only, toolsets=toolsets)
    return frozenset(spec.name for spec in specs)


def unknown_tool(
    name: object, specs: Mapping[str, ToolSpec], capabilities: frozenset[str], settings: Settings
) -> CallToolResult:
    """A tool this server has but does not show (an agent with a stale list) says why; others are unknown."""
    spec = specs.get(name) if isinstance(name, str) else None
    if spec is None:
        return error_result(f"Unknown tool: {name}")
    if spec.scope and spec.scope not in capabilities:
        why = f"it needs the {spec.scope} scope, which this token lacks"
        why += "; ask the account admin for a token with it"
    elif settings.read_only and not spec.read_only:
        why = "this server runs read-only"
    else:
        why = "its toolset is not enabled on this server"
    return error_result(
        f"Unknown tool: {name} (not available here: {why}). Do not retry; list the tools again."
    )


def guard(state: DPGState, name: object) -> CallToolResult | None:
    """None when the caller may run `name`; else the refusal to answer with."""
    if isinstance(name, str) and name in state.visible:
        return None
    return unknown_tool(name, state.specs, state.capabilities, state.settings)


def visible_prompt_names(
    needs: Mapping[str, frozenset[str]], visible_tools: frozenset[str]
) -> frozenset[str]:
    """A prompt shows when every tool it needs (its front matter's `tools`) is visible to the caller."""
    return frozenset(name for name, tools in needs.items() if tools <= visible_tools)

"""The one place that touches SDK objects marked internal (Tool, FuncMetadata, ArgModelBase, Prompt).

MCPServer has no public way to register a tool whose input schema and argument parsing we own, so we build
its internal Tool record directly. An SDK update that reshapes those classes breaks this file (and its test,
tests/mcp/test_sdk_adapter.py), nothing else.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server.mcpserver.prompts.base import Prompt, PromptArgument
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp.types import ToolAnnotations
from pydantic import ConfigDict

__all__ = ["Prompt", "PromptArgument", "Tool", "make_prompt", "make_tool"]


class RawArguments(ArgModelBase):
    """Lets the SDK hand us the raw arguments: the spec's own input model validates them (so its errors read
    like ours, through agent_message), instead of a second model derived from a synthetic signature."""

    model_config = ConfigDict(extra="allow", arbitrary_types_allowed=True)

    def model_dump_one_level(self) -> dict[str, Any]:
        return {"arguments": dict(self.model_extra or {})}


ToolFn = Callable[[dict[str, Any], Any], Awaitable[Any]]


def make_tool(
    fn: ToolFn,
    *,
    name: str,
    title: str | None,
    description: str,
    input_schema: dict[str, Any],
    output_schema: dict[str, Any] | None,
    annotations: ToolAnnotations,
) -> Tool:
    """An SDK Tool that calls `fn(arguments, ctx)` with the raw argument dict and the request Context, and
    publishes exactly the schemas given (no model is derived from fn's signature)."""

    async def run(arguments: dict[str, Any], ctx: Any) -> Any:
        return await fn(arguments, ctx)

    run.__name__ = name
    return Tool(
        fn=run,
        name=name,
        title=title,
        description=description,
        parameters=input_schema,
        # Schema published, no model: the structured content is a dump of an output model instance already.
        fn_metadata=FuncMetadata(arg_model=RawArguments, output_schema=output_schema),
        is_async=True,
        context_kwarg="ctx",
        annotations=annotations,
    )


def make_prompt(
    *,
    name: str,
    title: str | None,
    description: str,
    arguments: list[PromptArgument],
    render: Callable[..., str],
) -> Prompt:
    """An SDK Prompt whose arguments are the given list (not derived from render's signature)."""
    return Prompt(
        name=name, title=title, description=description, arguments=arguments, fn=render, context_kwarg=None
    )

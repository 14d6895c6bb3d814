"""The SDK internals dpg-mcp builds on, fenced in server/sdk_adapter.py: if an SDK update reshapes Tool,
FuncMetadata, ArgModelBase or Prompt, these fail and point at the one file to fix."""

from __future__ import annotations

from typing import Any

from mcp import Client
from mcp.server import MCPServer
from mcp.types import CallToolResult, TextContent, ToolAnnotations

from dpg_mcp.server.sdk_adapter import PromptArgument, make_prompt, make_tool

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}, "tags": {"type": "array"}}}
OUT = {"type": "object", "properties": {"echo": {"type": "object"}}}


async def _echo(arguments: dict[str, Any], ctx: Any) -> CallToolResult:
    seen = {"arguments": arguments, "has_ctx": ctx is not None and hasattr(ctx, "report_progress")}
    return CallToolResult(
        content=[TextContent(type="text", text="ok")], structured_content={"echo": seen}, is_error=False
    )


def _server() -> MCPServer[Any]:
    tool = make_tool(
        _echo,
        name="echo",
        title="Echo",
        description="echoes its raw arguments",
        input_schema=SCHEMA,
        output_schema=OUT,
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False),
    )
    server: MCPServer[Any] = MCPServer("adapter-test", tools=[tool])
    server.add_prompt(
        make_prompt(
            name="hello",
            title="Hello",
            description="greets",
            arguments=[PromptArgument(name="who", description="whom", required=True)],
            render=lambda **values: f"hello {values.get('who')}",
        )
    )
    return server


async def test_tool_publishes_exactly_our_schemas_and_gets_raw_arguments_and_context() -> None:
    async with Client(_server()) as client:
        (tool,) = (await client.list_tools()).tools
        assert tool.input_schema == SCHEMA and tool.output_schema == OUT
        assert tool.title == "Echo" and tool.annotations is not None and tool.annotations.read_only_hint
        # Unknown keys and any value types reach the function untouched: our own models validate them.
        result = await client.call_tool("echo", {"n": "not-an-int", "extra": [1, {"a": None}]})
    assert result.structured_content == {
        "echo": {"arguments": {"n": "not-an-int", "extra": [1, {"a": None}]}, "has_ctx": True}
    }


async def test_prompt_publishes_our_argument_list_and_renders() -> None:
    async with Client(_server()) as client:
        (prompt,) = (await client.list_prompts()).prompts
        assert [(a.name, a.required) for a in prompt.arguments or []] == [("who", True)]
        got = await client.get_prompt("hello", {"who": "Ada"})
    content = got.messages[0].content
    assert isinstance(content, TextContent) and content.text == "hello Ada"

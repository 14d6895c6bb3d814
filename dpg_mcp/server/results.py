"""ToolResult → CallToolResult, and the error result every refusal shares."""

from __future__ import annotations

import base64

from mcp.types import CallToolResult, ContentBlock, ImageContent, TextContent

from dpg_mcp.tools import ToolResult


def error_result(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


def success_result(result: ToolResult) -> CallToolResult:
    content: list[ContentBlock] = [TextContent(type="text", text=result.text)]
    for data, mime in result.images:
        content.append(
            ImageContent(type="image", data=base64.b64encode(data).decode("ascii"), mime_type=mime)
        )
    structured = result.structured.model_dump(mode="json", by_alias=True)
    return CallToolResult(content=content, structured_content=structured, is_error=False)

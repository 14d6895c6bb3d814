"""ToolResult → CallToolResult, and the error result every refusal shares."""

from __future__ import annotations

import base64

from mcp.types import CallToolResult, ContentBlock, ImageContent, TextContent

from dpg_mcp.tools.egress import Outgoing


def error_result(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


def success_result(out: Outgoing) -> CallToolResult:
    """A result that has passed the one way out (tools.egress.seal)."""
    content: list[ContentBlock] = [TextContent(type="text", text=out.text)]
    for data, mime in out.images:
        content.append(
            ImageContent(type="image", data=base64.b64encode(data).decode("ascii"), mime_type=mime)
        )
    return CallToolResult(content=content, structured_content=out.structured, is_error=False)

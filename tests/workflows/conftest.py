"""The agent workflows, driven as an agent would: fetch the prompt, follow its steps by tool calls only, and
count what it cost (tool calls, and bytes of results as they travel: text, images and structured content)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from mcp import Client
from mcp.types import CallToolResult, ImageContent, TextContent

from dpg_mcp.sandbox import Sandbox, SandboxConfig
from tests.mcp.conftest import dpg_server


@dataclass
class Agent:
    client: Client
    calls: list[tuple[str, int]] = field(default_factory=list)
    prompt_text: str = ""

    @property
    def bytes(self) -> int:
        return sum(b for _, b in self.calls)

    async def prompt(self, name: str, arguments: dict[str, str]) -> str:
        result = await self.client.get_prompt(name, arguments)
        content = result.messages[0].content
        assert isinstance(content, TextContent)
        self.prompt_text = content.text
        return content.text

    async def call(self, tool: str, arguments: dict[str, Any]) -> CallToolResult:
        result = await self.client.call_tool(tool, arguments)
        size = len(json.dumps(result.model_dump(mode="json", by_alias=True, exclude_none=True)).encode())
        self.calls.append((tool, size))
        assert not result.is_error, text_of(result)
        return result

    def report(self, workflow: str) -> str:
        lines = [f"{workflow}: {len(self.calls)} calls, {self.bytes / 1024:.1f} KB of results"]
        lines += [f"  {i + 1}. {tool} {size / 1024:.1f} KB" for i, (tool, size) in enumerate(self.calls)]
        text = "\n".join(lines)
        print(text)
        return text


def text_of(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


def images_of(result: CallToolResult) -> list[ImageContent]:
    return [c for c in result.content if isinstance(c, ImageContent)]


def structured(result: CallToolResult) -> dict[str, Any]:
    assert isinstance(result.structured_content, dict)
    return result.structured_content


@pytest.fixture
def sb() -> Sandbox:
    return Sandbox(SandboxConfig(seed=7))


@asynccontextmanager
async def agent_on(sb: Sandbox, who: str = "admin") -> AsyncIterator[Agent]:
    async with dpg_server(sb, who) as server, Client(server) as client:
        yield Agent(client)

"""The shapes every tool shares: its spec (the declarative table row), its call context and its result.

No MCP or transport imports here: dpg_mcp.server turns a ToolSpec into an MCP tool (publishing its models'
schemas through server/schemas.py) and a ToolResult into a CallToolResult.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer

from dpg_mcp.dpg.client import DPGClient
from dpg_mcp.dpg.operations import ProgressFn, WriteRunner

TOOLSETS: tuple[str, ...] = ("images", "metadata", "sets", "files", "account")


class Args(BaseModel):
    """Base of every tool input: unknown arguments are refused, so a typo never silently does nothing."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Out(BaseModel):
    """Base of every tool output (the structured content). None values are left out of the dump."""

    # No return annotation on purpose: pydantic then keeps the fields' own schema for serialization.
    @model_serializer(mode="wrap")
    def _drop_none(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        data = handler(self)
        return {k: v for k, v in data.items() if v is not None} if isinstance(data, dict) else data


FetchUrl = Callable[[str, int], Awaitable[tuple[bytes, str]]]


@dataclass(frozen=True)
class UploadPolicy:
    """Where upload_image may take a file from. Hosted servers never read their own disk for a caller."""

    local_files: bool = True
    max_bytes: int = 50 * 1024 * 1024
    fetch_url: FetchUrl | None = None  # (url, max_bytes) -> (bytes, content type), SSRF-guarded by the server


@dataclass
class ToolContext:
    client: DPGClient
    runner: WriteRunner
    principal: str
    progress: ProgressFn | None = None
    # Elicitation when the host supports it: True = go ahead, False = declined, None = could not ask.
    confirm: Callable[[str], Awaitable[bool | None]] | None = None
    clock: Callable[[], float] = time.monotonic  # how long a many-part write has run (tests inject one)
    uploads: UploadPolicy = field(default_factory=UploadPolicy)


@dataclass
class ToolResult:
    structured: BaseModel  # an instance of the spec's output_model: the truth
    text: str  # short restatement; gallery text fenced as untrusted data
    images: list[tuple[bytes, str]] = field(default_factory=list)  # (bytes, mime) preview blocks


Handler = Callable[[ToolContext, Any], Awaitable[ToolResult]]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    title: str
    description: str
    scope: str  # DPG scope the tool needs; "" = any token
    toolset: str  # one of TOOLSETS
    read_only: bool
    destructive: bool
    idempotent: bool
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    handler: Handler
    open_world: bool = False

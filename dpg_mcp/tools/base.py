"""The shapes every tool shares: its spec (the declarative table row), its call context and its result.

No MCP or transport imports here: SERVER turns a ToolSpec into an MCP tool and a ToolResult into a
CallToolResult.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
)
from pydantic_core import PydanticCustomError

from dpg_mcp.dpg.client import DPGClient
from dpg_mcp.dpg.operations import ProgressFn, WriteRunner

TOOLSETS: tuple[str, ...] = ("images", "metadata", "sets", "files", "account")


def _tidy(node: Any) -> Any:
    """Schema noise that costs context on every turn: titles, `additionalProperties: true`."""
    if isinstance(node, dict):
        if isinstance(node.get("title"), str):  # a property *named* title has a dict value: keep it
            del node["title"]
        if node.get("additionalProperties") is True:
            del node["additionalProperties"]
        for value in node.values():
            _tidy(value)
    elif isinstance(node, list):
        for value in node:
            _tidy(value)
    return node


def _input_schema(schema: dict[str, Any]) -> None:
    for prop in schema.get("properties", {}).values():
        # An absent flag or list already reads as false / empty: saying so costs bytes for nothing.
        if prop.get("default") in (False, []):
            del prop["default"]
    _tidy(schema)


def _output_schema(schema: dict[str, Any]) -> None:
    # Outputs never carry null (see Out._drop_none), so Optional[X] is published as a plain, non-required X.
    schema.pop("description", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("default", None)
        any_of = prop.get("anyOf")
        if isinstance(any_of, list) and len(any_of) == 2 and {"type": "null"} in any_of:
            other = next(s for s in any_of if s != {"type": "null"})
            del prop["anyOf"]
            prop.update(other)
    _tidy(schema)


# Any string argument without a tighter limit of its own: long enough for any query or path, short enough
# that no argument can build an over-long URL (a 100 KB query once did) or a huge request.
MAX_TEXT = 1000


class Args(BaseModel):
    """Base of every tool input, validated strictly: what the published schema refuses never reaches DPG.

    No coercion ("true" is not a boolean, "5" not a number, a JSON string is not a list), unknown arguments
    refused (a typo never silently does nothing), `null` refused (the schemas publish no nullable argument:
    leave it out instead), every string bounded.
    """

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        str_strip_whitespace=True,
        str_max_length=MAX_TEXT,
        json_schema_extra=_input_schema,
    )

    @field_validator("*", mode="before")
    @classmethod
    def _no_null(cls, value: Any) -> Any:
        if value is None:
            raise PydanticCustomError("null_argument", "null is not a value here; leave the argument out")
        return value


class Out(BaseModel):
    """Base of every tool output (the structured content). None values are left out of the dump."""

    model_config = ConfigDict(json_schema_extra=_output_schema)

    # No return annotation on purpose: pydantic then keeps the fields' own schema for serialization.
    @model_serializer(mode="wrap")
    def _drop_none(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        data = handler(self)
        return {k: v for k, v in data.items() if v is not None} if isinstance(data, dict) else data


@dataclass
class ToolContext:
    client: DPGClient
    runner: WriteRunner
    principal: str
    progress: ProgressFn | None = None
    # Elicitation when the host supports it: True = go ahead, False = declined, None = could not ask.
    confirm: Callable[[str], Awaitable[bool | None]] | None = None
    clock: Callable[[], float] = time.monotonic  # how long a many-part write has run (tests inject one)
    # The folders upload_image may read a file_path from (the server decides: MCP roots, --upload-root,
    # the pictures folder). None: no local file is read at all.
    upload_roots: Callable[[], Awaitable[Sequence[Path]]] | None = None


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

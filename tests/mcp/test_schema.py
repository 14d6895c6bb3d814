"""The server's schema trimming: smaller tools/list, still true to what the tools accept and return."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from dpg_mcp.server import clean_schema, input_schema, output_schema


class Inner(BaseModel):
    a: int


class In(BaseModel):
    title: str | None = Field(None, description="the caption title")
    rotation: Literal[0, 90, 180, 270] | None = None
    inner: Inner | None = None
    ids: list[str]


class Out(BaseModel):
    title: str | None = None
    items: list[Inner] = []
    count: int = 0
    maybe: Inner | None = None


def test_input_schema_drops_titles_and_null_branches_keeps_property_named_title() -> None:
    schema = input_schema(In)
    assert schema["properties"]["title"] == {"type": "string", "description": "the caption title"}
    assert schema["properties"]["rotation"] == {"enum": [0, 90, 180, 270], "type": "integer"}
    assert schema["properties"]["inner"] == {"$ref": "#/$defs/Inner"}
    assert schema["$defs"]["Inner"] == {
        "properties": {"a": {"type": "integer"}},
        "required": ["a"],
        "type": "object",
    }
    assert schema["required"] == ["ids"] and "title" not in schema


def test_output_schema_is_shallow() -> None:
    assert output_schema(Out) == {
        "type": "object",
        # names only; a list says what its items hold, in a few words
        "properties": {"title": {}, "items": {"description": "each: a"}, "count": {}, "maybe": {}},
    }


def test_clean_schema_for_output_keeps_nullability() -> None:
    schema = {"anyOf": [{"type": "string", "maxLength": 3}, {"type": "null"}], "default": None, "title": "X"}
    assert clean_schema(schema, for_output=True) == {
        "type": ["string", "null"],
        "maxLength": 3,
        "default": None,
    }
    assert clean_schema(schema, for_output=False) == {"type": "string", "maxLength": 3}
    enum = {"anyOf": [{"enum": ["a"], "type": "string"}, {"type": "null"}]}
    assert clean_schema(enum, for_output=True) == enum  # an enum would refuse null: left as is

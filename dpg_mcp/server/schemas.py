"""How a tool's models become the schemas in tools/list: every byte is paid on every turn, so the shaping
drops noise while staying true to what the tools accept and return. The only schema shaping in dpg-mcp (the
tool models in dpg_mcp/tools declare fields; this module decides how they are published)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from mcp.types import ToolAnnotations
from pydantic import BaseModel

from dpg_mcp.tools import ToolSpec

_NAME_MAPS = ("properties", "$defs", "definitions", "patternProperties")
_NULL = {"type": "null"}


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


def _drop_empty_defaults(schema: dict[str, Any]) -> None:
    # An absent flag or list already reads as false / empty: saying so costs bytes for nothing.
    for prop in (schema.get("properties") or {}).values():
        if isinstance(prop, dict) and prop.get("default") in (False, []):
            del prop["default"]


def clean_schema(schema: Any, *, for_output: bool) -> Any:
    """Drop noise that costs context bytes on every turn: "title" keys, Optional's anyOf-with-null.

    Inputs: `anyOf [X, null]` becomes X (omitting an argument says "none"); `default: null` goes.
    Outputs are validated by clients, so nullability stays: a plain typed X becomes `type: [T, "null"]`.
    """
    if isinstance(schema, list):
        return [clean_schema(item, for_output=for_output) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" and not isinstance(value, dict):
            continue
        if key in _NAME_MAPS and isinstance(value, dict):
            out[key] = {name: clean_schema(sub, for_output=for_output) for name, sub in value.items()}
        else:
            out[key] = clean_schema(value, for_output=for_output)
    any_of = out.get("anyOf")
    if isinstance(any_of, list) and len(any_of) == 2 and _NULL in any_of:
        other = next(s for s in any_of if s != _NULL)
        if isinstance(other, dict):
            rest = {k: v for k, v in out.items() if k != "anyOf"}
            if not for_output:
                if rest.get("default", 0) is None:
                    rest.pop("default")
                return {**other, **rest}
            typ = other.get("type")
            if isinstance(typ, str) and "enum" not in other and "const" not in other:
                return {**other, **rest, "type": [typ, "null"]}
    if not for_output and "default" in out and out["default"] is None and "anyOf" not in out:
        out.pop("default")
    return out


def input_schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True)
    for sub in [raw, *(raw.get("$defs") or {}).values()]:
        if isinstance(sub, dict):
            _drop_empty_defaults(sub)
    # additionalProperties: false stays (the model forbids extras): a host can check before calling.
    return cast(dict[str, Any], clean_schema(_tidy(raw), for_output=False))


def output_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A shallow outputSchema: the top-level field names, each with the empty (any-value) schema.

    Every tools/list byte is paid on every turn. The names tell an agent what comes back; nested shapes and
    even JSON types, repeated across 22 tools, cost more than they help (the structured content itself shows
    them), and they paid for the input limits a host checks before calling. Still true (a looser, valid
    schema), so clients that validate structuredContent keep working. Outputs leave None fields out.
    """
    full = model.model_json_schema(by_alias=True, mode="serialization")
    defs = full.get("$defs", {})
    props: dict[str, Any] = {}
    for name, sub in (full.get("properties") or {}).items():
        held = _items_hold(sub, defs)
        props[name] = {"description": held} if held else {}
    return {"type": "object", "properties": props}


def _items_hold(node: Any, defs: Mapping[str, Any]) -> str | None:
    """What a list's items hold, in a few words: "each: uuid, title, rating…" (cheaper than their schema)."""
    if not isinstance(node, dict):
        return None
    items = node.get("items")
    ref = items.get("$ref") if isinstance(items, dict) else None
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        fields = (defs.get(ref.removeprefix("#/$defs/")) or {}).get("properties") or {}
        names = list(fields)
        return "each: " + ", ".join(names[:6]) + (", …" if len(names) > 6 else "") if names else None
    for key in ("anyOf", "oneOf"):
        for sub in node.get(key) or []:
            held = _items_hold(sub, defs)
            if held:
                return held
    return None


def annotations_for(spec: ToolSpec) -> ToolAnnotations:
    """Hints, leaving out what the spec already implies: readOnlyHint false is the default, and destructive /
    idempotent mean nothing on a read-only tool. openWorldHint defaults to true, so false is always said."""
    if spec.read_only:
        return ToolAnnotations(read_only_hint=True, open_world_hint=spec.open_world)
    return ToolAnnotations(
        destructive_hint=spec.destructive, idempotent_hint=spec.idempotent, open_world_hint=spec.open_world
    )

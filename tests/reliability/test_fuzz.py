"""Fuzzing every tool through the MCP server with inputs derived from its published input schema.

Valid inputs are drawn from the schema itself (with a bias towards real ids and dates, so calls get past
the first check and reach DPG); invalid ones are valid ones broken in one place (a wrong JSON type, "true"
for true, a JSON string for a list, null, one character or item too many, out of range, an unknown or a
missing argument), kept only if `jsonschema` agrees the published schema refuses them. Over a few thousand
calls: no crash, no "a bug" result, no call past its bound, and not one request reaches DPG (the sandbox's
own request counter) for a schema-invalid input.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from mcp import Client

from dpg_mcp.sandbox import Sandbox, SandboxConfig
from dpg_mcp.tools import TOOLS
from tests.mcp.conftest import dpg_server

NAMES = [spec.name for spec in TOOLS]
BUG = "(a bug, not your input)"
CALL_BOUND_S = 15.0  # far above the server's 2 s budget: a call that reaches it hung
VALID_CASES = 40  # per tool
INVALID_CASES = 150  # per tool
# Tools whose valid inputs must get past our own checks at least sometimes (else the valid side tests little).
REACH_DPG = {"search_images", "get_image", "list_keywords", "browse_sets", "get_guide", "rate_images"}


class Rig:
    """One sandbox, one server and one in-process MCP client on a background event loop."""

    def __init__(self, portal: BlockingPortal) -> None:
        self.portal = portal
        self.sb = Sandbox(SandboxConfig(seed=7))
        self.ids = sorted(self.sb.store.images)[:20] + sorted(self.sb.store.sets)[:10]
        self._cm = portal.wrap_async_context_manager(self._open())
        self.client: Client = self._cm.__enter__()
        tools = portal.call(self.client.list_tools).tools
        self.schemas: dict[str, dict[str, Any]] = {t.name: t.input_schema for t in tools}

    def _open(self) -> Any:
        from contextlib import asynccontextmanager

        @asynccontextmanager
        async def opened() -> Any:
            async with (
                dpg_server(self.sb, "admin", wait_budget_s=2) as server,
                Client(server, mode="legacy") as client,
            ):
                yield client

        return opened()

    def call(self, name: str, args: dict[str, Any]) -> tuple[bool, str, int]:
        """(is_error, text, requests DPG saw) for one tools/call, bounded in time."""

        async def bounded() -> Any:
            with anyio.fail_after(CALL_BOUND_S):
                return await self.client.call_tool(name, args)

        before = self.sb.request_seq
        result = self.portal.call(bounded)
        text = "\n".join(c.text for c in result.content if getattr(c, "type", "") == "text")
        return bool(result.is_error), text, self.sb.request_seq - before

    def close(self) -> None:
        self._cm.__exit__(None, None, None)


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    with start_blocking_portal() as portal:
        r = Rig(portal)
        try:
            yield r
        finally:
            r.close()


# ---- strategies from a published schema ----------------------------------------------------------------


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return {**defs[ref.removeprefix("#/$defs/")], **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def valid_value(
    node: dict[str, Any], defs: dict[str, Any], name: str, ids: list[str]
) -> st.SearchStrategy[Any]:
    node = _resolve(node, defs)
    if "enum" in node:
        return st.sampled_from(node["enum"])
    kind = node.get("type")
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return st.integers(node.get("minimum", -(2**31)), node.get("maximum", 2**31))
    if kind == "string":
        lo, hi = node.get("minLength", 0), min(node.get("maxLength", 10**9), 60)
        text = st.text(min_size=lo, max_size=max(lo, hi))
        hints: list[st.SearchStrategy[Any]] = []
        if "uuid" in name or name.endswith("_id"):
            hints.append(st.sampled_from(ids))
        if "date" in name or name.endswith(("_from", "_to", "_time")):
            hints.append(st.sampled_from(["2026-07-03", "2026-07-03T18:30:00Z", "2025-01-01"]))
        return st.one_of(*hints, text) if hints else text
    if kind == "array":
        item = valid_value(node.get("items", {}), defs, name, ids)
        lo = node.get("minItems", 0)
        return st.lists(item, min_size=lo, max_size=max(lo, min(node.get("maxItems", 5), 5)))
    if kind == "object" and "properties" in node:
        return object_value(node, defs, ids)
    if kind == "object":  # a free map (IPTC fields)
        scalar = st.one_of(st.text(max_size=30), st.integers(), st.booleans(), st.none())
        return st.dictionaries(
            st.text(min_size=1, max_size=20),
            scalar,
            min_size=1,
            max_size=min(node.get("maxProperties", 3), 3),
        )
    return st.just("x")


def object_value(
    node: dict[str, Any], defs: dict[str, Any], ids: list[str]
) -> st.SearchStrategy[dict[str, Any]]:
    props = node.get("properties", {})
    required = set(node.get("required", []))
    return st.fixed_dictionaries(
        {k: valid_value(v, defs, k, ids) for k, v in props.items() if k in required},
        optional={k: valid_value(v, defs, k, ids) for k, v in props.items() if k not in required},
    )


def _breakers(node: dict[str, Any], defs: dict[str, Any]) -> list[Any]:
    """Values that break `node`: wrong JSON types (the coercions a lax server would accept), limits."""
    node = _resolve(node, defs)
    kind = node.get("type")
    out: list[Any] = [None, {"a": 1}]
    if kind == "boolean":
        out += ["true", "false", "yes", 1, 0]
    elif kind == "integer":
        out += ["5", "1e3", True, 2.5, [1]]
        if "maximum" in node:
            out.append(node["maximum"] + 1)
        if "minimum" in node:
            out.append(node["minimum"] - 1)
        if "enum" in node:
            out.append(45)
    elif kind == "string":
        out += [5, True, ["x"], 1.5]
        if node.get("maxLength", 10**9) <= 100_000:
            out.append("x" * (node["maxLength"] + 1))
        if node.get("minLength", 0) > 0:
            out.append("")
    elif kind == "array":
        out += ['["a", "b"]', "a,b", "x", 3, True]
        if node.get("maxItems", 10**9) <= 20_000:
            out.append(["a"] * (node["maxItems"] + 1))
        if node.get("minItems", 0) > 0:
            out.append([])
    elif kind == "object":
        out += ['{"a": 1}', "x", [1], 1]
    return out


@st.composite
def invalid_args(draw: st.DrawFn, schema: dict[str, Any], ids: list[str]) -> dict[str, Any]:
    defs = schema.get("$defs", {})
    args = dict(draw(object_value(schema, defs, ids)))
    props = schema.get("properties", {})
    how = draw(st.sampled_from(["value", "value", "value", "extra", "missing"]))
    if how == "extra" or not props:
        args[draw(st.sampled_from(["querry", "__proto__", "confirm_", "x"]))] = draw(
            st.sampled_from([1, "a", None])
        )
    elif how == "missing" and schema.get("required"):
        args.pop(draw(st.sampled_from(schema["required"])), None)
    else:
        name = draw(st.sampled_from(sorted(props)))
        args[name] = draw(st.sampled_from(_breakers(props[name], defs)))
    return args


def _invalid(schema: dict[str, Any], args: dict[str, Any]) -> bool:
    return not Draft202012Validator(schema).is_valid(args)


# ---- the tests ------------------------------------------------------------------------------------------


def _settings(cases: int) -> settings:
    return settings(
        max_examples=cases,
        deadline=None,
        derandomize=True,  # the same cases on every run: CI is reproducible, and a failure names its input
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )


@pytest.mark.parametrize("tool", NAMES)
def test_schema_invalid_input_never_reaches_dpg(rig: Rig, tool: str) -> None:
    schema = rig.schemas[tool]
    seen = {"invalid": 0}

    @_settings(INVALID_CASES)
    @given(invalid_args(schema, rig.ids))
    def check(args: dict[str, Any]) -> None:
        if not _invalid(schema, args):
            return  # the break happened to be allowed (e.g. null where nothing is required): not this test's
        seen["invalid"] += 1
        is_error, text, requests = rig.call(tool, args)
        assert is_error, (args, text)
        assert requests == 0, (args, text)
        assert BUG not in text, (args, text)
        assert "Nothing was sent to DPG" in text, (args, text)

    check()
    assert seen["invalid"] >= INVALID_CASES // 2, seen  # most drawn cases really broke the schema


@pytest.mark.parametrize("tool", NAMES)
def test_schema_valid_input_never_crashes_or_hangs(rig: Rig, tool: str) -> None:
    schema = rig.schemas[tool]
    defs = schema.get("$defs", {})

    reached = {"dpg": 0}

    @_settings(VALID_CASES)
    @given(object_value(schema, defs, rig.ids))
    def check(args: dict[str, Any]) -> None:
        assert Draft202012Validator(schema).is_valid(args), args  # the generator itself is right
        _, text, requests = rig.call(tool, args)  # raises if the call breaks the protocol or hangs
        assert BUG not in text, (json.dumps(args)[:500], text)
        reached["dpg"] += requests > 0

    check()
    if tool in REACH_DPG:  # the valid side is not only refusals: these calls got through to the sandbox
        assert reached["dpg"] > 0, tool

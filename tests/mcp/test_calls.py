"""Tool calls end to end against the in-process sandbox, in both protocol eras."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

from mcp.types import CallToolResult, ImageContent, TextContent

from dpg_mcp.sandbox import Faults, Sandbox, SandboxConfig

from .conftest import connect, dpg_server


def text_of(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


def ok(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, text_of(result)
    assert isinstance(result.structured_content, dict)
    return result.structured_content


def image_ids(sb: Sandbox, n: int) -> list[str]:
    return sorted(sb.store.images)[:n]


def a_set_and_outsiders(sb: Sandbox, n: int) -> tuple[str, list[str]]:
    """A set plus n images that are not in it yet."""
    set_uuid = sorted(sb.store.sets)[0]
    inside = set(sb.store.sets[set_uuid].images)
    return set_uuid, [u for u in sorted(sb.store.images) if u not in inside][:n]


async def test_caption_image_then_get_image_shows_it(sb: Sandbox, mode: str) -> None:
    uuid = image_ids(sb, 1)[0]
    async with dpg_server(sb, "editor") as server, connect(server, mode) as client:
        out = ok(
            await client.call_tool(
                "caption_image", {"image_uuid": uuid, "title": "Sunset over the main stage"}
            )
        )
        assert out["state"] == "succeeded" and out["succeeded"] == 1 and out["failed"] == 0
        detail = await client.call_tool("get_image", {"image_uuid": uuid})
    assert ok(detail)["title"] == "Sunset over the main stage"
    previews = [c for c in detail.content if isinstance(c, ImageContent)]
    assert len(previews) == 1 and previews[0].mime_type == "image/jpeg"
    assert "<untrusted-gallery-text>" in text_of(detail)
    assert sum(sb.apply_counts().values()) == 1


async def test_add_to_set_and_build_archive_with_zip(sb: Sandbox, mode: str) -> None:
    set_uuid, uuids = a_set_and_outsiders(sb, 3)
    async with dpg_server(sb, "admin") as server, connect(server, mode) as client:
        out = ok(await client.call_tool("add_to_set", {"set_uuid": set_uuid, "image_uuids": uuids}))
        assert out["state"] == "succeeded", out
        assert set(uuids) <= set(sb.store.sets[set_uuid].images)
        archive = ok(await client.call_tool("build_archive", {"image_uuids": uuids, "filename": "picks.zip"}))
        assert archive["state"] == "succeeded", archive
        data, _ = await server.dpg.client.fetch_bytes(archive["archive"]["url"], 50_000_000)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        assert all(zf.read(n).startswith(b"\xff\xd8\xff") for n in names)
    assert len(names) == 3 and archive["archive"]["image_count"] == 3


async def test_progress_arrives_during_a_slow_archive(mode: str) -> None:
    sb = Sandbox(SandboxConfig(operation_seconds={"archive": 0.4}))
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with dpg_server(sb, "uploader") as server, connect(server, mode) as client:
        result = await client.call_tool(
            "build_archive", {"image_uuids": image_ids(sb, 2)}, progress_callback=on_progress
        )
    assert ok(result)["state"] == "succeeded"
    assert seen, "no progress notification during a 0.4 s archive"


async def test_dropped_responses_are_applied_exactly_once(mode: str) -> None:
    sb = Sandbox(SandboxConfig(faults=Faults(seed=3, drop_rate=0.5)))
    uuids = image_ids(sb, 6)
    async with dpg_server(sb, "editor") as server, connect(server, mode) as client:
        for i, uuid in enumerate(uuids):
            out = ok(await client.call_tool("caption_image", {"image_uuid": uuid, "title": f"Shot {i}"}))
            assert out["state"] == "succeeded", out
    counts = sb.apply_counts()
    assert len(counts) == 6 and set(counts.values()) == {1}
    assert [sb.store.images[u].title for u in uuids] == [f"Shot {i}" for i in range(6)]


async def test_same_set_value_call_twice_is_applied_again_and_never_claims_earlier(
    sb: Sandbox, mode: str
) -> None:
    uuid = image_ids(sb, 1)[0]
    args = {"image_uuid": uuid, "description": "Crowd at dusk"}
    async with dpg_server(sb, "editor") as server, connect(server, mode) as client:
        first = await client.call_tool("caption_image", args)
        second = await client.call_tool("caption_image", args)
    for result in (first, second):
        assert ok(result)["message"] == "Description set on 1 image."
        assert "earlier" not in text_of(result)
    assert sb.applied_total() == 2  # applied again: the same value, no change to the outcome
    assert sb.store.images[uuid].description == "Crowd at dusk"


async def test_same_create_call_twice_creates_once_and_says_so(sb: Sandbox, mode: str) -> None:
    before = len(sb.store.sets)
    async with dpg_server(sb, "editor") as server, connect(server, mode) as client:
        first = ok(await client.call_tool("create_set", {"name": "Dusk selects"}))
        second = await client.call_tool("create_set", {"name": "Dusk selects"})
    assert "earlier" not in first["message"]
    assert "created earlier" in ok(second)["message"] and "created earlier" in text_of(second)
    assert ok(second)["set_uuid"] == first["set_uuid"]
    assert len(sb.store.sets) == before + 1 and sb.applied_total() == 1


async def test_write_past_the_budget_returns_a_handle_check_operation_finishes(mode: str) -> None:
    sb = Sandbox(SandboxConfig(operation_seconds={"archive": 0.6}))
    async with dpg_server(sb, "uploader", wait_budget_s=0.2) as server, connect(server, mode) as client:
        handle = await client.call_tool("build_archive", {"image_uuids": image_ids(sb, 2)})
        out = ok(handle)
        assert out["state"] == "running" and out["operation_id"], out
        assert "check_operation" in text_of(handle)
        for _ in range(20):  # bounded: each call waits up to the 0.2 s budget
            done = ok(await client.call_tool("check_operation", {"operation_id": out["operation_id"]}))
            if done["state"] != "running":
                break
    assert done["state"] == "succeeded", done
    assert sb.applied_total() == 1


async def test_list_arguments_sent_as_json_text_are_refused_before_dpg(sb: Sandbox, mode: str) -> None:
    """A list is a JSON array: a string holding one breaks the published schema, so nothing is sent."""
    set_uuid, uuids = a_set_and_outsiders(sb, 2)
    async with dpg_server(sb, "editor") as server, connect(server, mode) as client:
        before = sb.request_seq
        result = await client.call_tool(
            "add_to_set", {"set_uuid": set_uuid, "image_uuids": json.dumps(uuids)}
        )
        sent = sb.request_seq - before
    assert result.is_error
    assert "image_uuids: must be a JSON array" in text_of(result)
    assert sent == 0 and not set(uuids) & set(sb.store.sets[set_uuid].images)


async def test_delete_needs_a_real_true(sb: Sandbox, mode: str) -> None:
    """The issue's destructive case: confirm "true" (a string) once deleted an image. Now nothing is sent."""
    image = sorted(sb.store.images)[0]
    async with dpg_server(sb, "admin") as server, connect(server, mode) as client:
        before = sb.request_seq
        for confirm in ("true", 1, "yes"):
            result = await client.call_tool("delete_image", {"image_uuids": [image], "confirm": confirm})
            assert result.is_error and "confirm: must be true or false" in text_of(result)
        assert sb.request_seq == before and image in sb.store.images
        done = await client.call_tool("delete_image", {"image_uuids": [image], "confirm": True})
    assert not done.is_error and image not in sb.store.images

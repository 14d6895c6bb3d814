"""Which tools each sandbox token sees, in both protocol eras, and what tools/list costs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from inline_snapshot import snapshot
from mcp.types import TextContent

from dpg_mcp.cli import tools_list_bytes
from dpg_mcp.config import ConfigError
from dpg_mcp.sandbox import Sandbox

from .conftest import connect, dpg_server

WRITE_TOOLS = {
    "caption_image", "delete_image", "tag_images", "rename_keyword", "rate_images", "edit_metadata",
    "create_set", "update_set", "add_to_set", "remove_from_set", "arrange_set", "publish_set", "restore_set",
    "upload_image", "get_download_link", "build_archive",
}  # fmt: skip


async def _names(sb: Sandbox, who: str, mode: str, **settings: Any) -> list[str]:
    async with dpg_server(sb, who, **settings) as server, connect(server, mode) as client:
        return sorted(t.name for t in (await client.list_tools()).tools)


async def test_each_token_sees_exactly_its_tools(sb: Sandbox, mode: str) -> None:
    seen = {who: await _names(sb, who, mode) for who in ("admin", "editor", "readonly", "uploader")}
    assert seen == snapshot(
        {
            "admin": [
                "add_to_set",
                "arrange_set",
                "browse_sets",
                "build_archive",
                "caption_image",
                "check_operation",
                "create_set",
                "delete_image",
                "edit_metadata",
                "get_download_link",
                "get_guide",
                "get_image",
                "list_keywords",
                "publish_set",
                "rate_images",
                "remove_from_set",
                "rename_keyword",
                "restore_set",
                "search_images",
                "tag_images",
                "update_set",
                "upload_image",
            ],
            "editor": [
                "add_to_set",
                "arrange_set",
                "browse_sets",
                "caption_image",
                "check_operation",
                "create_set",
                "edit_metadata",
                "get_guide",
                "get_image",
                "list_keywords",
                "publish_set",
                "rate_images",
                "remove_from_set",
                "rename_keyword",
                "restore_set",
                "search_images",
                "tag_images",
                "update_set",
            ],
            "readonly": [
                "browse_sets",
                "check_operation",
                "get_guide",
                "get_image",
                "list_keywords",
                "search_images",
            ],
            "uploader": [
                "browse_sets",
                "build_archive",
                "check_operation",
                "get_download_link",
                "get_guide",
                "get_image",
                "list_keywords",
                "search_images",
                "upload_image",
            ],
        }
    )


async def test_readonly_sees_no_write_tool(sb: Sandbox, mode: str) -> None:
    names = set(await _names(sb, "readonly", mode))
    assert "search_images" in names and not names & WRITE_TOOLS


async def test_uploader_sees_upload_download_archive(sb: Sandbox, mode: str) -> None:
    names = set(await _names(sb, "uploader", mode))
    assert {"upload_image", "get_download_link", "build_archive"} <= names
    assert not names & {"caption_image", "add_to_set", "delete_image"}


async def test_read_only_flag_and_toolsets(sb: Sandbox, mode: str) -> None:
    names = set(await _names(sb, "admin", mode, read_only=True))
    assert not names & WRITE_TOOLS and "search_images" in names
    names = set(await _names(sb, "admin", mode, toolsets=frozenset({"sets"})))
    assert "add_to_set" in names and "search_images" not in names and "caption_image" not in names
    assert {"check_operation", "get_guide"} <= names  # always there: writes may hand back an operation id


async def test_a_tool_hidden_by_the_flags_says_which_flag(sb: Sandbox, mode: str) -> None:
    image = next(iter(sb.store.images))
    async with dpg_server(sb, "admin", read_only=True) as server, connect(server, mode) as client:
        ro = await client.call_tool("caption_image", {"image_uuid": image, "title": "x"})
    async with (
        dpg_server(sb, "admin", toolsets=frozenset({"sets"})) as server,
        connect(server, mode) as client,
    ):
        off = await client.call_tool("caption_image", {"image_uuid": image, "title": "x"})
    assert ro.is_error and "runs read-only" in ro.content[0].text  # type: ignore[union-attr]
    assert off.is_error and "toolset is not enabled" in off.content[0].text  # type: ignore[union-attr]
    assert sb.applied_total() == 0


async def test_hidden_tool_is_refused_inside_the_call_even_without_the_middleware(
    sb: Sandbox, mode: str
) -> None:
    """The admin token could caption, so only the server's own guard (read-only flag) stands in the way."""
    image = next(iter(sb.store.images))
    async with dpg_server(sb, "admin", read_only=True) as server:
        chain = server.middleware
        ours = [m for m in chain if "caller_middleware" in getattr(m, "__qualname__", "")]
        assert len(ours) == 1
        chain.remove(ours[0])
        async with connect(server, mode) as client:
            listed = {t.name for t in (await client.list_tools()).tools}
            result = await client.call_tool("caption_image", {"image_uuid": image, "title": "x"})
    assert "caption_image" in listed  # the middleware really is gone: the list is no longer filtered
    assert result.is_error and "runs read-only" in result.content[0].text  # type: ignore[union-attr]
    assert sb.applied_total() == 0


async def test_hidden_tool_is_refused_and_says_why(sb: Sandbox, mode: str) -> None:
    async with dpg_server(sb, "readonly") as server, connect(server, mode) as client:
        hidden = await client.call_tool(
            "caption_image", {"image_uuid": next(iter(sb.store.images)), "title": "x"}
        )
        unknown = await client.call_tool("no_such_tool", {})
    assert hidden.is_error and unknown.is_error
    assert isinstance(hidden.content[0], TextContent) and isinstance(unknown.content[0], TextContent)
    assert hidden.content[0].text == (
        "Unknown tool: caption_image (not available here: it needs the api.images.write scope, which this "
        "token lacks; ask the account admin for a token with it). Do not retry; list the tools again."
    )
    assert unknown.content[0].text == "Unknown tool: no_such_tool"
    assert sb.applied_total() == 0


@pytest.mark.parametrize(
    ("who", "message"),
    [
        (
            "disabled",
            "the DPG API is switched off for this account: an admin turns it on under Settings → API",
        ),
        ("dpg_api_live_not_a_token", "DPG rejected the token (401 unauthorized): check DPG_TOKEN"),
    ],
)
async def test_startup_refusals_are_one_clear_line(sb: Sandbox, who: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        async with dpg_server(sb, who):
            pass
    assert str(info.value) == message


async def test_admin_tools_list_fits_the_budget(sb: Sandbox) -> None:
    async with dpg_server(sb, "admin") as server:
        size, tools = await tools_list_bytes(server)
    assert size <= 20_000, size
    schemas = json.dumps([[t["inputSchema"], t.get("outputSchema")] for t in tools])
    assert '"title": "' not in schemas  # no schema noise (a property *named* title maps to an object)
    assert '{"type": "null"}' not in schemas
    by_name = {t["name"]: t for t in tools}
    assert by_name["search_images"]["annotations"] == {"readOnlyHint": True, "openWorldHint": False}
    assert by_name["caption_image"]["annotations"] == {
        "destructiveHint": False,
        "idempotentHint": True,
        "openWorldHint": False,
    }
    assert by_name["delete_image"]["annotations"]["destructiveHint"] is True
    photo = by_name["caption_image"]["inputSchema"]["$defs"]["PhotoCaption"]["properties"]
    assert photo["rotation"]["enum"] == [0, 90, 180, 270]
    assert {"title", "description", "alt_text"} <= set(photo)
    assert all(t.get("title") for t in tools)
    # The plain write result is described once in the instructions; reads and richer writes keep a schema.
    plain_writes = {n for n, t in by_name.items() if "outputSchema" not in t}
    assert "search_images" not in plain_writes and "build_archive" not in plain_writes
    assert {"caption_image", "tag_images", "arrange_set"} <= plain_writes


async def test_instructions_name_account_and_tools(sb: Sandbox, mode: str) -> None:
    async with dpg_server(sb, "editor") as server, connect(server, mode) as client:
        text = client.instructions or ""
    assert text.startswith(
        'dpg-mcp: tools for the Digital Photo Gallery account "Riverside Sound Festival" ("riverside").'
    )
    assert "check_operation" in text and "dpg://metadata_profiles" in text
    assert len(text.encode()) <= 4_000


async def test_legacy_initialize_advertises_tools_list_changed(sb: Sandbox) -> None:
    async with dpg_server(sb, "admin") as server, connect(server, "legacy") as client:
        caps = client.server_capabilities
    assert caps.tools is not None and caps.tools.list_changed is True


async def test_caption_image_offers_alt_text_only_to_tokens_that_may_write_it(sb: Sandbox) -> None:
    """captioner: api.images.write without api.metadata.write. Its caption_image has no alt_text field,
    and alt_text sent anyway is refused before anything reaches DPG."""
    async with dpg_server(sb, "captioner") as server, connect(server, "auto") as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        schema = json.dumps(tools["caption_image"].input_schema)
        assert "alt_text" not in schema and '"title"' in schema
        assert "edit_metadata" not in tools
        image = next(iter(sb.store.images))
        before = sb.store.digest()
        refused = await client.call_tool(
            "caption_image", {"photos": [{"image_uuid": image, "alt_text": "x"}]}
        )
        assert refused.is_error and "api.metadata.write" in refused.content[0].text  # type: ignore[union-attr]
        assert sb.store.digest() == before
        done = await client.call_tool("caption_image", {"photos": [{"image_uuid": image, "title": "Dusk"}]})
        assert not done.is_error and sb.store.images[image].title == "Dusk"
    async with dpg_server(sb, "admin") as server, connect(server, "auto") as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert "alt_text" in json.dumps(tools["caption_image"].input_schema)


async def test_instructions_plus_tools_list_fit_the_context_goal(sb: Sandbox) -> None:
    """What an agent pays before its first call: ≤ 20 KB for the admin token, ≤ 8 KB read-only."""
    for who, goal in (("admin", 20_000), ("readonly", 8_000)):
        async with dpg_server(sb, who) as server:
            size, _ = await tools_list_bytes(server)
            total = size + len((server.instructions or "").encode())
        assert total <= goal, (who, total)

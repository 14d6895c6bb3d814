"""The tool table and the pure visibility rule."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from dpg_mcp.tools import TOOLS, TOOLSETS, visible_tools

ALL_SCOPES = [
    "api.images.read", "api.images.write", "api.images.delete", "api.keywords.write", "api.ratings.write",
    "api.metadata.write", "api.sets.write", "api.upload", "api.download",
]  # fmt: skip
EDITOR = [
    "api.images.read", "api.images.write", "api.keywords.write", "api.ratings.write", "api.metadata.write",
    "api.sets.write",
]  # fmt: skip
READONLY = ["api.images.read"]
UPLOADER = ["api.images.read", "api.upload", "api.download"]

NAMES = [
    "search_images", "get_image", "caption_image", "delete_image",
    "list_keywords", "tag_images", "rename_keyword", "rate_images", "edit_metadata",
    "browse_sets", "create_set", "update_set", "add_to_set", "remove_from_set", "arrange_set", "publish_set",
    "restore_set", "upload_image", "get_download_link", "build_archive", "check_operation", "get_guide",
]  # fmt: skip
READS = ["search_images", "get_image", "list_keywords", "browse_sets", "check_operation", "get_guide"]


def names(specs: list) -> list[str]:  # type: ignore[type-arg]
    return [s.name for s in specs]


def test_table_has_exactly_the_planned_tools() -> None:
    assert names(list(TOOLS)) == NAMES
    assert len({t.name for t in TOOLS}) == 22


@pytest.mark.parametrize("spec", TOOLS, ids=lambda s: s.name)
def test_each_row_is_well_formed(spec) -> None:  # type: ignore[no-untyped-def]
    assert spec.toolset in TOOLSETS
    assert spec.scope == "" or spec.scope in ALL_SCOPES
    # Set-to-a-value writes and reads are idempotent; a create repeated after the ledger's 10-minute replay
    # window makes another object, so its hint must not promise otherwise.
    assert spec.idempotent is (spec.name not in {"create_set", "upload_image", "build_archive"})
    assert spec.destructive == (spec.name in ("delete_image", "restore_set"))
    assert spec.read_only == (spec.name in READS)
    assert spec.input_model.model_config.get("extra") == "forbid"
    assert issubclass(spec.output_model, BaseModel)
    assert spec.description and len(spec.description) <= 160
    assert "GET " not in spec.description and "/v1/" not in spec.description  # gallery words, not HTTP


def test_admin_sees_all_tools() -> None:
    assert names(visible_tools(ALL_SCOPES)) == NAMES


def test_readonly_token_sees_reads_and_account() -> None:
    assert names(visible_tools(READONLY)) == READS


def test_editor_lacks_delete_upload_download() -> None:
    seen = names(visible_tools(EDITOR))
    assert set(NAMES) - set(seen) == {"delete_image", "upload_image", "get_download_link", "build_archive"}


def test_uploader() -> None:
    files = ["upload_image", "get_download_link", "build_archive"]
    assert names(visible_tools(UPLOADER)) == [*READS[:4], *files, "check_operation", "get_guide"]


def test_no_capabilities_leaves_only_scope_free_tools() -> None:
    assert names(visible_tools([])) == ["check_operation", "get_guide"]


def test_read_only_mode_hides_every_write() -> None:
    assert names(visible_tools(ALL_SCOPES, read_only=True)) == READS
    assert names(visible_tools(EDITOR, read_only=True)) == READS


def test_toolsets_filter() -> None:
    assert names(visible_tools(ALL_SCOPES, toolsets={"sets"})) == [
        t.name for t in TOOLS if t.toolset == "sets"
    ]
    assert names(visible_tools(ALL_SCOPES, toolsets={"account"})) == ["check_operation", "get_guide"]
    assert visible_tools(ALL_SCOPES, toolsets=set()) == []
    assert names(visible_tools(READONLY, read_only=True, toolsets=["images", "files"])) == [
        "search_images",
        "get_image",
    ]


def test_visible_tools_is_pure() -> None:
    caps = ["api.images.read", "api.sets.write"]
    first = visible_tools(caps, toolsets=("sets",))
    assert visible_tools(iter(caps), toolsets=("sets",)) == first  # any iterable, same answer
    assert caps == ["api.images.read", "api.sets.write"]  # inputs untouched
    assert names(visible_tools(["api.unknown"])) == ["check_operation", "get_guide"]


async def test_tools_list_fits_the_context_budget() -> None:
    """tools/list for the admin token, measured on the wire, stays under 20 KB (PLAN: aim ~15 KB)."""
    from pydantic import SecretStr

    from dpg_mcp.cli import tools_list_bytes
    from dpg_mcp.config import SANDBOX_API_URL, Settings
    from dpg_mcp.dpg.client import DPGClient
    from dpg_mcp.sandbox import Sandbox
    from dpg_mcp.server import build_server

    token = "dpg_api_live_sandbox_admin"
    async with DPGClient(base_url=SANDBOX_API_URL, token=token, transport=Sandbox().transport()) as client:
        server = await build_server(client, Settings(token=SecretStr(token), api_url=SANDBOX_API_URL))
        size, tools = await tools_list_bytes(server)
    assert [t["name"] for t in tools] == NAMES
    assert size <= 20_000, size


def test_input_schemas_are_plain_and_enums_only_for_rotation() -> None:
    from dpg_mcp.server.schemas import input_schema  # the shaping lives with the server since the split

    for t in TOOLS:
        text = json.dumps(input_schema(t.input_model))
        assert '"title"' not in text.replace('"title": {', "")  # titles stripped, a field named title kept
        if t.name == "caption_image":
            assert '"enum": [0, 90, 180, 270]' in text
        else:
            assert '"enum"' not in text, t.name

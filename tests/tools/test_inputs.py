"""Bad input is refused before any request: the tools run on a client whose transport fails if used."""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from dpg_mcp.tools import ToolContext
from dpg_mcp.tools.errors import NeedsConfirmation, ToolInputError, agent_message
from dpg_mcp.tools.inputs import ArgumentsRefused, parse_args
from tests.tools.conftest import SPECS, NoNetwork, call

ID = "3f2b9c1e-0000-4000-8000-000000000001"
IDS = [f"3f2b9c1e-0000-4000-8000-{i:012d}" for i in range(600)]
PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)

BAD: list[tuple[str, dict[str, Any], str]] = [
    # (tool, arguments, a word the error must name)
    ("search_images", {"limit": 101}, "limit"),
    ("search_images", {"limit": 0}, "limit"),
    ("search_images", {"offset": -1}, "offset"),
    ("search_images", {"rating": 6}, "rating"),
    ("search_images", {"min_rating": -1}, "min_rating"),
    ("search_images", {"created_at_from": "yesterday"}, "ISO 8601"),
    ("search_images", {"creation_date_to": "2026-13-45"}, "ISO 8601"),
    ("search_images", {"bbox": "1,2,3"}, "bbox"),
    ("search_images", {"bbox": "10,50,5,55"}, "bbox"),
    ("search_images", {"exif_value": "Canon"}, "exif_property"),
    ("search_images", {"best_first": True, "rating": 4}, "best_first"),
    ("browse_sets", {"set_uuid": ID, "name": "Friday"}, "not both"),
    ("search_images", {"querry": "typo"}, "querry"),
    ("get_image", {"image_uuid": "../sets/x"}, "image_uuid"),
    ("get_image", {"image_uuid": ""}, "image_uuid"),
    ("get_image", {}, "image_uuid"),
    ("caption_image", {"image_uuid": ID}, "at least one"),
    ("caption_image", {"image_uuid": ID, "rotation": 45}, "rotation"),
    ("caption_image", {"image_uuid": ID, "title": "x" * 192}, "title"),
    ("caption_image", {"image_uuid": ID, "creation_date": "July 3rd"}, "ISO 8601"),
    ("delete_image", {"image_uuids": []}, "image_uuids"),
    ("delete_image", {"image_uuids": IDS[:51], "confirm": True}, "image_uuids"),
    ("tag_images", {"image_uuids": [ID]}, "add and/or remove"),
    ("tag_images", {"image_uuids": IDS[:501], "add": ["x"]}, "image_uuids"),
    ("tag_images", {"image_uuids": [ID], "add": ["k" * 101]}, "add"),
    ("tag_images", {"image_uuids": [ID], "add": ["a"], "remove": ["a"]}, "both added and removed"),
    ("tag_images", {"image_uuids": ["a/b"], "add": ["x"]}, "image_uuids"),
    ("rename_keyword", {"keyword": "a", "new_name": "a"}, "same"),
    ("rate_images", {"image_uuids": [ID], "rating": 6}, "rating"),
    ("rate_images", {"image_uuids": [ID], "rating": True}, "rating"),
    ("rate_images", {"image_uuids": [ID]}, "rating"),
    ("edit_metadata", {"image_uuids": [ID]}, "at least one"),
    ("edit_metadata", {"image_uuids": [ID], "iptc": {}}, "iptc"),
    ("edit_metadata", {"image_uuids": [ID], "iptc": {"creator": {"nested": 1}}}, "creator"),
    ("edit_metadata", {"image_uuids": [ID], "alt_text": "a" * 1001}, "alt_text"),
    ("edit_metadata", {"image_uuids": [ID], "add_credits": ["Jane Doe"]}, "role: name"),
    ("edit_metadata", {"image_uuids": [ID], "clear_crop": "wide"}, "W:H"),
    (
        "edit_metadata",
        {"image_uuids": [ID], "crop": {"aspect_ratio": "3:2", "x": -1, "y": 0, "width": 1, "height": 1}},
        "x",
    ),
    (
        "edit_metadata",
        {"image_uuids": [ID], "crop": {"aspect_ratio": "3:2", "x": 0, "y": 0, "width": 1}},
        "height",
    ),
    ("browse_sets", {"set_uuid": "x y"}, "set_uuid"),
    ("create_set", {"name": ""}, "name"),
    ("create_set", {"name": "n" * 192}, "name"),
    ("update_set", {"set_uuid": ID}, "at least one change"),
    ("update_set", {"set_uuid": ID, "parent_uuid": ID}, "own parent"),
    ("update_set", {"set_uuid": ID, "parent_uuid": "../x"}, "parent_uuid"),
    ("add_to_set", {"set_uuid": ID, "image_uuids": []}, "image_uuids"),
    ("remove_from_set", {"image_uuids": [ID]}, "set_uuid"),
    ("arrange_set", {"set_uuid": ID}, "exactly one"),
    ("arrange_set", {"set_uuid": ID, "image_uuids": [ID], "move_to_front": [ID]}, "exactly one"),
    ("arrange_set", {"move_to_front": [ID]}, "set_uuid"),
    ("arrange_set", {"set_uuid": ID, "image_uuids": [ID, ID]}, "repeats"),
    ("publish_set", {"set_uuid": ID}, "hidden"),
    ("publish_set", {"set_uuid": ID, "hidden": "yes"}, "hidden"),
    (
        "publish_set",
        {"set_uuid": ID, "hidden": False, "activation_time": "2026-12-01T09:00:00Z"},
        "hidden=true",
    ),
    ("publish_set", {"set_uuid": ID, "hidden": True, "activation_time": "2026-12-01T09:00:00"}, "time zone"),
    ("publish_set", {"set_uuid": ID, "hidden": True, "activation_time": "tomorrow"}, "ISO 8601"),
    ("restore_set", {"set_uuid": ID}, "snapshot_uuid"),
    ("upload_image", {}, "exactly one"),
    ("upload_image", {"file_path": "/x.png", "content_base64": "AA=="}, "exactly one"),
    ("upload_image", {"content_base64": "AA=="}, "filename"),
    ("upload_image", {"file_path": "/x.png", "title": "t" * 192}, "title"),
    ("get_download_link", {}, "list_archives"),
    ("build_archive", {"image_uuids": IDS[:501]}, "image_uuids"),
    ("check_operation", {"operation_id": "op-1/../../v1/me"}, "operation_id"),
    ("get_guide", {"offset": -5}, "offset"),
    # strict: no coercion, null is not absent, every string bounded (issue 7)
    ("delete_image", {"image_uuids": [ID], "confirm": "true"}, "confirm"),
    ("delete_image", {"image_uuids": [ID], "confirm": 1}, "confirm"),
    ("publish_set", {"set_uuid": ID, "hidden": "false"}, "hidden"),
    ("search_images", {"limit": "5"}, "limit"),
    ("search_images", {"limit": 5.5}, "limit"),
    ("search_images", {"has_geo": "yes"}, "has_geo"),
    ("search_images", {"query": None}, "query"),
    ("search_images", {"query": "x" * 100_000}, "query"),
    ("search_images", {"offset": 10**7}, "offset"),
    ("get_image", {"image_uuid": None}, "image_uuid"),
    ("get_image", {"image_uuid": "a" * 101}, "image_uuid"),
    ("add_to_set", {"set_uuid": ID, "image_uuids": f'["{ID}"]'}, "image_uuids"),
    ("tag_images", {"image_uuids": [ID], "add": "sunset"}, "add"),
    ("rate_images", {"image_uuids": [ID], "rating": "4"}, "rating"),
    ("caption_image", {"image_uuid": ID, "rotation": "90"}, "rotation"),
    ("caption_image", {"image_uuid": ID, "title": 5}, "title"),
    ("edit_metadata", {"image_uuids": [ID], "crop": '{"aspect_ratio": "3:2"}'}, "crop"),
    ("upload_image", {"file_path": "/x\x00.png", "title": "t" * 192}, "title"),
    ("upload_image", {"file_path": "/" + "p" * 5000}, "file_path"),
]


@pytest.mark.parametrize(("tool", "args", "named"), BAD, ids=[f"{t}-{i}" for i, (t, _, _) in enumerate(BAD)])
def test_schema_refuses_bad_input(tool: str, args: dict[str, Any], named: str) -> None:
    with pytest.raises(ValidationError) as info:
        SPECS[tool].input_model.model_validate(args)
    assert named in str(info.value)


async def test_no_request_for_any_bad_input(offline: tuple[ToolContext, NoNetwork]) -> None:
    ctx, transport = offline
    for tool, args, _ in BAD:
        with pytest.raises(ValidationError):
            await call(ctx, tool, **args)
    assert transport.requests == []


async def test_delete_without_confirmation_sends_nothing(offline: tuple[ToolContext, NoNetwork]) -> None:
    ctx, transport = offline
    with pytest.raises(NeedsConfirmation, match="confirm=true"):
        await call(ctx, "delete_image", image_uuids=[ID])
    with pytest.raises(NeedsConfirmation, match="confirm=true"):
        await call(ctx, "restore_set", set_uuid=ID, snapshot_uuid=ID)
    assert transport.requests == []


def with_roots(ctx: ToolContext, *roots: Path) -> ToolContext:
    async def listed() -> list[Path]:
        return list(roots)

    return dataclasses.replace(ctx, upload_roots=listed)


async def test_upload_checks_the_file_before_sending(
    offline: tuple[ToolContext, NoNetwork], tmp_path: Path
) -> None:
    ctx, transport = offline
    ctx = with_roots(ctx, tmp_path)
    refused = "must name a PNG, JPEG, GIF or WebP file of at most 50 MB inside the allowed folders"
    with pytest.raises(ToolInputError, match=refused):
        await call(ctx, "upload_image", file_path=str(tmp_path / "missing.png"))
    with pytest.raises(ToolInputError, match=refused):
        await call(ctx, "upload_image", file_path=str(tmp_path))
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    with pytest.raises(ToolInputError, match=refused):
        await call(ctx, "upload_image", file_path=str(text))
    with pytest.raises(ToolInputError, match="not valid base64"):
        await call(ctx, "upload_image", content_base64="@@@", filename="a.png")
    with pytest.raises(ToolInputError, match="PNG, JPEG, GIF or WebP"):
        await call(ctx, "upload_image", content_base64=base64.b64encode(b"hello").decode(), filename="a.png")
    assert transport.requests == []


async def test_upload_size_cap(
    offline: tuple[ToolContext, NoNetwork], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dpg_mcp.tools import files

    monkeypatch.setattr(files, "MAX_UPLOAD_BYTES", 10)
    ctx, transport = offline
    big = tmp_path / "big.png"
    big.write_bytes(PNG_1PX)
    with pytest.raises(ToolInputError, match="at most 0 MB"):
        await call(with_roots(ctx, tmp_path), "upload_image", file_path=str(big))
    assert transport.requests == []


async def test_no_roots_no_file_is_read(offline: tuple[ToolContext, NoNetwork], tmp_path: Path) -> None:
    ctx, transport = offline
    good = tmp_path / "ok.png"
    good.write_bytes(PNG_1PX)
    with pytest.raises(ToolInputError, match="no folder"):
        await call(ctx, "upload_image", file_path=str(good))  # ctx.upload_roots is None
    assert transport.requests == []


@pytest.mark.parametrize(
    ("tool", "args", "said"),
    [
        ("delete_image", {"image_uuids": [ID], "confirm": "true"}, "confirm: must be true or false"),
        ("search_images", {"limit": "5"}, "limit: must be a whole number"),
        ("add_to_set", {"set_uuid": ID, "image_uuids": "[]"}, "image_uuids: must be a JSON array"),
        ("search_images", {"query": None}, "query: null is not a value here; leave the argument out"),
        ("caption_image", {"image_uuid": ID, "rotation": 45}, "rotation: Input should be 0, 90, 180 or 270"),
        ("get_guide", {"ful": True}, "ful: unknown argument; the arguments are full, offset"),
    ],
)
def test_refusal_names_the_argument_and_what_is_allowed(tool: str, args: dict[str, Any], said: str) -> None:
    with pytest.raises(ArgumentsRefused) as info:
        parse_args(SPECS[tool].input_model, args)
    assert said in str(info.value)
    assert "Nothing was sent to DPG" in agent_message(info.value)


def test_arguments_must_be_an_object() -> None:
    with pytest.raises(ArgumentsRefused, match="JSON object"):
        parse_args(SPECS["get_guide"].input_model, ["full"])  # type: ignore[arg-type]


def test_every_published_string_has_a_max_length_and_every_object_forbids_extras() -> None:
    from dpg_mcp.server import input_schema

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if node.get("type") == "string":
                assert "maxLength" in node or "enum" in node, where
            if node.get("type") == "array":
                assert "maxItems" in node, where
            if node.get("type") == "integer":
                assert "maximum" in node or "enum" in node, where
            if node.get("type") == "object" and "properties" in node:
                assert node.get("additionalProperties") is False, where
            for key, value in node.items():
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")

    for name, spec in SPECS.items():
        walk(input_schema(spec.input_model), name)


def test_ids_are_deduplicated_in_order() -> None:
    args = SPECS["add_to_set"].input_model.model_validate(
        {"set_uuid": ID, "image_uuids": ["b", "a", "b", " a "]}
    )
    assert args.image_uuids == ["b", "a"]  # type: ignore[attr-defined]

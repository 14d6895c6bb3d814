"""Writes over HTTP: they complete, progress reaches the caller on the POST's stream, and destructive tools
ask the user where the transport allows it (else they take confirm=true and say so)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from mcp.types import ElicitResult, TextContent

from .conftest import PNG_1PX, TOKENS, Proc, connect, dpg_mcp_http, sets_named


def _text(result: Any) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, TextContent))


async def test_a_write_completes_with_progress(hosted: Proc, mode: str) -> None:
    notes: list[tuple[float, float | None, str | None]] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        notes.append((done, total, message))

    async with connect(hosted.mcp, TOKENS["uploader"], mode) as client:
        result = await client.call_tool(
            "upload_image",
            {
                "content_base64": base64.b64encode(PNG_1PX).decode(),
                "filename": f"dot-{mode}.png",
                "title": f"uploaded over http ({mode})",
            },
            progress_callback=progress,
        )
    assert not result.is_error, _text(result)
    new_id = result.structured_content["image"]["uuid"]  # type: ignore[index]
    assert [n[0] for n in notes] == [0, 1, 2], notes  # ticket, file, read-back: each on this call's stream
    async with connect(hosted.mcp, TOKENS["admin"], mode) as client:
        again = await client.call_tool("get_image", {"image_uuid": new_id})
    assert not again.is_error and f"uploaded over http ({mode})" in _text(again)


async def test_create_set_completes_once(hosted: Proc, mode: str) -> None:
    args = {"name": f"Created over HTTP ({mode})"}
    async with connect(hosted.mcp, TOKENS["editor"], mode) as client:
        first = await client.call_tool("create_set", args)
        second = await client.call_tool("create_set", args)  # a resend: the same action, not a second set
    assert not first.is_error and not second.is_error, _text(first)
    assert sets_named(hosted.url + "/sandbox", args["name"]) == 1


def _accept(asked: list[str]) -> Any:
    async def on_elicit(ctx: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"confirm": True})

    return on_elicit


async def _an_image(client: Any) -> str:
    page = await client.call_tool("search_images", {"limit": 1})
    return str(page.structured_content["images"][0]["uuid"])


async def test_sessions_ask_the_user_mid_call(hosted: Proc, mode: str) -> None:
    """With sessions (2025-11-25) the question goes out mid-call; on 2026-07-28 as an input-required round."""
    asked: list[str] = []
    async with connect(hosted.mcp, TOKENS["admin"], mode, elicitation_callback=_accept(asked)) as client:
        image = await _an_image(client)
        result = await client.call_tool("delete_image", {"image_uuids": [image]})
    assert not result.is_error, _text(result)
    assert len(asked) == 1 and "permanently" in asked[0]


@pytest.fixture(scope="module")
def stateless(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    with dpg_mcp_http(
        tmp_path_factory.mktemp("stateless"), "--sandbox", "--stateless", name="stateless"
    ) as proc:
        yield proc


async def test_stateless_legacy_cannot_ask_so_destructive_tools_take_confirm(stateless: Proc) -> None:
    asked: list[str] = []
    async with connect(
        stateless.mcp, TOKENS["admin"], "legacy", elicitation_callback=_accept(asked)
    ) as client:
        image = await _an_image(client)
        refused = await client.call_tool("delete_image", {"image_uuids": [image]})
        still = await client.call_tool("get_image", {"image_uuid": image})
        done = await client.call_tool("delete_image", {"image_uuids": [image], "confirm": True})
    assert refused.is_error and "confirm=true" in _text(refused)
    assert not still.is_error  # nothing was deleted by the refused call
    assert not done.is_error, _text(done)
    assert asked == []  # no back channel: nobody was asked


async def test_stateless_2026_still_asks_by_round_trip(stateless: Proc) -> None:
    asked: list[str] = []
    async with connect(stateless.mcp, TOKENS["admin"], "auto", elicitation_callback=_accept(asked)) as client:
        image = await _an_image(client)
        result = await client.call_tool("delete_image", {"image_uuids": [image]})
    assert not result.is_error, _text(result)
    assert len(asked) == 1

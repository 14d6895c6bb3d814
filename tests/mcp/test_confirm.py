"""Destructive tools ask the user: elicitation/create mid-call on the handshake era, an InputRequiredResult
round trip on 2026-07-28, and an explicit confirm argument when the client cannot ask."""

from __future__ import annotations

from typing import Any

from mcp.types import ElicitRequestParams, ElicitResult

from dpg_mcp.sandbox import Sandbox

from .conftest import connect, dpg_server
from .test_calls import image_ids, ok, text_of


def answering(action: str, confirm: bool = True) -> Any:
    asked: list[str] = []

    async def on_elicit(ctx: Any, params: ElicitRequestParams) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action=action, content={"confirm": confirm} if action == "accept" else None)  # type: ignore[arg-type]

    on_elicit.asked = asked  # type: ignore[attr-defined]
    return on_elicit


async def test_delete_asks_the_user_through_elicitation(sb: Sandbox, mode: str) -> None:
    target = image_ids(sb, 1)[0]
    cb = answering("accept")
    async with (
        dpg_server(sb, "admin") as server,
        connect(server, mode, elicitation_callback=cb) as client,
    ):
        out = ok(await client.call_tool("delete_image", {"image_uuids": [target]}))
    assert len(cb.asked) == 1 and cb.asked[0].startswith("Delete 1 image") and out["state"] == "succeeded"
    assert target not in sb.store.images


async def test_declined_elicitation_deletes_nothing(sb: Sandbox, mode: str) -> None:
    target = image_ids(sb, 1)[0]
    cb = answering("decline")
    async with (
        dpg_server(sb, "admin") as server,
        connect(server, mode, elicitation_callback=cb) as client,
    ):
        result = await client.call_tool("delete_image", {"image_uuids": [target]})
    assert len(cb.asked) == 1
    assert target in sb.store.images and sb.applied_total() == 0
    assert "did not confirm" in text_of(result)


async def test_delete_needs_confirm_without_elicitation(sb: Sandbox, mode: str) -> None:
    target = image_ids(sb, 1)[0]
    async with dpg_server(sb, "admin") as server, connect(server, mode) as client:
        refused = await client.call_tool("delete_image", {"image_uuids": [target]})
        assert refused.is_error and "confirm" in text_of(refused)
        assert target in sb.store.images
        out = ok(await client.call_tool("delete_image", {"image_uuids": [target], "confirm": True}))
    assert out["state"] == "succeeded" and target not in sb.store.images

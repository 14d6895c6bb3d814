"""Every error class reaches the agent as an actionable isError result, in both eras."""

from __future__ import annotations

import logging
import uuid

import anyio
import pytest
from mcp.types import CallToolResult, ToolListChangedNotification

from dpg_mcp.sandbox import Faults, Sandbox, SandboxConfig

from .conftest import ALL_SCOPES, connect, dpg_server
from .test_calls import image_ids, text_of


def err(result: CallToolResult) -> str:
    assert result.is_error, result
    text = text_of(result)
    assert "Traceback" not in text and "dpg_api_live" not in text
    return text


async def test_schema_violation_names_the_argument_and_sends_nothing(sb: Sandbox, mode: str) -> None:
    async with dpg_server(sb, "editor") as server, connect(server, mode) as client:
        text = err(
            await client.call_tool("caption_image", {"image_uuid": image_ids(sb, 1)[0], "rotation": 45})
        )
        extra = err(await client.call_tool("search_images", {"querry": "sunset"}))
    assert "rotation" in text and "Nothing was sent to DPG" in text
    assert "querry" in extra
    assert sb.applied_total() == 0


async def test_dpg_validation_error_carries_field_and_detail(sb: Sandbox, mode: str) -> None:
    async with dpg_server(sb, "admin") as server, connect(server, mode) as client:
        text = err(await client.call_tool("create_set", {"name": "Backstage", "colour": "chartreuse"}))
    assert "field `colour`" in text and "Correct it and call again" in text and "request_id" in text


async def test_not_found_says_search_first(sb: Sandbox, mode: str) -> None:
    async with dpg_server(sb, "readonly") as server, connect(server, mode) as client:
        text = err(await client.call_tool("get_image", {"image_uuid": str(uuid.uuid4())}))
    assert "Not found" in text and "search_images" in text


async def test_server_errors_after_retries(mode: str) -> None:
    sb = Sandbox(SandboxConfig(faults=Faults(error_rate=1.0)))
    async with (
        dpg_server(sb, "readonly", believed_scopes=["api.images.read"]) as server,
        connect(server, mode) as client,
    ):
        with anyio.fail_after(30):
            text = err(await client.call_tool("search_images", {"query": "sunset"}))
    assert "DPG failed" in text and "already retried" in text and "HTTP 500" in text
    assert "idempotency" not in text  # a search sends no key and changes nothing


async def test_forbidden_names_the_scope_and_rereads_me(sb: Sandbox, mode: str) -> None:
    """The token lost api.images.write after startup: 403, then /v1/me is read again and the tool goes."""
    async with (
        dpg_server(sb, "readonly", believed_scopes=ALL_SCOPES) as server,
        connect(server, mode) as client,
    ):
        before = {t.name for t in (await client.list_tools()).tools}
        assert "caption_image" in before
        text = err(await client.call_tool("caption_image", {"image_uuid": image_ids(sb, 1)[0], "title": "x"}))
        after = {t.name for t in (await client.list_tools()).tools}
        hidden = await client.call_tool("caption_image", {"image_uuid": image_ids(sb, 1)[0], "title": "x"})
    assert "lacks the api.images.write scope" in text and "do not retry" in text
    assert server.dpg.capabilities == {"api.images.read"}
    assert "caption_image" not in after and "search_images" in after
    assert text_of(hidden).startswith(
        "Unknown tool: caption_image (not available here: it needs the api.images.write"
    )
    assert sb.applied_total() == 0


async def test_tools_list_changed_is_sent_on_the_handshake_era(sb: Sandbox) -> None:
    notes: list[object] = []
    arrived = anyio.Event()

    async def on_message(message: object) -> None:
        if isinstance(message, ToolListChangedNotification):
            notes.append(message)
            arrived.set()

    async with (
        dpg_server(sb, "readonly", believed_scopes=ALL_SCOPES) as server,
        connect(server, "legacy", message_handler=on_message) as client,
    ):
        await client.call_tool("caption_image", {"image_uuid": image_ids(sb, 1)[0], "title": "x"})
        with anyio.fail_after(5):
            await arrived.wait()
    assert len(notes) == 1


async def test_tools_list_changed_reaches_a_2026_listener(sb: Sandbox) -> None:
    async with (
        dpg_server(sb, "readonly", believed_scopes=ALL_SCOPES) as server,
        connect(server, "auto") as client,
        client.listen(tools_list_changed=True) as sub,
    ):
        await client.call_tool("caption_image", {"image_uuid": image_ids(sb, 1)[0], "title": "x"})
        with anyio.fail_after(5):
            event = await sub.__anext__()
    assert event is not None


async def test_token_never_reaches_results_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sb = Sandbox(SandboxConfig(faults=Faults(error_rate=1.0)))
    async with (
        dpg_server(sb, "editor", believed_scopes=ALL_SCOPES) as server,
        connect(server, "auto") as client,
    ):
        texts = [
            text_of(await client.call_tool("search_images", {"query": "x"})),
            text_of(await client.call_tool("get_image", {"image_uuid": "../../etc"})),
            text_of(await client.call_tool("rate_images", {"image_uuids": ["x"], "rating": 9})),
        ]
    everything = "\n".join(texts) + caplog.text + repr(server.dpg.settings) + repr(server.dpg.client)
    assert "dpg_api_live_sandbox_editor" not in everything

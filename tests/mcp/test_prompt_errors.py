"""prompts/get without its argument, or for an unknown prompt: a JSON-RPC invalid-params error saying what to
change, and one log line, no traceback."""

from __future__ import annotations

import logging

import pytest
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS

from dpg_mcp.sandbox import Sandbox

from .conftest import connect, dpg_server


@pytest.mark.parametrize(
    ("name", "arguments", "said"),
    [
        ("caption_set", None, "prompt caption_set needs the argument(s): set_uuid"),
        ("caption_set", {}, "prompt caption_set needs the argument(s): set_uuid"),
        ("caption_set", {"set_uuid": "  "}, "needs the argument(s): set_uuid"),
        (
            "no_such_prompt",
            {},
            "Unknown prompt 'no_such_prompt'; the prompts are best_shots_archive, caption_set",
        ),
    ],
)
async def test_prompt_errors_are_invalid_params_with_one_log_line(
    sb: Sandbox, mode: str, name: str, arguments: dict[str, str] | None, said: str,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG)
    async with dpg_server(sb, "admin") as server, connect(server, mode) as client:
        caplog.clear()
        with pytest.raises(MCPError) as info:
            await client.get_prompt(name, arguments)
        records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert info.value.code == INVALID_PARAMS
    assert said in info.value.message
    assert len(records) == 1 and "prompts/get refused" in records[0].getMessage(), records
    assert all(r.exc_info is None for r in caplog.records)
    assert "Traceback" not in caplog.text


async def test_a_prompt_with_its_argument_still_renders(sb: Sandbox, mode: str) -> None:
    async with dpg_server(sb, "admin") as server, connect(server, mode) as client:
        result = await client.get_prompt("caption_set", {"set_uuid": "abc-123"})
    assert "abc-123" in result.messages[0].content.text  # type: ignore[union-attr]

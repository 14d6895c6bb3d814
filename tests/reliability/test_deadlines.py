"""Every tool call ends within its budget: with --wait-seconds 5 and a DPG whose answers take 31 s, reads and
writes come back within 6 s with a clear word, not after minutes of retries.

The calls run concurrently, so the test takes about one budget (~5 s) of wall time; an outer bound stops it
should anything hang.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest
from mcp import Client

from dpg_mcp.dpg.client import DPGClient
from dpg_mcp.dpg.errors import TransportFailure
from dpg_mcp.dpg.retry import call_deadline
from dpg_mcp.sandbox import Faults, Sandbox, SandboxConfig
from tests.mcp.conftest import dpg_server

BUDGET = 5.0
SLOW = 31.0


def slow_sandbox() -> Sandbox:
    sb = Sandbox(SandboxConfig(seed=7))
    return sb


async def test_reads_and_writes_end_within_the_budget_when_dpg_hangs() -> None:
    sb = slow_sandbox()
    image = sorted(sb.store.images)[0]
    calls: list[tuple[str, dict[str, Any]]] = [
        ("get_image", {"image_uuid": image}),
        ("search_images", {"query": "sunset"}),
        ("browse_sets", {}),
        ("caption_image", {"image_uuid": image, "title": "New"}),
        ("rate_images", {"image_uuids": sorted(sb.store.images)[:3], "rating": 4}),
        ("check_operation", {"operation_id": "op-unknown-1"}),
    ]
    results: dict[str, tuple[float, bool, str]] = {}
    async with dpg_server(sb, "admin", wait_budget_s=BUDGET) as server:
        # The server is up (it read /v1/me); now every other path answers after 31 s.
        sb.set_faults(Faults(latency={"/v1/images": SLOW, "/v1/sets": SLOW, "/v1/operations": SLOW}))
        async with Client(server, mode="legacy") as client:

            async def one(name: str, args: dict[str, Any]) -> None:
                started = time.monotonic()
                result = await client.call_tool(name, args)
                text = result.content[0].text  # type: ignore[union-attr]
                results[name] = (time.monotonic() - started, bool(result.is_error), text)

            with anyio.fail_after(20):  # the test's own bound, far below the 31 s answers
                async with anyio.create_task_group() as tg:
                    for name, args in calls:
                        tg.start_soon(one, name, args)
    for name, (took, is_error, text) in results.items():
        assert took < BUDGET + 1.0, (name, took, text)
        if is_error:  # a clear word: what happened, that it was the time budget, what to do
            assert "within this call's 5 s time budget" in text or "within 5s" in text, (name, text)
            assert "a bug" not in text, (name, text)
        else:  # a write that was accepted and outlived the wait returns its handle
            assert "check_operation" in text, (name, text)
    assert set(results) == {name for name, _ in calls}


async def test_a_read_retries_only_while_the_deadline_allows() -> None:
    """Without a server: the client alone, its reads under call_deadline, against a hanging DPG."""
    sb = Sandbox(SandboxConfig(seed=7, faults=Faults(latency={"/v1/images": SLOW})))
    async with DPGClient("http://dpg.test", "dpg_api_live_sandbox_admin", transport=sb.transport()) as client:
        started = time.monotonic()
        with pytest.raises(TransportFailure) as info, call_deadline(0.5):
            await client.list_images(limit=1)
        took = time.monotonic() - started
    assert took < 1.5, took
    assert info.value.code == "timeout" and "0.5 s time budget" in info.value.message

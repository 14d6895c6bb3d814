"""What makes two calls the same action (principal, arguments, origin), and what never reaches the ledger or
the agent (the live token, whatever its shape)."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx2
import pytest

from dpg_mcp.dpg.client import DPGClient
from dpg_mcp.dpg.errors import DPGError
from dpg_mcp.dpg.operations import WriteRunner
from dpg_mcp.ledger import Kind, MemoryLedger, State
from dpg_mcp.ledger.sqlite import SQLiteLedger
from dpg_mcp.state import principal_for_token
from dpg_mcp.tools.errors import agent_message
from dpg_mcp.tools.writes import fingerprint
from tests.client.helpers import BASE, envelope, jresp, op
from tests.ledger.test_contract import _file_bytes

ODD_TOKEN = "Zq7-odd-shaped-live-secret-9f8e"  # not dpg_api_…: only the live-secret scrub can catch it


def lost_replies() -> tuple[httpx2.MockTransport, list[httpx2.Request]]:
    """Every write lands and its reply is lost: only the ledger can tell a resend what to do."""
    seen: list[httpx2.Request] = []

    def handler(r: httpx2.Request) -> httpx2.Response:
        seen.append(r)
        raise httpx2.ReadError("reset", request=r)

    return httpx2.MockTransport(handler), seen


async def unknown_create(runner: WriteRunner, principal: str, name: str) -> None:
    with pytest.raises(DPGError):
        await runner.run(
            "POST", "/v1/sets", {"name": name}, principal=principal,
            fingerprint=fingerprint("create_set", {"name": name}), kind=Kind.CREATE,
        )  # fmt: skip


def keys(seen: list[httpx2.Request]) -> list[str]:
    return list(dict.fromkeys(r.headers["idempotency-key"] for r in seen))


async def test_another_principal_never_takes_over_an_action() -> None:
    transport, seen = lost_replies()
    async with DPGClient(BASE, "t", transport=transport) as client:
        runner = WriteRunner(client, MemoryLedger(), budget_s=0.2, backoff_base_s=0.01)
        await unknown_create(runner, "acct:alice", "Friday")
        await unknown_create(runner, "acct:bob", "Friday")  # same call, another principal
        await unknown_create(runner, "acct:alice", "Friday")
    alice, _bob = keys(seen)  # bob got a key of his own ...
    assert seen[-1].headers["idempotency-key"] == alice  # ... and alice's resend reused hers


async def test_other_arguments_are_another_action() -> None:
    transport, seen = lost_replies()
    async with DPGClient(BASE, "t", transport=transport) as client:
        runner = WriteRunner(client, MemoryLedger(), budget_s=0.2, backoff_base_s=0.01)
        await unknown_create(runner, "p", "Friday")
        await unknown_create(runner, "p", "Saturday")
        await unknown_create(runner, "p", "Friday")
    assert len(keys(seen)) == 2  # Saturday is a new action; Friday's resend reused Friday's key
    assert seen[0].headers["idempotency-key"] == seen[-1].headers["idempotency-key"]


async def test_another_origin_is_another_action() -> None:
    transport, seen = lost_replies()
    ledger = MemoryLedger()
    async with DPGClient(BASE, "t", transport=transport) as client:
        for instance in ("a", "b"):  # the embedded sandbox restarted: a new instance id
            runner = WriteRunner(
                client, ledger, budget_s=0.2, backoff_base_s=0.01, origin=f"{BASE}#{instance}"
            )
            await unknown_create(runner, "p", "Friday")
    assert len(keys(seen)) == 2


@pytest.mark.parametrize("status", [400, 503])
async def test_an_echoed_odd_shaped_token_reaches_neither_the_agent_nor_the_ledger(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    caplog.set_level(logging.DEBUG)
    echo = envelope(
        "validation" if status == 400 else "internal", f"token {ODD_TOKEN} refused", field="title"
    )

    def handler(r: httpx2.Request) -> httpx2.Response:
        return jresp(status, echo) if r.method != "GET" else jresp(200, op())

    ledger = SQLiteLedger(tmp_path / "ledger.sqlite3")
    try:
        async with DPGClient(BASE, ODD_TOKEN, transport=httpx2.MockTransport(handler)) as client:
            runner = WriteRunner(client, ledger, budget_s=0.2, backoff_base_s=0.01)
            principal = principal_for_token(ODD_TOKEN)
            with pytest.raises(DPGError) as info:
                await runner.run(
                    "PATCH", "/v1/images/i", {"title": "x"}, principal=principal, fingerprint="f"
                )
        err = info.value
        for text in (agent_message(err), str(err), repr(err), *(str(v) for v in err.to_dict().values())):
            assert ODD_TOKEN not in text
        entry = await ledger.get(runner.action_of(principal, "f"))
        assert entry is not None and entry.state in (State.FAILED, State.UNKNOWN)
        stored = _file_bytes(tmp_path, "ledger.sqlite3*")
        assert ODD_TOKEN.encode() not in stored
        assert ODD_TOKEN not in caplog.text
    finally:
        await ledger.aclose()

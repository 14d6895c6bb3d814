"""Fixtures for the tool tests: an in-process sandbox, a DPG client on it, and a ToolContext."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx2
import pytest
from pydantic import BaseModel

from dpg_mcp.dpg.client import DPGClient
from dpg_mcp.dpg.operations import WriteRunner
from dpg_mcp.ledger import MemoryLedger
from dpg_mcp.sandbox import Sandbox, SandboxConfig
from dpg_mcp.tools import TOOLS, ToolContext, ToolResult, ToolSpec

ADMIN = "dpg_api_live_sandbox_admin"
BASE = "http://dpg.test"
SPECS: dict[str, ToolSpec] = {t.name: t for t in TOOLS}


class NoNetwork(httpx2.AsyncBaseTransport):
    """A transport that fails the test if anything is sent: bad input must never reach DPG."""

    def __init__(self) -> None:
        self.requests: list[str] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(f"{request.method} {request.url}")
        pytest.fail(f"a request was sent: {request.method} {request.url}")


async def call(ctx: ToolContext, name: str, /, **args: Any) -> ToolResult:
    """Validate the arguments with the tool's own input model (as the server does), then run the handler."""
    spec = SPECS[name]
    parsed = spec.input_model.model_validate(args)
    result = await spec.handler(ctx, parsed)
    assert isinstance(result.structured, spec.output_model)
    return result


def outside_fences(text: str) -> str:
    """The text an agent reads as the tool's own voice: everything outside the untrusted-text fences."""
    return re.sub(r"<untrusted-gallery-text>\n.*?\n</untrusted-gallery-text>", "", text, flags=re.S)


def dump(model: BaseModel) -> dict[str, Any]:
    """The structured content exactly as the server sends it."""
    return model.model_dump(mode="json", by_alias=True)


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox(SandboxConfig(seed=7))


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[DPGClient]:
    async with DPGClient(base_url=BASE, token=ADMIN, transport=sandbox.transport()) as c:
        yield c


@pytest.fixture
def ctx(client: DPGClient) -> ToolContext:
    return ToolContext(client=client, runner=WriteRunner(client, MemoryLedger()), principal="test:admin")


@pytest.fixture
async def offline() -> AsyncIterator[tuple[ToolContext, NoNetwork]]:
    transport = NoNetwork()
    async with DPGClient(base_url=BASE, token=ADMIN, transport=transport, max_attempts=1) as c:
        yield (
            ToolContext(client=c, runner=WriteRunner(c, MemoryLedger()), principal="test:offline"),
            transport,
        )


def confirmer(answer: bool | None, asked: list[str]) -> Callable[[str], Awaitable[bool | None]]:
    async def confirm(message: str) -> bool | None:
        asked.append(message)
        return answer

    return confirm

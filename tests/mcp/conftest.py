"""MCP server test fixtures: an in-process sandbox, a server for one of its tokens, a Client in either era."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from mcp import Client
from pydantic import SecretStr

from dpg_mcp.config import SANDBOX_API_URL, Settings
from dpg_mcp.dpg.client import DPGClient
from dpg_mcp.sandbox import Sandbox, SandboxConfig
from dpg_mcp.server import DPGServer, build_server

TOKENS = {
    "admin": "dpg_api_live_sandbox_admin",
    "editor": "dpg_api_live_sandbox_editor",
    "readonly": "dpg_api_live_sandbox_readonly",
    "uploader": "dpg_api_live_sandbox_uploader",
    "captioner": "dpg_api_live_sandbox_captioner",
    "disabled": "dpg_api_live_sandbox_disabled",
}


def settings_for(token: str, **kw: Any) -> Settings:
    return Settings(token=SecretStr(token), api_url=SANDBOX_API_URL, **kw)


ALL_SCOPES = [
    "api.images.read", "api.images.write", "api.images.delete", "api.keywords.write", "api.ratings.write",
    "api.metadata.write", "api.sets.write", "api.upload", "api.download",
]  # fmt: skip


@asynccontextmanager
async def dpg_server(
    sb: Sandbox, who: str = "admin", *, believed_scopes: list[str] | None = None, **settings: Any
) -> AsyncIterator[DPGServer]:
    """A server for one sandbox token. believed_scopes: start as if /v1/me had listed these (a token whose
    scopes were cut after startup, or a sandbox whose faults would break startup)."""
    token = TOKENS.get(who, who)
    me = None
    if believed_scopes is not None:
        healthy = Sandbox(SandboxConfig(seed=7))  # same seed: same account, same token ids
        async with DPGClient(base_url=SANDBOX_API_URL, token=token, transport=healthy.transport()) as probe:
            me = (await probe.me()).model_copy(update={"capabilities": believed_scopes})
    async with DPGClient(base_url=SANDBOX_API_URL, token=token, transport=sb.transport()) as client:
        yield await build_server(client, settings_for(token, **settings), me=me)


@asynccontextmanager
async def connect(server: DPGServer, mode: str, **kw: Any) -> AsyncIterator[Client]:
    async with Client(server, mode=mode, **kw) as client:
        yield client


@pytest.fixture
def sb() -> Sandbox:
    return Sandbox(SandboxConfig(seed=7))


@pytest.fixture(params=["auto", "legacy"])
def mode(request: pytest.FixtureRequest) -> str:
    """auto negotiates 2026-07-28 in-process; legacy is the initialize handshake (2025-11-25)."""
    return str(request.param)

"""The member's DPG access token is refreshed before it runs out; two processes refreshing one sign-in at once
keep exactly one rotation (DPG's refresh token is single-use); a long write outlives a short token."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp.types import TextContent

from dpg_mcp.dpg.signin import SignInClient
from dpg_mcp.hosting.auth.provider import DPGSignInProvider
from dpg_mcp.hosting.auth.sealing import Sealer
from dpg_mcp.hosting.auth.store import Grant, SignInStore
from dpg_mcp.sandbox import Sandbox, SandboxConfig
from dpg_mcp.sandbox.auth import PASSWORD

from .conftest import DPG_MCP, connect, free_port, sandbox_proc, started
from .test_signin import PHOTOGRAPHER, env, signed_in

pytestmark = pytest.mark.anyio


class SlowAnswers(httpx2.AsyncBaseTransport):
    """DPG acts on the request at once but its answer arrives `delay` later (a slow network back)."""

    def __init__(self, app: Any, delay: float) -> None:
        self.inner = httpx2.ASGITransport(app=app)
        self.delay = delay

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        resp = await self.inner.handle_async_request(request)
        await anyio.sleep(self.delay)
        return resp


def provider(db: Path, app: Any, delay: float = 0.0) -> DPGSignInProvider:
    store = SignInStore(db, Sealer("k" * 40))
    return DPGSignInProvider(
        store,
        lambda: SignInClient("http://sandbox.test", transport=SlowAnswers(app, delay)),
        base_url="http://127.0.0.1:1",
        resource_url="http://127.0.0.1:1/mcp",
    )


async def test_two_processes_refreshing_at_once_keep_one_rotation(tmp_path: Path) -> None:
    app = Sandbox(SandboxConfig()).app
    # Two replicas, one store. A's refresh reaches DPG first but its answer comes back late, so B's attempt
    # (with the same, now spent, refresh token) is refused before A has stored the rotated one.
    a, b = provider(tmp_path / "s.db", app, delay=0.5), provider(tmp_path / "s.db", app)
    async with a.dpg() as dpg:
        step = await dpg.sign_in(PHOTOGRAPHER, PASSWORD)
        assert step.refresh_token
        account = step.accounts[0].uuid or ""
        first = await dpg.token(step.refresh_token, account)
    grant = Grant("g1", "c1", "u1", {"account_uuid": account, "dpg_ttl": 900}, first.refresh_token,
                  first.access_token, time.time() - 1, 0)  # fmt: skip
    a.store.put_grant(grant)

    got: dict[str, str | None] = {}

    async def refresh(name: str, p: DPGSignInProvider) -> None:
        got[name] = await p.dpg_access("g1")

    async with anyio.create_task_group() as tg:
        tg.start_soon(refresh, "a", a)
        await anyio.sleep(0.1)
        tg.start_soon(refresh, "b", b)
    stored = b.store.get_grant("g1")
    assert stored is not None and stored.version == 1  # one rotation stored, not lost, not two
    assert got["a"] == got["b"] == stored.dpg_access != first.access_token
    async with a.dpg() as dpg:
        me = await dpg.me(stored.dpg_access)  # the kept access token works
        assert me.user is not None
        # ... and the kept refresh token is the live one: DPG takes it.
        again = await dpg.token(stored.dpg_refresh, account)
        assert again.access_token


async def test_a_revoked_sign_in_gives_no_dpg_token(tmp_path: Path) -> None:
    app = Sandbox(SandboxConfig()).app
    p = provider(tmp_path / "s.db", app)
    p.store.put_grant(
        Grant("g2", "c1", "u1", {"account_uuid": "x"}, "dpg_refresh_x", "dpg_user_x", time.time() + 900, 0)
    )
    assert await p.dpg_access("g2") == "dpg_user_x"
    p.store.drop_grant("g2")
    assert await p.dpg_access("g2") is None


async def test_a_long_write_outlives_the_dpg_access_token(tmp_path: Path) -> None:
    """DPG access tokens last 3 s here and the archive takes 8 s: the write polls across refreshes."""
    with sandbox_proc(tmp_path, "--access-ttl", "3", "--op-seconds", "archive=8") as dpg:
        port = free_port()
        args = [DPG_MCP, "serve", "--transport", "http", "--host", "127.0.0.1", "--port", str(port)]
        args += ["--api-url", dpg.url, "--ledger", str(tmp_path / "ledger.sqlite3")]
        with started(args, port, tmp_path / "mcp.log", env=env(tmp_path)) as server:
            _, tokens = signed_in(server.url, PHOTOGRAPHER)
            async with connect(server.mcp, tokens["access_token"], "auto") as client:
                found = await client.call_tool("search_images", {"limit": 2})
                ids = [i["uuid"] for i in found.structured_content["images"]]  # type: ignore[index]
                started_at = time.monotonic()
                result = await client.call_tool(
                    "build_archive", {"image_uuids": ids, "filename": "long-write"}
                )
                took = time.monotonic() - started_at
            text = " ".join(c.text for c in result.content if isinstance(c, TextContent))
            assert not result.is_error, text
            assert result.structured_content and result.structured_content["state"] == "succeeded", text
            assert took > 3  # it did outlive the first DPG access token
            log = server.log_text()
    assert "dpg_user_" not in log and "dpg_refresh_" not in log

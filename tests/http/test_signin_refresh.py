"""The member's DPG access token is refreshed before it runs out; two processes refreshing one sign-in at once
keep exactly one rotation (DPG's refresh token is single-use); a long write outlives a short token."""

from __future__ import annotations

import contextlib
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
from dpg_mcp.hosting.auth.store_redis import RedisSignInStore
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


def provider(db: Path | Any, app: Any, delay: float = 0.0) -> DPGSignInProvider:
    """A replica's provider over the shared store: a SQLite file, or a Redis client."""
    sealer = Sealer("k" * 40)
    store = SignInStore(db, sealer) if isinstance(db, Path) else RedisSignInStore(db, sealer)
    return DPGSignInProvider(
        store,
        lambda: SignInClient("http://sandbox.test", transport=SlowAnswers(app, delay)),
        base_url="http://127.0.0.1:1",
        resource_url="http://127.0.0.1:1/mcp",
    )


@pytest.fixture(params=["sqlite", "redis"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        return tmp_path / "s.db"
    server = request.getfixturevalue("redis")
    import redis.asyncio as aioredis

    return aioredis.from_url(server.url)


async def test_two_processes_refreshing_at_once_keep_one_rotation(shared: Any) -> None:
    app = Sandbox(SandboxConfig()).app
    # Two replicas, one store. A's refresh reaches DPG first but its answer comes back late, so B's attempt
    # (with the same, now spent, refresh token) is refused before A has stored the rotated one.
    a, b = provider(shared, app, delay=0.5), provider(shared, app)
    async with a.dpg() as dpg:
        step = await dpg.sign_in(PHOTOGRAPHER, PASSWORD)
        assert step.refresh_token
        account = step.accounts[0].uuid or ""
        first = await dpg.token(step.refresh_token, account)
    gid = "g-" + str(time.monotonic_ns())
    grant = Grant(gid, "c1", "u1", {"account_uuid": account, "dpg_ttl": 900}, first.refresh_token,
                  first.access_token, time.time() - 1, 0)  # fmt: skip
    await a.store.put_grant(grant)

    got: dict[str, str | None] = {}

    async def refresh(name: str, p: DPGSignInProvider) -> None:
        got[name] = await p.dpg_access(gid)

    async with anyio.create_task_group() as tg:
        tg.start_soon(refresh, "a", a)
        await anyio.sleep(0.1)
        tg.start_soon(refresh, "b", b)
    stored = await b.store.get_grant(gid)
    assert stored is not None and stored.version == 1  # one rotation stored, not lost, not two
    assert got["a"] == got["b"] == stored.dpg_access != first.access_token
    async with a.dpg() as dpg:
        me = await dpg.me(stored.dpg_access)  # the kept access token works
        assert me.user is not None
        # ... and the kept refresh token is the live one: DPG takes it.
        again = await dpg.token(stored.dpg_refresh, account)
        assert again.access_token


async def test_a_revoked_sign_in_gives_no_dpg_token(shared: Any) -> None:
    app = Sandbox(SandboxConfig()).app
    p = provider(shared, app)
    await p.store.put_grant(
        Grant("g2", "c1", "u1", {"account_uuid": "x"}, "dpg_refresh_x", "dpg_user_x", time.time() + 900, 0)
    )
    assert await p.dpg_access("g2") == "dpg_user_x"
    await p.store.drop_grant("g2")
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


async def test_replicas_with_redis_share_sign_ins(tmp_path: Path, redis: Any) -> None:
    """Signed in through one replica; served, refreshed and revoked through the other (state in Redis)."""
    with sandbox_proc(tmp_path) as dpg:
        ports = [free_port(), free_port()]
        public = f"http://127.0.0.1:{ports[0]}"  # replicas behind one balancer share one public URL
        procs = []
        with contextlib.ExitStack() as stack:
            for i, port in enumerate(ports):
                args = [DPG_MCP, "serve", "--transport", "http", "--host", "127.0.0.1", "--port", str(port)]
                args += ["--api-url", dpg.url, "--redis-url", redis.url, "--public-url", public]
                args += ["--ledger", str(tmp_path / f"l{i}.db")]
                # No DPG_MCP_SIGNIN_DB: with Redis the sign-in state is there, not in a file.
                key = {"DPG_MCP_SECRET_KEY": env(tmp_path)["DPG_MCP_SECRET_KEY"]}
                procs.append(stack.enter_context(started(args, port, tmp_path / f"r{i}.log", env=key)))
            a, b = procs
            flow, tokens = signed_in(a.url, PHOTOGRAPHER)
            async with connect(b.mcp, tokens["access_token"], "auto") as client:
                assert "search_images" in {t.name for t in (await client.list_tools()).tools}
            grant = {"grant_type": "refresh_token", "client_id": flow.client_id}
            refreshed = httpx2.post(
                b.url + "/token", data={**grant, "refresh_token": tokens["refresh_token"]}
            )
            assert refreshed.status_code == 200, refreshed.text
            new = refreshed.json()
            form = {"token": new["access_token"], "client_id": flow.client_id, "client_secret": ""}
            assert httpx2.post(b.url + "/revoke", data=form, timeout=10).status_code == 200
            again = httpx2.post(a.url + "/token", data={**grant, "refresh_token": new["refresh_token"]})
            assert again.status_code == 400  # revoked through b: a knows it too
            bearer = {"Authorization": f"Bearer {new['access_token']}"}
            assert httpx2.post(a.mcp, json={}, headers=bearer, timeout=10).status_code == 401
    assert not list(tmp_path.glob("signin.sqlite3*"))  # noqa: ASYNC240

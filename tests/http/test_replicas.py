"""Two replicas behind any load balancer, a real redis-server, and the sandbox as its own process: any
replica answers any request (stateless), and what must be shared lives in Redis."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
import redis as redis_sync
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import ElicitResult, TextContent

from .conftest import (
    TOKENS,
    Proc,
    Redis,
    connect_alternating,
    dpg_mcp_http,
    redis_server,
    sandbox_proc,
    sets_named,
)


@dataclass
class Cluster:
    sandbox: Proc
    redis: Redis
    replicas: list[Proc]

    @property
    def ports(self) -> list[int]:
        return [int(r.url.rsplit(":", 1)[1]) for r in self.replicas]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp: Path = tmp_path_factory.mktemp("cluster")
    with redis_server(tmp) as redis, sandbox_proc(tmp, "--drop-rate", "0.3", "--seed", "11") as sandbox:
        common = ["--api-url", sandbox.url, "--redis-url", redis.url, "--stateless"]
        with (
            dpg_mcp_http(tmp, *common, name="replica-a") as a,
            dpg_mcp_http(tmp, *common, name="replica-b") as b,
        ):
            yield Cluster(sandbox, redis, [a, b])


async def test_a_client_alternating_between_replicas_sees_one_consistent_gallery(
    cluster: Cluster, mode: str
) -> None:
    name = f"Alternating ({mode})"
    async with connect_alternating(cluster.ports, TOKENS["editor"], mode) as (client, lb):
        tools = sorted(t.name for t in (await client.list_tools()).tools)
        again = sorted(t.name for t in (await client.list_tools()).tools)
        created = await client.call_tool("create_set", {"name": name})
        assert not created.is_error, created.content
        set_uuid = created.structured_content["set_uuid"]  # type: ignore[index]
        opened = await client.call_tool("browse_sets", {"set_uuid": set_uuid})
        renamed = await client.call_tool("update_set", {"set_uuid": set_uuid, "name": name + " renamed"})
        reopened = await client.call_tool("browse_sets", {"set_uuid": set_uuid})
    assert set(lb.sent) == set(cluster.ports)  # both replicas answered this one client
    assert tools == again and "create_set" in tools
    assert not opened.is_error and not renamed.is_error, renamed.content
    assert reopened.structured_content["set"]["name"] == name + " renamed"  # type: ignore[index]


def test_the_me_cache_and_limits_live_in_redis(cluster: Cluster) -> None:
    r = redis_sync.Redis.from_url(cluster.redis.url)
    try:
        keys = [k.decode() for k in r.keys("dpg-mcp:*")]
        dump = b"".join(r.get(k) or b"" for k in keys if k.startswith("dpg-mcp:me:"))
    finally:
        r.close()
    assert any(k.startswith("dpg-mcp:me:") for k in keys)
    assert any(k.startswith("dpg-mcp:limit:") for k in keys)
    assert not any(token.encode() in dump for token in TOKENS.values())
    assert not any(token in k for token in TOKENS.values() for k in keys)


def _to(request: httpx2.Request, port: int) -> httpx2.Request:
    """The same request (same body, same headers) sent to another replica."""
    headers = [(k, v) for k, v in request.headers.raw if k.lower() != b"host"]
    headers.append((b"host", f"127.0.0.1:{port}".encode()))
    return httpx2.Request(
        request.method, request.url.copy_with(port=port), headers=headers, content=request.content
    )


class DropFirstAnswer(httpx2.AsyncBaseTransport):
    """Round-robin, except the first request whose body holds `needle`: replica A runs it to the end, its
    answer is thrown away (lost on the way back), and the same request goes to replica B."""

    def __init__(self, ports: list[int], needle: bytes) -> None:
        self.ports, self.needle = ports, needle
        self.inner = httpx2.AsyncHTTPTransport()
        self.turn = 0
        self.dropped: list[bytes] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        body = request.content
        if self.needle in body and not self.dropped:
            lost = await self.inner.handle_async_request(_to(request, self.ports[0]))
            self.dropped.append(await lost.aread())
            return await self.inner.handle_async_request(_to(request, self.ports[1]))
        self.turn += 1
        return await self.inner.handle_async_request(_to(request, self.ports[self.turn % 2]))

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_create_whose_answer_is_lost_resent_through_the_other_replica_makes_one_set(
    cluster: Cluster, mode: str
) -> None:
    name = f"Lost answer ({mode})"
    lb = DropFirstAnswer(cluster.ports, b'"create_set"')
    async with (
        httpx2.AsyncClient(
            transport=lb, headers={"Authorization": f"Bearer {TOKENS['editor']}"}, timeout=90
        ) as http,
        Client(streamable_http_client(cluster.replicas[0].mcp, http_client=http), mode=mode) as client,
    ):
        result = await client.call_tool("create_set", {"name": name})
    assert len(lb.dropped) == 1 and b"Set created" in lb.dropped[0]  # replica A did create it
    assert not result.is_error, result.content
    text = " ".join(c.text for c in result.content if isinstance(c, TextContent))
    assert "nothing created twice" in text, text  # B replayed A's create (the same key)
    assert sets_named(cluster.sandbox.url, name) == 1  # counted in the store, not in the ledger


@dataclass
class Killer:
    proc: subprocess.Popen[bytes]
    after_s: float


class KillMidWrite(httpx2.AsyncBaseTransport):
    """Round-robin, except the first request whose body holds `needle`: it goes to replica A, which is
    SIGKILLed while the write is in flight; the same request then goes to replica B."""

    def __init__(self, ports: list[int], needle: bytes, killer: Killer) -> None:
        self.ports, self.needle, self.killer = ports, needle, killer
        self.inner = httpx2.AsyncHTTPTransport()
        self.turn = 0
        self.killed_mid_request = False

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self.needle in request.content and not self.killed_mid_request:
            async with anyio.create_task_group() as tg:

                async def kill() -> None:
                    await anyio.sleep(self.killer.after_s)
                    self.killer.proc.kill()

                tg.start_soon(kill)
                try:
                    answer = await self.inner.handle_async_request(_to(request, self.ports[0]))
                    await answer.aread()
                except httpx2.TransportError:
                    self.killed_mid_request = True
                else:
                    raise AssertionError("replica A answered before it was killed: lengthen the latency")
            return await self.inner.handle_async_request(_to(request, self.ports[1]))
        self.turn += 1
        port = self.ports[1] if self.killed_mid_request else self.ports[self.turn % 2]  # A is gone now
        return await self.inner.handle_async_request(_to(request, port))

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_killing_a_replica_mid_write_loses_nothing_and_doubles_nothing(
    tmp_path: Path, redis: Redis, mode: str
) -> None:
    """A's create is in flight at DPG (slow: 3 s) when A dies. B's resend finds A's ledger entry, waits for
    its lease to lapse (no heartbeat from a dead replica), then sends the same key: one set."""
    name = f"Killed mid-write ({mode})"
    with sandbox_proc(tmp_path, "--latency", "/v1/sets=3") as sandbox:
        common = ["--api-url", sandbox.url, "--redis-url", redis.url, "--stateless", "--wait-seconds", "60"]
        with (
            dpg_mcp_http(tmp_path, *common, name="kill-a") as a,
            dpg_mcp_http(tmp_path, *common, name="kill-b") as b,
        ):
            ports = [int(p.url.rsplit(":", 1)[1]) for p in (a, b)]
            lb = KillMidWrite(ports, b'"create_set"', Killer(a.proc, after_s=1.0))
            with anyio.fail_after(120):
                async with (
                    httpx2.AsyncClient(
                        transport=lb, headers={"Authorization": f"Bearer {TOKENS['editor']}"}, timeout=110
                    ) as http,
                    Client(streamable_http_client(b.mcp, http_client=http), mode=mode) as client,
                ):
                    result = await client.call_tool("create_set", {"name": name})
            assert lb.killed_mid_request and a.proc.poll() is not None
            assert not result.is_error, result.content
            assert sets_named(sandbox.url, name) == 1


class BySessionPrefix(httpx2.AsyncBaseTransport):
    """What compose.yaml's nginx does: a request carrying a session id goes to the replica named by its
    prefix; one without (initialize, 2026-07-28 requests) goes round-robin."""

    def __init__(self, replicas: dict[str, int]) -> None:
        self.replicas = replicas
        self.inner = httpx2.AsyncHTTPTransport()
        self.turn = 0
        self.routed: list[tuple[str, int]] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        session = request.headers.get("mcp-session-id", "")
        prefix = session.split(".", 1)[0] if "." in session else ""
        if prefix in self.replicas:
            port = self.replicas[prefix]
        else:
            self.turn += 1
            port = list(self.replicas.values())[self.turn % len(self.replicas)]
        self.routed.append((session, port))
        return await self.inner.handle_async_request(_to(request, port))

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_sessions_stay_on_their_replica_when_the_balancer_routes_by_the_id_prefix(
    tmp_path: Path, redis: Redis
) -> None:
    """2025-11-25 clients keep sessions (and mid-call questions) behind two stateful replicas."""
    with sandbox_proc(tmp_path) as sandbox:
        common = ["--api-url", sandbox.url, "--redis-url", redis.url]
        with (
            dpg_mcp_http(tmp_path, *common, "--replica-id", "a", name="sess-a") as a,
            dpg_mcp_http(tmp_path, *common, "--replica-id", "b", name="sess-b") as b,
        ):
            ports = {"a": int(a.url.rsplit(":", 1)[1]), "b": int(b.url.rsplit(":", 1)[1])}
            asked: list[str] = []

            async def accept(ctx: object, params: Any) -> ElicitResult:
                asked.append(params.message)
                return ElicitResult(action="accept", content={"confirm": True})

            sessions = []
            lb = BySessionPrefix(ports)  # one balancer in front of both clients
            for _ in range(2):  # two clients: the balancer puts them on different replicas
                lb.routed = []
                async with (
                    httpx2.AsyncClient(
                        transport=lb, headers={"Authorization": f"Bearer {TOKENS['admin']}"}
                    ) as http,
                    Client(
                        streamable_http_client(a.mcp, http_client=http),
                        mode="legacy",
                        elicitation_callback=accept,
                    ) as client,
                ):
                    page = await client.call_tool("search_images", {"limit": 1})
                    image = page.structured_content["images"][0]["uuid"]  # type: ignore[index]
                    result = await client.call_tool("delete_image", {"image_uuids": [image]})
                    assert not result.is_error, result.content
                ids = {s for s, _ in lb.routed if s}
                assert len(ids) == 1, ids  # one session for the whole client
                (sid,) = ids
                assert {p for s, p in lb.routed if s == sid} == {ports[sid[0]]}  # always its own replica
                sessions.append(sid[0])
            assert sorted(sessions) == ["a", "b"]
            assert len(asked) == 2  # each delete asked mid-call, over its session

"""Two replicas behind any load balancer, a real redis-server, and the sandbox as its own process: any
replica answers any request (stateless), and what must be shared lives in Redis."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis as redis_sync

from .conftest import TOKENS, Proc, Redis, connect_alternating, dpg_mcp_http, redis_server, sandbox_proc


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

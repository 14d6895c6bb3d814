"""Every figure of `python -m bench`: each one ours against a baseline timed in the same run, alternately.

A Row holds both sides and their ratio. Time figures are medians of rounds that alternate baseline and ours,
so both see the same machine load; the machine is shared and noisy, so only ratios are comparable.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx2
from pydantic import SecretStr

from bench._proc import (
    ADMIN,
    child_env,
    children_rss_kb,
    raw_client,
    run_until_exit,
    sandbox_requests_since,
    sandbox_seq,
    spawn_until_tools_list,
    stdio_session,
)

SEARCH: dict[str, Any] = {"query": "sunset", "limit": 20}
POLL_S = 0.02  # the baseline's poll interval for writes
BATCH = 50
KB = 1024


@dataclass
class Row:
    figure: str
    ours: str
    baseline: str
    ratio: float | None
    goal: float | None = None  # ratio must be <= goal
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.goal is None or self.ratio is None:
            return ""
        return "met" if self.ratio <= self.goal else "NOT met"


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"


def s_(seconds: float) -> str:
    return f"{seconds:.2f} s"


async def alternate(
    base: Callable[[int], Awaitable[Any]],
    ours: Callable[[int], Awaitable[Any]],
    rounds: int,
    warmup: int = 2,
) -> tuple[float, float]:
    """Medians of base(i) and ours(i), run alternately (which goes first alternates too)."""
    for i in range(warmup):
        await base(-1 - i)
        await ours(-1 - i)
    b: list[float] = []
    o: list[float] = []
    for i in range(rounds):
        pair = ((base, b), (ours, o)) if i % 2 == 0 else ((ours, o), (base, b))
        for fn, samples in pair:
            t0 = time.perf_counter()
            await fn(i)
            samples.append(time.perf_counter() - t0)
    return statistics.median(b), statistics.median(o)


# ------------------------------------------------------------------------------------------ context cost


CONTEXT_BUDGETS = {"admin": 20 * KB, "readonly": 8 * KB}  # the agent-experience issue's goals


async def context_rows() -> list[Row]:
    from bench._common import rig
    from dpg_mcp.cli import tools_list_bytes
    from dpg_mcp.config import ConfigError

    rows: list[Row] = []
    for name in ("admin", "editor", "uploader", "readonly"):
        try:
            async with rig(f"dpg_api_live_sandbox_{name}") as r:
                size, tools = await tools_list_bytes(r.server)
                instructions = len((r.server.instructions or "").encode("utf-8"))
        except ConfigError:
            continue
        total = size + instructions
        budget = CONTEXT_BUDGETS.get(name, 20 * KB)
        rows.append(
            Row(
                f"context: {name} tools/list + instructions",
                f"{total / KB:.1f} KB ({len(tools)} tools)",
                f"budget {budget // KB} KB",
                total / budget,
                1.0 if name in CONTEXT_BUDGETS else None,
                f"tools/list {size} B, instructions {instructions} B",
            )
        )
    return rows


# ------------------------------------------------------------------------------------- calls and writes


async def _raw_write(raw: httpx2.AsyncClient, method: str, path: str, body: Any) -> dict[str, Any]:
    """A write as a careful raw client does it: send with a key, poll every 20 ms with If-None-Match."""
    r = await raw.request(method, path, json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
    assert r.status_code == 202, r.text
    op: dict[str, Any] = r.json()
    etag = None
    for _ in range(3000):  # bounded: 60 s of 20 ms polls
        if op["status"] in ("succeeded", "failed"):
            return op
        await asyncio.sleep(POLL_S)
        p = await raw.get(f"/v1/operations/{op['uuid']}", headers={"If-None-Match": etag} if etag else None)
        etag = p.headers.get("etag", etag)
        if p.status_code == 200:
            op = p.json()
    raise RuntimeError("operation did not finish")


def _ok(result: Any) -> Any:
    if result.is_error:
        raise RuntimeError(f"tool call failed: {str(result.content)[:300]}")
    return result


async def call_rows(base: str, rounds: int, memory_calls: int) -> list[Row]:
    from mcp import Client

    from dpg_mcp.config import Settings
    from dpg_mcp.dpg.client import DPGClient
    from dpg_mcp.server import build_server

    rows: list[Row] = []
    async with raw_client(base) as raw:
        images = [im["public_uuid"] for im in (await raw.get("/v1/images", params={"limit": 50})).json()]

        async def raw_search(_: int) -> Any:
            r = await raw.get("/v1/images", params=SEARCH)
            assert r.status_code == 200
            return r.json()

        before = set(children_rss_kb())
        async with stdio_session(base) as mcp:
            server_pid = next(iter(set(children_rss_kb()) - before), None)

            async def stdio_search(_: int) -> Any:
                return _ok(await mcp.call_tool("search_images", SEARCH))

            b, o = await alternate(raw_search, stdio_search, rounds)
            rows.append(Row("search_images over stdio", ms(o), f"raw GET {ms(b)}", o / b, 1.2))

            async def raw_caption(i: int) -> Any:
                return await _raw_write(raw, "PATCH", f"/v1/images/{images[0]}", {"title": f"raw {i}"})

            async def stdio_caption(i: int) -> Any:
                args = {"image_uuid": images[1], "title": f"bench {i} {uuid.uuid4().hex[:6]}"}
                return _ok(await mcp.call_tool("caption_image", args))

            b, o = await alternate(raw_caption, stdio_caption, max(4, rounds // 3), warmup=1)
            rows.append(
                Row(
                    "caption_image, 200 ms Operation (stdio)",
                    ms(o),
                    f"PATCH + 20 ms polls {ms(b)}",
                    o / b,
                    1.10,
                )
            )

            for n in (8, 32):

                async def sequential(_: int, n: int = n) -> Any:
                    for _ in range(n):
                        await stdio_search(0)

                async def in_flight(_: int, n: int = n) -> Any:
                    await asyncio.gather(*(stdio_search(0) for _ in range(n)))

                b, o = await alternate(sequential, in_flight, max(2, rounds // 8), warmup=1)
                rows.append(
                    Row(
                        f"{n} search_images in flight, one stdio session",
                        ms(o),
                        f"{n} one after another {ms(b)}",
                        o / b,
                        None,
                        "below 1: calls overlap",
                    )
                )

            if server_pid is not None:
                start_kb = children_rss_kb().get(server_pid, 0)
                for _ in range(memory_calls):
                    await stdio_search(0)
                end_kb = children_rss_kb().get(server_pid, 0)
                if start_kb:
                    rows.append(
                        Row(
                            f"memory: RSS after {memory_calls} more calls",
                            f"{end_kb / KB:.1f} MB",
                            f"before {start_kb / KB:.1f} MB",
                            end_kb / start_kb,
                            None,
                            f"growth {(end_kb - start_kb) / KB:+.1f} MB",
                        )
                    )

        # In-process: the MCP server and its client in this process, DPG (the sandbox) over HTTP as always.
        settings = Settings(token=SecretStr(ADMIN), api_url=base)
        async with DPGClient(base_url=base, token=ADMIN) as client:
            server = await build_server(client, settings)
            async with Client(server) as mcp_local:

                async def local_search(_: int) -> Any:
                    return _ok(await mcp_local.call_tool("search_images", SEARCH))

                b, o = await alternate(raw_search, local_search, rounds)
                rows.append(Row("search_images in-process", ms(o), f"raw GET {ms(b)}", o / b, 1.1))
    return rows


async def bulk_rows(base: str, rounds: int) -> list[Row]:
    """Rate 500 images (200 ms Operations): rate_images over stdio against ten batches sent at once."""
    rows: list[Row] = []
    async with raw_client(base) as raw:
        listed: list[str] = []
        offset = 0
        while len(listed) < 1000:
            page = (await raw.get("/v1/images", params={"limit": 200, "offset": offset})).json()
            if not page:
                break
            listed += [im["public_uuid"] for im in page]
            offset += len(page)
        if len(listed) < 1000:
            raise RuntimeError("the bulk bench needs a sandbox of at least 1000 images")
        requests: dict[str, list[int]] = {"base": [], "ours": []}

        def targets(i: int) -> tuple[list[str], int]:
            # A different image window and rating every round: the same call again would be a replay.
            start = (i * 97) % 500
            return listed[start : start + 500], (i % 5) + 1

        async def raw_bulk(i: int) -> Any:
            ids, rating = targets(i)
            seq = await sandbox_seq(raw)
            chunks = [ids[k : k + BATCH] for k in range(0, len(ids), BATCH)]
            await asyncio.gather(
                *(
                    _raw_write(
                        raw,
                        "POST",
                        "/v1/operations/batch",
                        {
                            "operations": [
                                {
                                    "method": "PUT",
                                    "path": f"/v1/images/{u}/rating",
                                    "body": {"rating": rating},
                                }
                                for u in chunk
                            ]
                        },
                    )
                    for chunk in chunks
                )
            )
            requests["base"].append(await sandbox_requests_since(raw, seq))

        async with stdio_session(base) as mcp:

            async def ours_bulk(i: int) -> Any:
                ids, rating = targets(i + 1000)
                seq = await sandbox_seq(raw)
                result = _ok(await mcp.call_tool("rate_images", {"image_uuids": ids, "rating": rating}))
                requests["ours"].append(await sandbox_requests_since(raw, seq))
                if (result.structured_content or {}).get("state") != "succeeded":
                    raise RuntimeError(f"rate_images did not finish: {str(result.content)[:200]}")

            b, o = await alternate(raw_bulk, ours_bulk, rounds, warmup=1)
    rb, ro = statistics.median(requests["base"]), statistics.median(requests["ours"])
    rows.append(
        Row(
            "rate 500 images, 200 ms Operations",
            s_(o),
            f"10 batches at once, 20 ms polls {s_(b)}",
            o / b,
            1.3,
        )
    )
    rows.append(
        Row("  DPG requests for it", f"{ro:.0f}", f"{rb:.0f}", ro / rb, 1.0, "requests the sandbox served")
    )
    return rows


# ------------------------------------------------------------------------------------------- cold start


async def cold_start_rows(base: str, rounds: int) -> list[Row]:
    floor_cmd = [sys.executable, "-c", "import mcp.server"]
    env = child_env()
    ours_env = child_env(DPG_TOKEN=ADMIN, DPG_API_URL=base)
    rows: list[Row] = []
    for label, args, run_env in (
        ("cold start to first tools/list", [], ours_env),
        ("cold start to first tools/list, --sandbox", ["--sandbox"], env),
    ):
        cmd = [sys.executable, "-m", "dpg_mcp.cli", *args]
        spawned: list[float] = []

        async def floor(_: int) -> Any:
            return await run_until_exit(floor_cmd, env)

        async def ours(
            _: int, cmd: list[str] = cmd, run_env: dict[str, str] = run_env, spawned: list[float] = spawned
        ) -> Any:
            spawned.append(await spawn_until_tools_list(cmd, run_env))

        b, o = await alternate(floor, ours, rounds, warmup=1)
        # The timed part of `ours` is measured inside (spawn to answer), not the kill and reap after it.
        o = statistics.median(spawned[1:]) if len(spawned) > 1 else o
        rows.append(Row(label, s_(o), f'python -c "import mcp.server" {s_(b)}', o / b, 1.25))
    return rows


# ----------------------------------------------------------------------------------------- sandbox scale


async def sandbox_rows(rounds: int, big: int = 10_000) -> list[Row]:
    from dpg_mcp.sandbox import Sandbox, SandboxConfig

    headers = {"Authorization": f"Bearer {ADMIN}"}
    small_sb, big_sb = Sandbox(SandboxConfig(images=300)), Sandbox(SandboxConfig(images=big))
    rows: list[Row] = []
    async with (
        httpx2.AsyncClient(
            transport=small_sb.transport(), base_url="http://dpg.test", headers=headers
        ) as small,
        httpx2.AsyncClient(
            transport=big_sb.transport(), base_url="http://dpg.test", headers=headers
        ) as large,
    ):
        for label, params in (
            ("keyword filter", {"keyword": "sunset", "limit": 20}),
            ("two-word query", {"query": "marina stage", "limit": 20}),
        ):

            async def at_small(_: int, params: dict[str, Any] = params) -> Any:
                assert (await small.get("/v1/images", params=params)).status_code == 200

            async def at_big(_: int, params: dict[str, Any] = params) -> Any:
                assert (await large.get("/v1/images", params=params)).status_code == 200

            b, o = await alternate(at_small, at_big, rounds)
            rows.append(
                Row(f"sandbox {label}, limit 20: {big:,} images", ms(o), f"300 images {ms(b)}", o / b, 2.0)
            )
    return rows

"""Hosted load: 50 concurrent callers with mixed tokens, 2,000 tool calls, against one replica and against two
replicas sharing Redis; the baseline is the raw sandbox HTTP API driven the same way in the same run.

    .venv/bin/python bench/http_load.py [--calls 2000] [--callers 50]

Every call is get_image(image_uuid, preview=false) over the 2026-07-28 wire (one POST per call), cycling
through 20 photos; the raw baseline is the same read as GET /v1/images/{uuid} straight to the sandbox: one DPG
request per call, as the tool makes (search_images also reads set lists to mark hidden photos, so it would
compare several DPG requests with one).
The sandbox runs as its own process, so neither side shares its CPU with the DPG emulator's event loop more
than the other. Prints calls/s, p50, p99, errors, peak RSS of the dpg-mcp processes, and the ratio of MCP
to raw throughput (goal: >= 0.5). Loopback only; every process is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import anyio
import httpx2

DPG_MCP = str(Path(sys.executable).with_name("dpg-mcp"))
REDIS_SERVER = "/usr/bin/redis-server"
TOKENS = [
    "dpg_api_live_sandbox_admin",
    "dpg_api_live_sandbox_editor",
    "dpg_api_live_sandbox_readonly",
    "dpg_api_live_sandbox_uploader",
]
MODERN = "2026-07-28"
META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": {"name": "http_load", "version": "1"},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def process(args: list[str], ready: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{args[0]} exited early; see {log}")
            try:
                if ready.startswith("redis:"):
                    with socket.create_connection(("127.0.0.1", int(ready[6:])), timeout=0.5) as c:
                        c.sendall(b"PING\r\n")
                        if c.recv(8).startswith(b"+PONG"):
                            break
                elif httpx2.get(ready, timeout=1).status_code < 500:
                    break
            except (OSError, httpx2.HTTPError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{ready} not ready in 30 s; see {log}")
            time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the highest resident set size the process reached."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


Call = Callable[[httpx2.AsyncClient, int], Awaitable[bool]]


async def drive(
    calls: int, callers: int, make_client: Callable[[int], httpx2.AsyncClient], call: Call
) -> dict[str, float]:
    """`callers` tasks, each with its own client (own token, own connections), share `calls` calls."""
    latencies: list[float] = []
    errors = 0
    next_call = 0

    async def caller(i: int) -> None:
        nonlocal next_call, errors
        async with make_client(i) as http:
            while next_call < calls:
                n = next_call
                next_call += 1
                start = time.perf_counter()
                try:
                    ok = await call(http, n)
                except httpx2.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - start)
                errors += not ok

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for i in range(callers):
            tg.start_soon(caller, i)
    wall = time.perf_counter() - started
    latencies.sort()
    return {
        "calls_per_s": len(latencies) / wall,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "errors": errors,
    }


def raw_call(sandbox: str, images: list[str]) -> Call:
    async def call(http: httpx2.AsyncClient, n: int) -> bool:
        resp = await http.get(f"{sandbox}/v1/images/{images[n % len(images)]}")
        return resp.status_code == 200 and "public_uuid" in resp.json()

    return call


def mcp_call(urls: list[str], images: list[str]) -> Call:
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": "tools/call",
        "Mcp-Name": "get_image",
    }

    async def call(http: httpx2.AsyncClient, n: int) -> bool:
        arguments = {"image_uuid": images[n % len(images)], "preview": False}
        body = {
            "jsonrpc": "2.0",
            "id": n,
            "method": "tools/call",
            "params": {"name": "get_image", "arguments": arguments, "_meta": META},
        }
        resp = await http.post(urls[n % len(urls)], content=json.dumps(body), headers=headers)
        if resp.status_code != 200:
            return False
        text = resp.text
        if resp.headers.get("content-type", "").startswith("text/event-stream"):
            text = [line[5:] for line in text.splitlines() if line.startswith("data:")][-1]
        result = json.loads(text).get("result") or {}
        return result.get("isError") is False and bool(result.get("structuredContent"))

    return call


def client_for(token: str) -> httpx2.AsyncClient:
    limits = httpx2.Limits(max_connections=4, max_keepalive_connections=4)
    return httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60, limits=limits)


def serve_args(port: int, sandbox: str, *extra: str) -> list[str]:
    return [
        DPG_MCP, "serve", "--transport", "http", "--host", "127.0.0.1", "--port", str(port),
        "--api-url", sandbox, "--stateless", "--rate-limit", "0", "--max-concurrent", "0", *extra,
    ]  # fmt: skip


def row(name: str, r: dict[str, float], raw: float, rss: str = "") -> str:
    return (
        f"{name:<28} {r['calls_per_s']:>8.0f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {int(r['errors']):>6}"
        f" {rss:>12} {r['calls_per_s'] / raw:>7.2f}"
    )


async def run(calls: int, callers: int) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="dpg-http-load-"))
    sb_port = free_port()
    sandbox = f"http://127.0.0.1:{sb_port}"
    tokens = lambda i: TOKENS[i % len(TOKENS)]  # noqa: E731  (mixed tokens: caller i uses token i mod 4)
    with ExitStack() as stack:
        stack.enter_context(
            process([DPG_MCP, "sandbox", "--port", str(sb_port)], sandbox + "/llms.txt", tmp / "sandbox.log")
        )
        listing = httpx2.get(
            f"{sandbox}/v1/images", params={"limit": 20}, headers={"Authorization": f"Bearer {TOKENS[0]}"}
        )
        images = [i["public_uuid"] for i in listing.json()]
        warm = max(50, calls // 20)
        await drive(warm, callers, lambda i: client_for(tokens(i)), raw_call(sandbox, images))
        raw = await drive(calls, callers, lambda i: client_for(tokens(i)), raw_call(sandbox, images))

        one_port = free_port()
        one = stack.enter_context(
            process(serve_args(one_port, sandbox), f"http://127.0.0.1:{one_port}/healthz", tmp / "one.log")
        )
        one_url = [f"http://127.0.0.1:{one_port}/mcp"]
        await drive(warm, callers, lambda i: client_for(tokens(i)), mcp_call(one_url, images))
        single = await drive(calls, callers, lambda i: client_for(tokens(i)), mcp_call(one_url, images))
        single_rss = peak_rss_mb(one.pid)
        one.send_signal(signal.SIGTERM)
        one.wait(timeout=10)

        redis_port = free_port()
        if not os.path.exists(REDIS_SERVER):  # noqa: ASYNC240 (once, before any load)
            print("redis-server missing: the two-replica run is skipped", file=sys.stderr)
            pair = None
        else:
            stack.enter_context(
                process(
                    [
                        REDIS_SERVER,
                        "--port",
                        str(redis_port),
                        "--bind",
                        "127.0.0.1",
                        "--save",
                        "",
                        "--dir",
                        str(tmp),
                    ],
                    f"redis:{redis_port}",
                    tmp / "redis.log",
                )
            )
            redis_url = f"redis://127.0.0.1:{redis_port}/0"
            ports = [free_port(), free_port()]
            procs = [
                stack.enter_context(
                    process(
                        serve_args(p, sandbox, "--redis-url", redis_url),
                        f"http://127.0.0.1:{p}/healthz",
                        tmp / f"replica-{p}.log",
                    )
                )
                for p in ports
            ]
            urls = [f"http://127.0.0.1:{p}/mcp" for p in ports]
            await drive(warm, callers, lambda i: client_for(tokens(i)), mcp_call(urls, images))
            pair = await drive(calls, callers, lambda i: client_for(tokens(i)), mcp_call(urls, images))
            pair_rss = " + ".join(f"{peak_rss_mb(p.pid):.0f}" for p in procs)

    print(f"http_load: {calls} calls, {callers} concurrent callers, {len(TOKENS)} tokens; 2 cores shared")
    print(
        f"{'':<28} {'calls/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} {'peak RSS MB':>12} {'x raw':>7}"
    )
    print(row("raw sandbox HTTP (baseline)", raw, raw["calls_per_s"]))
    print(row("dpg-mcp, 1 replica", single, raw["calls_per_s"], f"{single_rss:.0f}"))
    if pair is not None:
        print(row("dpg-mcp, 2 replicas + Redis", pair, raw["calls_per_s"], pair_rss))
    failed = single["errors"] + (pair["errors"] if pair else 0) + raw["errors"]
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--callers", type=int, default=50)
    args = parser.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    return anyio.run(run, args.calls, args.callers)


if __name__ == "__main__":
    sys.exit(main())

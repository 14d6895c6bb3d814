"""Sandbox throughput baselines: requests/s for a list call and a write, in-process and over loopback HTTP.

    python bench/sandbox.py            # ~30-40 s
    python bench/sandbox.py --quick    # a few seconds
    python bench/sandbox.py --json     # one JSON object on the last line, for other benchmarks to divide by

Requests are sent one at a time (no concurrency), so 1/rate is the per-request cost of the sandbox plus
the transport. Every run stops at a request count or a time budget, whichever comes first.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import closing
from pathlib import Path

import httpx2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from dpg_mcp.sandbox import Sandbox, SandboxConfig  # noqa: E402

TOKEN = "dpg_api_live_sandbox_admin"


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def measure(call: Callable[[], Awaitable[None]], max_n: int, max_s: float) -> tuple[float, int]:
    """Requests per second of `call`, one at a time, bounded by count and time (after a short warm-up)."""
    for _ in range(min(20, max_n)):
        await call()
    n = 0
    t0 = time.perf_counter()
    deadline = t0 + max_s
    while n < max_n and time.perf_counter() < deadline:
        await call()
        n += 1
    return n / (time.perf_counter() - t0), n


async def run_pair(client: httpx2.AsyncClient, max_n: int, max_s: float) -> dict[str, tuple[float, int]]:
    r = await client.get("/v1/images", params={"limit": 50})
    r.raise_for_status()
    targets = [im["public_uuid"] for im in r.json()]
    i = 0

    async def list_call() -> None:
        resp = await client.get("/v1/images", params={"limit": 50})
        assert resp.status_code == 200, resp.text

    async def write_call() -> None:
        nonlocal i
        i += 1
        resp = await client.patch(
            f"/v1/images/{targets[i % len(targets)]}",
            json={"title": f"bench title {i}"},
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        assert resp.status_code == 202, resp.text

    return {
        "list": await measure(list_call, max_n, max_s),
        "write": await measure(write_call, max_n, max_s),
    }


async def in_process(max_n: int, max_s: float) -> dict[str, tuple[float, int]]:
    sb = Sandbox(SandboxConfig(seed=7))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx2.AsyncClient(transport=sb.transport(), base_url="http://dpg.test", headers=headers) as c:
        return await run_pair(c, max_n, max_s)


async def wait_ready(base: str, proc: subprocess.Popen[bytes], budget_s: float = 20.0) -> None:
    deadline = time.monotonic() + budget_s
    async with httpx2.AsyncClient(base_url=base, timeout=1.0) as c:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"sandbox exited early with code {proc.returncode}")
            try:
                if (await c.get("/llms.txt")).status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError("sandbox did not become ready in time")


def sandbox_command(port: int) -> list[str]:
    """`dpg-mcp sandbox` through the CLI module; before that CLI exists, serve() directly."""
    if importlib.util.find_spec("dpg_mcp.sandbox.cli") is not None:
        return [sys.executable, "-m", "dpg_mcp.cli", "sandbox", "--host", "127.0.0.1", "--port", str(port)]
    code = f"from dpg_mcp.sandbox import serve; serve(host='127.0.0.1', port={port})"
    return [sys.executable, "-c", code]


async def loopback(max_n: int, max_s: float) -> dict[str, tuple[float, int]]:
    port = free_port()
    cmd = sandbox_command(port)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    # a short blocking spawn before any request is timed: fine in a benchmark
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)  # noqa: ASYNC220
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(base, proc)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx2.AsyncClient(base_url=base, headers=headers, timeout=10.0) as c:
            return await run_pair(c, max_n, max_s)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small counts (a few seconds in all)")
    ap.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    args = ap.parse_args()
    max_n, max_s = (200, 1.0) if args.quick else (3000, 7.0)

    t0 = time.perf_counter()
    inproc = asyncio.run(in_process(max_n, max_s))
    loop = asyncio.run(loopback(max_n, max_s))
    rows = {
        "inprocess_list_rps": inproc["list"][0],
        "inprocess_write_rps": inproc["write"][0],
        "loopback_list_rps": loop["list"][0],
        "loopback_write_rps": loop["write"][0],
    }
    counts = {
        "inprocess_list": inproc["list"][1],
        "inprocess_write": inproc["write"][1],
        "loopback_list": loop["list"][1],
        "loopback_write": loop["write"][1],
    }
    print(
        "DPG sandbox throughput (sequential requests; GET /v1/images?limit=50, PATCH title with a fresh key)"
    )
    print(f"{'':26}{'req/s':>10}{'ms/req':>10}{'n':>8}")
    for name, rps in rows.items():
        label = name.removesuffix("_rps").replace("_", " ")
        print(f"{label:26}{rps:10.1f}{1000 / rps:10.2f}{counts[name.removesuffix('_rps')]:8d}")
    ratios = {
        "write_over_list_inprocess": rows["inprocess_write_rps"] / rows["inprocess_list_rps"],
        "write_over_list_loopback": rows["loopback_write_rps"] / rows["loopback_list_rps"],
        "loopback_over_inprocess_list": rows["loopback_list_rps"] / rows["inprocess_list_rps"],
        "loopback_over_inprocess_write": rows["loopback_write_rps"] / rows["inprocess_write_rps"],
    }
    print("ratios")
    for name, v in ratios.items():
        print(f"  {name:32}{v:8.3f}")
    print(f"total {time.perf_counter() - t0:.1f} s")
    if args.json:
        print(
            json.dumps(
                {**{k: round(v, 1) for k, v in rows.items()}, **{k: round(v, 4) for k, v in ratios.items()}}
            )
        )


if __name__ == "__main__":
    main()

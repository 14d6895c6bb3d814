"""What the write ledger costs per write, as a ratio to the write itself, measured in one run.

- the write itself: a rating sent with the DPG client to the sandbox (`send_write`), with no ledger; once
  in-process and once over loopback HTTP (the sandbox served on 127.0.0.1, closer to a real network);
- the ledger's cost per write: what the runner does in the ledger around one write (claim, note the
  Operation, settle), against SQLite (a temp file, WAL) and Redis (a throwaway redis-server on loopback).

Each ledger figure is timed in alternation with the write it is compared to.

    python bench/ledger.py [--rounds N]      (also a section of `python -m bench`)
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from bench._common import paired_medians  # noqa: E402
from bench.figures import Row  # noqa: E402
from dpg_mcp.dpg.client import DPGClient  # noqa: E402
from dpg_mcp.ledger import Kind, Ledger, State, action_digest, request_digest  # noqa: E402
from dpg_mcp.ledger import ops as ledger_ops  # noqa: E402
from dpg_mcp.ledger.sqlite import SQLiteLedger  # noqa: E402
from dpg_mcp.sandbox import Sandbox, SandboxConfig, serve_in_thread  # noqa: E402

TOKEN = "dpg_api_live_sandbox_admin"


def one_ledger_write(ledger: Ledger) -> Callable[[int], Awaitable[object]]:
    """The ledger's part of one write, as the runner does it: claim, note the Operation, settle."""

    async def go(i: int) -> object:
        action = action_digest("bench", "principal", "rate_images", {"n": i, "u": uuid.uuid4().hex})
        request = request_digest("PUT", "/v1/images/x/rating", {"rating": 3})
        now = time.time()
        await ledger_ops.claim(ledger, action, now=now, kind=Kind.SET, run="r", request=request)
        await ledger_ops.note(ledger, action, run="r", op="op-1")
        return await ledger_ops.settle(ledger, action, now=time.time(), run="r", state=State.DONE, op="op-1")

    return go


def one_write(client: DPGClient, image: str) -> Callable[[int], Awaitable[object]]:
    async def go(i: int) -> object:
        return await client.send_write(
            "PUT", f"/v1/images/{image}/rating", {"rating": i % 6 if i >= 0 else 0}, uuid.uuid4().hex
        )

    return go


@asynccontextmanager
async def redis_ledger() -> AsyncIterator[Ledger | None]:
    exe = shutil.which("redis-server")
    if exe is None:
        yield None
        return
    from dpg_mcp.ledger.redis import RedisLedger

    port, proc = _start_redis(exe)
    try:
        ledger = RedisLedger.from_url(f"redis://127.0.0.1:{port}/0")
        for _ in range(200):  # bounded readiness wait
            try:
                await ledger.get("ping")
                break
            except Exception:
                await anyio.sleep(0.05)
        try:
            yield ledger
        finally:
            await ledger.aclose()
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def _start_redis(exe: str) -> tuple[int, subprocess.Popen[bytes]]:
    """A throwaway redis-server on a free loopback port, no persistence."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return port, proc


async def measure(rounds: int) -> list[tuple[str, str, float | None, float | None]]:
    """(store, where the write went, ledger seconds, write seconds) medians; None: store unavailable."""
    sandbox = Sandbox(SandboxConfig())
    image = sorted(sandbox.store.images)[0]
    out: list[tuple[str, str, float | None, float | None]] = []
    with tempfile.TemporaryDirectory() as tmp, serve_in_thread(sandbox) as url:
        sqlite = SQLiteLedger(Path(tmp) / "ledger.sqlite3")
        async with (
            DPGClient(base_url="http://dpg.test", token=TOKEN, transport=sandbox.transport()) as inproc,
            DPGClient(base_url=url, token=TOKEN) as loopback,
            redis_ledger() as redis,
        ):
            stores: list[tuple[str, Ledger | None]] = [("SQLite", sqlite), ("Redis", redis)]
            writes = [("in-process", one_write(inproc, image)), ("loopback HTTP", one_write(loopback, image))]
            for store_name, store in stores:
                for where, write in writes:
                    if store is None:
                        out.append((store_name, where, None, None))
                        continue
                    w, led = await paired_medians(write, one_ledger_write(store), rounds=rounds)
                    out.append((store_name, where, led, w))
        await sqlite.aclose()
    return out


async def ledger_rows(rounds: int) -> list[Row]:
    rows = []
    for store, where, led, w in await measure(rounds):
        figure = f"ledger per write, {store}, vs a write {where}"
        if led is None or w is None:
            rows.append(Row(figure, "skipped", "redis-server not installed", None))
        else:
            rows.append(Row(figure, f"{led * 1e3:.3f} ms", f"write {w * 1e3:.3f} ms", led / w))
    return rows


async def run(rounds: int) -> None:
    print(f"ledger cost per write (claim + note + settle), {rounds} rounds, medians:")
    for store, where, led, w in await measure(rounds):
        if led is None or w is None:
            print(f"  {store:<7} skipped: redis-server is not installed")
            continue
        print(
            f"  {store:<7} vs a write {where:<14}: ledger {led * 1e3:7.3f} ms, "
            f"write {w * 1e3:7.3f} ms, ratio {led / w:5.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    anyio.run(run, args.rounds)


if __name__ == "__main__":
    main()

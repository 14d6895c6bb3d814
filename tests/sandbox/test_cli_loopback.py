"""The sandbox as a real HTTP server: `python -m dpg_mcp.cli sandbox --port N` in a subprocess."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import httpx2
import pytest

from .conftest import ADMIN, assert_error, new_key

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def sandbox_process(*flags: str, budget_s: float = 20.0) -> Iterator[str]:
    """Start the CLI, wait (bounded) until /llms.txt answers, yield the base URL, always terminate."""
    port = free_port()
    cmd = [sys.executable, "-m", "dpg_mcp.cli", "sandbox", "--host", "127.0.0.1", "--port", str(port), *flags]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + budget_s
        with httpx2.Client(base_url=base, timeout=1.0) as c:
            while True:
                if proc.poll() is not None:
                    out = proc.stdout.read().decode() if proc.stdout else ""
                    raise AssertionError(f"sandbox exited with {proc.returncode}: {out[-2000:]}")
                try:
                    if c.get("/llms.txt").status_code == 200:
                        break
                except httpx2.TransportError:
                    pass
                assert time.monotonic() < deadline, "sandbox did not become ready in time"
                time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


async def test_serves_over_loopback() -> None:
    with sandbox_process("--seed", "7") as base:
        headers = {"Authorization": f"Bearer {ADMIN}"}
        async with httpx2.AsyncClient(base_url=base, headers=headers, timeout=10.0) as c:
            me = await c.get("/v1/me")
            assert me.status_code == 200 and me.json()["account"]["unique_id"] == "riverside"
            r = await c.get("/v1/images", params={"limit": 3})
            assert r.status_code == 200 and len(r.json()) == 3 and r.headers["X-Has-More"] == "true"
            im = r.json()[0]
            thumb = next(v for v in im["versions"] if v["name"] == "thumbnail")
            assert thumb["url"].startswith(base + "/media/")  # base = the request's own host
            assert (await c.get(thumb["url"])).content.startswith(b"\xff\xd8\xff")
            key = new_key()
            w = await c.patch(
                f"/v1/images/{im['public_uuid']}",
                json={"title": "loopback"},
                headers={"Idempotency-Key": key},
            )
            assert w.status_code == 202
            op = w.json()
            again = await c.patch(
                f"/v1/images/{im['public_uuid']}",
                json={"title": "loopback"},
                headers={"Idempotency-Key": key},
            )
            assert again.json()["uuid"] == op["uuid"]
            poll = await c.get(w.headers["Location"])
            assert poll.status_code == 200 and poll.json()["status"] == "succeeded"
            assert (
                await c.get(w.headers["Location"], headers={"If-None-Match": poll.headers["ETag"]})
            ).status_code == 304
            assert (await c.get(f"/v1/images/{im['public_uuid']}")).json()["title"] == "loopback"
            t = await c.post(
                "/v1/uploads", json={"filename": "x.png"}, headers={"Idempotency-Key": new_key()}
            )
            assert t.json()["upload_url"] == f"{base}/processor/upload"


async def test_cli_fault_flags() -> None:
    with sandbox_process("--error-rate", "1.0", "--seed", "3") as base:
        async with httpx2.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {ADMIN}"}) as c:
            assert_error(await c.get("/v1/me"), 500, "internal")
            assert (await c.get("/llms.txt")).status_code == 200
    with sandbox_process("--burst-429-every", "2", "--burst-429-len", "1", "--retry-after", "4") as base:
        async with httpx2.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {ADMIN}"}) as c:
            codes = [(await c.get("/v1/me")).status_code for _ in range(3)]
            assert codes == [200, 200, 429]
            r = await c.get("/v1/me")
            assert r.status_code == 200


async def test_cli_latency_and_operation_seconds() -> None:
    with sandbox_process("--latency", "/v1/images=0.2", "--op-seconds", "archive=0.3") as base:
        async with httpx2.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {ADMIN}"}) as c:
            t0 = time.perf_counter()
            r = await c.get("/v1/images", params={"limit": 2})
            assert r.status_code == 200 and time.perf_counter() - t0 >= 0.2
            ids = [i["public_uuid"] for i in r.json()]
            w = await c.post(
                "/v1/archives", json={"image_public_uuids": ids}, headers={"Idempotency-Key": new_key()}
            )
            op = w.json()
            assert op["status"] in ("pending", "running")
            deadline = time.monotonic() + 5
            while True:  # real clock here: poll with a bounded loop
                polled = (await c.get(w.headers["Location"])).json()
                if polled["status"] in ("succeeded", "failed"):
                    break
                assert time.monotonic() < deadline, "archive never finished"
                await asyncio.sleep(0.05)
            assert polled["status"] == "succeeded"
            z = await c.get(polled["result"]["url"])
            assert z.status_code == 200 and z.content[:2] == b"PK"


def test_python_m_sandbox_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "dpg_mcp.cli", "sandbox", "--help"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0
    for flag in (
        "--host",
        "--port",
        "--seed",
        "--latency",
        "--error-rate",
        "--drop-rate",
        "--burst-429-every",
        "--burst-429-len",
        "--retry-after",
        "--op-seconds",
    ):
        assert flag in out.stdout

"""A real redis-server for the tests that need one (the ledger's Redis backend, hosted replicas)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


@dataclass
class Redis:
    url: str
    proc: subprocess.Popen[bytes]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def redis_server(tmp: Path) -> Iterator[Redis]:
    """A redis-server on a free loopback port, nothing persisted, stopped at the end.

    Skips when it is not installed, except under .ci/run (DPG_MCP_REQUIRE_REDIS), which installs it: a fail.
    """
    if not Path(REDIS_SERVER).exists():
        if os.environ.get("DPG_MCP_REQUIRE_REDIS"):
            pytest.fail("redis-server is not installed, and DPG_MCP_REQUIRE_REDIS is set (CI)")
        pytest.skip("redis-server is not installed (.ci/run installs the Debian package)")
    port = _free_port()
    args = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    args += ["--dir", str(tmp)]
    with (tmp / f"redis-{port}.log").open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        yield Redis(f"redis://127.0.0.1:{port}/0", proc)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=8)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

"""Fixtures for the HTTP transport tests: real `dpg-mcp serve --transport http` subprocesses on 127.0.0.1.

Every process is started with a bounded wait for /healthz and stopped (SIGTERM, then SIGKILL) by the
fixture; ports are picked free on loopback.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.redis_server import Redis, redis_server

pytestmark = pytest.mark.slow

DPG_MCP = str(Path(sys.executable).with_name("dpg-mcp"))
TOKENS = {
    "admin": "dpg_api_live_sandbox_admin",
    "editor": "dpg_api_live_sandbox_editor",
    "readonly": "dpg_api_live_sandbox_readonly",
    "uploader": "dpg_api_live_sandbox_uploader",
    "disabled": "dpg_api_live_sandbox_disabled",
}
PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
MODERN, LEGACY = "2026-07-28", "2025-11-25"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    """A started subprocess and the base URL it serves."""

    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def mcp(self) -> str:
        return self.url + "/mcp"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before answering {url}")
        try:
            if httpx2.get(url, timeout=1).status_code < 500:
                return
        except httpx2.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:g} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=8)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@contextmanager
def started(
    args: list[str], port: int, log: Path, *, ready_path: str = "/healthz", env: dict[str, str] | None = None
) -> Iterator[Proc]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + ready_path, proc)
        yield Proc(proc, url, log)
    finally:
        stop(proc)


@contextmanager
def dpg_mcp_http(tmp: Path, *extra: str, name: str = "mcp") -> Iterator[Proc]:
    """`dpg-mcp serve --transport http` on a free loopback port (add --sandbox or --api-url in `extra`)."""
    port = free_port()
    args = [DPG_MCP, "serve", "--transport", "http", "--host", "127.0.0.1", "--port", str(port), *extra]
    with started(args, port, tmp / f"{name}-{port}.log") as proc:
        yield proc


@contextmanager
def sandbox_proc(tmp: Path, *extra: str) -> Iterator[Proc]:
    """The DPG sandbox as its own process (`dpg-mcp sandbox --port ...`)."""
    port = free_port()
    args = [DPG_MCP, "sandbox", "--host", "127.0.0.1", "--port", str(port), *extra]
    with started(args, port, tmp / f"sandbox-{port}.log", ready_path="/llms.txt") as proc:
        yield proc


@pytest.fixture(scope="module")
def hosted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """One hosted server with the sandbox mounted, shared by a module's tests (both eras)."""
    with dpg_mcp_http(tmp_path_factory.mktemp("hosted"), "--sandbox") as proc:
        yield proc


@pytest.fixture(params=["auto", "legacy"])
def mode(request: pytest.FixtureRequest) -> str:
    """auto negotiates 2026-07-28 (stateless requests); legacy is the 2025-11-25 initialize handshake."""
    return str(request.param)


@asynccontextmanager
async def connect(url: str, token: str | None, mode: str, **kw: Any) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0)) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode, **kw) as client,
    ):
        yield client


class _Files(BaseHTTPRequestHandler):
    files: ClassVar[dict[str, tuple[bytes, str]]] = {}
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.hits.append(self.path)
        hit = self.files.get(self.path)
        if hit is None:
            self.send_response(404)
            self.end_headers()
            return
        body, ctype = hit
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def file_server() -> Iterator[tuple[str, type[_Files]]]:
    """A plain HTTP file server on loopback: the 'internal' address an upload URL must not reach."""
    handler = type("Files", (_Files,), {"files": {"/one.png": (PNG_1PX, "image/png")}, "hits": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


def sets_named(api_url: str, name: str) -> int:
    """How many sets in the DPG store are named `name` (asked of the sandbox's API, not of dpg-mcp)."""

    def walk(nodes: list[dict[str, Any]]) -> int:
        return sum((n.get("name") == name) + walk(n.get("children") or []) for n in nodes)

    resp = httpx2.get(
        api_url + "/v1/sets/tree", headers={"Authorization": f"Bearer {TOKENS['admin']}"}, timeout=10
    )
    resp.raise_for_status()
    return walk(resp.json())


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


class Alternating(httpx2.AsyncBaseTransport):
    """Sends each request to the next replica in turn (a round-robin load balancer inside the client)."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.turn = 0
        self.sent: list[int] = []
        self.inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        port = self.ports[self.turn % len(self.ports)]
        self.turn += 1
        self.sent.append(port)
        request.url = request.url.copy_with(port=port)
        request.headers["host"] = f"127.0.0.1:{port}"
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@asynccontextmanager
async def connect_alternating(
    ports: list[int], token: str, mode: str, **kw: Any
) -> AsyncIterator[tuple[Client, Alternating]]:
    lb = Alternating(ports)
    async with (
        httpx2.AsyncClient(
            transport=lb, headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(60.0)
        ) as http,
        Client(
            streamable_http_client(f"http://127.0.0.1:{ports[0]}/mcp", http_client=http), mode=mode, **kw
        ) as client,
    ):
        yield client, lb

"""A faithful local emulator of DPG API v1 (Starlette ASGI app), for tests, demos and benchmarks."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .app import ResponseDropped, Sandbox, SandboxTransport
from .auth import totp
from .config import Faults, SandboxConfig

__all__ = [
    "Faults",
    "Sandbox",
    "SandboxConfig",
    "SandboxTransport",
    "listening_socket",
    "serve",
    "serve_in_thread",
    "totp",
]


class _QuietDrops:
    """An injected dropped response is expected: log one line instead of uvicorn's traceback."""

    def filter(self, record: Any) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, ResponseDropped):
            record.msg, record.args, record.exc_info = f"sandbox fault: {exc}", (), None
        return True


def _quiet_uvicorn() -> None:
    import logging

    logging.getLogger("uvicorn.error").addFilter(_QuietDrops())


def serve(
    host: str = "127.0.0.1", port: int = 8900, config: SandboxConfig | None = None, **uvicorn_kw: Any
) -> None:
    """Run the sandbox over real HTTP with uvicorn (blocking)."""
    import uvicorn

    _quiet_uvicorn()
    sb = Sandbox(config or SandboxConfig())
    uvicorn.run(sb.app, host=host, port=port, log_level=uvicorn_kw.pop("log_level", "warning"), **uvicorn_kw)


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket for uvicorn, made as uvicorn would make it itself.

    IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only when the socket says it is TCP,
    and without it a response written in two parts waits out delayed ACK (~40 ms a request on loopback).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()  # e.g. the port is taken: do not leak the socket
        raise
    return sock


@contextmanager
def serve_in_thread(
    sandbox: Sandbox, host: str = "127.0.0.1", port: int = 0, *, start_timeout: float = 10.0
) -> Iterator[str]:
    """Serve `sandbox` over real HTTP on loopback from a background thread; yields its base URL.

    `dpg-mcp --sandbox` uses it so that the links the tools hand out (downloads, archives, previews) open in
    the user's browser, and the sandbox stays a separate party reached over the network, as DPG would be.
    Port 0 picks a free port. The thread has its own event loop; uvicorn installs no signal handlers there.
    """
    import uvicorn

    _quiet_uvicorn()
    sock = listening_socket(host, port)
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(sandbox.app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="dpg-sandbox", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the DPG sandbox did not start on {host}:{bound_port}")
            time.sleep(0.01)
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()

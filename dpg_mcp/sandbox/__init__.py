"""A faithful local emulator of DPG API v1 (Starlette ASGI app), for tests, demos and benchmarks."""

from __future__ import annotations

from typing import Any

from .app import ResponseDropped, Sandbox, SandboxTransport
from .auth import totp
from .config import Faults, SandboxConfig

__all__ = ["Faults", "Sandbox", "SandboxConfig", "SandboxTransport", "serve", "totp"]


class _QuietDrops:
    """An injected dropped response is expected: log one line instead of uvicorn's traceback."""

    def filter(self, record: Any) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, ResponseDropped):
            record.msg, record.args, record.exc_info = f"sandbox fault: {exc}", (), None
        return True


def serve(
    host: str = "127.0.0.1", port: int = 8900, config: SandboxConfig | None = None, **uvicorn_kw: Any
) -> None:
    """Run the sandbox over real HTTP with uvicorn (blocking)."""
    import logging

    import uvicorn

    logging.getLogger("uvicorn.error").addFilter(_QuietDrops())
    sb = Sandbox(config or SandboxConfig())
    uvicorn.run(sb.app, host=host, port=port, log_level=uvicorn_kw.pop("log_level", "warning"), **uvicorn_kw)

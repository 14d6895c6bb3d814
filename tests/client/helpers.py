"""Helpers for client tests: a fake clock whose sleep advances time, and scripted mock transports."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2

from dpg_mcp.dpg.client import DPGClient

TOKEN = "dpg_api_live_secret_token_value_123"
BASE = "https://api.test"


@dataclass
class FakeClock:
    """Monotonic clock for tests: `sleep` advances it instantly and records each wait."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)
        await anyio.lowlevel.checkpoint()


Handler = Callable[[httpx2.Request], httpx2.Response | Awaitable[httpx2.Response]]


@dataclass
class Recorder:
    """Wraps a handler, keeping every request it saw."""

    handler: Handler
    requests: list[httpx2.Request] = field(default_factory=list)

    async def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        out = self.handler(request)
        if not isinstance(out, httpx2.Response):
            out = await out
        return out

    def paths(self) -> list[str]:
        return [r.url.path for r in self.requests]


def make_client(handler: Handler, clock: FakeClock | None = None, **kw: Any) -> tuple[DPGClient, Recorder]:
    rec = Recorder(handler)
    client = DPGClient(
        BASE + "/v1",
        TOKEN,
        transport=httpx2.MockTransport(rec),
        sleep=clock.sleep if clock else None,
        **kw,
    )
    return client, rec


def jresp(status: int, body: Any = None, headers: dict[str, str] | None = None) -> httpx2.Response:
    content = b"" if body is None else json.dumps(body).encode()
    h = {"content-type": "application/json", **(headers or {})}
    return httpx2.Response(status, content=content, headers=h)


def envelope(code: str, message: str = "nope", **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def op(uuid: str = "op-1", status: str = "succeeded", **extra: Any) -> dict[str, Any]:
    return {"uuid": uuid, "status": status, "type": extra.pop("type", "update"), **extra}

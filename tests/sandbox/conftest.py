"""Fixtures for black-box tests of the DPG sandbox: everything goes through real HTTP (ASGI in-process)."""

from __future__ import annotations

import uuid
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2
import pytest

from dpg_mcp.sandbox import Faults, Sandbox, SandboxConfig

ADMIN = "dpg_api_live_sandbox_admin"
EDITOR = "dpg_api_live_sandbox_editor"
READONLY = "dpg_api_live_sandbox_readonly"
UPLOADER = "dpg_api_live_sandbox_uploader"
DISABLED = "dpg_api_live_sandbox_disabled"
ALL_SCOPES = [
    "api.images.read",
    "api.images.write",
    "api.images.delete",
    "api.keywords.write",
    "api.ratings.write",
    "api.metadata.write",
    "api.sets.write",
    "api.upload",
    "api.download",
]
BASE = "http://dpg.test"
LOGIN = "editor@riverside.test"
PASSWORD = "sandbox-password"
TOTP_SECRET = "JBSWY3DPEHPK3PXP"
ERROR_KEYS = {"code", "message", "detail", "field", "request_id"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"  # the seed gallery's versions are photo-like JPEGs


class FakeClock:
    """Injected into SandboxConfig(clock=...): tests move time instead of sleeping."""

    def __init__(self, start: float = 1_785_542_400.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def new_key() -> str:
    return str(uuid.uuid4())


def make_sandbox(clock: FakeClock, **kw: Any) -> Sandbox:
    kw.setdefault("seed", 7)
    kw.setdefault("faults", Faults())
    return Sandbox(SandboxConfig(clock=clock, **kw))


class Api:
    """Thin helper over one httpx2 client per token, so tests read like the contract."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self._clients: dict[str | None, httpx2.AsyncClient] = {}

    def client(self, token: str | None = ADMIN) -> httpx2.AsyncClient:
        if token not in self._clients:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            self._clients[token] = httpx2.AsyncClient(
                transport=self.sb.transport(), base_url=BASE, headers=headers
            )
        return self._clients[token]

    async def get(self, path: str, token: str | None = ADMIN, **kw: Any) -> httpx2.Response:
        return await self.client(token).get(path, **kw)

    async def write(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = ADMIN,
        key: str | None = "auto",
        headers: dict[str, str] | None = None,
    ) -> httpx2.Response:
        h = dict(headers or {})
        if key == "auto":
            key = new_key()
        if key is not None:
            h["Idempotency-Key"] = key
        kw: dict[str, Any] = {"headers": h}
        if body is not None:
            kw["json"] = body
        return await self.client(token).request(method, path, **kw)

    async def ok_write(self, method: str, path: str, body: Any = None, **kw: Any) -> dict[str, Any]:
        """A write that must be accepted and finish at once; returns the Operation."""
        r = await self.write(method, path, body, **kw)
        assert r.status_code == 202, r.text
        op: dict[str, Any] = r.json()
        assert op["status"] == "succeeded", op
        return op

    async def all_images(self, token: str = ADMIN, **params: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        offset = 0
        for _ in range(100):  # bounded
            r = await self.get("/v1/images", token, params={**params, "limit": 200, "offset": offset})
            assert r.status_code == 200, r.text
            out.extend(r.json())
            if r.headers["X-Has-More"] != "true":
                return out
            offset = int(r.headers["X-Next-Offset"])
        raise AssertionError("paging did not end")

    async def image(self, uuid_: str) -> dict[str, Any]:
        r = await self.get(f"/v1/images/{uuid_}")
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    async def set_(self, uuid_: str) -> dict[str, Any]:
        r = await self.get(f"/v1/sets/{uuid_}")
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    async def set_images(self, uuid_: str) -> list[dict[str, Any]]:
        r = await self.get(f"/v1/sets/{uuid_}/images", params={"limit": 200})
        assert r.status_code == 200, r.text
        data: list[dict[str, Any]] = r.json()
        return data

    async def aclose(self) -> None:
        for c in self._clients.values():
            await c.aclose()


def assert_error(r: httpx2.Response, status: int, code: str, field: str | None = "any") -> dict[str, Any]:
    """The documented envelope: {"error": {code, message, detail, field, request_id}} + X-Request-Id."""
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error"}, body
    err: dict[str, Any] = body["error"]
    assert set(err) >= ERROR_KEYS, err
    assert err["code"] == code, err
    assert isinstance(err["message"], str) and err["message"]
    assert err["request_id"] and r.headers.get("X-Request-Id") == err["request_id"]
    if field != "any":
        assert err["field"] == field, err
    return err


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sb(clock: FakeClock) -> Sandbox:
    return make_sandbox(clock)


@pytest.fixture
async def api(sb: Sandbox) -> AsyncIterator[Api]:
    a = Api(sb)
    yield a
    await a.aclose()


@pytest.fixture(scope="module")
def shared_sb() -> Sandbox:
    """One sandbox for a module of tests that must leave it unchanged (each still checks its own digest)."""
    return make_sandbox(FakeClock())


_UNCHANGED: weakref.WeakKeyDictionary[Sandbox, str] = weakref.WeakKeyDictionary()


def digest_before(sb: Sandbox) -> str:
    """The shared sandbox's digest as the previous test left it (each test proves it unchanged): saves a
    full-store hash per test."""
    # popped: a test that fails before assert_unchanged leaves no stale value behind
    return _UNCHANGED.pop(sb, None) or sb.state_digest()


def assert_unchanged(sb: Sandbox, before: str) -> None:
    after = sb.state_digest()
    assert after == before, "the store changed"
    _UNCHANGED[sb] = after


@pytest.fixture
async def shared_api(shared_sb: Sandbox) -> AsyncIterator[Api]:
    a = Api(shared_sb)
    yield a
    await a.aclose()


@pytest.fixture
def api_for() -> Callable[[Sandbox], Api]:
    """For tests that build their own Sandbox (faults, durations); caller closes."""
    return Api


@pytest.fixture
async def images(api: Api) -> list[dict[str, Any]]:
    return await api.all_images()


@pytest.fixture
async def sets(api: Api) -> list[dict[str, Any]]:
    r = await api.get("/v1/sets", params={"limit": 200})
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()
    return data

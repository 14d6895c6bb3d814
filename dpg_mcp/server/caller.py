"""Who is calling: the principal behind a token, its capabilities, and their refresh when DPG answers 403."""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio

from dpg_mcp.config import ConfigError, Settings
from dpg_mcp.dpg.client import DPGClient
from dpg_mcp.dpg.errors import DPGError, TransportFailure
from dpg_mcp.dpg.models import Me
from dpg_mcp.dpg.operations import WriteRunner
from dpg_mcp.server.visibility import visible_names
from dpg_mcp.tools import TOOLS, ToolSpec
from dpg_mcp.tools.base import UploadPolicy
from dpg_mcp.tools.visibility_cache import VisibilityCache

log = logging.getLogger(__name__)


async def read_me(client: DPGClient, api_url: str) -> Me:
    """GET /v1/me, turning every way it can fail into one actionable ConfigError line."""
    try:
        return await client.me()
    except TransportFailure as exc:
        raise ConfigError(
            f"cannot reach DPG at {api_url} ({exc.message}): check DPG_API_URL and the network"
        ) from None
    except DPGError as exc:
        if exc.status == 401:
            raise ConfigError("DPG rejected the token (401 unauthorized): check DPG_TOKEN") from None
        if exc.code == "api_not_enabled":
            raise ConfigError(
                "the DPG API is switched off for this account: an admin turns it on under Settings → API"
            ) from None
        if exc.status == 404:
            raise ConfigError(
                f"{api_url} does not look like the DPG API (GET /v1/me answered 404): check DPG_API_URL"
            ) from None
        raise ConfigError(f"DPG refused GET /v1/me ({exc.status} {exc.code}: {exc.message})") from None
    except OSError as exc:  # DNS failures and the like, should the client let one through
        raise ConfigError(
            f"cannot reach DPG at {api_url} ({type(exc).__name__}): check DPG_API_URL"
        ) from None


def capabilities_of(me: Me) -> frozenset[str]:
    return frozenset(str(c) for c in (getattr(me, "capabilities", None) or []))


def account_of(me: Me) -> tuple[str, str | None, str | None]:
    """(name, unique_id, uuid) of the account, tolerant of a partial /v1/me."""
    acc = me.account
    if acc is None:
        return "unknown account", None, None
    return acc.name or "unknown account", acc.unique_id, acc.uuid


def origin_of(client: DPGClient, me: Me) -> str:
    """Which gallery the ledger's entries are about: the API URL, plus the instance id the DPG sandbox sends
    in /v1/me (fresh on every start, so a reset sandbox never inherits entries). The real API sends none."""
    instance = (me.model_extra or {}).get("instance_id")
    return f"{client.base_url}#{instance}" if isinstance(instance, str) and instance else client.base_url


def principal_of(me: Me, token: str) -> str:
    """A stable id for the write ledger: account + token (service token uuid, else user uuid, else a hash)."""
    _, _, account_uuid = account_of(me)
    who = (me.service_token.uuid if me.service_token else None) or (me.user.uuid if me.user else None)
    if not who:
        who = "t" + hashlib.sha256(token.encode()).hexdigest()[:16]
    return f"{account_uuid or 'account'}:{who}"


@dataclass
class DPGState:
    """Everything the server knows about its one principal; mutable only through refresh_capabilities."""

    settings: Settings
    client: DPGClient
    runner: WriteRunner
    principal: str
    me: Me
    capabilities: frozenset[str]
    guide: str
    guide_origin: str
    specs: dict[str, ToolSpec] = field(default_factory=dict)
    visible: frozenset[str] = frozenset()
    uploads: UploadPolicy = field(default_factory=UploadPolicy)
    # Hosted: forget the cached /v1/me answer for this token when a 403 made us re-read it.
    on_refresh: Callable[[], Awaitable[None]] | None = None
    # What this principal's sets hide, kept briefly so a repeat search does not re-read it (tools/visibility).
    visibility: VisibilityCache = field(default_factory=VisibilityCache)
    _lock: anyio.Lock = field(default_factory=anyio.Lock)

    def __post_init__(self) -> None:
        self.specs = {spec.name: spec for spec in TOOLS}
        self.visible = self.compute_visible(self.capabilities)

    def compute_visible(self, capabilities: frozenset[str]) -> frozenset[str]:
        return visible_names(capabilities, self.settings)

    def visible_specs(self) -> list[ToolSpec]:
        return [spec for spec in TOOLS if spec.name in self.visible]

    def adopt(self, me: Me) -> None:
        """A fresher /v1/me answer (hosted: the token verifier's, at most a few seconds old)."""
        caps = capabilities_of(me)
        self.me = me
        if caps != self.capabilities:
            self.capabilities = caps
            self.visible = self.compute_visible(caps)

    async def refresh_capabilities(self) -> bool:
        """Re-read /v1/me; True when the visible tool set changed."""
        if self.on_refresh is not None:
            await self.on_refresh()
        async with self._lock:
            try:
                me = await self.client.me()
                caps = capabilities_of(me)
                self.me = me
            except DPGError as exc:
                if exc.code != "api_not_enabled":
                    log.warning("re-reading /v1/me failed: %s %s", exc.status, exc.code)
                    return False
                caps = frozenset()  # API switched off: only the tools that need no scope stay
            self.capabilities = caps
            visible = self.compute_visible(caps)
            if visible == self.visible:
                return False
            log.info("capabilities changed: %d tools visible (was %d)", len(visible), len(self.visible))
            self.visible = visible
            return True


class CallerSource(Protocol):
    """Who sent one inbound MCP message: on stdio the process's one token, on HTTP the request's bearer."""

    async def resolve(self, request: Any | None) -> DPGState: ...


class FixedCaller:
    """The stdio / in-process source: one principal for the life of the server."""

    def __init__(self, state: DPGState) -> None:
        self.state = state

    async def resolve(self, request: Any | None) -> DPGState:
        return self.state


class CallerRefused(Exception):
    """The message carries no usable caller (HTTP without a verified bearer). str() says what to do."""


_current: ContextVar[DPGState | None] = ContextVar("dpg_mcp_caller", default=None)


def current_caller() -> DPGState | None:
    """The caller of the message being handled (set by the caller middleware), for handlers the SDK calls
    without a context (static resources)."""
    return _current.get()


@contextlib.contextmanager
def calling_as(state: DPGState) -> Iterator[None]:
    token = _current.set(state)
    try:
        yield
    finally:
        _current.reset(token)

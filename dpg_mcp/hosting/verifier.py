"""The bearer token of a request is a DPG token: GET /v1/me says who it is (cached briefly, by token hash).

Returned as the SDK's AccessToken so its auth middleware carries it to the MCP handlers:
- a good token: client_id = the principal, scopes = DPG capabilities, claims["dpg_me"] = the /v1/me answer;
- a token DPG rejects (401): None, so the caller gets 401 with WWW-Authenticate;
- a token whose account has the API switched off, or DPG unreachable: an AccessToken carrying
  claims["dpg_refused"], which the front door turns into a clear 403 / 503 (the SDK would say only 401).
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
from mcp.server.auth.provider import AccessToken, TokenVerifier

from dpg_mcp.dpg.errors import DPGError, TransportFailure
from dpg_mcp.dpg.models import Me
from dpg_mcp.hosting.clients import ClientPool
from dpg_mcp.hosting.me_cache import MeCache
from dpg_mcp.hosting.tokens import log_tag, token_key
from dpg_mcp.server.caller import principal_of

log = logging.getLogger(__name__)

API_OFF = (
    "the DPG API is switched off for this account: an admin turns it on under Settings → API. "
    "Do not retry until then."
)
UNREACHABLE = "dpg-mcp cannot reach DPG right now; try again in a minute."


class DPGTokenVerifier(TokenVerifier):
    def __init__(
        self, pool: ClientPool, cache: MeCache, *, ttl_s: float = 30.0, refused_ttl_s: float = 5.0
    ) -> None:
        self.pool = pool
        self.cache = cache
        self.ttl_s = ttl_s
        self.refused_ttl_s = refused_ttl_s
        # One /v1/me in flight per token per process: fifty parallel first requests make one DPG call.
        self._inflight: dict[str, anyio.Event] = {}
        # The AccessToken built from a cache entry, reused while the entry is the same answer (parsing /v1/me
        # on every request would cost more than the rest of the check).
        self._built: dict[str, tuple[dict[str, Any], AccessToken]] = {}
        # A signed-in member's caller key (per sign-in) -> the key of their current DPG token's entry, so
        # forgetting the caller forgets the /v1/me answer too (hosting.auth sets it).
        self.aliases: dict[str, str] = {}

    async def verify_token(self, token: str) -> AccessToken | None:
        token = token.strip()
        if not token:
            return None
        key = token_key(token)
        entry = await self._entry(token, key)
        built = self._built.get(key)
        if built is not None and (built[0] is entry or built[0] == entry):
            return built[1]
        access = self._build(token, key, entry)
        if access is not None:
            if len(self._built) >= 4096:
                self._built.clear()
            self._built[key] = (entry, access)
        return access

    def _build(self, token: str, key: str, entry: dict[str, Any]) -> AccessToken | None:
        status = entry.get("status")
        if status == "unauthorized":
            return None
        if status == "ok":
            me_json = entry.get("me") or {}
            me = Me.model_validate(me_json)
            caps = sorted(str(c) for c in (me.capabilities or []))
            return AccessToken(
                token=token,
                client_id=principal_of(me, token),
                scopes=caps,
                claims={"dpg_me": me_json, "dpg_key": key},
            )
        return AccessToken(
            token=token,
            client_id="refused:" + log_tag(key),
            scopes=[],
            claims={"dpg_refused": str(status), "dpg_key": key},
        )

    async def forget(self, key: str) -> None:
        key = self.aliases.get(key, key)
        self._built.pop(key, None)
        await self.cache.drop(key)

    async def _entry(self, token: str, key: str) -> dict[str, Any]:
        while True:
            cached = await self.cache.get(key)
            if cached is not None:
                return cached
            waiting = self._inflight.get(key)
            if waiting is None:
                break
            await waiting.wait()  # the other request's answer is in the cache now (or it failed: ask)
            if key not in self._inflight:
                cached = await self.cache.get(key)
                if cached is not None:
                    return cached
                break
        done = self._inflight[key] = anyio.Event()
        try:
            entry = await self._ask(token, key)
            if entry["status"] == "ok":
                await self.cache.put(key, entry, self.ttl_s)
            elif entry["status"] in ("unauthorized", "api_not_enabled"):
                await self.cache.put(key, entry, self.refused_ttl_s)
            return entry
        finally:
            self._inflight.pop(key, None)
            done.set()

    async def _ask(self, token: str, key: str) -> dict[str, Any]:
        client = self.pool.client_for(token)
        try:
            me = await client.me()
        except DPGError as exc:
            if exc.status == 401:
                log.info("token %s: DPG answered 401", log_tag(key))
                return {"status": "unauthorized"}
            if exc.code == "api_not_enabled":
                return {"status": "api_not_enabled"}
            log.warning("token %s: GET /v1/me failed: %s %s", log_tag(key), exc.status, exc.code)
            return {"status": "unreachable"}
        except (TransportFailure, OSError) as exc:
            log.warning("GET /v1/me failed: %s", type(exc).__name__)
            return {"status": "unreachable"}
        return {"status": "ok", "me": me.model_dump(mode="json")}

"""Sign-in state in Redis (--redis-url / REDIS_URL), shared by every replica: a member signed in through one
replica is known to all, and the DPG refresh token rotates under compare-and-set (a Lua script), so two
replicas refreshing one sign-in at once keep exactly one rotation. Same contents as the SQLite store:
hashes of the tokens dpg-mcp issues; the member's DPG tokens and the page's pending state sealed."""

from __future__ import annotations

import json
import time
from typing import Any

from dpg_mcp.hosting.auth.sealing import Sealer
from dpg_mcp.hosting.auth.store import Grant, IssuedToken
from dpg_mcp.hosting.tokens import token_key

P = "dpg-mcp:signin:"

# KEYS[1] grant; ARGV: expected version, sealed refresh, sealed access, access_expires.
ROTATE = """
if redis.call('HGET', KEYS[1], 'version') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'sealed_refresh', ARGV[2], 'sealed_access', ARGV[3], 'access_expires', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'version', 1)
return 1
"""


def _px(expires: float) -> int:
    return max(1, int((expires - time.time()) * 1000))


class RedisSignInStore:
    def __init__(self, redis: Any, sealer: Sealer) -> None:
        self._r = redis
        self.sealer = sealer
        self._rotate = redis.register_script(ROTATE)

    def close(self) -> None:
        pass  # the Redis client is the app's, closed by its owner

    async def put_client(self, client_id: str, info: dict[str, Any]) -> None:
        await self._r.set(P + "client:" + client_id, json.dumps(info))

    async def get_client(self, client_id: str) -> dict[str, Any] | None:
        raw = await self._r.get(P + "client:" + client_id)
        return json.loads(raw) if raw else None

    async def put_pending(self, page_id: str, data: dict[str, Any], ttl_s: float) -> None:
        sealed = self.sealer.seal(json.dumps(data))
        await self._r.set(P + "pending:" + token_key(page_id), sealed, px=max(1, int(ttl_s * 1000)))

    async def get_pending(self, page_id: str) -> dict[str, Any] | None:
        raw = await self._r.get(P + "pending:" + token_key(page_id))
        plain = self.sealer.open(raw) if raw else None
        return json.loads(plain) if plain else None

    async def drop_pending(self, page_id: str) -> None:
        await self._r.delete(P + "pending:" + token_key(page_id))

    async def put_code(self, code: str, grant_id: str, data: dict[str, Any], expires: float) -> None:
        key = P + "code:" + token_key(code)
        await self._r.set(key, json.dumps([grant_id, data]), px=_px(expires))
        await self._r.sadd(P + "grant-keys:" + grant_id, key)

    async def get_code(self, code: str) -> tuple[str, dict[str, Any]] | None:
        raw = await self._r.get(P + "code:" + token_key(code))
        if not raw:
            return None
        grant_id, data = json.loads(raw)
        return str(grant_id), dict(data)

    async def take_code(self, code: str) -> bool:
        return int(await self._r.delete(P + "code:" + token_key(code))) == 1

    async def put_grant(self, grant: Grant) -> None:
        await self._r.hset(
            P + "grant:" + grant.grant_id,
            mapping={
                "client_id": grant.client_id,
                "subject": grant.subject,
                "data": json.dumps(grant.data),
                "sealed_refresh": self.sealer.seal(grant.dpg_refresh),
                "sealed_access": self.sealer.seal(grant.dpg_access),
                "access_expires": repr(grant.access_expires),
                "version": str(grant.version),
            },
        )

    async def get_grant(self, grant_id: str) -> Grant | None:
        row = await self._r.hgetall(P + "grant:" + grant_id)
        if not row:
            return None
        f = {k.decode() if isinstance(k, bytes) else k: v for k, v in row.items()}
        refresh, access = self.sealer.open(f["sealed_refresh"]), self.sealer.open(f["sealed_access"])
        if refresh is None or access is None:
            return None
        text = {
            k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.items() if not k.startswith("sealed")
        }
        return Grant(
            grant_id,
            text["client_id"],
            text["subject"],
            json.loads(text["data"]),
            refresh,
            access,
            float(text["access_expires"]),
            int(text["version"]),
        )

    async def rotate(self, grant: Grant, refresh: str, access: str, access_expires: float) -> bool:
        args = [str(grant.version), self.sealer.seal(refresh), self.sealer.seal(access), repr(access_expires)]
        return int(await self._rotate(keys=[P + "grant:" + grant.grant_id], args=args)) == 1

    async def drop_grant(self, grant_id: str) -> None:
        index = P + "grant-keys:" + grant_id
        keys = [k.decode() if isinstance(k, bytes) else str(k) for k in await self._r.smembers(index)]
        await self._r.delete(P + "grant:" + grant_id, index, *keys)

    async def put_token(self, token: str, issued: IssuedToken) -> None:
        key = P + "token:" + token_key(token)
        fields = [issued.kind, issued.grant_id, issued.client_id, issued.scopes, issued.expires_at]
        payload = json.dumps([*fields, issued.resource])
        px = _px(issued.expires_at) if issued.expires_at is not None else None
        await self._r.set(key, payload, px=px)
        await self._r.sadd(P + "grant-keys:" + issued.grant_id, key)

    async def get_token(self, token: str, kind: str) -> IssuedToken | None:
        raw = await self._r.get(P + "token:" + token_key(token))
        if not raw:
            return None
        k, grant_id, client_id, scopes, expires_at, resource = json.loads(raw)
        if k != kind or (expires_at is not None and expires_at < time.time()):
            return None
        return IssuedToken(k, grant_id, client_id, list(scopes), expires_at, resource)

    async def take_token(self, token: str) -> bool:
        return int(await self._r.delete(P + "token:" + token_key(token))) == 1

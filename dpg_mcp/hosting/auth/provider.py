"""dpg-mcp as the OAuth authorization server: the SDK's routes (metadata, registration, /authorize, /token,
/revoke) over this provider, which keeps its state in the SignInStore and signs the member in at DPG.

- /authorize leads to the sign-in page (page.py) with a pending request; it ends in an authorization code.
- Codes, access and refresh tokens are random strings dpg-mcp issues; only their hashes are stored.
- Each grant holds the member's DPG refresh and access tokens (sealed); `dpg_access` refreshes the DPG access
  token before it runs out and stores the rotated refresh token with compare-and-set.
- Revoking any token of a grant deletes the grant, its DPG tokens and all its MCP tokens (DPG documents no
  revoke endpoint: the DPG refresh token is forgotten, and with it the member's access through dpg-mcp).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

import anyio
from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    AuthorizeError,
    RefreshToken,
    TokenError,
)
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

from dpg_mcp.dpg.errors import DPGError
from dpg_mcp.dpg.signin import SignInClient
from dpg_mcp.hosting.auth.store import Grant, IssuedToken, SignInStore
from dpg_mcp.hosting.auth.store_redis import RedisSignInStore
from dpg_mcp.hosting.tokens import log_tag, token_key

log = logging.getLogger(__name__)

ACCESS_PREFIX = "dpgmcp_at_"
REFRESH_PREFIX = "dpgmcp_rt_"
DPG_SCOPES = [
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


class GrantCode(AuthorizationCode):
    grant_id: str


class GrantRefreshToken(RefreshToken):
    grant_id: str


class GrantAccessToken(AccessToken):
    grant_id: str


def same_resource(a: str | None, b: str) -> bool:
    return (a or "").rstrip("/").lower() == b.rstrip("/").lower()


class DPGSignInProvider:
    """OAuthAuthorizationServerProvider[GrantCode, GrantRefreshToken, GrantAccessToken] (a Protocol)."""

    # How long a process whose refresh token DPG found spent waits for the winner's rotation to appear.
    RACE_READS = 30
    RACE_PAUSE_S = 0.1

    def __init__(
        self,
        store: SignInStore | RedisSignInStore,
        dpg: Callable[[], SignInClient],
        *,
        base_url: str,
        resource_url: str,
        access_ttl_s: int = 3600,
        refresh_ttl_s: int = 30 * 86400,
        code_ttl_s: int = 300,
        page_ttl_s: int = 900,
    ) -> None:
        self.store = store
        self.dpg = dpg  # a new SignInClient per use (closed after); DPG is reached over the network
        self.base_url = base_url.rstrip("/")
        self.resource_url = resource_url
        self.access_ttl_s = access_ttl_s
        self.refresh_ttl_s = refresh_ttl_s
        self.code_ttl_s = code_ttl_s
        self.page_ttl_s = page_ttl_s
        self._refreshing: dict[str, anyio.Lock] = {}

    # ---- clients ------------------------------------------------------------------------------------
    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        info = await self.store.get_client(client_id)
        return OAuthClientInformationFull.model_validate(info) if info else None

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        if client_info.client_id is None:
            raise ValueError("client_id is missing")
        await self.store.put_client(
            client_info.client_id, client_info.model_dump(mode="json", exclude_none=True)
        )

    # ---- /authorize: on to the sign-in page ------------------------------------------------------------
    async def authorize(self, client: OAuthClientInformationFull, params: AuthorizationParams) -> str:
        if params.resource is not None and not same_resource(params.resource, self.resource_url):
            raise AuthorizeError("invalid_target", f"this server issues tokens only for {self.resource_url}")
        page_id = secrets.token_urlsafe(32)
        await self.store.put_pending(
            page_id,
            {
                "step": "login",
                "client_id": client.client_id,
                "redirect_uri": str(params.redirect_uri),
                "redirect_explicit": params.redirect_uri_provided_explicitly,
                "state": params.state,
                "code_challenge": params.code_challenge,
                "scopes": params.scopes,
                "csrf": secrets.token_urlsafe(32),
                "browser": None,
            },
            self.page_ttl_s,
        )
        return f"{self.base_url}/signin?request={page_id}"

    async def new_grant(self, pending: dict[str, Any]) -> tuple[str, list[str]]:
        """The member approved: store their DPG tokens as a grant and return (authorization code, scopes)."""
        me = pending["me"]
        caps = [str(c) for c in me.get("capabilities") or []]
        wanted = pending.get("scopes")
        scopes = sorted(c for c in caps if not wanted or c in wanted)
        user = me.get("user") or {}
        grant = Grant(
            grant_id=secrets.token_urlsafe(16),
            client_id=pending["client_id"],
            subject=str(user.get("uuid") or ""),
            data={"account_uuid": pending["account_uuid"], "dpg_ttl": pending.get("dpg_ttl", 900)},
            dpg_refresh=pending["dpg_refresh"],
            dpg_access=pending["dpg_access"],
            access_expires=float(pending["dpg_access_expires"]),
            version=0,
        )
        await self.store.put_grant(grant)
        code = secrets.token_urlsafe(32)
        data = GrantCode(
            code=code,
            scopes=scopes,
            expires_at=time.time() + self.code_ttl_s,
            client_id=pending["client_id"],
            code_challenge=pending["code_challenge"],
            redirect_uri=pending["redirect_uri"],
            redirect_uri_provided_explicitly=pending["redirect_explicit"],
            resource=self.resource_url,
            subject=grant.subject,
            grant_id=grant.grant_id,
        )
        await self.store.put_code(code, grant.grant_id, data.model_dump(mode="json"), data.expires_at)
        log.info("grant %s: member approved client %s", log_tag(token_key(grant.grant_id)), grant.client_id)
        return code, scopes

    # ---- codes and tokens --------------------------------------------------------------------------------
    async def load_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: str
    ) -> GrantCode | None:
        found = await self.store.get_code(authorization_code)
        if found is None:
            return None
        code = GrantCode.model_validate(found[1])
        return code if code.client_id == client.client_id else None

    async def exchange_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: GrantCode
    ) -> OAuthToken:
        if not await self.store.take_code(authorization_code.code):
            raise TokenError("invalid_grant", "the authorization code was already used")
        return await self._issue(authorization_code.grant_id, client, authorization_code.scopes)

    async def load_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: str
    ) -> GrantRefreshToken | None:
        issued = await self.store.get_token(refresh_token, "refresh")
        if issued is None or issued.client_id != client.client_id:
            return None
        return GrantRefreshToken(
            token=refresh_token,
            client_id=issued.client_id,
            scopes=issued.scopes,
            expires_at=issued.expires_at,
            resource=issued.resource,
            grant_id=issued.grant_id,
        )

    async def exchange_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: GrantRefreshToken, scopes: list[str]
    ) -> OAuthToken:
        # Rotation: the presented refresh token is spent by the first exchange.
        if not await self.store.take_token(refresh_token.token):
            raise TokenError("invalid_grant", "the refresh token was already used")
        if await self.store.get_grant(refresh_token.grant_id) is None:
            raise TokenError("invalid_grant", "this sign-in has ended; sign in again")
        return await self._issue(refresh_token.grant_id, client, scopes or refresh_token.scopes)

    async def _issue(
        self, grant_id: str, client: OAuthClientInformationFull, scopes: list[str]
    ) -> OAuthToken:
        client_id = client.client_id or ""
        access, refresh = (
            ACCESS_PREFIX + secrets.token_urlsafe(32),
            REFRESH_PREFIX + secrets.token_urlsafe(32),
        )
        now = int(time.time())
        for token, kind, ttl in (
            (access, "access", self.access_ttl_s),
            (refresh, "refresh", self.refresh_ttl_s),
        ):
            issued = IssuedToken(kind, grant_id, client_id, list(scopes), now + ttl, self.resource_url)
            await self.store.put_token(token, issued)
        return OAuthToken(
            access_token=access,
            token_type="Bearer",
            expires_in=self.access_ttl_s,
            scope=" ".join(scopes),
            refresh_token=refresh,
        )

    async def load_access_token(self, token: str) -> GrantAccessToken | None:
        issued = await self.store.get_token(token, "access")
        if issued is None:
            return None
        return GrantAccessToken(
            token=token,
            client_id=issued.client_id,
            scopes=issued.scopes,
            expires_at=issued.expires_at,
            resource=issued.resource,
            grant_id=issued.grant_id,
        )

    async def revoke_token(self, token: GrantAccessToken | GrantRefreshToken) -> None:
        await self.store.drop_grant(token.grant_id)
        log.info("grant %s: revoked (its DPG refresh token is deleted)", log_tag(token_key(token.grant_id)))

    # ---- the member's DPG access token ---------------------------------------------------------------
    async def current_dpg_token(self, grant_id: str) -> str:
        """For the member's DPG client before each attempt (mid-poll too); a DPGError once signed out."""
        token = await self.dpg_access(grant_id)
        if token is None:
            raise DPGError(
                401,
                "unauthorized",
                "The member's sign-in has ended (revoked, or DPG no longer accepts it).",
                detail="sign in again through the MCP client; do not retry before",
            )
        return token

    async def dpg_access(self, grant_id: str) -> str | None:
        """The grant's current DPG access token, refreshed first when it is about to run out (within a
        minute, or a third of its lifetime when that is shorter). None when the sign-in has ended
        (revoked, or DPG no longer takes its refresh token)."""
        grant = await self.store.get_grant(grant_id)
        if grant is None:
            return None
        margin_s = min(60.0, float(grant.data.get("dpg_ttl") or 900) / 3)
        if grant.access_expires - time.time() > margin_s:
            return grant.dpg_access
        lock = self._refreshing.setdefault(grant_id, anyio.Lock())
        async with lock:  # one refresh per grant in this process; other processes: compare-and-set below
            grant = await self.store.get_grant(grant_id)
            if grant is None:
                return None
            if grant.access_expires - time.time() > margin_s:
                return grant.dpg_access
            try:
                async with self.dpg() as dpg:
                    fresh = await dpg.token(grant.dpg_refresh, grant.data["account_uuid"])
            except DPGError as exc:
                if exc.status not in (401, 403):
                    raise
                # A spent refresh token: another replica refreshed first and stores its answer in a moment.
                for _ in range(self.RACE_READS):
                    again = await self.store.get_grant(grant_id)
                    if again is None:
                        return None
                    if again.version != grant.version:
                        return again.dpg_access
                    await anyio.sleep(self.RACE_PAUSE_S)
                log.info("grant %s: DPG refused its refresh token; signed out", log_tag(token_key(grant_id)))
                await self.store.drop_grant(grant_id)
                return None
            expires = fresh.expires_at or time.time() + fresh.expires_in
            if not await self.store.rotate(grant, fresh.refresh_token, fresh.access_token, float(expires)):
                again = await self.store.get_grant(grant_id)
                return again.dpg_access if again else None
            return fresh.access_token

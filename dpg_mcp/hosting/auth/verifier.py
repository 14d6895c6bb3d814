"""The bearer of a request is either an MCP access token dpg-mcp issued at sign-in, or a DPG service token.

An issued token is looked up in the sign-in store, checked against this resource, and turned into the
member's current DPG access token (refreshed when near expiry); from there the answer is built exactly as for
a DPG token (DPGTokenVerifier: /v1/me, cached), so tools follow the member's own capabilities through the
same function, narrowed to the scopes the member granted this client. Any other bearer goes to
DPGTokenVerifier unchanged: service tokens keep working as before.
"""

from __future__ import annotations

import functools

from mcp.server.auth.provider import AccessToken, TokenVerifier

from dpg_mcp.dpg.errors import DPGError
from dpg_mcp.hosting.auth.provider import ACCESS_PREFIX, DPGSignInProvider, same_resource
from dpg_mcp.hosting.tokens import token_key
from dpg_mcp.hosting.verifier import DPGTokenVerifier


class SignInVerifier(TokenVerifier):
    def __init__(self, provider: DPGSignInProvider, dpg: DPGTokenVerifier) -> None:
        self.provider = provider
        self.dpg = dpg

    async def verify_token(self, token: str) -> AccessToken | None:
        token = token.strip()
        if not token.startswith(ACCESS_PREFIX):
            return await self.dpg.verify_token(token)
        issued = await self.provider.load_access_token(token)
        if issued is None or not same_resource(issued.resource, self.provider.resource_url):
            return None
        try:
            dpg_token = await self.provider.dpg_access(issued.grant_id)
        except DPGError:  # DPG did not answer the refresh (not a refusal): say so, as for a DPG token
            return AccessToken(
                token="", client_id="refused:signin", scopes=[], claims={"dpg_refused": "unreachable"}
            )
        if dpg_token is None:
            return None
        base = await self.dpg.verify_token(dpg_token)
        if base is None:
            return None
        claims = dict(base.claims or {})
        me = claims.get("dpg_me")
        if not isinstance(me, dict):
            return base  # refused by DPG (API off, unreachable): the front door says so
        granted = set(issued.scopes)
        caps = [c for c in me.get("capabilities") or [] if c in granted]
        claims["dpg_me"] = {**me, "capabilities": caps}
        # One caller state and DPG client per sign-in (not per DPG access token, which rotates): the client
        # asks for the current token before each attempt, so a write polling across a refresh goes on.
        claims["dpg_key"] = token_key("grant:" + issued.grant_id)
        if len(self.dpg.aliases) >= 4096:
            self.dpg.aliases.clear()
        self.dpg.aliases[claims["dpg_key"]] = str((base.claims or {}).get("dpg_key") or "")
        claims["dpg_token_source"] = functools.partial(self.provider.current_dpg_token, issued.grant_id)
        return AccessToken(
            token=dpg_token,
            client_id=base.client_id,
            scopes=sorted(caps),
            expires_at=issued.expires_at,
            resource=issued.resource,
            claims=claims,
        )

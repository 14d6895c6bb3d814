"""The hosted CallerSource: each MCP message's caller is the verified bearer token of its HTTP request.

A caller's state (its DPG client, write runner, capabilities, visible tools) is kept per token hash, bounded;
its capabilities follow the verifier's /v1/me answer, so a scope cut reaches the tool list within the cache
TTL, or at once after DPG answers 403 (the cached answer is dropped and /v1/me read again).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser

from dpg_mcp.config import Settings
from dpg_mcp.dpg.models import Me
from dpg_mcp.dpg.operations import WriteRunner
from dpg_mcp.hosting.clients import ClientPool
from dpg_mcp.hosting.verifier import DPGTokenVerifier
from dpg_mcp.ledger import Ledger
from dpg_mcp.server.caller import CallerRefused, DPGState, capabilities_of, origin_of
from dpg_mcp.tools.base import UploadPolicy

NO_CALLER = "this request carries no verified DPG token: send the header Authorization: Bearer <DPG token>"


class HostedCallers:
    def __init__(
        self,
        settings: Settings,
        pool: ClientPool,
        verifier: DPGTokenVerifier,
        ledger: Ledger,
        guide: str,
        guide_origin: str,
        *,
        uploads: UploadPolicy | None = None,
        max_callers: int = 1024,
    ) -> None:
        self.uploads = uploads or UploadPolicy(local_files=False)
        self.settings = settings
        self.pool = pool
        self.verifier = verifier
        self.ledger = ledger
        self.guide = guide
        self.guide_origin = guide_origin
        self._states: OrderedDict[str, tuple[dict[str, Any], DPGState]] = OrderedDict()
        self._max = max_callers

    async def resolve(self, request: Any | None) -> DPGState:
        scope = getattr(request, "scope", None) or {}
        user = scope.get("user")
        if not isinstance(user, AuthenticatedUser):
            raise CallerRefused(NO_CALLER)
        access = user.access_token
        claims = access.claims or {}
        me_json, key = claims.get("dpg_me"), claims.get("dpg_key")
        if not isinstance(me_json, dict) or not isinstance(key, str):
            raise CallerRefused(NO_CALLER)
        known = self._states.get(key)
        if known is not None:
            seen, state = known
            self._states.move_to_end(key)
            if seen is not me_json and seen != me_json:
                state.adopt(Me.model_validate(me_json))
                self._states[key] = (me_json, state)
            return state
        me = Me.model_validate(me_json)
        # A signed-in member (hosting.auth): one client per sign-in, asking for the current DPG token.
        source = claims.get("dpg_token_source")
        client = self.pool.client_for(
            access.token, key=key, token_source=source if callable(source) else None
        )

        async def forget() -> None:
            await self.verifier.forget(key)

        state = DPGState(
            settings=self.settings,
            client=client,
            # The ledger is shared (Redis with replicas): a resend through another replica finds its entry.
            runner=WriteRunner(
                client, self.ledger, budget_s=self.settings.wait_budget_s, origin=origin_of(client, me)
            ),
            principal=access.client_id,
            me=me,
            capabilities=capabilities_of(me),
            guide=self.guide,
            guide_origin=self.guide_origin,
            on_refresh=forget,
            uploads=self.uploads,
        )
        self._states[key] = (me_json, state)
        while len(self._states) > self._max:
            self._states.popitem(last=False)
        return state

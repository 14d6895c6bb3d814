"""Team sign-in: dpg-mcp as the OAuth authorization server for its HTTP transport (a member signs in with
their DPG login and MFA; their DPG login becomes their MCP access). See provider.py, page.py, store.py."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp.server.auth.routes import create_auth_routes
from mcp.server.auth.settings import ClientRegistrationOptions, RevocationOptions
from pydantic import AnyHttpUrl
from starlette.routing import BaseRoute

from dpg_mcp.dpg.signin import SignInClient
from dpg_mcp.hosting.auth.page import SignInPage
from dpg_mcp.hosting.auth.provider import DPG_SCOPES, DPGSignInProvider
from dpg_mcp.hosting.auth.sealing import Sealer
from dpg_mcp.hosting.auth.store import SignInStore
from dpg_mcp.hosting.auth.store_redis import RedisSignInStore
from dpg_mcp.hosting.auth.verifier import SignInVerifier
from dpg_mcp.hosting.verifier import DPGTokenVerifier

DB_ENV = "DPG_MCP_SIGNIN_DB"

__all__ = ["DB_ENV", "SignIn", "open_store"]


def open_store(ledger_spec: str | None = None, *, redis: Any | None = None) -> SignInStore | RedisSignInStore:
    """Redis when the server has it (replicas share sign-ins); else $DPG_MCP_SIGNIN_DB, else beside the
    ledger's SQLite file (in memory when the ledger is)."""
    sealer, _ = Sealer.from_env()
    if redis is not None:
        return RedisSignInStore(redis, sealer)
    path = os.environ.get(DB_ENV, "").strip()
    if path:
        return SignInStore(Path(os.path.expanduser(path)), sealer)
    if ledger_spec == "memory":
        return SignInStore(":memory:", sealer)
    if ledger_spec:
        return SignInStore(Path(os.path.expanduser(ledger_spec)).with_name("signin.sqlite3"), sealer)
    from dpg_mcp.ledger.sqlite import default_path

    return SignInStore(default_path().with_name("signin.sqlite3"), sealer)


@dataclass
class SignIn:
    provider: DPGSignInProvider
    routes: list[BaseRoute]
    verifier: SignInVerifier

    @classmethod
    def build(
        cls,
        store: SignInStore | RedisSignInStore,
        *,
        api_url: str,
        base_url: str,
        mcp_url: str,
        dpg: DPGTokenVerifier,
    ) -> SignIn:
        provider = DPGSignInProvider(
            store, lambda: SignInClient(api_url), base_url=base_url, resource_url=mcp_url
        )
        routes: list[BaseRoute] = [
            *create_auth_routes(
                provider,  # type: ignore[arg-type]
                issuer_url=AnyHttpUrl(base_url),
                client_registration_options=ClientRegistrationOptions(
                    enabled=True, valid_scopes=DPG_SCOPES, default_scopes=DPG_SCOPES
                ),
                revocation_options=RevocationOptions(enabled=True),
            ),
            *SignInPage(provider).routes(),
        ]
        return cls(provider, routes, SignInVerifier(provider, dpg))

"""Tokens, accounts, the sign-in flow (password, TOTP MFA, rotating refresh tokens) and its rate limit."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import struct
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .http import ApiError

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
EDITOR_SCOPES = [
    "api.images.read",
    "api.images.write",
    "api.keywords.write",
    "api.ratings.write",
    "api.metadata.write",
    "api.sets.write",
]


def _uid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://sandbox.dpg.test/{name}"))


ACCOUNT = {"uuid": _uid("account/riverside"), "name": "Riverside Sound Festival", "unique_id": "riverside"}
DISABLED_ACCOUNT = {
    "uuid": _uid("account/riverside-archive"),
    "name": "Riverside Archive",
    "unique_id": "riverside-archive",
}

# token -> (name, scopes, account, api enabled)
SERVICE_TOKENS: dict[str, tuple[str, list[str], dict[str, str], bool]] = {
    "dpg_api_live_sandbox_admin": ("Sandbox admin", ALL_SCOPES, ACCOUNT, True),
    "dpg_api_live_sandbox_editor": ("Sandbox editor", EDITOR_SCOPES, ACCOUNT, True),
    "dpg_api_live_sandbox_readonly": ("Sandbox read-only", ["api.images.read"], ACCOUNT, True),
    "dpg_api_live_sandbox_uploader": (
        "Sandbox uploader",
        ["api.images.read", "api.upload", "api.download"],
        ACCOUNT,
        True,
    ),
    "dpg_api_live_sandbox_captioner": (
        "Sandbox captioner (no metadata)",
        ["api.images.read", "api.images.write", "api.keywords.write"],
        ACCOUNT,
        True,
    ),
    "dpg_api_live_sandbox_disabled": ("Sandbox (API switched off)", ALL_SCOPES, DISABLED_ACCOUNT, False),
}

TOTP_SECRET = "JBSWY3DPEHPK3PXP"
PASSWORD = "sandbox-password"
ACCESS_TTL = 900
MFA_TTL = 300


@dataclass(frozen=True)
class User:
    uuid: str
    login: str
    name: str
    role: str  # "admin" or "user"
    mfa_secret: str | None
    accounts: tuple[dict[str, str], ...] = (ACCOUNT,)

    @property
    def scopes(self) -> list[str]:
        if self.role == "admin":
            return list(ALL_SCOPES)
        return [s for s in ALL_SCOPES if s != "api.images.delete"]


USERS = {
    u.login: u
    for u in [
        User(_uid("user/editor"), "editor@riverside.test", "Riverside Editor", "admin", TOTP_SECRET),
        User(
            _uid("user/photographer"), "photographer@riverside.test", "Riverside Photographer", "user", None
        ),
        # Works in two accounts, so a sign-in asks which one (the archive has the API switched off).
        User(
            _uid("user/manager"),
            "manager@riverside.test",
            "Riverside Manager",
            "admin",
            None,
            (ACCOUNT, DISABLED_ACCOUNT),
        ),
    ]
}


def totp(secret: str, at: float | None = None) -> str:
    """RFC 6238 TOTP: 6 digits, 30-second steps, HMAC-SHA1."""
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    counter = int((time.time() if at is None else at) // 30)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    code = (struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF) % 1_000_000
    return f"{code:06d}"


@dataclass
class Principal:
    token_id: str  # idempotency keys, operations and archives belong to this
    kind: str  # "service" | "user"
    name: str
    scopes: list[str]
    account: dict[str, str]
    enabled: bool
    user: User | None = None

    def me(self) -> dict[str, Any]:
        return {
            "account": dict(self.account),
            "service_token": {"uuid": self.token_id, "name": self.name} if self.kind == "service" else None,
            "user": {"uuid": self.user.uuid, "name": self.user.name, "role": self.user.role}
            if self.user
            else None,
            "capabilities": list(self.scopes),
        }


@dataclass
class RateLimiter:
    clock: Callable[[], float]
    limit: int = 5
    window: float = 60.0
    hits: dict[str, list[float]] = field(default_factory=dict)

    def hit(self, key: str) -> None:
        now = self.clock()
        if len(self.hits) > 1000:  # forget logins whose window is over: junk logins must not pile up
            self.hits = {k: v for k, v in self.hits.items() if v and v[-1] > now - self.window}
        recent = [t for t in self.hits.get(key, []) if t > now - self.window]
        if len(recent) >= self.limit:
            self.hits[key] = recent
            wait = max(1, math.ceil(recent[0] + self.window - now))
            raise ApiError(
                "rate_limited",
                "Too many attempts; wait before trying again.",
                detail=f"at most {self.limit} attempts a minute; retry after {wait} s",
                headers={"Retry-After": str(wait)},
            )
        recent.append(now)
        self.hits[key] = recent


@dataclass
class AccessToken:
    user: User
    account: dict[str, str]
    expires_at: float


class Auth:
    def __init__(self, clock: Callable[[], float], access_ttl: float = ACCESS_TTL) -> None:
        self.clock = clock
        self.access_ttl = access_ttl
        self.limiter = RateLimiter(clock)
        self.mfa_tokens: dict[str, tuple[User, float]] = {}
        self.refresh_tokens: dict[str, User] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        # Per-sandbox copy, so tests can change a token's scopes or API switch without touching others.
        self.service_tokens = {k: (n, list(sc), a, e) for k, (n, sc, a, e) in SERVICE_TOKENS.items()}

    def principal(self, authorization: str | None) -> Principal:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise ApiError(
                "unauthorized",
                "A bearer token is required.",
                detail="send the header Authorization: Bearer <token>",
            )
        token = authorization[7:].strip()
        svc = self.service_tokens.get(token)
        if svc is not None:
            name, scopes, account, enabled = svc
            return Principal(_uid(f"token/{token}"), "service", name, list(scopes), account, enabled)
        at = self.access_tokens.get(token)
        if at is not None:
            if at.expires_at <= self.clock():
                raise ApiError(
                    "unauthorized",
                    "The access token has expired.",
                    detail="get a new one from POST /v1/auth/token with your latest refresh_token",
                )
            u = at.user
            enabled = at.account["uuid"] != DISABLED_ACCOUNT["uuid"]
            return Principal(f"user-{u.uuid}", "user", u.name, u.scopes, at.account, enabled, user=u)
        raise ApiError("unauthorized", "The token is not valid.", detail="unknown, expired or revoked token")

    # --- sign-in flow -----------------------------------------------------------------
    def _sweep(self) -> None:
        """Drop expired MFA and access tokens once there are many (each refresh mints a new access token)."""
        now = self.clock()
        if len(self.mfa_tokens) > 1000:
            self.mfa_tokens = {k: v for k, v in self.mfa_tokens.items() if v[1] > now}
        if len(self.access_tokens) > 1000:
            self.access_tokens = {k: v for k, v in self.access_tokens.items() if v.expires_at > now}

    def _signed_in(self, user: User) -> dict[str, Any]:
        rt = "dpg_refresh_" + secrets.token_urlsafe(24)
        self.refresh_tokens[rt] = user
        return {"mfa_required": False, "refresh_token": rt, "accounts": [dict(a) for a in user.accounts]}

    def sign_in(self, login: str, password: str) -> dict[str, Any]:
        self._sweep()
        self.limiter.hit(f"login:{login.lower()}")
        user = USERS.get(login.lower())
        if user is None or not hmac.compare_digest(password.encode(), PASSWORD.encode()):
            raise ApiError(
                "unauthorized", "Login or password is wrong.", detail="check the login and password"
            )
        if user.mfa_secret:
            token = "dpg_mfa_" + secrets.token_urlsafe(24)
            self.mfa_tokens[token] = (user, self.clock() + MFA_TTL)
            return {"mfa_required": True, "mfa_token": token}
        return self._signed_in(user)

    def mfa(self, mfa_token: str, code: str) -> dict[str, Any]:
        self.limiter.hit(f"mfa:{mfa_token}")
        entry = self.mfa_tokens.get(mfa_token)
        if entry is None or entry[1] <= self.clock():
            raise ApiError(
                "unauthorized",
                "The MFA token is not valid.",
                detail="unknown or expired mfa_token; sign in again",
                field="mfa_token",
            )
        user = entry[0]
        assert user.mfa_secret is not None
        now = self.clock()
        given = code.encode("utf-8", "surrogateescape")
        codes = [totp(user.mfa_secret, now + d * 30).encode() for d in (-1, 0, 1)]
        if not any(hmac.compare_digest(c, given) for c in codes):
            raise ApiError(
                "unauthorized", "The authenticator code is wrong.", detail="code does not match", field="code"
            )
        del self.mfa_tokens[mfa_token]
        return self._signed_in(user)

    def token(self, refresh_token: str, account_uuid: str) -> dict[str, Any]:
        self._sweep()
        user = self.refresh_tokens.pop(refresh_token, None)
        if user is None:
            raise ApiError(
                "unauthorized",
                "The refresh token is not valid.",
                detail="unknown or already used refresh_token (it changes on every use)",
                field="refresh_token",
            )
        account = next((a for a in user.accounts if a["uuid"] == account_uuid), None)
        if account is None:
            self.refresh_tokens[refresh_token] = user  # a wrong account does not burn the token
            raise ApiError(
                "forbidden",
                "This user cannot work in that account.",
                detail="account_uuid is not one of the user's accounts",
                field="account_uuid",
            )
        access = "dpg_user_" + secrets.token_urlsafe(24)
        expires = self.clock() + self.access_ttl
        self.access_tokens[access] = AccessToken(user, dict(account), expires)
        new_rt = "dpg_refresh_" + secrets.token_urlsafe(24)
        self.refresh_tokens[new_rt] = user
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.access_ttl,
            "expires_at": int(expires),
            "refresh_token": new_rt,
        }

"""DPG user sign-in (CONTRACT §3.5): sign_in → mfa when two-factor is on → token, refreshed by rotation.

No MCP here. Each call is sent once, never retried: the endpoints are rate limited, a retried password would
spend the member's attempts, and a refresh token is single-use (a resend after a lost answer would present a
spent token). A 429 is a DPGError whose `retry_after` says how long to wait. Error texts never carry the
password, a code or a token (the redactor removes every secret sent).
"""

from __future__ import annotations

from typing import Any, TypeVar

import anyio
import httpx2
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dpg_mcp.dpg.errors import DPGError, Redactor, TransportFailure
from dpg_mcp.dpg.models import Account, Me

M = TypeVar("M", bound=BaseModel)
DEVICE = {"name": "dpg-mcp", "platform": "server"}


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class SignInStep(_Lenient):
    """The answer to sign_in or mfa: either an MFA challenge, or a refresh token and the user's accounts."""

    mfa_required: bool = False
    mfa_token: str | None = None
    refresh_token: str | None = None
    accounts: list[Account] = Field(default_factory=list)


class TokenGrant(_Lenient):
    """/v1/auth/token: a short-lived access token and the NEXT refresh token (the old one is spent)."""

    access_token: str
    refresh_token: str
    expires_in: float = 900.0
    expires_at: float | None = None


class SignInClient:
    """The three auth endpoints over one HTTP client. Use `async with`, or call `aclose()`."""

    def __init__(
        self,
        base_url: str,
        *,
        transport: httpx2.AsyncBaseTransport | None = None,
        timeout: float = 20.0,
        user_agent: str = "dpg-mcp",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._http = httpx2.AsyncClient(
            base_url=self.base_url,
            transport=transport,
            timeout=httpx2.Timeout(timeout),
            headers={"User-Agent": user_agent, "Accept": "application/json"},
            follow_redirects=False,
        )

    async def __aenter__(self) -> SignInClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def sign_in(self, login: str, password: str) -> SignInStep:
        body = {"login": login, "password": password, "device": DEVICE}
        return _model(SignInStep, await self._post("/v1/auth/sign_in", body, password))

    async def mfa(self, mfa_token: str, code: str) -> SignInStep:
        body = {"mfa_token": mfa_token, "code": code}
        return _model(SignInStep, await self._post("/v1/auth/mfa", body, mfa_token, code))

    async def token(self, refresh_token: str, account_uuid: str) -> TokenGrant:
        """Spends `refresh_token`: the caller must store the returned one before anything else."""
        body = {"refresh_token": refresh_token, "account_uuid": account_uuid}
        return _model(TokenGrant, await self._post("/v1/auth/token", body, refresh_token))

    async def me(self, access_token: str) -> Me:
        """GET /v1/me for a fresh access token: whose it is and its capabilities (the member's own scopes)."""
        redact = Redactor(access_token)
        resp = await self._send("GET", "/v1/me", None, {"Authorization": f"Bearer {access_token}"})
        if not resp.is_success:
            raise _error(resp, redact)
        return _model(Me, _json(resp, redact))

    async def _post(self, path: str, body: dict[str, Any], *secrets: str) -> Any:
        redact = Redactor(*secrets)
        resp = await self._send("POST", path, body, None)
        if not resp.is_success:
            raise _error(resp, redact)
        data = _json(resp, redact)
        for secret in ("refresh_token", "access_token", "mfa_token"):
            if isinstance(data, dict) and isinstance(data.get(secret), str):
                redact.add(data[secret])
        return data

    async def _send(
        self, method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str] | None
    ) -> httpx2.Response:
        try:
            with anyio.fail_after(self.timeout + 1):
                return await self._http.request(method, path, json=body, headers=headers)
        except (TimeoutError, httpx2.TransportError) as exc:
            raise TransportFailure(f"{method} {path}: DPG did not answer ({type(exc).__name__})") from None


def _model(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        # Pydantic's text quotes the input (tokens): name only the fields that did not fit.
        where = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors()[:5])
        raise DPGError(200, "bad_response", f"DPG's answer has an unexpected shape ({where})") from None


def _error(resp: httpx2.Response, redact: Redactor) -> DPGError:
    headers = {k.lower(): v for k, v in resp.headers.items()}
    return DPGError.from_http(resp.status_code, resp.content, headers, redact=redact)


def _json(resp: httpx2.Response, redact: Redactor) -> Any:
    try:
        return resp.json()
    except (ValueError, ValidationError):
        raise DPGError(resp.status_code, "bad_response", redact("DPG's answer is not JSON")) from None

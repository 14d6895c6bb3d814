"""What every /mcp request passes before the MCP transport sees it, outermost first:

FrontDoor: one structured log line per request (principal hash, JSON-RPC method, tool, status, duration;
never a token), DNS-rebinding protection (Host and Origin against the allow-list), the body cap.
Then the SDK's AuthenticationMiddleware (bearer → DPGTokenVerifier) and AuthContextMiddleware.
CallerGate: 401 with WWW-Authenticate and the protected-resource metadata when there is no valid token; a
clear 403 when the account's API is off, 503 when DPG cannot be reached; then the per-principal rate and
concurrency limits (429 with Retry-After).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import anyio
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dpg_mcp.hosting.limits import Limiter, retry_after_header
from dpg_mcp.hosting.tokens import log_tag
from dpg_mcp.hosting.verifier import API_OFF, UNREACHABLE

access_log = logging.getLogger("dpg_mcp.access")

_INFO = "dpg_mcp"  # scope key for what the log line reports


async def _respond(
    send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


def _rpc_summary(body: bytes) -> tuple[str | None, str | None]:
    """(JSON-RPC method, tool or prompt name) of a POST body, for the log line."""
    try:
        msg = json.loads(body)
    except ValueError:
        return None, None
    if not isinstance(msg, dict):
        return ("batch" if isinstance(msg, list) else None), None
    method = msg.get("method") if isinstance(msg.get("method"), str) else None
    params = msg.get("params")
    name = params.get("name") if isinstance(params, dict) else None
    name = name if method in ("tools/call", "prompts/get") else None
    return method, name if isinstance(name, str) else None


class FrontDoor:
    def __init__(
        self,
        app: ASGIApp,
        *,
        security: TransportSecuritySettings,
        max_body_bytes: int,
        replica_id: str | None = None,
    ) -> None:
        self.app = app
        self.security = TransportSecurityMiddleware(security)
        self.max_body = max_body_bytes
        # Sessions (2025-11-25) live in one replica: its id prefixes the Mcp-Session-Id it hands out, so a
        # load balancer routes a session's requests by that prefix (compose.yaml's nginx does).
        self.prefix = f"{replica_id}.".encode() if replica_id else b""

    def _session_in(self, scope: Scope) -> Scope:
        headers = scope["headers"]
        for i, (k, v) in enumerate(headers):
            if k == b"mcp-session-id" and v.startswith(self.prefix):
                headers = [*headers[:i], (k, v[len(self.prefix) :]), *headers[i + 1 :]]
                return {**scope, "headers": headers}
        return scope

    def _session_out(self, message: Message) -> Message:
        headers = [
            (k, self.prefix + v if k.lower() == b"mcp-session-id" else v) for k, v in message["headers"]
        ]
        return {**message, "headers": headers}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        info: dict[str, Any] = {"status": None}
        scope[_INFO] = info

        async def send_logged(message: Message) -> None:
            if message["type"] == "http.response.start":
                info["status"] = message["status"]
                if self.prefix:
                    message = self._session_out(message)
            await send(message)

        if self.prefix:
            scope = self._session_in(scope)

        try:
            await self._handle(scope, receive, send_logged, info)
        finally:
            line = {
                "event": "mcp_request",
                "http": scope.get("method"),
                "rpc": info.get("rpc"),
                "tool": info.get("tool"),
                "principal": info.get("principal"),
                "status": info["status"],
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            }
            access_log.info(json.dumps({k: v for k, v in line.items() if v is not None}))

    async def _handle(self, scope: Scope, receive: Receive, send: Send, info: dict[str, Any]) -> None:
        # Host and Origin first: a browser tricked by DNS rebinding gets nothing, not even a 401.
        refusal = await self.security.validate_request(Request(scope), is_post=False)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        if scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await _respond(send, 413, {"error": "request_too_large", "limit_bytes": self.max_body})
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _respond(send, 413, {"error": "request_too_large", "limit_bytes": self.max_body})
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        info["rpc"], info["tool"] = _rpc_summary(body)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class CallerGate:
    def __init__(self, app: ASGIApp, *, limiter: Limiter, resource_metadata_url: str) -> None:
        self.app = app
        self.limiter = limiter
        self.metadata_url = resource_metadata_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        info = scope.setdefault(_INFO, {})
        user = scope.get("user")
        if not isinstance(user, AuthenticatedUser):
            has_bearer = any(
                k == b"authorization" and v[:7].lower() == b"bearer " for k, v in scope.get("headers", [])
            )
            desc = (
                "DPG did not accept this token: use a current DPG service token"
                if has_bearer
                else "send a DPG token: Authorization: Bearer <DPG token>"
            )
            challenge = (
                f'Bearer error="invalid_token", error_description="{desc}", '
                f'resource_metadata="{self.metadata_url}"'
            )
            await _respond(
                send,
                401,
                {"error": "invalid_token", "error_description": desc},
                [(b"www-authenticate", challenge.encode())],
            )
            return
        claims = user.access_token.claims or {}
        key = str(claims.get("dpg_key") or "")
        info["principal"] = log_tag(key)
        refused = claims.get("dpg_refused")
        if refused == "api_not_enabled":
            await _respond(send, 403, {"error": "api_not_enabled", "error_description": API_OFF})
            return
        if refused:
            await _respond(
                send,
                503,
                {"error": "dpg_unreachable", "error_description": UNREACHABLE},
                [(b"retry-after", b"30")],
            )
            return
        if scope["method"] != "POST":  # the long-lived GET stream and DELETE are not limited
            await self.app(scope, receive, send)
            return
        ticket, wait = await self.limiter.admit(key)
        if ticket is None:
            after = retry_after_header(wait)
            await _respond(
                send,
                429,
                {
                    "error": "rate_limited",
                    "error_description": f"too many requests for this token; retry after {after} s",
                },
                [(b"retry-after", after.encode())],
            )
            return
        try:
            await self.app(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self.limiter.release(key, ticket)

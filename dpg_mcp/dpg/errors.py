"""Errors raised by the DPG client.

Every non-2xx answer becomes a `DPGError`, whether or not its body is DPG's documented envelope
`{"error": {"code", "message", "detail", "field", "request_id"}}`: the real API may differ from the sandbox,
so a foreign body (HTML from a proxy, plain text, other JSON) still yields a clear error
(status + short text).
Texts here never carry the token: the client scrubs anything it puts in (see `scrub`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any

# Short enough for an agent to read, long enough to show what a proxy said.
_MAX_TEXT = 300

# Status -> code for bodies that do not carry one (DECISIONS.md "Status codes").
_DEFAULT_CODES = {
    400: "validation",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    413: "payload_too_large",
    429: "rate_limited",
}


class DPGError(Exception):
    """A DPG answer that was not a success, or (subclass) no answer at all."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        detail: str | None = None,
        field: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail
        self.field = field
        self.request_id = request_id
        self.retry_after = retry_after
        super().__init__(self._text())

    @property
    def retryable(self) -> bool:
        """True for 5xx and 429: the same request may work later (writes: with the same key)."""
        return self.status >= 500 or self.status == 429

    def _text(self) -> str:
        parts = [f"{self.status} {self.code}: {self.message}"]
        if self.field:
            parts.append(f"field={self.field}")
        if self.detail:
            parts.append(f"detail={self.detail}")
        if self.retry_after is not None:
            parts.append(f"retry_after={self.retry_after:g}s")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        return " | ".join(parts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._text()!r})"

    def to_dict(self) -> dict[str, Any]:
        """The trusted, token-free facts, for structured tool errors."""
        return {
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "detail": self.detail,
            "field": self.field,
            "request_id": self.request_id,
            "retry_after": self.retry_after,
            "retryable": self.retryable,
        }

    @classmethod
    def from_http(
        cls,
        status: int,
        body: bytes,
        headers: dict[str, str] | None = None,
        *,
        secret: str | None = None,
    ) -> DPGError:
        """Build from a status, raw body and (lower-cased) headers. `secret` is scrubbed from all texts."""
        headers = headers or {}
        request_id = headers.get("x-request-id")
        retry_after = parse_retry_after(headers.get("retry-after"))
        env = _envelope(body)
        if env is not None:
            return cls(
                status,
                _str(env.get("code")) or _DEFAULT_CODES.get(status, _fallback_code(status)),
                scrub(_str(env.get("message")) or _reason(status), secret),
                detail=_opt(scrub(_str(env.get("detail")), secret)),
                field=_opt(_str(env.get("field"))),
                request_id=_opt(_str(env.get("request_id"))) or request_id,
                retry_after=retry_after,
            )
        text = body.decode("utf-8", "replace").strip()
        text = " ".join(text.split())[:_MAX_TEXT]
        message = f"HTTP {status} {_reason(status)}" + (f": {text}" if text else "")
        return cls(
            status,
            _DEFAULT_CODES.get(status, _fallback_code(status)),
            scrub(message, secret),
            request_id=request_id,
            retry_after=retry_after,
        )


class TransportFailure(DPGError):
    """No usable answer (connection error, timeout) after the allowed retries.

    status 0, code "unreachable".
    """

    def __init__(self, message: str, *, code: str = "unreachable") -> None:
        super().__init__(0, code, message)

    @property
    def retryable(self) -> bool:
        return True


def scrub(text: str, secret: str | None) -> str:
    """Remove a secret (the token) from a text that may echo request data."""
    if secret and text and secret in text:
        return text.replace(secret, "[redacted]")
    return text


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date (relative to now)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def _envelope(body: bytes) -> dict[str, Any] | None:
    if not body:
        return None
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(data, dict):
        inner = data.get("error")
        if isinstance(inner, dict) and (inner.get("code") or inner.get("message")):
            return inner
    return None


def _str(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _opt(value: str) -> str | None:
    return value or None


def _fallback_code(status: int) -> str:
    if status >= 500:
        return "internal"
    return f"http_{status}"


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "error"

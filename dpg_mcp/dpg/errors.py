"""Errors raised by the DPG client.

Every non-2xx answer becomes a `DPGError`, whether or not its body is DPG's documented envelope
`{"error": {"code", "message", "detail", "field", "request_id"}}`: the real API may differ from the sandbox,
so a foreign body (HTML from a proxy, plain text, other JSON) still yields a clear error
(status + short text).
Texts here never carry the token: the client scrubs anything it puts in (see `scrub`).
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, quote_plus

# Short enough for an agent to read, long enough to show what a proxy said.
_MAX_TEXT = 300

# Status -> code for bodies that do not carry one (DECISIONS.md "Status codes").
_DEFAULT_CODES = {
    400: "validation",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    408: "timeout",
    409: "conflict",
    413: "payload_too_large",
    422: "validation",  # many APIs (and proxies in front of them) use 422 for a body that fails its rules
    429: "rate_limited",
}


class DPGError(Exception):
    """A DPG answer that was not a success, or (subclass) no answer at all."""

    # Set by the write runner when a write's outcome is open: whether it may have been applied, and
    # exactly what calling again will do (the ledger's rule for that kind of tool).
    resend: str | None = None

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
        """True for 5xx, 429 and 408: the same request may work later (writes: with the same key)."""
        return self.status >= 500 or self.status in (408, 429)

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
        request_id = _opt(_clean(request_id, secret, 200))
        env = _envelope(body)
        if env is not None:
            # Every text field is scrubbed: a server (or proxy) may echo request data into any of them.
            return cls(
                status,
                _clean(env.get("code"), secret, 100) or _DEFAULT_CODES.get(status, _fallback_code(status)),
                _clean(env.get("message"), secret, _MAX_TEXT * 2) or _reason(status),
                detail=_opt(_clean(env.get("detail"), secret, _MAX_TEXT * 2)),
                field=_opt(_clean(env.get("field"), secret, 200)),
                request_id=_opt(_clean(env.get("request_id"), secret, 200)) or request_id,
                retry_after=retry_after,
            )
        text = body.decode("utf-8", "replace")
        if _HTML.search(text):
            text = _TAG.sub(" ", _HTML_DROP.sub(" ", text))
        # Scrub BEFORE cutting: a token that straddles the cut would otherwise leave a prefix behind.
        text = _clean(text, secret, _MAX_TEXT)
        message = f"HTTP {status} {_reason(status)}" + (f": {text}" if text else "")
        return cls(
            status,
            _DEFAULT_CODES.get(status, _fallback_code(status)),
            message,
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


# Anything that looks like a credential, whoever's it is: bearer values and DPG service-token shapes.
_BEARER = re.compile(r"(?i)\b(bearer)\s+[^\s\"',;]+")
_TOKEN_SHAPE = re.compile(r"dpg_api_\w+")
_HTML = re.compile(r"(?is)<\s*(html|body|head|title|h1|p|div)\b")
_HTML_DROP = re.compile(r"(?is)<(script|style)\b.*?</\1\s*>")
_TAG = re.compile(r"(?s)<[^>]*>")


def scrub(text: str, secret: str | None) -> str:
    """Remove a secret (the token) from a text that may echo request data.

    Also removes its URL-quoted form, any "Bearer <value>" and anything shaped like a DPG token.
    """
    if not text:
        return text
    if secret:
        for form in {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]}:
            if form:
                text = text.replace(form, "[redacted]")
    text = _BEARER.sub(r"\1 [redacted]", text)
    return _TOKEN_SHAPE.sub("[redacted]", text)


def _clean(value: Any, secret: str | None, limit: int) -> str:
    """One text for an error: stringified, whitespace-collapsed, scrubbed, then cut to `limit`."""
    text = " ".join(_str(value).split())
    text = scrub(text, secret)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date (relative to now)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return None if math.isnan(seconds) else max(0.0, seconds)
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

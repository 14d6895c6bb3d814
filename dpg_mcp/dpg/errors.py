"""Errors raised by the DPG client.

Every non-2xx answer becomes a `DPGError`, whether or not its body is DPG's documented envelope
`{"error": {"code", "message", "detail", "field", "request_id"}}`: the real API may differ from the sandbox,
so a foreign body (HTML from a proxy, plain text, other JSON) still yields a clear error
(status + short text).
Texts here never carry the token: the client scrubs anything it puts in (see `scrub`).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
        redact: Callable[[str], str] | None = None,
    ) -> DPGError:
        """Build from a status, raw body and (lower-cased) headers.

        `redact` (or a Redactor of `secret`) removes the live secrets from every text.
        """
        headers = headers or {}
        out: Callable[[str], str] = redact or Redactor(secret)
        request_id = headers.get("x-request-id")
        retry_after = parse_retry_after(headers.get("retry-after"))
        request_id = _opt(_clean(request_id, out, 200))
        env = _envelope(body)
        if env is not None:
            # Every text field is scrubbed: a server (or proxy) may echo request data into any of them.
            return cls(
                status,
                _clean(env.get("code"), out, 100) or _DEFAULT_CODES.get(status, _fallback_code(status)),
                _clean(env.get("message"), out, _MAX_TEXT * 2) or _reason(status),
                detail=_opt(_clean(env.get("detail"), out, _MAX_TEXT * 2)),
                field=_opt(_clean(env.get("field"), out, 200)),
                request_id=_opt(_clean(env.get("request_id"), out, 200)) or request_id,
                retry_after=retry_after,
            )
        text = body.decode("utf-8", "replace")
        if _HTML.search(text):
            text = _TAG.sub(" ", _HTML_DROP.sub(" ", text))
        # Scrub BEFORE cutting: a token that straddles the cut would otherwise leave a prefix behind.
        text = _clean(text, out, _MAX_TEXT)
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


# Anything that looks like a credential, whoever's it is: bearer values and DPG token shapes (service tokens,
# and the user, refresh and MFA tokens of the sign-in flow). The live secrets themselves are removed by value,
# whatever their shape (see Redactor): these patterns only catch credentials we were never told about.
_BEARER = re.compile(r"(?i)\b(bearer)\s+[^\s\"',;]+")
_TOKEN_SHAPE = re.compile(r"dpg_(?:api|user|refresh|mfa)_[\w-]+")
_HTML = re.compile(r"(?is)<\s*(html|body|head|title|h1|p|div)\b")
_HTML_DROP = re.compile(r"(?is)<(script|style)\b.*?</\1\s*>")
_TAG = re.compile(r"(?s)<[^>]*>")
# A run of this many characters of a secret (or half of it, if longer) is removed too: an echo cut short
# still leaks most of it. Shorter runs are left: a token's public prefix ("dpg_api_live_") is no secret.
_FRAGMENT = 16
REDACTED = "[redacted]"


def _forms(secret: str) -> list[str]:
    """The ways a secret can be written back in a text: as is, URL-quoted, JSON-escaped; longest first."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]}
    return sorted((f for f in forms if f), key=len, reverse=True)


def _run_length(secret: str) -> int:
    return max(_FRAGMENT, len(secret) // 2)


def _cut_fragments(text: str, secret: str, pieces: list[str]) -> str:
    """Remove any long run of consecutive characters of `secret` (a truncated echo); `pieces` are the
    secret's windows of that length, in order."""
    run = _run_length(secret)
    if len(text) < run:
        return text
    # Each cut removes characters of the text that matched the secret; bounded all the same.
    for _ in range(len(text) // run + 1):
        hit = next(((i, at) for i, p in enumerate(pieces) if (at := text.find(p)) >= 0), None)
        if hit is None:
            break
        i, at = hit
        # grow the match both ways while it still follows the secret
        start, end, s_start, s_end = at, at + run, i, i + run
        while start > 0 and s_start > 0 and text[start - 1] == secret[s_start - 1]:
            start, s_start = start - 1, s_start - 1
        while end < len(text) and s_end < len(secret) and text[end] == secret[s_end]:
            end, s_end = end + 1, s_end + 1
        text = text[:start] + REDACTED + text[end:]
    return text


class Redactor:
    """The live secrets of one principal (its DPG token, and any user access or refresh token the server
    holds for it), removed by value from any text, whatever their shape.

    Callable: `redactor(text) -> text`. Never shows its secrets (repr, str).
    """

    def __init__(self, *secrets: str | None) -> None:
        # secret -> (its written forms, its windows of the fragment length); longest secret first
        self._known: dict[str, tuple[list[str], list[str]]] = {}
        # Every run of a fragment's length holds one of these (half as long, at every half-length step):
        # a cheap first look before the full search.
        self._anchors: list[str] = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        """Also remove this secret from now on (e.g. a refreshed access token)."""
        secret = (secret or "").strip()
        if secret and secret not in self._known:
            run = _run_length(secret)
            pieces = [secret[i : i + run] for i in range(len(secret) - run + 1)]
            self._known[secret] = (_forms(secret), pieces)
            half = run // 2
            self._anchors += [secret[i : i + half] for i in range(0, len(secret) - half + 1, half)]
            self._known = dict(sorted(self._known.items(), key=lambda kv: len(kv[0]), reverse=True))

    def __repr__(self) -> str:
        return f"Redactor(<{len(self._known)} secret(s)>)"

    @property
    def json_safe(self) -> bool:
        """No secret has a character JSON escapes: a look at a JSON dump sees every run of every secret."""
        return all(json.dumps(s)[1:-1] == s for s in self._known)

    def touches(self, text: str) -> bool:
        """Whether `text` holds any secret, a written form of one, or a long run of one."""
        if not any(a in text for a in self._anchors) and not any(
            f in text for forms, _ in self._known.values() for f in forms
        ):
            return False
        return any(
            any(f in text for f in forms) or any(p in text for p in pieces)
            for forms, pieces in self._known.values()
        )

    def __call__(self, text: str) -> str:
        if not text or not self.touches(text):
            return text
        for secret, (forms, pieces) in self._known.items():
            for form in forms:
                text = text.replace(form, REDACTED)
            text = _cut_fragments(text, secret, pieces)
        return text


def _shapes(text: str) -> str:
    """Credentials by their look, for DPG's error texts (not for the guide, which documents them)."""
    text = _BEARER.sub(r"\1 " + REDACTED, text)
    return _TOKEN_SHAPE.sub(REDACTED, text)


class RedactingFilter(logging.Filter):
    """A log handler filter: each record's text leaves without the live secrets."""

    def __init__(self, redact: Callable[[str], str]) -> None:
        super().__init__()
        self._redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        clean = self._redact(text)
        if clean != text:
            record.msg, record.args = clean, None
        return True


@contextmanager
def redacted_logs(redact: Callable[[str], str]) -> Iterator[None]:
    """While open, every handler of the root logger passes records through a RedactingFilter."""
    handlers = list(logging.getLogger().handlers)
    filt = RedactingFilter(redact)
    for handler in handlers:
        handler.addFilter(filt)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(filt)


def scrub(text: str, secret: str | None) -> str:
    """Remove a secret (the token) from a text that may echo request data.

    Also removes its URL-quoted and JSON-escaped forms, any long run of its characters, any
    "Bearer <value>" and anything shaped like a DPG token.
    """
    return _shapes(Redactor(secret)(text))


def _clean(value: Any, redact: Callable[[str], str], limit: int) -> str:
    """One text for an error: stringified, whitespace-collapsed, scrubbed, then cut to `limit`."""
    text = " ".join(_str(value).split())
    text = _shapes(redact(text))
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

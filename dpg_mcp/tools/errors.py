"""Errors as the agent's next move (tool-contract.md, "Errors").

Every message carries only trusted text: ours, plus DPG's code, field, detail and request id.
Never a token, never a traceback.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from dpg_mcp.dpg.errors import DPGError, TransportFailure
from dpg_mcp.dpg.models import Operation

_SCOPE = re.compile(r"\bapi\.[a-z_]+(?:\.[a-z_]+)*\b")

# Code -> HTTP status, for errors that arrive inside a failed Operation (DECISIONS.md "Status codes").
_CODE_STATUS = {
    "validation": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "api_not_enabled": 403,
    "idempotency_key_conflict": 409,
    "payload_too_large": 413,
    "rate_limited": 429,
}

# Which tool finds a valid id again, by the kind of thing not found.
_FINDER = {
    "image": "search_images",
    "set": "browse_sets",
    "snapshot": "browse_sets with the set_uuid",
    "archive": "get_download_link with list_archives=true",
}
_NOT_SEARCHABLE = {
    "operation": "Operation ids come from a write's running result; check the id you passed.",
}


class ToolInputError(Exception):
    """Our own check refused the arguments before anything was sent to DPG."""


class NeedsConfirmation(ToolInputError):
    """A destructive tool was called without the user's agreement and the host could not ask."""


class OperationFailed(DPGError):
    """DPG accepted a write, then its Operation ended `failed`: reported like any DPG refusal."""

    operation_id: str | None = None


def error_from_operation(op: Operation) -> DPGError:
    """A failed Operation as a DPGError, so the server reports it like any DPG refusal."""
    err: dict[str, Any] = op.error or {}
    code = str(err.get("code") or "operation_failed")
    status = _CODE_STATUS.get(code, 404 if code.endswith("not_found") else 500 if code == "internal" else 422)
    exc = OperationFailed(
        status,
        code,
        str(err.get("message") or f"operation {op.uuid} failed"),
        detail=_opt(err.get("detail")),
        field=_opt(err.get("field")),
        request_id=_opt(err.get("request_id")),
    )
    exc.operation_id = op.uuid
    return exc


def agent_message(err: BaseException) -> str:
    """The isError text for any failure a handler can raise."""
    if isinstance(err, NeedsConfirmation):
        return f"Not done, nothing was sent to DPG: {err}."
    if isinstance(err, ToolInputError):
        return f"Invalid arguments: {err}. Nothing was sent to DPG; correct it and call again."
    if isinstance(err, ValidationError):
        return _validation_message(err)
    if isinstance(err, DPGError):
        return _dpg_message(err)
    kind = type(err).__name__
    return f"Unexpected failure ({kind}). If it was a write, read the item back before calling again."


def _validation_message(err: ValidationError) -> str:
    parts = []
    for e in err.errors(include_url=False, include_input=False)[:10]:
        where = ".".join(str(p) for p in e.get("loc", ())) or "arguments"
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    more = err.error_count() - len(parts)
    if more > 0:
        parts.append(f"and {more} more")
    return (
        "Invalid arguments: " + "; ".join(parts) + ". Nothing was sent to DPG; correct them and call again."
    )


def _dpg_message(err: DPGError) -> str:
    code = err.code or "unknown"
    what = err.detail or err.message
    if isinstance(err, TransportFailure) or err.status == 0:
        head = (
            f"DPG could not be reached ({err.message}). "
            "The server already retried with the same idempotency key; nothing was applied twice. "
            "It is safe to call again later with the same arguments."
        )
    elif err.status >= 500:
        head = (
            f"DPG failed ({what}). "
            "The server already retried with the same idempotency key; nothing was applied twice. "
            "It is safe to call again later with the same arguments."
        )
    elif code == "api_not_enabled":
        head = (
            "The DPG API is switched off for this account (admin Settings → API → API Access). "
            "Do not retry; ask an account admin to turn it on."
        )
    elif err.status == 401 or code == "unauthorized":
        head = (
            "The DPG token is missing, wrong, expired or revoked. "
            "Do not retry; the server's token must be replaced."
        )
    elif err.status == 403 and code == "forbidden":
        scope = _scope_in(err)
        lacks = f"the {scope} scope" if scope else f"a scope this call needs ({what})"
        head = f"This token lacks {lacks}. Ask the account admin for a token with it; do not retry."
    elif code == "idempotency_key_conflict":
        head = (
            "Server fault: DPG reported an idempotency key conflict, which this server should never cause. "
            "Nothing new was applied. Report it with the request id; do not retry in a loop."
        )
    elif err.status == 429 or code == "rate_limited":
        wait = f"{err.retry_after:g} s" if err.retry_after is not None else "a minute"
        head = f"DPG is rate limiting this token past the server's wait budget. Wait {wait}, then call again."
    elif err.status == 404 or code.endswith("not_found"):
        kind = code.removesuffix("_not_found") if code.endswith("_not_found") else ""
        finder = _FINDER.get(kind)
        hint = f"Search first ({finder}) to get a valid id." if finder else "Search first to get a valid id."
        hint = _NOT_SEARCHABLE.get(kind, hint)
        head = f"Not found: {what}. {hint}"
    elif err.status == 413 or code == "payload_too_large":
        head = f"The request is too large for this token ({what}). Send fewer items per call."
    elif err.status == 400 or code == "validation":
        where = f"field `{err.field}`: " if err.field else ""
        head = f"DPG rejected the request: {where}{what}. Correct it and call again."
    else:
        where = f" (field `{err.field}`)" if err.field else ""
        head = f"DPG refused the request{where}: {what}."
    op = err.operation_id if isinstance(err, OperationFailed) else None
    facts = [f"DPG code: {code}"]
    if err.status:
        facts.append(f"HTTP {err.status}")
    if op:
        facts.append(f"operation: {op}")
    facts.append(f"request_id: {err.request_id or 'none'}")
    return f"{head} [{'; '.join(facts)}]"


def _scope_in(err: DPGError) -> str | None:
    for text in (err.detail, err.message):
        if text:
            m = _SCOPE.search(text)
            if m:
                return m.group(0)
    return None


def _opt(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None

"""Errors as the agent's next move (tool-contract.md, "Errors").

Every message carries only trusted text: ours, plus DPG's code, field, detail and request id.
Never a token, never a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from dpg_mcp.dpg.errors import DPGError, TransportFailure, scrub
from dpg_mcp.dpg.models import Operation
from dpg_mcp.tools.render import clip, fence

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
    # Scrubbed like every error the client builds: DPG may echo request data, credentials included.
    exc = OperationFailed(
        status,
        scrub(code, None),
        scrub(str(err.get("message") or f"operation {op.uuid} failed"), None),
        detail=_scrubbed(err.get("detail")),
        field=_scrubbed(err.get("field")),
        request_id=_scrubbed(err.get("request_id")),
    )
    exc.operation_id = op.uuid
    return exc


def agent_message(err: BaseException, *, read_only: bool = False) -> str:
    """The isError text for any failure a handler can raise. `read_only`: the call was a read (no key, no
    change), which changes what a server fault means for the agent."""
    if isinstance(err, NeedsConfirmation):
        return f"Not done, nothing was sent to DPG: {err}."
    if isinstance(err, ToolInputError):
        return f"Invalid arguments: {err}. Nothing was sent to DPG; correct it and call again."
    if isinstance(err, ValidationError):
        return _validation_message(err)
    if isinstance(err, DPGError):
        return _dpg_message(err, read_only)
    kind = type(err).__name__
    return f"Unexpected failure ({kind}). If it was a write, read the item back before calling again."


def _validation_message(err: ValidationError) -> str:
    parts = validation_parts(err)
    return f"Invalid arguments: {parts}. Nothing was sent to DPG; correct them and call again."


# Our words for a type refused in strict mode: the JSON type wanted, and what is not taken for it.
_TYPE_WORDS = {
    "bool_type": "must be true or false (a JSON boolean, not a string or number)",
    "int_type": "must be a whole number (a JSON number, not a string)",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number (a JSON number, not a string)",
    "string_type": "must be a string",
    "list_type": "must be a JSON array (not a string holding one)",
    "dict_type": "must be a JSON object (not a string holding one)",
    "model_type": "must be a JSON object (not a string holding one)",
    "model_attributes_type": "must be a JSON object (not a string holding one)",
}


def validation_parts(err: ValidationError, *, allowed: Sequence[str] | None = None) -> str:
    """Each refused argument by name, with the rule it broke and, for a closed set, the allowed values."""
    parts = []
    for e in err.errors(include_url=False, include_input=False)[:10]:
        loc = e.get("loc", ())
        where = ".".join(str(p) for p in loc) or "arguments"
        kind = e.get("type", "")
        msg = _TYPE_WORDS.get(kind) or str(e.get("msg", "invalid")).removeprefix("Value error, ")
        if kind == "extra_forbidden":
            msg = "unknown argument"
            if allowed is not None and len(loc) == 1:
                msg += "; the arguments are " + ", ".join(allowed)
        parts.append(f"{where}: {msg}")
    more = err.error_count() - len(parts)
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


def _dpg_message(err: DPGError, read_only: bool = False) -> str:
    """Our own words for the agent's next move, DPG's facts in brackets, and DPG's own words fenced.

    DPG's `detail` and `message` may repeat what was sent (a keyword, a set name, a metadata value), and that
    can be gallery text: they only ever reach the agent inside the untrusted-text fence.
    """
    code = err.code or "unknown"
    quoted = True  # whether DPG's own words follow, fenced
    field = safe_field(err.field)
    retried = (
        "The server already retried; this read changed nothing. Call again later."
        if read_only
        else err.resend
        # No ledger advice came with it: say only what is known (tried under one key, so at most once).
        or "It may or may not have been applied: the server retried under one idempotency key, so at most "
        "once. It is safe to call again later with the same arguments."
    )
    if isinstance(err, TransportFailure) or err.status == 0:
        # the client's own words (timeouts, resets), never DPG's
        head = f"DPG could not be reached ({err.message}). {retried}"
        quoted = False
    elif err.status >= 500:
        head = f"DPG failed (HTTP {err.status}). {retried}"
        quoted = False
    elif code == "api_not_enabled":
        head = (
            "The DPG API is switched off for this account (admin Settings → API → API Access). "
            "Do not retry; ask an account admin to turn it on."
        )
        quoted = False
    elif err.status == 401 or code == "unauthorized":
        head = (
            "The DPG token is missing, wrong, expired or revoked. "
            "Do not retry; the server's token must be replaced."
        )
        quoted = False
    elif err.status == 403 and code == "forbidden":
        scope = _scope_in(err)
        lacks = f"the {scope} scope" if scope else "a scope this call needs (DPG's words below)"
        head = f"This token lacks {lacks}. Ask the account admin for a token with it; do not retry."
        quoted = scope is None
    elif code == "idempotency_key_conflict":
        head = (
            "Server fault: DPG reported an idempotency key conflict, which this server should never cause. "
            "Nothing new was applied. Report it with the request id; do not retry in a loop."
        )
    elif err.status == 429 or code == "rate_limited":
        wait = f"{err.retry_after:g} s" if err.retry_after is not None else "a minute"
        head = f"DPG is rate limiting this token past the server's wait budget. Wait {wait}, then call again."
        if err.resend:  # a write: what may have happened to it, and what calling again will do
            head += f" {err.resend}"
        quoted = False
    elif err.status == 404 or code.endswith("not_found"):
        kind = code.removesuffix("_not_found") if code.endswith("_not_found") else ""
        finder = _FINDER.get(kind)
        hint = f"Search first ({finder}) to get a valid id." if finder else "Search first to get a valid id."
        hint = _NOT_SEARCHABLE.get(kind, hint)
        missing = _id_in(err, kind)
        if missing:
            head = f"Not found: {kind} {missing}. {hint}"
            quoted = False
        else:
            head = f"Not found ({kind or 'the item'}; DPG's words below). {hint}"
    elif err.status == 413 or code == "payload_too_large":
        head = "The request is too large for DPG. Send fewer items per call."
    elif err.status == 400 or code == "validation":
        where = f" (field `{field}`)" if field else ""
        head = f"DPG rejected the request{where}; its reason is below. Correct it and call again."
    else:
        where = f" (field `{field}`)" if field else ""
        head = f"DPG refused the request{where}; its reason is below."
    op = err.operation_id if isinstance(err, OperationFailed) else None
    facts = [f"DPG code: {safe_code(code)}"]
    if err.status:
        facts.append(f"HTTP {err.status}")
    if field and "field `" not in head:
        facts.append(f"field: {field}")
    if op:
        facts.append(f"operation: {op}")
    facts.append(f"request_id: {safe_code(err.request_id or 'none')}")
    text = f"{head} [{'; '.join(facts)}]"
    words = err.detail or err.message
    if quoted and words:
        text += "\nDPG's words (quoted data, may repeat gallery text):\n" + fence(clip(words, 1000) or "")
    if err.field and not field:
        text += "\nDPG's field name (quoted):\n" + fence(clip(err.field, 300) or "")
    return text


# A DPG field name as we show it inline: a plain path (`operations[3].body.rating`, `Idempotency-Key`),
# optionally named by the image it concerns (see writes._name_item). Anything else is quoted in a fence.
_FIELD = re.compile(
    r"^(?:(?:image [A-Za-z0-9_-]{1,100}|request /[A-Za-z0-9_/-]{1,200})(?: |$))?[A-Za-z0-9_.\[\]-]{0,100}$"
)
_CODE = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


def safe_field(field: str | None) -> str | None:
    return field if field and _FIELD.match(field) else None


def safe_code(code: str) -> str:
    return code if _CODE.match(code) else "(unreadable)"


def _id_in(err: DPGError, kind: str) -> str | None:
    """The id in DPG's "image <id> does not exist", when it is a plain id."""
    if not kind:
        return None
    for text in (err.detail, err.message):
        # an id has a digit (UUIDs, op-…): "image does not exist" must not name "does"
        m = re.search(rf"\b{re.escape(kind)} ((?=[A-Za-z_-]*\d)[A-Za-z0-9_-]{{1,100}})\b", text or "")
        if m:
            return m.group(1)
        # "unknown image_public_uuids: a, b": a list of plain ids after a colon, and nothing else
        m = _ID_LIST.search(text or "")
        if m:
            ids = [i.strip() for i in m.group(1).split(",")]
            return ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
    return None


_ID_LIST = re.compile(r":\s*([A-Za-z0-9_-]{1,100}(?:,\s*[A-Za-z0-9_-]{1,100}){0,499})\s*$")


def _scope_in(err: DPGError) -> str | None:
    for text in (err.detail, err.message):
        if text:
            m = _SCOPE.search(text)
            if m:
                return m.group(0)
    return None


def _opt(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _scrubbed(value: Any) -> str | None:
    text = _opt(value)
    return scrub(text, None) if text is not None else None

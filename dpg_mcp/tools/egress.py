"""The one way out of a tool call: every result and every error text passes here before it leaves.

Gallery text and DPG's own words were clipped and fenced where the tools render them (render.fence,
render.clip); here, whatever the path (an error envelope, a failed Operation, a batch item's failure,
check_operation's result, a title), the live secrets are removed from the text and from every string of the
structured content, and the result-size cap is enforced at run time: an over-long result is cut, its fences
kept closed, with a note saying so.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dpg_mcp.dpg.errors import Redactor
from dpg_mcp.tools.base import ToolResult
from dpg_mcp.tools.render import MAX_RESULT_BYTES, TAG, fit

Redact = Callable[[str], str]

CUT_NOTE = "[result cut here to stay under the size limit; ask for fewer items]"
# Of the cap, what the structured content may keep when a result must be cut; the text gets the rest.
_STRUCTURED_SHARE = 0.6


@dataclass(frozen=True)
class Outgoing:
    """A tool result as it may leave: secret-free and within the size cap."""

    text: str
    structured: dict[str, Any] | None
    images: list[tuple[bytes, str]] = field(default_factory=list)


def redact_all(value: Any, redact: Redact) -> Any:
    """Every string in a JSON value (keys too) passed through `redact`."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [redact_all(v, redact) for v in value]
    if isinstance(value, dict):
        return {redact(str(k)): redact_all(v, redact) for k, v in value.items()}
    return value


def _bytes(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def cut_text(text: str, limit: int) -> str:
    """`text` within `limit` bytes, cut at a line end, any fence left open closed again, with a note."""
    if len(text.encode("utf-8")) <= limit:
        return text
    room = max(0, limit - len(CUT_NOTE) - len(TAG) - 8)
    head = text.encode("utf-8")[:room].decode("utf-8", "ignore")
    if "\n" in head:
        head = head[: head.rindex("\n")]
    # Markers inside fenced text were neutralised, so every exact marker left is one of ours.
    if head.count(f"<{TAG}>") > head.count(f"</{TAG}>"):
        head += f"\n</{TAG}>"
    return f"{head}\n{CUT_NOTE}"


def seal_text(text: str, redact: Redact, limit: int = MAX_RESULT_BYTES) -> str:
    """An error or resource text on its way out: secrets removed, within the cap."""
    return cut_text(redact(text), limit)


def seal(result: ToolResult, redact: Redact) -> Outgoing:
    """A tool result on its way out: secrets removed everywhere, text + structure within the cap."""
    structured = result.structured.model_dump(mode="json", by_alias=True)
    # One look at the whole structure as JSON (the JSON-escaped form of a secret is among those looked
    # for); only a result that holds a secret is walked string by string.
    dumped = json.dumps(structured, ensure_ascii=False, separators=(",", ":"))
    quick = isinstance(redact, Redactor) and redact.json_safe
    if not quick or redact(dumped) != dumped:
        structured = redact_all(structured, redact)
        dumped = json.dumps(structured, ensure_ascii=False, separators=(",", ":"))
    text = redact(result.text)
    if len(dumped.encode("utf-8")) + len(text.encode("utf-8")) > MAX_RESULT_BYTES:
        if _bytes(structured) > MAX_RESULT_BYTES * _STRUCTURED_SHARE:
            structured = fit(structured, int(MAX_RESULT_BYTES * _STRUCTURED_SHARE))
        text = cut_text(text, MAX_RESULT_BYTES - _bytes(structured))
    return Outgoing(text=text, structured=structured, images=list(result.images))

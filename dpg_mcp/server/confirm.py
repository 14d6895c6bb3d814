"""Asking the user before a destructive call, in both protocol eras.

Handshake era (≤ 2025-11-25): elicitation/create mid-call. 2026-07-28 (no back channel): the first round
ends with an InputRequiredResult carrying the question; the client asks and calls again with the answer, and
the tool runs again from the start (its reads repeat; nothing was written before the question). A client
that cannot elicit gets None, and the tool falls back to its `confirm: true` argument.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server.elicitation import AcceptedElicitation, render_elicitation_schema
from mcp.server.mcpserver import Context
from mcp.types import ElicitRequest, ElicitRequestFormParams, ElicitResult, InputRequiredResult
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel, Field

log = logging.getLogger(__name__)

ConfirmFn = Callable[[str], Awaitable[bool | None]]

_CONFIRM_KEY = "confirm"


class Confirmation(BaseModel):
    confirm: bool = Field(description="true to go ahead")


def is_modern(ctx: Context[Any, Any]) -> bool:
    return (ctx.protocol_version or "") in MODERN_PROTOCOL_VERSIONS


class AskUser(Exception):
    """Raised by the 2026-era confirm function on the first round: the call answers InputRequiredResult."""

    def __init__(self, question: str) -> None:
        super().__init__(question)
        self.question = question


def _answer_in(ctx: Context[Any, Any]) -> bool | None:
    """The user's answer carried by a 2026-era retry, or None on the first round."""
    response = (ctx.input_responses or {}).get(_CONFIRM_KEY)
    if not isinstance(response, ElicitResult):
        return None
    return response.action == "accept" and bool((response.content or {}).get("confirm"))


def ask_user(question: str) -> InputRequiredResult:
    schema = render_elicitation_schema(Confirmation)
    request = ElicitRequest(params=ElicitRequestFormParams(message=question, requested_schema=schema))
    return InputRequiredResult(input_requests={_CONFIRM_KEY: request})


def confirm_fn(ctx: Context[Any, Any]) -> ConfirmFn | None:
    """Asking the user needs a client that declared elicitation; None when it cannot be asked."""
    caps = ctx.client_capabilities
    if caps is None or caps.elicitation is None:
        return None
    if is_modern(ctx):
        answer = _answer_in(ctx)

        async def ask_by_round_trip(question: str) -> bool | None:
            if answer is None:
                raise AskUser(question)
            return answer

        return ask_by_round_trip

    async def confirm(message: str) -> bool | None:
        try:
            answer = await ctx.elicit(message, Confirmation)
        except Exception as exc:  # the host could not ask: the tool falls back to confirm=true
            log.info("elicitation failed (%s); falling back to the confirm argument", type(exc).__name__)
            return None
        if isinstance(answer, AcceptedElicitation):
            return bool(answer.data.confirm)
        return False

    return confirm

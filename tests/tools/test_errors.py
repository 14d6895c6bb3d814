"""agent_message: every failure becomes the agent's next move, with trusted text only."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dpg_mcp.dpg.errors import DPGError, TransportFailure
from dpg_mcp.dpg.models import Operation
from dpg_mcp.tools.errors import NeedsConfirmation, ToolInputError, agent_message, error_from_operation
from dpg_mcp.tools.images import CaptionImageArgs

TOKEN = "dpg_api_live_sandbox_admin"


def dpg(status: int, code: str, **kw: object) -> DPGError:
    return DPGError(status, code, kw.pop("message", "msg"), request_id="req-1", **kw)  # type: ignore[arg-type]


def test_tool_input_error_says_nothing_was_sent() -> None:
    text = agent_message(ToolInputError("give at least one of title, description"))
    assert "give at least one of title, description" in text
    assert "Nothing was sent to DPG" in text


def test_schema_validation_names_the_argument() -> None:
    with pytest.raises(ValidationError) as info:
        CaptionImageArgs.model_validate({"image_uuid": "a", "rotation": 45})
    text = agent_message(info.value)
    assert "rotation" in text and "Nothing was sent" in text
    assert "45" not in text  # the input is not echoed back


def test_dpg_validation_gives_field_and_detail() -> None:
    text = agent_message(dpg(400, "validation", field="title", detail="title must be at most 191 characters"))
    assert "`title`" in text and "at most 191 characters" in text
    assert "Correct it and call again" in text
    assert "DPG code: validation" in text and "request_id: req-1" in text


def test_forbidden_names_the_missing_scope_and_says_do_not_retry() -> None:
    text = agent_message(dpg(403, "forbidden", detail="this token lacks the api.images.delete scope"))
    assert "api.images.delete scope" in text
    assert "Ask the account admin for a token with it" in text
    assert "do not retry" in text.lower()
    assert "DPG code: forbidden" in text


def test_api_not_enabled() -> None:
    text = agent_message(dpg(403, "api_not_enabled"))
    assert "switched off" in text and "Do not retry" in text and "Settings" in text


def test_unauthorized() -> None:
    text = agent_message(dpg(401, "unauthorized"))
    assert "expired or revoked" in text and "Do not retry" in text


@pytest.mark.parametrize(
    ("code", "finder"),
    [
        ("image_not_found", "search_images"),
        ("set_not_found", "browse_sets"),
        ("snapshot_not_found", "browse_sets"),
    ],
)
def test_not_found_says_which_id_and_search_first(code: str, finder: str) -> None:
    text = agent_message(dpg(404, code, detail="image 1234 not found"))
    assert "1234" in text and "Search first" in text and finder in text


def test_operation_not_found_does_not_send_the_agent_searching() -> None:
    text = agent_message(dpg(404, "operation_not_found", detail="operation op-x does not exist"))
    assert "op-x" in text and "running result" in text


def test_idempotency_conflict_is_a_server_fault_with_request_id() -> None:
    text = agent_message(dpg(409, "idempotency_key_conflict"))
    assert "Server fault" in text and "request_id: req-1" in text and "Nothing new was applied" in text


def test_rate_limit_past_budget_says_how_long_to_wait() -> None:
    text = agent_message(dpg(429, "rate_limited", retry_after=30.0))
    assert "Wait 30 s" in text


@pytest.mark.parametrize("err", [dpg(500, "internal"), dpg(503, "internal"), TransportFailure("timed out")])
def test_server_errors_and_unreachable_are_safe_to_repeat(err: DPGError) -> None:
    text = agent_message(err)
    assert "already retried with the same idempotency key" in text
    assert "nothing was applied twice" in text
    assert "safe to call again later" in text


def test_payload_too_large() -> None:
    assert "fewer items" in agent_message(dpg(413, "payload_too_large"))


def test_failed_operation_carries_its_id_and_dpg_facts() -> None:
    op = Operation(
        uuid="op-9",
        status="failed",
        error={
            "code": "validation",
            "detail": "crop outside the original",
            "field": "width",
            "request_id": "r9",
        },
    )
    err = error_from_operation(op)
    assert isinstance(err, DPGError) and err.status == 400
    text = agent_message(err)
    assert "operation: op-9" in text and "crop outside the original" in text and "`width`" in text


def test_needs_confirmation() -> None:
    text = agent_message(NeedsConfirmation("check with the user, then call with confirm=true"))
    assert text.startswith("Not done") and "confirm=true" in text


def test_never_a_token_nor_a_traceback() -> None:
    class Boom(Exception):
        pass

    text = agent_message(Boom(f"Authorization: Bearer {TOKEN}"))
    assert TOKEN not in text and "Traceback" not in text and "Boom" in text
    # DPG errors are built by the client, which scrubs the token from any echoed text.
    from_body = DPGError.from_http(500, f"proxy says {TOKEN}".encode(), {}, secret=TOKEN)
    assert TOKEN not in agent_message(from_body)

from __future__ import annotations

import json

from dpg_mcp.dpg.errors import DPGError, TransportFailure, parse_retry_after

SECRET = "dpg_api_live_secret"


def test_envelope_mapping() -> None:
    body = json.dumps(
        {
            "error": {
                "code": "validation",
                "message": "Invalid request",
                "detail": "title must be at most 191 characters",
                "field": "title",
                "request_id": "req-1",
            }
        }
    ).encode()
    err = DPGError.from_http(400, body, {"x-request-id": "hdr-req"})
    assert (err.status, err.code, err.field, err.detail, err.request_id) == (
        400,
        "validation",
        "title",
        "title must be at most 191 characters",
        "req-1",
    )
    assert not err.retryable
    assert "title must be at most 191" in str(err)
    assert err.to_dict()["field"] == "title"


def test_request_id_from_header_when_envelope_lacks_it() -> None:
    body = json.dumps({"error": {"code": "forbidden", "message": "no"}}).encode()
    err = DPGError.from_http(403, body, {"x-request-id": "hdr-req"})
    assert err.request_id == "hdr-req" and err.code == "forbidden"


def test_non_envelope_html() -> None:
    html = b"<html><body><h1>502 Bad Gateway</h1>\n\n nginx </body></html>"
    err = DPGError.from_http(502, html, {})
    assert err.status == 502 and err.code == "internal" and err.retryable
    # tags stripped: the agent reads the proxy's words, not its markup
    assert err.message == "HTTP 502 Bad Gateway: 502 Bad Gateway nginx"
    assert "\n" not in err.message


def test_non_envelope_json_and_empty_and_long() -> None:
    err = DPGError.from_http(404, b'{"detail": "Not Found"}', {})
    assert err.code == "not_found" and "Not Found" in err.message
    err = DPGError.from_http(418, b"", {})
    assert err.code == "http_418" and err.message == "HTTP 418 I'm a Teapot"
    err = DPGError.from_http(500, b"x" * 5000, {})
    assert len(err.message) < 400


def test_rate_limited_retry_after() -> None:
    body = json.dumps({"error": {"code": "rate_limited", "message": "slow down"}}).encode()
    err = DPGError.from_http(429, body, {"retry-after": "7"})
    assert err.retry_after == 7.0 and err.retryable


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after("2.5") == 2.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert parse_retry_after("soon") is None


def test_secret_scrubbed_from_envelope_and_text() -> None:
    body = json.dumps({"error": {"code": "unauthorized", "message": f"bad token {SECRET}"}}).encode()
    err = DPGError.from_http(401, body, {}, secret=SECRET)
    assert SECRET not in str(err) and SECRET not in repr(err) and "[redacted]" in err.message
    err = DPGError.from_http(401, f"Bearer {SECRET} rejected".encode(), {}, secret=SECRET)
    assert SECRET not in str(err)


def test_transport_failure_shape() -> None:
    err = TransportFailure("GET /v1/me: connection failed")
    assert err.status == 0 and err.code == "unreachable" and err.retryable
    assert isinstance(err, DPGError)

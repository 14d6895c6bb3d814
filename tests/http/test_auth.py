"""Who may talk to /mcp at all: bearer tokens, Host/Origin, body size, rate and concurrency limits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from .conftest import LEGACY, MODERN, TOKENS, Proc, dpg_mcp_http

LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}
MODERN_LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": META}}


def _post(
    url: str, *, token: str | None, version: str, body: object = LIST, **headers: str
) -> httpx2.Response:
    sent = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": version,
        **headers,
    }
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    return httpx2.post(url, json=body, headers=sent, timeout=10)


@pytest.mark.parametrize("version", [MODERN, LEGACY])
def test_no_token_is_401_with_a_challenge_naming_the_metadata(hosted: Proc, version: str) -> None:
    resp = _post(hosted.mcp, token=None, version=version)
    assert resp.status_code == 401
    challenge = resp.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge
    metadata_url = f"{hosted.url}/.well-known/oauth-protected-resource/mcp"
    assert f'resource_metadata="{metadata_url}"' in challenge
    metadata = httpx2.get(metadata_url, timeout=5).json()
    assert metadata["resource"] == hosted.mcp and metadata["bearer_methods_supported"] == ["header"]


@pytest.mark.parametrize("version", [MODERN, LEGACY])
def test_a_token_dpg_rejects_is_401_and_never_echoed(hosted: Proc, version: str) -> None:
    bad = "dpg_api_live_not_a_real_token_4242"
    resp = _post(hosted.mcp, token=bad, version=version)
    assert resp.status_code == 401
    assert "invalid_token" in resp.headers["www-authenticate"]
    assert "did not accept this token" in resp.json()["error_description"]
    assert bad not in resp.text and bad not in resp.headers["www-authenticate"]
    assert bad not in hosted.log_text()


def test_an_account_with_the_api_switched_off_gets_a_clear_403(hosted: Proc) -> None:
    resp = _post(hosted.mcp, token=TOKENS["disabled"], version=MODERN)
    assert resp.status_code == 403
    assert resp.json()["error"] == "api_not_enabled"
    assert "Settings → API" in resp.json()["error_description"]


def test_health_and_readiness(hosted: Proc) -> None:
    assert httpx2.get(hosted.url + "/healthz", timeout=5).json()["status"] == "ok"
    ready = httpx2.get(hosted.url + "/readyz", timeout=5)
    assert ready.status_code == 200 and ready.json() == {"ready": True, "dpg": "ok"}


def test_every_request_is_one_log_line_without_the_token(hosted: Proc) -> None:
    _post(
        hosted.mcp, token=TOKENS["editor"], version=MODERN, body=MODERN_LIST, **{"Mcp-Method": "tools/list"}
    )
    lines = [line for line in hosted.log_text().splitlines() if '"event": "mcp_request"' in line]
    assert lines and all('"status"' in line and '"duration_ms"' in line for line in lines)
    assert any('"rpc": "tools/list"' in line and '"principal"' in line for line in lines)
    assert not any(token in hosted.log_text() for token in TOKENS.values())


def test_dns_rebinding_foreign_host_and_origin_are_refused_before_auth(hosted: Proc) -> None:
    host = _post(hosted.mcp, token=TOKENS["admin"], version=LEGACY, Host="evil.example:80")
    origin = _post(hosted.mcp, token=TOKENS["admin"], version=LEGACY, Origin="http://evil.example")
    no_token = _post(hosted.mcp, token=None, version=LEGACY, Origin="http://evil.example")
    assert host.status_code == 421 and origin.status_code == 403 and no_token.status_code == 403


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """Tight limits and an allow-listed extra Host and Origin."""
    with dpg_mcp_http(
        tmp_path_factory.mktemp("strict"),
        "--sandbox",
        "--rate-limit", "4",
        "--upload-max-mb", "0.5",
        "--allowed-host", "mcp.team.example",
        "--allowed-origin", "https://app.team.example",
        name="strict",
    ) as proc:  # fmt: skip
        yield proc


def test_allow_listed_host_and_origin_pass(strict: Proc) -> None:
    resp = _post(
        strict.mcp,
        token=TOKENS["admin"],
        version=MODERN,
        Host="mcp.team.example",
        Origin="https://app.team.example",
        body=MODERN_LIST,
        **{"Mcp-Method": "tools/list"},
    )
    assert resp.status_code == 200, resp.text


def test_over_the_rate_limit_is_429_with_retry_after_per_token(strict: Proc) -> None:
    # 4 per minute: 9 requests span at most two windows, so one window sees 5+ and refuses one at least.
    replies = [
        _post(
            strict.mcp,
            token=TOKENS["editor"],
            version=MODERN,
            body=MODERN_LIST,
            **{"Mcp-Method": "tools/list"},
        )
        for _ in range(9)
    ]
    codes = [r.status_code for r in replies]
    assert set(codes) == {200, 429} and codes[0] == 200 and codes.count(200) <= 8, codes
    refused = next(r for r in replies if r.status_code == 429)
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json()["error"] == "rate_limited"
    other = _post(
        strict.mcp, token=TOKENS["uploader"], version=MODERN, body=MODERN_LIST, **{"Mcp-Method": "tools/list"}
    )
    assert other.status_code == 200  # another token has its own budget


def test_a_body_over_the_cap_is_413(strict: Proc) -> None:
    big = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"pad": "x" * 2_000_000}}
    resp = _post(strict.mcp, token=TOKENS["uploader"], version=MODERN, body=big)
    assert resp.status_code == 413 and resp.json()["error"] == "request_too_large"


def test_serve_refuses_a_bad_public_url(tmp_path: Path) -> None:
    import subprocess

    from .conftest import DPG_MCP

    done = subprocess.run(
        [DPG_MCP, "serve", "--transport", "http", "--sandbox", "--public-url", "ftp://x"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "--public-url must be an http(s) URL" in done.stderr


async def test_more_requests_in_flight_than_allowed_get_429_while_other_tokens_pass(tmp_path: Path) -> None:
    """--max-concurrent 1: a second call of the same token while the first is still at DPG (slow: 1.5 s)
    is refused at once; another token's call is not."""
    import anyio

    from .conftest import sandbox_proc

    with (
        sandbox_proc(tmp_path, "--latency", "/v1/images=1.5") as sandbox,
        dpg_mcp_http(tmp_path, "--api-url", sandbox.url, "--max-concurrent", "1", name="conc") as server,
    ):
        call = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "search_images", "arguments": {"limit": 1}, "_meta": META},
        }
        headers = {"Mcp-Method": "tools/call", "Mcp-Name": "search_images"}
        codes: dict[str, int] = {}

        async def one(label: str, token: str, delay: float) -> None:
            await anyio.sleep(delay)
            resp = await anyio.to_thread.run_sync(
                lambda: _post(server.mcp, token=token, version=MODERN, body=call, **headers)
            )
            codes[label] = resp.status_code
            if resp.status_code == 429:
                codes["retry_after"] = int(resp.headers["retry-after"])

        async with anyio.create_task_group() as tg:
            tg.start_soon(one, "first", TOKENS["editor"], 0.0)
            tg.start_soon(one, "second", TOKENS["editor"], 0.5)
            tg.start_soon(one, "other", TOKENS["admin"], 0.5)
    assert codes["first"] == 200 and codes["other"] == 200
    assert codes["second"] == 429 and codes["retry_after"] >= 1

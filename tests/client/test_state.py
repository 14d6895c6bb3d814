"""What stays in dpg_mcp.state: the token's principal id (the write memo became the ledger, whose contract
lives in tests/ledger; the /v1/me cache is hosting's, tested in tests/http)."""

from __future__ import annotations

from dpg_mcp.state import principal_for_token


def test_principal_for_token_is_stable_and_never_the_token() -> None:
    token = "Zq7-odd-shaped-live-secret-9f8e"
    p = principal_for_token(token)
    assert token not in p and p == principal_for_token(token) and p != principal_for_token("other")

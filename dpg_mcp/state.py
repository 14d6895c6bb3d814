"""The principal id of a token: what ledger entries, caches and logs name a caller by.

The write memo that used to live here is now the write ledger (`dpg_mcp.ledger`): a durable record of write
actions whose state, not a guess about what happened in between, decides which Idempotency-Key a resend uses.
The /v1/me cache of hosted callers lives in `dpg_mcp.hosting.me_cache`.
"""

from __future__ import annotations

import hashlib


def principal_for_token(token: str) -> str:
    """A stable, non-secret principal id for a token: ledger entries (and Redis keys) never hold the token."""
    return "tok:" + hashlib.sha256(token.encode()).hexdigest()[:24]

"""The write ledger: the durable record of write actions and the Idempotency-Keys that follow them.

An action is (DPG origin, principal, tool, canonical validated arguments); its entry's state decides whether a
resend reuses the key (see `rules.py`). Beside entries, annotations: short labels of our own about objects
a write caused (a snapshot: the action it preceded), by subject digest. One protocol (`base.Ledger`), three
backends: SQLite (the embedded default, shared by every dpg-mcp process of the user), Redis (replicas,
`REDIS_URL`) and memory (tests).
"""

from __future__ import annotations

import os
from pathlib import Path

from dpg_mcp.ledger.base import Change, Ledger
from dpg_mcp.ledger.canonical import (
    action_digest,
    canonical_bytes,
    canonical_json,
    digest,
    request_digest,
    subject_digest,
)
from dpg_mcp.ledger.entry import (
    CREATE_REPLAY_WINDOW_S,
    KEY_TTL_S,
    LEASE_S,
    MAX_LABEL_CHARS,
    Entry,
    Kind,
    State,
)
from dpg_mcp.ledger.memory import MemoryLedger
from dpg_mcp.ledger.rules import Claim, Mode

__all__ = [
    "CREATE_REPLAY_WINDOW_S",
    "KEY_TTL_S",
    "LEASE_S",
    "MAX_LABEL_CHARS",
    "Change",
    "Claim",
    "Entry",
    "Kind",
    "Ledger",
    "MemoryLedger",
    "Mode",
    "State",
    "action_digest",
    "canonical_bytes",
    "canonical_json",
    "digest",
    "open_ledger",
    "request_digest",
    "subject_digest",
]


def open_ledger(spec: str | None = None, *, redis_url: str | None = None) -> Ledger:
    """The ledger chosen by `--ledger` / `REDIS_URL`.

    `spec`: "memory", or a file path for SQLite; None = Redis when `redis_url` is set, else the SQLite file in
    the user's state directory.
    """
    if spec == "memory":
        return MemoryLedger()
    if spec is None and redis_url:
        from dpg_mcp.ledger.redis import RedisLedger

        return RedisLedger.from_url(redis_url)
    from dpg_mcp.ledger.sqlite import SQLiteLedger, default_path

    path = Path(os.path.expanduser(spec)) if spec else default_path()
    return SQLiteLedger(path)

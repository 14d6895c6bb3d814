"""The storage protocol every ledger backend keeps (memory, SQLite, Redis).

A backend stores entries by action digest and applies one change to one entry atomically; the rules of what
the change is live in `rules.py`, once, for all backends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from dpg_mcp.ledger.entry import Entry

# A change: the entry before (None when absent or expired) -> the entry to store, or None to leave it as is.
Change = Callable[[Entry | None], Entry | None]


@runtime_checkable
class Ledger(Protocol):
    """Entries by action digest, each expiring at its `expires_at`, at most `max_entries` of them.

    - `transact(action, change)` reads the entry, calls `change` on it and stores the result, as ONE atomic
      step against every other process sharing the store (two replicas claiming the same action cannot both
      win). It returns (before, after): `after` is what is stored now (== before when `change` said None).
      `change` may be called more than once (an optimistic backend retries on a concurrent write), so it
      must be pure.
    - `get(action)`: the live entry, or None.
    - Past `max_entries`, storing a new entry evicts the oldest ones (least recently written).
    - Expired entries are never returned and are purged as the store goes.

    Beside entries, annotations: a short label of our own words by subject digest (e.g. "before publish_set:
    show 3 images" for a snapshot a write caused), kept by the same rules as entries: each expires
    `KEY_TTL_S` after it was (last) written, at most `max_entries` of them, the oldest written evicted first.
    - `annotate(subject, label)` stores (or replaces) the subject's label.
    - `labels(subjects)`: the live labels of those subjects, in one lookup; absent subjects are left out.
    """

    max_entries: int

    async def transact(self, action: str, change: Change) -> tuple[Entry | None, Entry | None]: ...

    async def get(self, action: str) -> Entry | None: ...

    async def count(self) -> int: ...

    async def annotate(self, subject: str, label: str) -> None: ...

    async def labels(self, subjects: Sequence[str]) -> dict[str, str]: ...

    async def aclose(self) -> None: ...

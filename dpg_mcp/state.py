"""Server-side state that outlives one tool call: the write memo (and a tiny TTL cache).

Why a write memo: an agent whose call timed out (or whose host dropped the answer) calls the same
tool with the same arguments again. The memo hands back the SAME Idempotency-Key, so DPG replays the
original Operation instead of doing the work twice. It must not over-reach: after add → remove, a second
add is a new action and must really add again. So a key is reused only while it is the principal's most
recent write.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar, runtime_checkable

Clock = Callable[[], float]

DEFAULT_MEMO_TTL_S = 600.0

# "fingerprint#3": part 3 of one logical write (a batch chunk). Parts share the "latest write" slot.
_PART = re.compile(r"^(?P<group>.*)#(?P<part>\d+)$", re.DOTALL)


def write_group(fingerprint: str) -> str:
    """The logical write a fingerprint belongs to: itself, or its text before a trailing "#<digits>"."""
    m = _PART.match(fingerprint)
    return m.group("group") if m else fingerprint


def principal_for_token(token: str) -> str:
    """A stable, non-secret principal id for a token: memo keys (and Redis keys) never hold the token."""
    return "tok:" + hashlib.sha256(token.encode()).hexdigest()[:24]


def make_fingerprint(tool: str, args: object) -> str:
    """Stable "same tool + same arguments" string: canonical JSON (sorted keys), hashed to a short key."""
    canonical = json.dumps(args, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return f"{tool}:" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


@runtime_checkable
class WriteMemo(Protocol):
    """Maps (principal, fingerprint) to the Idempotency-Key of a recent write.

    - `principal`: who writes (a stable, non-secret id of the token or user: a hash, never the token itself).
    - `fingerprint`: "same tool + same arguments" (the tool layer passes tool name + canonical args).

    Semantics every implementation keeps:
    - `claim` is atomic. It returns `(key, True)` when the entry for (principal, fingerprint) exists, is
      younger than its TTL, and belongs to the principal's LATEST logical write; otherwise it stores a fresh
      uuid4 key and returns `(key, False)`. A claim for another logical write by the same principal ends
      reuse for every older entry of that principal (so add → remove → add really adds again).
    - A logical write is the fingerprint without a trailing "#<digits>" part suffix (see `write_group`):
      the chunks "F#0", "F#1" of one batched tool call are one write, so repeating the call reuses every
      chunk's key instead of chunk 1 invalidating chunk 0.
    - `record` notes the operation id once known (informational; lets a later reader see what a key did).
    - `forget` drops an entry (a write that DPG refused or that failed is not worth replaying).

    Redis shape (a later implementation; all keys strings, all with TTLs):
    - `memo:{principal}:{sha256(fingerprint)}` -> hash {key, group_seq, op_uuid}, EX ttl_s
    - `memo-latest:{principal}` -> "{sha256(group)}:{group_seq}" of the principal's latest write, EX ttl_s
    - `claim` runs as one Lua script (or WATCH/MULTI): read both; if the entry exists and latest equals
      "{its group}:{its group_seq}", return (key, reused); else keep latest's seq when latest is the same
      group (next chunk), or INCR a per-principal counter for a new one; HSET the entry, SET latest, both
      with EX ttl_s. Atomicity matters when two server replicas serve the same principal.
    """

    async def claim(
        self, principal: str, fingerprint: str, ttl_s: float = DEFAULT_MEMO_TTL_S
    ) -> tuple[str, bool]: ...

    async def record(self, principal: str, fingerprint: str, op_uuid: str | None) -> None: ...

    async def forget(self, principal: str, fingerprint: str) -> None: ...


@dataclass
class _Entry:
    key: str
    group: str
    seq: int  # the sequence number of the logical write (shared by its parts)
    expires_at: float
    op_uuid: str | None = None


class InMemoryWriteMemo:
    """Process-local `WriteMemo`. Methods do not await, so each call is atomic on the event loop."""

    def __init__(self, ttl_s: float = DEFAULT_MEMO_TTL_S, clock: Clock = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._latest: dict[str, tuple[str, int]] = {}  # principal -> (group, seq) of its latest write
        self._seq = 0

    async def claim(self, principal: str, fingerprint: str, ttl_s: float | None = None) -> tuple[str, bool]:
        now = self._clock()
        self._evict(now)
        group = write_group(fingerprint)
        latest = self._latest.get(principal)
        entry = self._entries.get((principal, fingerprint))
        if entry is not None and entry.expires_at > now and latest == (entry.group, entry.seq):
            return entry.key, True
        if latest is not None and latest[0] == group:
            seq = latest[1]  # another part of the latest logical write
        else:
            self._seq += 1
            seq = self._seq
        ttl = self.ttl_s if ttl_s is None else ttl_s
        self._entries[(principal, fingerprint)] = _Entry(str(uuid.uuid4()), group, seq, now + ttl)
        self._latest[principal] = (group, seq)
        return self._entries[(principal, fingerprint)].key, False

    async def record(self, principal: str, fingerprint: str, op_uuid: str | None) -> None:
        entry = self._entries.get((principal, fingerprint))
        if entry is not None:
            entry.op_uuid = op_uuid

    async def forget(self, principal: str, fingerprint: str) -> None:
        self._entries.pop((principal, fingerprint), None)

    def operation_of(self, principal: str, fingerprint: str) -> str | None:
        """The recorded operation id, if any (tests, diagnostics)."""
        entry = self._entries.get((principal, fingerprint))
        return entry.op_uuid if entry else None

    def _evict(self, now: float) -> None:
        # Cheap sweep so a long-running server does not grow without bound.
        if len(self._entries) < 1024:
            return
        for k in [k for k, e in self._entries.items() if e.expires_at <= now]:
            del self._entries[k]


V = TypeVar("V")


class TTLCache(Generic[V]):
    """A small async-shaped TTL cache (e.g. GET /v1/me per principal). Redis-ready: string keys, TTLs."""

    def __init__(self, ttl_s: float = 60.0, clock: Clock = time.monotonic, max_items: int = 1024) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._max = max_items
        self._items: dict[str, tuple[float, V]] = {}

    async def get(self, key: str) -> V | None:
        hit = self._items.get(key)
        if hit is None:
            return None
        if hit[0] <= self._clock():
            del self._items[key]
            return None
        return hit[1]

    async def set(self, key: str, value: V, ttl_s: float | None = None) -> None:
        if len(self._items) >= self._max and key not in self._items:
            self._items.pop(next(iter(self._items)))  # oldest insert
        self._items[key] = (self._clock() + (self.ttl_s if ttl_s is None else ttl_s), value)

    async def delete(self, key: str) -> None:
        self._items.pop(key, None)

"""Server-side state that outlives one tool call: the write memo (and a tiny TTL cache).

Why a write memo: an agent whose call timed out (or whose host dropped the answer) calls the same
tool with the same arguments again. The memo hands back the SAME Idempotency-Key, so DPG replays the
original Operation instead of doing the work twice. It must not over-reach: after add → remove, a second
add is a new action and must really add again. So a key is reused only while no other write of the same
principal started after it ended (see `WriteMemo`).
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
    - `request`: a digest of the exact HTTP request (method, path, canonical body) the runner will send. The
      same tool call can derive a different body from live state (e.g. an order completed from the current
      order); a different request never reuses a key (DPG would only answer 409 idempotency_key_conflict).

    Semantics every implementation keeps:
    - `claim` is atomic. It returns `(key, True)` when the entry for (principal, fingerprint) exists, is
      younger than its TTL, is for the same request, and is not STALE; otherwise it stores a fresh uuid4 key
      and returns `(key, False)`. Every claim also marks the entry as in flight until `release`.
    - STALE: another logical write by the same principal STARTED (got a fresh key) after this one's run
      ENDED. So add → remove → add really adds again, while writes that merely overlapped (parallel tool
      calls) do not end reuse: a retry of a call that was still in flight when the other write started is
      still a retry. An entry in flight longer than the lease (its run crashed) counts as ended.
    - A logical write is the fingerprint without a trailing "#<digits>" part suffix (see `write_group`):
      the chunks "F#0", "F#1" of one batched tool call are one write, so chunk 1 starting does not make
      chunk 0 stale, and repeating the call reuses every chunk's key.
    - `record` notes the operation id once known (informational; lets a later reader see what a key did).
    - `release` ends one run of the entry (success, error or cancellation), guarded by the key it ran with.
    - `forget` drops an entry (a write that DPG refused or that failed is not worth replaying); with `key`,
      only if the entry still holds that key.

    Redis shape (a later implementation; all keys strings, all with TTLs):
    - `memo:{principal}:{sha256(fingerprint)}` -> hash {key, group, request, inflight, claimed_at, ended_at,
      op_uuid}, EX ttl_s
    - `memo-starts:{principal}` -> sorted set of (group, start time) for the principal's fresh claims, trimmed
      to the TTL; an entry is stale when a start of another group is later than its `ended_at`.
    - `claim` runs as one Lua script (read entry + starts, decide, write both) so that two server replicas
      serving the same principal agree.
    """

    async def claim(
        self,
        principal: str,
        fingerprint: str,
        ttl_s: float = DEFAULT_MEMO_TTL_S,
        *,
        request: str | None = None,
    ) -> tuple[str, bool]: ...

    async def record(self, principal: str, fingerprint: str, op_uuid: str | None) -> None: ...

    async def release(self, principal: str, fingerprint: str, key: str) -> None: ...

    async def forget(self, principal: str, fingerprint: str, key: str | None = None) -> None: ...


# An entry still "in flight" after this long belongs to a run that died without releasing it.
DEFAULT_INFLIGHT_LEASE_S = 120.0


@dataclass
class _Entry:
    key: str
    group: str
    request: str | None
    claimed_at: float
    expires_at: float
    inflight: int = 0
    ended_at: float | None = None
    stale: bool = False
    op_uuid: str | None = None

    def ended(self, now: float, lease_s: float) -> bool:
        return self.inflight <= 0 or now - self.claimed_at > lease_s


class InMemoryWriteMemo:
    """Process-local `WriteMemo`. Methods do not await, so each call is atomic on the event loop."""

    def __init__(
        self,
        ttl_s: float = DEFAULT_MEMO_TTL_S,
        clock: Clock = time.monotonic,
        *,
        inflight_lease_s: float = DEFAULT_INFLIGHT_LEASE_S,
        max_entries: int = 10_000,
    ) -> None:
        self.ttl_s = ttl_s
        self.inflight_lease_s = inflight_lease_s
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[tuple[str, str], _Entry] = {}

    async def claim(
        self,
        principal: str,
        fingerprint: str,
        ttl_s: float | None = None,
        *,
        request: str | None = None,
    ) -> tuple[str, bool]:
        now = self._clock()
        self._evict(now)
        entry = self._entries.get((principal, fingerprint))
        if (
            entry is not None
            and entry.expires_at > now
            and not entry.stale
            and (request is None or entry.request is None or entry.request == request)
        ):
            entry.inflight += 1
            return entry.key, True
        group = write_group(fingerprint)
        # A new logical write starts: every OTHER write of this principal that already ended is now stale.
        for (p, _), other in self._entries.items():
            if p == principal and other.group != group and other.ended(now, self.inflight_lease_s):
                other.stale = True
        ttl = self.ttl_s if ttl_s is None else ttl_s
        fresh = _Entry(str(uuid.uuid4()), group, request, now, now + ttl, inflight=1)
        self._entries[(principal, fingerprint)] = fresh
        return fresh.key, False

    async def record(self, principal: str, fingerprint: str, op_uuid: str | None) -> None:
        entry = self._entries.get((principal, fingerprint))
        if entry is not None:
            entry.op_uuid = op_uuid

    async def release(self, principal: str, fingerprint: str, key: str) -> None:
        entry = self._entries.get((principal, fingerprint))
        if entry is not None and entry.key == key and entry.inflight > 0:
            entry.inflight -= 1
            if entry.inflight == 0:
                entry.ended_at = self._clock()

    async def forget(self, principal: str, fingerprint: str, key: str | None = None) -> None:
        entry = self._entries.get((principal, fingerprint))
        if entry is not None and (key is None or entry.key == key):
            del self._entries[(principal, fingerprint)]

    def operation_of(self, principal: str, fingerprint: str) -> str | None:
        """The recorded operation id, if any (tests, diagnostics)."""
        entry = self._entries.get((principal, fingerprint))
        return entry.op_uuid if entry else None

    def __len__(self) -> int:
        return len(self._entries)

    def _evict(self, now: float) -> None:
        # Cheap sweep so a long-running server does not grow without bound: expired and stale entries can
        # never be reused; past `max_entries`, the oldest go first.
        if len(self._entries) < 1024:
            return
        for k in [k for k, e in self._entries.items() if e.expires_at <= now or e.stale]:
            del self._entries[k]
        overflow = len(self._entries) - self.max_entries + 1
        if overflow > 0:
            for k in sorted(self._entries, key=lambda k: self._entries[k].claimed_at)[:overflow]:
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

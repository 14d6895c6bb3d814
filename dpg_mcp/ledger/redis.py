"""The shared ledger for replicas: Redis (`REDIS_URL`), through the `redis` package's asyncio client.

Layout (every key under one prefix, with a hash tag so a cluster keeps them in one slot):
- `<prefix>e:<action>` -> the entry as JSON, with a TTL running out at the entry's `expires_at` (24 h after
  its key was made);
- `<prefix>index` -> a sorted set of actions scored by last write time, for the cap on entries;
- `<prefix>n:<subject>` -> an annotation, {"label", "expires_at"} as JSON, with the same 24 h TTL, and
  `<prefix>nindex`, its sorted set for the same cap.

A change is optimistic and atomic: read the entry, decide in Python (`rules.py`, the same code as every other
backend), then a Lua script stores the new entry only if the stored one is still the one read (compare and
set), adds it to the index and, when it is a new entry, evicts the oldest past the cap. On a lost race the
change is decided again on what the other replica wrote.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from dpg_mcp.ledger.base import Change
from dpg_mcp.ledger.entry import DEFAULT_MAX_ENTRIES, KEY_TTL_S, Entry, clean_label

DEFAULT_PREFIX = "dpg-mcp:ledger:{v1}:"
_MAX_RACES = 50

# KEYS[1] entry, KEYS[2] index.
# ARGV: expected ("" = absent), new body, ttl ms, now, cap, prefix, action, index horizon
_CAS = """
local cur = redis.call('GET', KEYS[1])
if (cur or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[7])
if not cur then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[8])
  local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[5])
  if over > 0 then
    local old = redis.call('ZPOPMIN', KEYS[2], over)
    for i = 1, #old, 2 do redis.call('DEL', ARGV[6] .. 'e:' .. old[i]) end
  end
end
return 1
"""

# An annotation: stored (or replaced) at once, no compare needed. KEYS[1] annotation, KEYS[2] its index.
# ARGV: body, ttl ms, now, cap, prefix, subject, index horizon
_ANNOTATE = """
local known = redis.call('EXISTS', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[6])
if known == 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[7])
  local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
  if over > 0 then
    local old = redis.call('ZPOPMIN', KEYS[2], over)
    for i = 1, #old, 2 do redis.call('DEL', ARGV[5] .. 'n:' .. old[i]) end
  end
end
return 1
"""


class RedisLedger:
    """`Ledger` on Redis. Build with `RedisLedger.from_url(os.environ["REDIS_URL"])`, close with `aclose()`.

    Entries hold digests and ids only (see `entry.py`), so the Redis instance never sees a token or an
    argument value. Every replica pointed at the same URL and prefix shares one ledger.
    """

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = DEFAULT_PREFIX,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_entries = max_entries
        self._r = client
        self._prefix = prefix
        self._clock = clock
        self._cas = client.register_script(_CAS)
        self._annotate = client.register_script(_ANNOTATE)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisLedger:
        from redis.asyncio import Redis

        return cls(Redis.from_url(url, decode_responses=True), **kwargs)

    def _key(self, action: str) -> str:
        return f"{self._prefix}e:{action}"

    async def transact(self, action: str, change: Change) -> tuple[Entry | None, Entry | None]:
        key, index = self._key(action), self._prefix + "index"
        for _ in range(_MAX_RACES):
            raw = await self._r.get(key)
            now = self._clock()
            before = Entry.from_json(raw) if raw else None
            if before is not None and before.expires_at <= now:
                before = None  # the TTL is about to drop it
            after = change(before)
            if after is None:
                return before, before
            ttl_ms = max(1, int((after.expires_at - now) * 1000))
            args = [raw or "", after.to_json(), ttl_ms, now, self.max_entries, self._prefix, action]
            args.append(now - KEY_TTL_S)
            if await self._cas(keys=[key, index], args=args):
                return before, after
        raise RuntimeError(f"ledger entry {action[:8]}…: too many concurrent writers")

    async def get(self, action: str) -> Entry | None:
        raw = await self._r.get(self._key(action))
        entry = Entry.from_json(raw) if raw else None
        return entry if entry is not None and entry.expires_at > self._clock() else None

    async def count(self) -> int:
        return int(await self._r.zcard(self._prefix + "index"))

    async def annotate(self, subject: str, label: str) -> None:
        now = self._clock()
        body = json.dumps({"label": clean_label(label), "expires_at": now + KEY_TTL_S}, ensure_ascii=False)
        keys = [f"{self._prefix}n:{subject}", self._prefix + "nindex"]
        args = [body, int(KEY_TTL_S * 1000), now, self.max_entries, self._prefix, subject, now - KEY_TTL_S]
        await self._annotate(keys=keys, args=args)

    async def labels(self, subjects: Sequence[str]) -> dict[str, str]:
        wanted = list(dict.fromkeys(subjects))
        if not wanted:
            return {}
        raws = await self._r.mget([f"{self._prefix}n:{s}" for s in wanted])  # one round trip
        now, found = self._clock(), {}
        for subject, raw in zip(wanted, raws, strict=True):
            data = json.loads(raw) if raw else None
            if isinstance(data, dict) and float(data.get("expires_at", 0)) > now:
                found[subject] = str(data.get("label", ""))
        return found

    async def aclose(self) -> None:
        await self._r.aclose()

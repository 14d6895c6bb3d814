"""The in-process ledger: for tests and one-off runs (forgotten when the process ends)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from dpg_mcp.ledger.base import Change
from dpg_mcp.ledger.entry import DEFAULT_MAX_ENTRIES, KEY_TTL_S, Entry, clean_label


class MemoryLedger:
    """Entries in a dict kept in write order. No method awaits, so each call is atomic on the event loop."""

    def __init__(
        self, *, max_entries: int = DEFAULT_MAX_ENTRIES, clock: Callable[[], float] = time.time
    ) -> None:
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._labels: OrderedDict[str, tuple[str, float]] = OrderedDict()  # subject -> (label, expires_at)

    async def transact(self, action: str, change: Change) -> tuple[Entry | None, Entry | None]:
        before = self._live(action)
        after = change(before)
        if after is None:
            return before, before
        self._entries[action] = after
        self._entries.move_to_end(action)
        if before is None:
            self._evict()
        return before, after

    async def get(self, action: str) -> Entry | None:
        return self._live(action)

    async def count(self) -> int:
        return len(self._entries)

    async def annotate(self, subject: str, label: str) -> None:
        now = self._clock()
        new = subject not in self._labels
        self._labels[subject] = (clean_label(label), now + KEY_TTL_S)
        self._labels.move_to_end(subject)
        if new and len(self._labels) > self.max_entries:
            for gone in [s for s, (_, at) in self._labels.items() if at <= now]:
                del self._labels[gone]
            while len(self._labels) > self.max_entries:
                self._labels.popitem(last=False)

    async def labels(self, subjects: Sequence[str]) -> dict[str, str]:
        now = self._clock()
        found = {s: self._labels.get(s) for s in subjects}
        return {s: kept[0] for s, kept in found.items() if kept is not None and kept[1] > now}

    async def aclose(self) -> None:
        self._entries.clear()
        self._labels.clear()

    def _live(self, action: str) -> Entry | None:
        entry = self._entries.get(action)
        if entry is not None and entry.expires_at <= self._clock():
            del self._entries[action]
            return None
        return entry

    def _evict(self) -> None:
        now = self._clock()
        # Expired entries first (cheap enough: only when the store is past its cap), then the oldest writes.
        if len(self._entries) > self.max_entries:
            for action in [a for a, e in self._entries.items() if e.expires_at <= now]:
                del self._entries[action]
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

"""The embedded default: one SQLite file in the user's state directory, shared by every dpg-mcp process.

WAL lets readers run beside a writer; each change is one `BEGIN IMMEDIATE` transaction (read, decide, write),
so two processes claiming the same action are serialised by SQLite's write lock, and a resend after the host
restarted the server still finds its entry. Calls run in a worker thread: a busy lock must not stall the loop.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import anyio.to_thread

from dpg_mcp.ledger.base import Change
from dpg_mcp.ledger.entry import DEFAULT_MAX_ENTRIES, Entry

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    action TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    expires_at REAL NOT NULL,
    written_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_expiry ON entries (expires_at);
CREATE INDEX IF NOT EXISTS entries_age ON entries (written_at);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (name, value) VALUES ('rows', 0);
"""


def default_path() -> Path:
    """<user state dir>/dpg-mcp/ledger.sqlite3 (e.g. ~/.local/state/dpg-mcp on Linux)."""
    from platformdirs import user_state_dir

    return Path(user_state_dir("dpg-mcp", appauthor=False)) / "ledger.sqlite3"


class SQLiteLedger:
    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.time,
        busy_timeout_s: float = 10.0,
    ) -> None:
        self.path = Path(path)
        self.max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.path.exists():
            # Digests only, but still the user's business: private to the user from the first byte.
            self.path.touch(mode=0o600)
        self._db = sqlite3.connect(
            self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across a process crash
        self._db.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executescript(_SCHEMA.replace("\n\n", "\n"))
            finally:
                if self._db.in_transaction:
                    self._db.execute("COMMIT")

    async def transact(self, action: str, change: Change) -> tuple[Entry | None, Entry | None]:
        return await anyio.to_thread.run_sync(self._transact, action, change)

    async def get(self, action: str) -> Entry | None:
        return await anyio.to_thread.run_sync(self._get, action)

    async def count(self) -> int:
        return await anyio.to_thread.run_sync(self._count)

    async def aclose(self) -> None:
        with self._lock:
            self._db.close()

    # ---- in the worker thread ----------------------------------------------------------------------------

    def _transact(self, action: str, change: Change) -> tuple[Entry | None, Entry | None]:
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                now = self._clock()
                row = db.execute(
                    "SELECT body, expires_at FROM entries WHERE action = ?", (action,)
                ).fetchone()
                before = Entry.from_json(row[0]) if row and row[1] > now else None
                after = change(before)
                if after is not None:
                    db.execute(
                        "INSERT INTO entries (action, body, expires_at, written_at) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT (action) DO UPDATE SET body = excluded.body, "
                        "expires_at = excluded.expires_at, written_at = excluded.written_at",
                        (action, after.to_json(), after.expires_at, now),
                    )
                    if row is None:
                        self._grew(db, now)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return before, after if after is not None else before

    def _grew(self, db: sqlite3.Connection, now: float) -> None:
        """A row was added: purge expired rows, then the oldest past the cap (the count lives in `meta`)."""
        purged = db.execute("DELETE FROM entries WHERE expires_at <= ?", (now,)).rowcount
        rows = db.execute(
            "UPDATE meta SET value = value + 1 - ? WHERE name = 'rows' RETURNING value", (purged,)
        ).fetchone()[0]
        over = rows - self.max_entries
        if over > 0:
            gone = db.execute(
                "DELETE FROM entries WHERE action IN "
                "(SELECT action FROM entries ORDER BY written_at ASC LIMIT ?)",
                (over,),
            ).rowcount
            db.execute("UPDATE meta SET value = value - ? WHERE name = 'rows'", (gone,))

    def _get(self, action: str) -> Entry | None:
        with self._lock:
            row = self._db.execute(
                "SELECT body FROM entries WHERE action = ? AND expires_at > ?", (action, self._clock())
            ).fetchone()
        return Entry.from_json(row[0]) if row else None

    def _count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

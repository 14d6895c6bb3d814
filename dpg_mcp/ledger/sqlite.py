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
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio.to_thread

from dpg_mcp.ledger.base import Change
from dpg_mcp.ledger.entry import DEFAULT_MAX_ENTRIES, KEY_TTL_S, Entry, clean_label

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
CREATE TABLE IF NOT EXISTS annotations (
    subject TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    expires_at REAL NOT NULL,
    written_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS annotations_expiry ON annotations (expires_at);
CREATE INDEX IF NOT EXISTS annotations_age ON annotations (written_at);
INSERT OR IGNORE INTO meta (name, value) VALUES ('annotations', 0);
"""
_LOOKUP_CHUNK = 500  # subjects per SELECT … IN (…): well under SQLite's bound on parameters


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

    async def annotate(self, subject: str, label: str) -> None:
        await anyio.to_thread.run_sync(self._annotate, subject, clean_label(label))

    async def labels(self, subjects: Sequence[str]) -> dict[str, str]:
        return await anyio.to_thread.run_sync(self._labels, list(dict.fromkeys(subjects)))

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

    def _annotate(self, subject: str, label: str) -> None:
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                now = self._clock()
                known = db.execute("SELECT 1 FROM annotations WHERE subject = ?", (subject,)).fetchone()
                db.execute(
                    "INSERT INTO annotations (subject, label, expires_at, written_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (subject) DO UPDATE SET label = excluded.label, "
                    "expires_at = excluded.expires_at, written_at = excluded.written_at",
                    (subject, label, now + KEY_TTL_S, now),
                )
                if known is None:
                    self._grew_annotations(db, now)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _grew_annotations(self, db: sqlite3.Connection, now: float) -> None:
        """As `_grew`, for annotations (their own count in `meta`, the same cap)."""
        purged = db.execute("DELETE FROM annotations WHERE expires_at <= ?", (now,)).rowcount
        rows = db.execute(
            "UPDATE meta SET value = value + 1 - ? WHERE name = 'annotations' RETURNING value", (purged,)
        ).fetchone()[0]
        over = rows - self.max_entries
        if over > 0:
            gone = db.execute(
                "DELETE FROM annotations WHERE subject IN "
                "(SELECT subject FROM annotations ORDER BY written_at ASC LIMIT ?)",
                (over,),
            ).rowcount
            db.execute("UPDATE meta SET value = value - ? WHERE name = 'annotations'", (gone,))

    def _labels(self, subjects: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        with self._lock:
            now = self._clock()
            for at in range(0, len(subjects), _LOOKUP_CHUNK):
                chunk = subjects[at : at + _LOOKUP_CHUNK]
                marks = ", ".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT subject, label FROM annotations WHERE expires_at > ? AND subject IN ({marks})",
                    (now, *chunk),
                ).fetchall()
                found.update((str(s), str(label)) for s, label in rows)
        return found

    def _get(self, action: str) -> Entry | None:
        with self._lock:
            row = self._db.execute(
                "SELECT body FROM entries WHERE action = ? AND expires_at > ?", (action, self._clock())
            ).fetchone()
        return Entry.from_json(row[0]) if row else None

    def _count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

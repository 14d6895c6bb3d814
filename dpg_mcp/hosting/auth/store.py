"""Sign-in state in SQLite (beside the ledger by default, so a restart keeps everyone signed in).

Tables hold hashes of every token dpg-mcp issues (access, refresh, authorization code, sign-in page id), never
the tokens; the member's DPG tokens and the page's pending state are sealed (sealing.Sealer). A grant is one
member's sign-in for one client: its DPG refresh token rotates under a version number, so of two processes
refreshing at once exactly one stores its answer (compare-and-set) and the other reads the winner's.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dpg_mcp.hosting.auth.sealing import Sealer
from dpg_mcp.hosting.tokens import token_key

SCHEMA = """
CREATE TABLE IF NOT EXISTS clients (client_id TEXT PRIMARY KEY, info TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pending (id TEXT PRIMARY KEY, sealed BLOB NOT NULL, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS codes (
    id TEXT PRIMARY KEY, grant_id TEXT NOT NULL, data TEXT NOT NULL, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS grants (
    grant_id TEXT PRIMARY KEY, client_id TEXT NOT NULL, subject TEXT NOT NULL, data TEXT NOT NULL,
    sealed_refresh BLOB NOT NULL, sealed_access BLOB NOT NULL, access_expires REAL NOT NULL,
    version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, grant_id TEXT NOT NULL, client_id TEXT NOT NULL,
    scopes TEXT NOT NULL, expires_at INTEGER, resource TEXT);
CREATE INDEX IF NOT EXISTS tokens_grant ON tokens (grant_id);
CREATE INDEX IF NOT EXISTS codes_grant ON codes (grant_id);
"""


@dataclass(frozen=True)
class Grant:
    grant_id: str
    client_id: str
    subject: str
    data: dict[str, Any]  # account uuid, the member's /v1/me, scopes granted
    dpg_refresh: str
    dpg_access: str
    access_expires: float
    version: int


@dataclass(frozen=True)
class IssuedToken:
    kind: str  # "access" | "refresh"
    grant_id: str
    client_id: str
    scopes: list[str]
    expires_at: int | None
    resource: str | None


class SignInStore:
    def __init__(self, path: Path | str, sealer: Sealer) -> None:
        self.path = Path(path)
        self.sealer = sealer
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Short statements under one lock; autocommit, with explicit transactions where two steps must be one.
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _one(self, sql: str, args: tuple[Any, ...]) -> Any:
        with self._lock:
            return self._db.execute(sql, args).fetchone()

    def _run(self, sql: str, args: tuple[Any, ...]) -> int:
        with self._lock:
            return self._db.execute(sql, args).rowcount

    # ---- registered clients --------------------------------------------------------------------------
    async def put_client(self, client_id: str, info: dict[str, Any]) -> None:
        self._run("INSERT OR REPLACE INTO clients VALUES (?, ?)", (client_id, json.dumps(info)))

    async def get_client(self, client_id: str) -> dict[str, Any] | None:
        row = self._one("SELECT info FROM clients WHERE client_id = ?", (client_id,))
        return json.loads(row[0]) if row else None

    # ---- the sign-in page's pending requests (sealed: they hold DPG's MFA and refresh tokens) -------------
    async def put_pending(self, page_id: str, data: dict[str, Any], ttl_s: float) -> None:
        sealed = self.sealer.seal(json.dumps(data))
        now = time.time()
        with self._lock:
            self._db.execute("DELETE FROM pending WHERE expires < ?", (now,))
            self._db.execute(
                "INSERT OR REPLACE INTO pending VALUES (?, ?, ?)", (token_key(page_id), sealed, now + ttl_s)
            )

    async def get_pending(self, page_id: str) -> dict[str, Any] | None:
        row = self._one("SELECT sealed, expires FROM pending WHERE id = ?", (token_key(page_id),))
        if not row or row[1] < time.time():
            return None
        plain = self.sealer.open(row[0])
        return json.loads(plain) if plain else None

    async def drop_pending(self, page_id: str) -> None:
        self._run("DELETE FROM pending WHERE id = ?", (token_key(page_id),))

    # ---- authorization codes ----------------------------------------------------------------------------
    async def put_code(self, code: str, grant_id: str, data: dict[str, Any], expires: float) -> None:
        self._run(
            "INSERT INTO codes VALUES (?, ?, ?, ?)", (token_key(code), grant_id, json.dumps(data), expires)
        )

    async def get_code(self, code: str) -> tuple[str, dict[str, Any]] | None:
        row = self._one("SELECT grant_id, data, expires FROM codes WHERE id = ?", (token_key(code),))
        if not row or row[2] < time.time():
            return None
        return row[0], json.loads(row[1])

    async def take_code(self, code: str) -> bool:
        """True for exactly one caller: a code is spent by the first exchange, replays find nothing."""
        return self._run("DELETE FROM codes WHERE id = ?", (token_key(code),)) == 1

    # ---- grants (the member's DPG tokens) ---------------------------------------------------------------
    async def put_grant(self, grant: Grant) -> None:
        self._run(
            "INSERT INTO grants VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                grant.grant_id,
                grant.client_id,
                grant.subject,
                json.dumps(grant.data),
                self.sealer.seal(grant.dpg_refresh),
                self.sealer.seal(grant.dpg_access),
                grant.access_expires,
                grant.version,
            ),
        )

    async def get_grant(self, grant_id: str) -> Grant | None:
        row = self._one(
            "SELECT client_id, subject, data, sealed_refresh, sealed_access, access_expires, version "
            "FROM grants WHERE grant_id = ?",
            (grant_id,),
        )
        if not row:
            return None
        refresh, access = self.sealer.open(row[3]), self.sealer.open(row[4])
        if refresh is None or access is None:
            return None  # sealed under another key: that sign-in is over
        return Grant(grant_id, row[0], row[1], json.loads(row[2]), refresh, access, row[5], row[6])

    async def rotate(self, grant: Grant, refresh: str, access: str, access_expires: float) -> bool:
        """Store DPG's rotated tokens unless another process did since `grant` was read (compare-and-set)."""
        n = self._run(
            "UPDATE grants SET sealed_refresh = ?, sealed_access = ?, access_expires = ?, "
            "version = version + 1 "
            "WHERE grant_id = ? AND version = ?",
            (
                self.sealer.seal(refresh),
                self.sealer.seal(access),
                access_expires,
                grant.grant_id,
                grant.version,
            ),
        )
        return n == 1

    async def drop_grant(self, grant_id: str) -> None:
        """Revocation: the DPG tokens and every MCP token and code of the grant go, in one transaction."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM tokens WHERE grant_id = ?", (grant_id,))
                self._db.execute("DELETE FROM codes WHERE grant_id = ?", (grant_id,))
                self._db.execute("DELETE FROM grants WHERE grant_id = ?", (grant_id,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    # ---- the MCP tokens dpg-mcp issues -------------------------------------------------------------------
    async def put_token(self, token: str, issued: IssuedToken) -> None:
        self._run(
            "INSERT INTO tokens VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                token_key(token),
                issued.kind,
                issued.grant_id,
                issued.client_id,
                json.dumps(issued.scopes),
                issued.expires_at,
                issued.resource,
            ),
        )

    async def get_token(self, token: str, kind: str) -> IssuedToken | None:
        row = self._one(
            "SELECT grant_id, client_id, scopes, expires_at, resource FROM tokens WHERE id = ? AND kind = ?",
            (token_key(token), kind),
        )
        if not row or (row[3] is not None and row[3] < time.time()):
            return None
        return IssuedToken(kind, row[0], row[1], json.loads(row[2]), row[3], row[4])

    async def take_token(self, token: str) -> bool:
        return self._run("DELETE FROM tokens WHERE id = ?", (token_key(token),)) == 1

"""The transitions of the ledger, as pure functions of (entry before, now): every backend applies these.

Each backend runs one of these functions atomically on one entry (`Ledger.transact`), so the rules live in
exactly one place and the contract tests pin them for every backend alike.

The claim rule, by state and kind (issue 6's table):

| before | "set to a value" tool | create tool |
|---|---|---|
| none / expired | fresh key | fresh key |
| in_flight, lease alive | join that run | join that run |
| unknown (or a lapsed lease) | fresh key | reuse the key while DPG keeps it (24 h) |
| done | fresh key | reuse the key within 10 minutes (DPG replays), then fresh |
| failed | fresh key | fresh key |
| partial | fresh key; `done_items` kept so only the rest is sent | (not used) |

A reuse also needs the same request: DPG binds a key to method + path + body, another body would get 409.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from dpg_mcp.ledger.entry import (
    CREATE_REPLAY_WINDOW_S,
    KEY_TTL_S,
    LEASE_S,
    Entry,
    Kind,
    State,
)


class Mode(StrEnum):
    FRESH = "fresh"  # a new key: nothing of this action is known to DPG under it
    REUSE = "reuse"  # the earlier key again: DPG applies it for the first time, or replays its outcome
    JOIN = "join"  # another run holds the action: wait for it, send nothing


@dataclass(frozen=True)
class Claim:
    mode: Mode
    entry: Entry  # the entry after the claim (for JOIN: the holder's entry)
    previous: Entry | None  # the entry before the claim (its state decides the words of the result)

    @property
    def key(self) -> str:
        return self.entry.key


def new_key() -> str:
    return str(uuid.uuid4())


def claim(
    before: Entry | None,
    *,
    now: float,
    kind: Kind,
    run: str,
    request: str = "",
    lease_s: float = LEASE_S,
    fresh: bool = False,
) -> tuple[Entry, Claim]:
    """Decide how this run goes out; the returned entry is what the ledger stores.

    `fresh`: the caller knows the earlier key's outcome no longer holds (what it created is gone): start over.
    """
    if before is not None and before.expires_at <= now:
        before = None
    if before is not None and before.held(now) and before.owner != run:
        return before, Claim(Mode.JOIN, before, before)
    state = before.effective_state(now) if before is not None else None
    if before is not None and not fresh and _may_reuse(before, state, now, kind, request):
        after = before.with_(
            state=State.IN_FLIGHT,
            owner=run,
            lease_until=now + lease_s,
            request=request or before.request,
            runs=before.runs + 1,
        )
        return after, Claim(Mode.REUSE, after, before)
    # A fresh key: the action starts over under it. Keep what a partial run applied, so only the rest is sent.
    keep = before.done_items if before is not None and state is State.PARTIAL else ()
    after = Entry(
        state=State.IN_FLIGHT,
        kind=kind,
        key=new_key(),
        request=request,
        owner=run,
        lease_until=now + lease_s,
        key_at=now,
        expires_at=now + KEY_TTL_S,
        done_items=keep,
        runs=(before.runs if before is not None else 0) + 1,
    )
    return after, Claim(Mode.FRESH, after, before)


def _may_reuse(before: Entry, state: State | None, now: float, kind: Kind, request: str) -> bool:
    if kind is not Kind.CREATE or before.kind is not Kind.CREATE:
        return False
    if now - before.key_at >= KEY_TTL_S:
        return False  # DPG no longer knows the key
    if request and before.request and request != before.request:
        return False  # another body under this key would only get 409 idempotency_key_conflict
    if state is State.UNKNOWN or state is State.IN_FLIGHT:  # in_flight here = our own run again
        return True
    return state is State.DONE and now - before.ended_at < CREATE_REPLAY_WINDOW_S


def renew(before: Entry | None, *, now: float, run: str, lease_s: float = LEASE_S) -> Entry | None:
    """The heartbeat: extend the lease while the run lives (None = not ours any more: leave it)."""
    if before is None or before.owner != run or before.state is not State.IN_FLIGHT:
        return None
    return before.with_(lease_until=now + lease_s)


def note(
    before: Entry | None,
    *,
    run: str,
    request: str | None = None,
    op: str | None = None,
    made: str | None = None,
    tx: str | None = None,
    key: str | None = None,
    now: float = 0.0,
) -> Entry | None:
    """Record what became known during the run (the Operation, a created id, an upload's transaction).

    `key`: the run went on under another key (an upload whose ticket expired asks for a new one); a resend
    must follow that key from now on, so the entry takes it over (and its age, `now`).
    """
    if before is None or before.owner != run:
        return None
    changes: dict[str, object] = {}
    for name, value in (("request", request), ("op", op), ("made", made), ("tx", tx)):
        if value is not None:
            changes[name] = value
    if key is not None and key != before.key:
        changes |= {"key": key, "key_at": now, "expires_at": now + KEY_TTL_S}
    return before.with_(**changes) if changes else None


def settle(
    before: Entry | None,
    *,
    now: float,
    run: str,
    state: State,
    op: str | None = None,
    made: str | None = None,
    done_items: tuple[str, ...] | None = None,
) -> Entry | None:
    """End this run: the state DPG's answer (or its absence) put the action in. None = not ours: leave it."""
    if before is None or before.owner != run:
        return None
    if state is State.IN_FLIGHT:
        raise ValueError("a run ends in unknown, done, failed or partial")
    return before.with_(
        state=state,
        owner="",
        lease_until=0.0,
        ended_at=now,
        op=before.op if op is None else op,
        made=before.made if made is None else made,
        done_items=before.done_items if done_items is None else done_items,
    )

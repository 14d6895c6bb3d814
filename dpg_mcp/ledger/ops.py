"""The ledger's transitions (rules.py) applied to a backend: what the write runner calls."""

from __future__ import annotations

from dpg_mcp.ledger import rules
from dpg_mcp.ledger.base import Ledger
from dpg_mcp.ledger.entry import LEASE_S, Entry, Kind, State
from dpg_mcp.ledger.rules import Claim, Mode


async def claim(
    ledger: Ledger,
    action: str,
    *,
    now: float,
    kind: Kind,
    run: str,
    request: str = "",
    lease_s: float = LEASE_S,
    fresh: bool = False,
) -> Claim:
    decided: list[Claim] = []

    def change(before: Entry | None) -> Entry | None:
        after, verdict = rules.claim(
            before, now=now, kind=kind, run=run, request=request, lease_s=lease_s, fresh=fresh
        )
        decided.append(verdict)  # an optimistic backend may decide more than once: the last one stands
        return None if verdict.mode is Mode.JOIN else after

    await ledger.transact(action, change)
    return decided[-1]


async def renew(ledger: Ledger, action: str, *, now: float, run: str, lease_s: float = LEASE_S) -> bool:
    """The heartbeat. False when the run no longer holds the entry."""
    _, after = await ledger.transact(
        action, lambda before: rules.renew(before, now=now, run=run, lease_s=lease_s)
    )
    return after is not None and after.owner == run


async def note(
    ledger: Ledger,
    action: str,
    *,
    run: str,
    request: str | None = None,
    op: str | None = None,
    made: str | None = None,
    tx: str | None = None,
    key: str | None = None,
    now: float = 0.0,
) -> None:
    await ledger.transact(
        action,
        lambda before: rules.note(
            before, run=run, request=request, op=op, made=made, tx=tx, key=key, now=now
        ),
    )


async def settle(
    ledger: Ledger,
    action: str,
    *,
    now: float,
    run: str,
    state: State,
    op: str | None = None,
    made: str | None = None,
    done_items: tuple[str, ...] | None = None,
) -> Entry | None:
    _, after = await ledger.transact(
        action,
        lambda before: rules.settle(
            before, now=now, run=run, state=state, op=op, made=made, done_items=done_items
        ),
    )
    return after

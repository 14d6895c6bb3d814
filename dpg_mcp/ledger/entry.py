"""One ledger entry: the state of one action and the Idempotency-Key that follows it.

An entry holds digests and ids only: the action is a digest of (origin, principal, tool, canonical arguments),
the request a digest of what was sent. Never the token, never an argument value in clear.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any


class State(StrEnum):
    IN_FLIGHT = "in_flight"  # a run holds it (its lease is renewed by a heartbeat while the run lives)
    UNKNOWN = "unknown"  # the run ended without DPG's final word (timeout, lost reply, cancel, crash)
    DONE = "done"  # DPG said succeeded, and the result was handed back
    FAILED = "failed"  # refused, or the Operation ended badly with nothing applied
    PARTIAL = "partial"  # some items applied, some not (`done_items` names the applied ones)


class Kind(StrEnum):
    SET = "set"  # "set to a value": applying the same value again is harmless
    CREATE = "create"  # create_set, upload_image, build_archive: a second run makes a second object


KEY_TTL_S = 24 * 3600.0  # DPG keeps idempotency keys this long; entries expire with their key
CREATE_REPLAY_WINDOW_S = 600.0  # a create resent this soon after `done` answers with the earlier result
LEASE_S = 30.0  # an in_flight entry whose lease ran out belongs to a run that died (counts as unknown)
DEFAULT_MAX_ENTRIES = 50_000
MAX_LABEL_CHARS = 120  # an annotation's label: a few words of ours, never a value in clear


def clean_label(label: str) -> str:
    """An annotation's label as every backend stores it: one plain line, at most MAX_LABEL_CHARS."""
    line = " ".join("".join(c if c.isprintable() else " " for c in label).split())
    return line if len(line) <= MAX_LABEL_CHARS else line[: MAX_LABEL_CHARS - 1] + "…"


@dataclass(frozen=True)
class Entry:
    state: State
    kind: Kind
    key: str  # the Idempotency-Key this action goes out under
    request: str = ""  # digest of the request sent with `key` ("" = not known yet)
    owner: str = ""  # the run holding the lease while in_flight
    lease_until: float = 0.0
    key_at: float = 0.0  # when `key` was first claimed (DPG forgets it KEY_TTL_S later)
    ended_at: float = 0.0  # when the last run ended
    expires_at: float = 0.0
    op: str = ""  # the Operation's uuid, once known
    made: str = ""  # the id of what a create made (set, image, archive), once known
    tx: str = ""  # an upload's transaction_uuid, once the ticket is known
    done_items: tuple[str, ...] = field(default_factory=tuple)  # digests of batch entries applied
    runs: int = 0  # how many runs claimed this entry (diagnostics, tests)

    def with_(self, **changes: Any) -> Entry:
        return replace(self, **changes)

    def held(self, now: float) -> bool:
        """In flight under a live lease: a resend joins it."""
        return self.state is State.IN_FLIGHT and self.lease_until > now

    def effective_state(self, now: float) -> State:
        """A lapsed lease means the run died without a final word."""
        if self.state is State.IN_FLIGHT and self.lease_until <= now:
            return State.UNKNOWN
        return self.state

    def to_json(self) -> str:
        data = asdict(self)
        data["done_items"] = list(self.done_items)
        return json.dumps(data, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Entry:
        data = json.loads(text)
        data["state"] = State(data["state"])
        data["kind"] = Kind(data["kind"])
        data["done_items"] = tuple(data.get("done_items") or ())
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})

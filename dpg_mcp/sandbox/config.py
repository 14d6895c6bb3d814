"""Sandbox configuration: the knobs tests and the CLI turn."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Faults:
    """Injected trouble, deterministic under `seed` (decisions are drawn in request order)."""

    seed: int = 0
    latency: dict[str, float] = field(default_factory=dict)  # path prefix -> added seconds
    error_rate: float = 0.0  # share of requests answered 500 before doing anything
    drop_rate: float = 0.0  # share of writes that commit and then lose their response
    burst_429_every: int = 0  # after every N served requests ...
    burst_429_len: int = 0  # ... M requests are answered 429 rate_limited
    retry_after: int = 1
    # Only requests whose path starts with one of these get errors, drops and 429s (empty: every path), e.g.
    # ("/processor/",) to fail the image processor's upload alone.
    paths: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return bool(
            self.latency or self.error_rate or self.drop_rate or (self.burst_429_every and self.burst_429_len)
        )


@dataclass
class SandboxConfig:
    seed: int = 7
    images: int = 300  # size of the seeded gallery; tests pin the default
    faults: Faults = field(default_factory=Faults)
    operation_seconds: dict[str, float] = field(default_factory=dict)  # per Operation type
    large_move_threshold: int = 100
    large_move_seconds: float = 2.0
    clock: Callable[[], float] = time.time
    access_ttl: float = 900.0  # lifetime of a user access token (--access-ttl: tests expire them quickly)
    llms_txt_path: Path | str | None = None

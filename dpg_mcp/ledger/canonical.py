"""The one canonical JSON of the project: what a fingerprint hashes is exactly what is sent.

The client serialises every write body with `canonical_bytes`, and the ledger digests the same bytes, so "the
same request" means the same thing to both (and to DPG, which fingerprints method + path + body).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 kept as is. Raises TypeError for a value JSON cannot hold."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_bytes(value: Any) -> bytes:
    return canonical_json(value).encode()


def digest(*parts: str) -> str:
    """A short, stable, one-way digest of some strings (entries hold these, never the values)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\x00")  # ("ab", "c") and ("a", "bc") must differ
    return h.hexdigest()[:32]


def request_digest(method: str, path: str, body: Any) -> str:
    """What DPG fingerprints for idempotency: method + path + the canonical body bytes."""
    return digest(method.upper(), path, "" if body is None else canonical_json(body))


def action_digest(origin: str, principal: str, tool: str, args: Any) -> str:
    """An action: which gallery (origin), who (principal), what (tool + canonical validated arguments)."""
    return digest(origin, principal, tool, canonical_json(args))


def subject_digest(origin: str, principal: str, kind: str, ref: str) -> str:
    """What an annotation is about: one object (`kind`, its id `ref`) of one gallery, for one principal."""
    return digest("annotation", origin, principal, kind, ref)

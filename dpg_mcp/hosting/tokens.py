"""Tokens are secrets: everything hosted keys on a hash of the token, and logs show a shorter hash of that."""

from __future__ import annotations

import hashlib


def token_key(token: str) -> str:
    """The cache and state key for a token (sha256 hex). Not reversible; never the token."""
    return hashlib.sha256(token.strip().encode()).hexdigest()


def log_tag(key: str) -> str:
    """A short tag for log lines: enough to tell callers apart, too short to be useful as a lookup key."""
    return key[:12]

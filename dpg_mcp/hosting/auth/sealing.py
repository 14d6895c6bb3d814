"""Secrets at rest (the member's DPG refresh and access tokens, a pending MFA token) are sealed with Fernet
(AES-128-CBC + HMAC-SHA256, from `cryptography`) under a key from the environment."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets

from cryptography.fernet import Fernet, InvalidToken

log = logging.getLogger(__name__)

KEY_ENV = "DPG_MCP_SECRET_KEY"


class Sealer:
    def __init__(self, secret: str) -> None:
        # Any long random string is accepted: it is stretched to Fernet's 32-byte key by SHA-256.
        key = base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest())
        self._fernet = Fernet(key)

    def __repr__(self) -> str:
        return "Sealer(<key>)"

    @classmethod
    def from_env(cls) -> tuple[Sealer, bool]:
        """(sealer, persistent): without the variable a random key is used; sign-ins end with the process."""
        secret = os.environ.get(KEY_ENV, "").strip()
        if secret:
            return cls(secret), True
        log.warning(
            "%s is not set: sign-ins are sealed with a random key and end when dpg-mcp stops. "
            "Set it to a long random string to keep them across restarts.",
            KEY_ENV,
        )
        return cls(secrets.token_urlsafe(32)), False

    def seal(self, plain: str) -> bytes:
        return self._fernet.encrypt(plain.encode())

    def open(self, sealed: bytes) -> str | None:
        """None when sealed under another key (the key changed): that sign-in is over."""
        try:
            return self._fernet.decrypt(sealed).decode()
        except InvalidToken:
            return None

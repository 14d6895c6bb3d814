"""Settings for one dpg-mcp server: read from command-line flags, then the environment.

The token is held as a SecretStr so that no repr, log line or error message can carry it.
Every problem becomes a ConfigError whose text is one line a person can act on.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Collection, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

DEFAULT_API_URL = "https://api.digitalphotogallery.com"
SANDBOX_API_URL = "http://sandbox.dpg.local"
SANDBOX_TOKEN = "dpg_api_live_sandbox_admin"
DEFAULT_WAIT_BUDGET_S = 45.0


class ConfigError(Exception):
    """A setting is missing or wrong, or DPG refused us at startup. str() is one actionable line."""


def _known_toolsets() -> frozenset[str]:
    # Imported lazily: the tool table is another helper's module and config must stay importable alone.
    from dpg_mcp.tools import TOOLSETS

    return frozenset(TOOLSETS)


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    token: SecretStr | None = None
    api_url: str = DEFAULT_API_URL
    read_only: bool = False
    toolsets: frozenset[str] | None = None  # None = every toolset
    wait_budget_s: float = Field(default=DEFAULT_WAIT_BUDGET_S, gt=0, le=600)
    sandbox: bool = False
    apps: bool = True  # MCP Apps views for hosts that negotiate them; --no-apps switches them off
    allow_http: bool = False  # plain http to a host other than loopback (--allow-http)
    # Folders upload_image may read on stdio when the host offers no MCP roots (--upload-root, repeatable).
    upload_roots: tuple[str, ...] = ()
    sandbox_port: int | None = Field(default=None, ge=1, le=65535)  # None: a free port
    sandbox_state: str | None = None  # a directory that keeps the sandbox's gallery between runs

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"DPG_API_URL must be an http(s) URL such as {DEFAULT_API_URL}, got {value!r}")
        if parts.query or parts.fragment:
            raise ValueError(f"DPG_API_URL must not carry a query or fragment, got {value!r}")
        return value

    @model_validator(mode="after")
    def _https(self) -> Settings:
        # The token travels with every call: in clear only to this machine, or when the user says so.
        parts = urlsplit(self.api_url)
        # SANDBOX_API_URL names the in-process sandbox (its client gets an in-process transport).
        in_process = self.sandbox or self.api_url == SANDBOX_API_URL
        if parts.scheme == "http" and not (in_process or self.allow_http or _loopback(parts.hostname)):
            raise ValueError(
                f"DPG_API_URL must use https (the token travels with every call), got {self.api_url!r}; "
                "plain http is only for 127.0.0.1/localhost, or with --allow-http"
            )
        return self

    @field_validator("toolsets")
    @classmethod
    def _known(cls, value: frozenset[str] | None) -> frozenset[str] | None:
        if value is None:
            return None
        known = _known_toolsets()
        unknown = sorted(value - known)
        if unknown:
            raise ValueError(f"unknown toolset {', '.join(unknown)}; choose from {', '.join(sorted(known))}")
        if not value:
            raise ValueError(f"--toolsets is empty; choose from {', '.join(sorted(known))}")
        return value

    def secret(self) -> str:
        """The token itself, for the HTTP client only. Raises ConfigError when there is none, or when it
        could not go in an HTTP header as it is (not printable ASCII, or whitespace inside)."""
        if self.token is None or not self.token.get_secret_value().strip():
            raise ConfigError(
                "no DPG token: set DPG_TOKEN to a service token from DPG Settings → API "
                "(or run with --sandbox to try the built-in sandbox)"
            )
        token = self.token.get_secret_value().strip()
        if not all("!" <= ch <= "~" for ch in token):
            raise ConfigError(
                "DPG_TOKEN holds a space, line break or non-ASCII character; a DPG token is printable "
                "ASCII only: copy it again from DPG Settings → API"
            )
        return token


def parse_toolsets(raw: str | Collection[str] | None) -> frozenset[str] | None:
    if raw is None:
        return None
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    names = frozenset(item.strip() for item in items if item.strip())
    return names


def _loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def load_settings(
    *,
    env: Mapping[str, str] | None = None,
    read_only: bool | None = None,
    toolsets: str | Collection[str] | None = None,
    api_url: str | None = None,
    wait_budget_s: float | None = None,
    sandbox: bool = False,
    apps: bool | None = None,
    allow_http: bool = False,
    upload_roots: Sequence[str] | None = None,
    sandbox_port: int | None = None,
    sandbox_state: str | None = None,
) -> Settings:
    """Flags win over the environment.

    Env: DPG_TOKEN, DPG_API_URL, DPG_READ_ONLY, DPG_TOOLSETS, DPG_WAIT_SECONDS, DPG_NO_APPS.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {
        "sandbox": sandbox,
        "allow_http": allow_http,
        "upload_roots": tuple(upload_roots or ()),
        "sandbox_port": sandbox_port,
        "sandbox_state": sandbox_state,
    }
    if (sandbox_port is not None or sandbox_state) and not sandbox:
        raise ConfigError("--sandbox-port and --sandbox-state go with --sandbox")
    token = env.get("DPG_TOKEN")
    if token:
        values["token"] = SecretStr(token)
    elif sandbox:
        values["token"] = SecretStr(SANDBOX_TOKEN)
    url = api_url or env.get("DPG_API_URL")
    if sandbox:
        url = api_url or SANDBOX_API_URL  # the sandbox lives in-process: a real URL would be misleading
    if url:
        values["api_url"] = url
    values["apps"] = apps if apps is not None else not _truthy(env.get("DPG_NO_APPS"))
    values["read_only"] = read_only if read_only is not None else _truthy(env.get("DPG_READ_ONLY"))
    ts = toolsets if toolsets is not None else env.get("DPG_TOOLSETS")
    values["toolsets"] = parse_toolsets(ts) if ts else None
    if wait_budget_s is not None:
        values["wait_budget_s"] = wait_budget_s
    elif env.get("DPG_WAIT_SECONDS"):
        try:
            values["wait_budget_s"] = float(env["DPG_WAIT_SECONDS"])
        except ValueError:
            raise ConfigError(
                f"DPG_WAIT_SECONDS must be a number of seconds, got {env['DPG_WAIT_SECONDS']!r}"
            ) from None
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc)) from None


def _one_line(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_input=False, include_url=False):
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        loc = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(msg if loc in ("api_url", "toolsets", "") else f"{loc}: {msg}")
    return "; ".join(parts)

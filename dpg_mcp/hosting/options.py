"""The settings of a hosted server (flags of `dpg-mcp serve --transport http`, or their environment twins)."""

from __future__ import annotations

from dataclasses import dataclass, field

from dpg_mcp.hosting.limits import LimitSettings

DEFAULT_UPLOAD_MAX_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class HostingOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = None  # the external URL when a proxy terminates TLS; default http://host:port
    stateless: bool = False
    allowed_hosts: tuple[str, ...] = ()  # Host values accepted besides the bound address and the public URL
    allowed_origins: tuple[str, ...] = ()  # Origin values accepted (browsers); none by default
    redis_url: str | None = None
    limits: LimitSettings = field(default_factory=LimitSettings)
    me_ttl_s: float = 30.0
    upload_max_bytes: int = DEFAULT_UPLOAD_MAX_BYTES
    # Hosts or networks (CIDR) an upload URL may point to although they are loopback, private or link-local.
    upload_allow: tuple[str, ...] = ()
    sandbox: bool = False
    replica_id: str | None = None  # prefixes session ids so a load balancer can keep a session on its replica

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    @property
    def mcp_url(self) -> str:
        return self.base_url + "/mcp"

    @property
    def max_body_bytes(self) -> int:
        # An upload by bytes arrives as base64 inside JSON: 4/3 of the file, plus room for the other fields.
        return max(1024 * 1024, self.upload_max_bytes * 4 // 3 + 256 * 1024)

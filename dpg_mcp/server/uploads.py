"""upload_image by URL: fetch a caller's file from the web without letting the caller reach our network.

Guards against server-side request forgery:
- https only (plain http only for hosts on the allow-list);
- the host name is resolved once, every address is checked (no loopback, private, link-local, multicast,
  reserved or unspecified address unless its host or network is on the allow-list), and the connection goes
  to the checked address (the name is kept for TLS and the Host header), so a second DNS answer cannot
  swap it for an internal one;
- redirects are followed by hand (at most 3), each target checked the same way;
- no token, cookie or credential is sent;
- size is checked against Content-Length and again while streaming; the type must be an image type.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import anyio
import httpx2

from dpg_mcp.tools.errors import ToolInputError

IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
_MAX_REDIRECTS = 3
_TIMEOUT_S = 30.0
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class AllowList:
    """Hosts (exact names) and networks an upload URL may reach although they are not public."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, items: Iterable[str]) -> AllowList:
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for raw in items:
            item = raw.strip().lower()
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                hosts.add(item)
        return cls(frozenset(hosts), tuple(networks))

    def allows(self, host: str, address: IPAddress | None = None) -> bool:
        if host.lower() in self.hosts:
            return True
        if address is None:  # an address written as the host: its network may be listed
            try:
                address = ipaddress.ip_address(host.strip("[]"))
            except ValueError:
                return False
        return any(address in net for net in self.networks)


def _public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or (isinstance(address, ipaddress.IPv4Address) and address in ipaddress.ip_network("100.64.0.0/10"))
    )


async def _checked_address(url: str, allow: AllowList) -> tuple[str, str, int, IPAddress]:
    """(scheme, host, port, the address to connect to) after the checks; ToolInputError otherwise."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host:
        raise ToolInputError("url must be an https URL of the image file")
    if parts.username or parts.password:
        raise ToolInputError("url must not carry a user name or password")
    if parts.scheme == "http" and not allow.allows(host):
        raise ToolInputError("url must use https (plain http is refused for files fetched by the server)")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise ToolInputError(f"url host {host} does not resolve; check the address") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not addresses:
        raise ToolInputError(f"url host {host} does not resolve; check the address")
    for address in addresses:
        if not _public(address) and not allow.allows(host, address):
            raise ToolInputError(
                f"url points to a loopback, private or link-local address ({host}); this server only fetches "
                "files from public addresses. Send the file as content_base64 instead. Do not retry the URL."
            )
    return parts.scheme, host, port, addresses[0]


async def fetch_image_url(url: str, max_bytes: int, allow: AllowList) -> tuple[bytes, str]:
    """(bytes, content type) of the image at `url`, or ToolInputError saying what to change."""
    try:
        with anyio.fail_after(_TIMEOUT_S):
            async with httpx2.AsyncClient(
                timeout=_TIMEOUT_S, follow_redirects=False, trust_env=False
            ) as http:
                for _ in range(_MAX_REDIRECTS + 1):
                    scheme, host, port, address = await _checked_address(url, allow)
                    parts = urlsplit(url)
                    ip = f"[{address}]" if address.version == 6 else str(address)
                    target = f"{scheme}://{ip}:{port}{parts.path or '/'}" + (
                        f"?{parts.query}" if parts.query else ""
                    )
                    netloc = host if parts.port is None else f"{host}:{parts.port}"
                    request = http.build_request(
                        "GET",
                        target,
                        headers={
                            "Host": netloc,
                            "Accept": ", ".join(IMAGE_TYPES),
                            "Accept-Encoding": "identity",
                        },
                        extensions={"sni_hostname": host},
                    )
                    resp = await http.send(request, stream=True)
                    try:
                        if resp.is_redirect:
                            location = resp.headers.get("location")
                            if not location:
                                raise ToolInputError("url redirects nowhere; give the file's direct URL")
                            url = urljoin(url, location)
                            continue
                        return await _read_image(resp, host, max_bytes)
                    finally:
                        await resp.aclose()
                raise ToolInputError(
                    f"url redirects more than {_MAX_REDIRECTS} times; give the file's direct URL"
                )
    except TimeoutError:
        raise ToolInputError(f"the file at url did not arrive within {_TIMEOUT_S:g} s") from None
    except httpx2.HTTPError as exc:
        raise ToolInputError(
            f"could not fetch url ({type(exc).__name__}); check that it is reachable"
        ) from None


async def _read_image(resp: httpx2.Response, host: str, max_bytes: int) -> tuple[bytes, str]:
    if resp.status_code != 200:
        raise ToolInputError(f"url answered HTTP {resp.status_code}; check the address")
    ctype = resp.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in IMAGE_TYPES:
        raise ToolInputError(f"url is not a PNG, JPEG, GIF or WebP image (its type is {ctype or 'unknown'})")
    limit_mb = max_bytes / 2**20
    declared = resp.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ToolInputError(f"the file at url is over the {limit_mb:g} MB upload limit")
    buf = bytearray()
    async for chunk in resp.aiter_raw():
        buf += chunk
        if len(buf) > max_bytes:
            raise ToolInputError(f"the file at url is over the {limit_mb:g} MB upload limit")
    return bytes(buf), ctype

"""The default transport loads no trust store for http:// DPG, and https:// stays verified."""

from __future__ import annotations

import socket
import ssl

import pytest

from dpg_mcp.dpg.client import DPGClient
from dpg_mcp.dpg.errors import TransportFailure


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tls_context(client: DPGClient) -> ssl.SSLContext | None:
    tls = client._http._transport._tls  # type: ignore[attr-defined]
    return None if tls is None else tls._pool._ssl_context


async def test_http_base_builds_no_tls_context_and_https_stays_verified() -> None:
    port = _closed_port()
    async with DPGClient(f"http://127.0.0.1:{port}", "dpg_api_live_x", max_attempts=1) as client:
        with pytest.raises(TransportFailure):
            await client.me()
        assert _tls_context(client) is None  # http:// only: no trust store loaded
        # An absolute https:// URL (a download, an upload ticket) is verified with the default trust store.
        with pytest.raises(TransportFailure):
            await client.fetch_bytes(f"https://127.0.0.1:{port}/x.jpg", 1000)
        ctx = _tls_context(client)
        assert ctx is not None
        assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname

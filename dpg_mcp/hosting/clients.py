"""One DPGClient per caller's token, all over one shared connection pool (keep-alive to DPG for all)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable

import httpx2

from dpg_mcp.dpg.client import DPGClient
from dpg_mcp.hosting.tokens import token_key


class _Shared(httpx2.AsyncBaseTransport):
    """The pool every client sends through; a client closing does not close it (the pool closes it once)."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        pass


class ClientPool:
    def __init__(
        self,
        base_url: str,
        *,
        transport: httpx2.AsyncBaseTransport | None = None,
        max_clients: int = 1024,
    ) -> None:
        self.base_url = base_url
        limits = httpx2.Limits(max_connections=200, max_keepalive_connections=100)
        self._transport = transport or httpx2.AsyncHTTPTransport(limits=limits)
        self._shared = _Shared(self._transport)
        self._clients: OrderedDict[str, DPGClient] = OrderedDict()
        self._max = max_clients

    def client_for(
        self,
        token: str,
        *,
        key: str | None = None,
        token_source: Callable[[], Awaitable[str]] | None = None,
    ) -> DPGClient:
        """`key` and `token_source` for a signed-in member: one client per sign-in, whose token rotates."""
        key = key or token_key(token)
        client = self._clients.get(key)
        if client is None:
            client = DPGClient(
                base_url=self.base_url, token=token, transport=self._shared, token_source=token_source
            )
            self._clients[key] = client
            while len(self._clients) > self._max:
                self._clients.popitem(last=False)  # its pool is shared: nothing to close
        else:
            self._clients.move_to_end(key)
        return client

    async def aclose(self) -> None:
        self._clients.clear()
        await self._transport.aclose()

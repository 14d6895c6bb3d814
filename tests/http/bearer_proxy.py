"""A loopback proxy that adds `Authorization: Bearer <token>` to every request, for clients that cannot send
one (the MCP conformance harness). Everything else, the Host and Origin headers included, passes unchanged,
and responses stream back as they come (server-sent events).

    python tests/http/bearer_proxy.py LISTEN_PORT UPSTREAM_URL TOKEN
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import httpx2
import uvicorn
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"te", b"upgrade", b"proxy-connection"}


def make_app(upstream: str, token: str) -> object:
    http = httpx2.AsyncClient(base_url=upstream, timeout=httpx2.Timeout(60.0), follow_redirects=False)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        headers = [
            (k, v) for k, v in scope["headers"] if k.lower() not in _HOP and k.lower() != b"authorization"
        ]
        headers.append((b"authorization", f"Bearer {token}".encode()))
        body = await request.body()
        outbound = http.build_request(
            request.method, request.url.path + (f"?{request.url.query}" if request.url.query else ""),
            headers=headers, content=body,
        )  # fmt: skip
        upstream_response = await http.send(outbound, stream=True)

        async def chunks() -> AsyncIterator[bytes]:
            async for chunk in upstream_response.aiter_raw():
                yield chunk

        out_headers = {k: v for k, v in upstream_response.headers.items() if k.lower().encode() not in _HOP}
        out_headers.pop("content-length", None)
        response = StreamingResponse(
            chunks(),
            status_code=upstream_response.status_code,
            headers=out_headers,
            background=BackgroundTask(upstream_response.aclose),
        )
        await response(scope, receive, send)

    return app


if __name__ == "__main__":
    port, upstream, token = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    uvicorn.run(make_app(upstream, token), host="127.0.0.1", port=port, log_level="warning")  # type: ignore[arg-type]

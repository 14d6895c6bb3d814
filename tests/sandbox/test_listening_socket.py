"""The embedded sandbox's socket: asyncio gives the connections it accepts TCP_NODELAY."""

from __future__ import annotations

import asyncio
import socket

from dpg_mcp.sandbox import listening_socket


async def test_accepted_connections_have_tcp_nodelay() -> None:
    sock = listening_socket("127.0.0.1", 0)
    seen: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = writer.get_extra_info("socket")
        seen.append(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(handle, sock=sock)
    async with server:
        reader, writer = await asyncio.open_connection(*sock.getsockname())
        await asyncio.wait_for(reader.read(), timeout=5)  # the server closes once it has looked
        writer.close()
    assert seen and seen[0] != 0


def test_a_taken_port_is_refused_without_leaking_the_socket() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        try:
            listening_socket("127.0.0.1", taken.getsockname()[1])
        except OSError:
            pass
        else:
            raise AssertionError("binding a taken port should fail")

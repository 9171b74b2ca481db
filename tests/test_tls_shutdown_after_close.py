"""A drain (`HttpServer.shutdown`) right after a TLS connection closed itself (its reply said `Connection: close`)
raised AttributeError on asyncio's event loop: the connection's own close ran a second time, and asyncio's TLS
transport, closed twice, drops its protocol, so asking it how many bytes are unsent raised. The drain (a SIGTERM,
a reload replacing the listener) ended in a traceback instead of closing the other connections. Now a connection
closes its transport once. Real certificates and a real TLS client, on both event loops."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
import uvloop

from proxy.config import Limits, Tls
from proxy.ingress.wire import HttpConnection, HttpServer, Request
from proxy.tls import ListenerTls
from tests.certs import Authority

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


@pytest.mark.parametrize("loop_name", LOOPS)
def test_shutdown_after_a_tls_connection_closed_itself(tmp_path: Path, loop_name: str) -> None:
    ca = Authority(tmp_path)
    server_pair = ca.issue("server", common_name="lineage-proxy", server=True)

    async def handler(request: Request, conn: HttpConnection) -> None:
        conn.reply(request, 200, b"text/plain", b"ok")

    async def main() -> bytes:
        server = HttpServer(handler, Limits())
        sock = socket.create_server(("127.0.0.1", 0))
        sock.setblocking(False)
        await server.start(sock, ListenerTls(Tls(str(server_pair.cert), str(server_pair.key), None, False)).context)
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", sock.getsockname()[1],
            ssl=ssl.create_default_context(cafile=str(ca.pair.cert)), server_hostname="127.0.0.1",
        )  # fmt: skip
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = await reader.read()
        await server.shutdown(1.0)  # raised AttributeError on asyncio's loop
        assert not server.connections
        writer.close()
        return reply

    loop = LOOPS[loop_name]()
    try:
        reply = loop.run_until_complete(main())
    finally:
        loop.close()
    assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"ok")

"""The reply head the proxy writes reads the upstream's Connection, Location and Date fields by name, whatever
their case, as sent: the fields a Connection line names are dropped, a Location on the upstream is made a path,
and the proxy adds a Date only where the upstream sent none."""

from __future__ import annotations

import asyncio
import socket

import pytest

from tests.harness import LoopThread, proxy_before

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - name: origin
    url: ${UPSTREAM}
    protocol: passthrough
routes:
  - model: "*"
    upstream: origin
policy:
  anonymous: allow
  default_purpose: assistant
  passthrough: forward
lineage:
  store: ${STORE}
"""

REPLIES = {
    b"/plain": b"HTTP/1.1 200 OK\r\nCONNECTION: keep-alive, X-Hop\r\nx-hop: 1\r\nX-Kept: 2\r\nContent-Length: 2\r\n\r\nok",
    b"/dated": b"HTTP/1.1 200 OK\r\ndate: Tue, 01 Dec 2026 08:00:00 GMT\r\nContent-Length: 2\r\n\r\nok",
    b"/moved": b"HTTP/1.1 307 Temporary Redirect\r\nLOCATION: {base}/v1/elsewhere\r\nContent-Length: 0\r\n\r\n",
}


async def start_origin() -> tuple[asyncio.Server, int]:
    port = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                path = head.split(b" ", 2)[1]
                if b"content-length:" in head.lower():
                    length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
                    await reader.readexactly(length)
                reply = REPLIES.get(path, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                writer.write(reply.replace(b"{base}", b"http://127.0.0.1:%d" % port))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, port


def head_lines(port: int, path: str) -> list[bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


@pytest.fixture
def proxy_port(make_proxy, loop_thread: LoopThread):  # type: ignore[no-untyped-def]
    with proxy_before(loop_thread, make_proxy, CONFIG, start_origin) as port:
        yield port


def names(lines: list[bytes]) -> list[bytes]:
    return [line.split(b":", 1)[0].lower() for line in lines[1:]]


def test_fields_a_connection_line_names_are_dropped_and_a_date_added(proxy_port: int) -> None:
    lines = head_lines(proxy_port, "/plain")
    assert lines[0] == b"HTTP/1.1 200 OK"
    assert b"x-hop" not in names(lines) and b"x-kept" in names(lines)
    assert names(lines).count(b"date") == 1  # the proxy's own: the upstream sent none


def test_the_upstreams_date_is_the_only_one(proxy_port: int) -> None:
    lines = head_lines(proxy_port, "/dated")
    assert [line for line in lines if line.lower().startswith(b"date:")] == [b"date: Tue, 01 Dec 2026 08:00:00 GMT"]


def test_a_location_on_the_upstream_is_made_a_path(proxy_port: int) -> None:
    lines = head_lines(proxy_port, "/moved")
    assert lines[0] == b"HTTP/1.1 307 Temporary Redirect"
    assert b"LOCATION: /v1/elsewhere" in lines

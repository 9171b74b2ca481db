"""A plain HTTP request to the TLS listener whose request line came in pieces (`G`, then `ET / HTTP/1.1 ...`) got
an empty reply: the listener's one peek at a new connection's first bytes saw `G`, no method and a space yet, and
handed it to the TLS handshake, which failed (`http_request`) and closed it unanswered. Now a first byte that could
start an HTTP method waits (within `limits.header_timeout_s`) for the bytes that decide, and the client gets the 400
saying to use https://; a first byte 0x16 (a TLS record) still goes straight to the handshake. Real sockets on both
event loops; the test knows the listener has peeked `G` alone because its listening socket's accepted connections
say so (a `socket.socket` subclass), so nothing is timed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


class _Peeked(socket.socket):
    """An accepted connection that tells the test what each peek at it found (the listener's look at its first
    bytes, `MSG_PEEK`), once it found any."""

    peeks: list[bytes]
    peeked: threading.Event

    def recv(self, size: int, flags: int = 0) -> bytes:
        data = super().recv(size, flags)
        if flags & socket.MSG_PEEK and data:
            self.peeks.append(data)
            self.peeked.set()
        return data


class _Listening(socket.socket):
    """The TLS listener's socket: its connections are `_Peeked`."""

    peeks: list[bytes]
    peeked: threading.Event

    def accept(self) -> tuple[socket.socket, Any]:
        fd, peer = self._accept()  # type: ignore[attr-defined]
        conn = _Peeked(self.family, self.type, self.proto, fileno=fd)
        conn.peeks, conn.peeked = self.peeks, self.peeked
        return conn, peer


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Tls, Path]:
    directory = tmp_path_factory.mktemp("pki")
    ca = Authority(directory)
    server = ca.issue("server", common_name="lineage-proxy", server=True)
    return Tls(str(server.cert), str(server.key), None, False), ca.pair.cert


def _listener(family: int = socket.AF_INET) -> _Listening:
    sock = _Listening(family, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    sock.setblocking(False)
    sock.peeks, sock.peeked = [], threading.Event()
    return sock


def _in_pieces(port: int, peeked: threading.Event, pieces: list[bytes]) -> bytes:
    """A plain HTTP client whose first piece the listener has peeked at, alone, before the rest is sent; what it
    gets back until the server closes (b"" when it was closed unanswered)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(pieces[0])
        assert peeked.wait(10), "the listener never peeked"
        for piece in pieces[1:]:
            raw.sendall(piece)
        reply = b""
        try:
            while piece := raw.recv(65536):
                reply += piece
        except ConnectionResetError:
            pass
        return reply


def _serve(loop_name: str, tls: Tls, client: Callable[[int, _Listening], Any]) -> tuple[Any, list[str], list[bytes]]:
    async def handler(request: Request, conn: HttpConnection) -> None:
        conn.reply(request, 200, b"text/plain", b"served")

    async def main() -> tuple[Any, list[str], list[bytes]]:
        server = HttpServer(handler, Limits())
        reasons: list[str] = []
        server.on_handshake_failure = reasons.append
        sock = _listener()
        await server.start(sock, ListenerTls(tls).context)
        try:
            got = await asyncio.to_thread(client, sock.getsockname()[1], sock)
            await asyncio.gather(*list(server._handshakes))  # the connection's task is done: its failure is counted
        finally:
            await server.shutdown(1)
        return got, reasons, sock.peeks

    loop = LOOPS[loop_name]()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


@pytest.mark.parametrize("loop_name", LOOPS)
@pytest.mark.parametrize(
    "pieces",
    [
        [b"G", b"ET /v1/chat/completions HTTP/1.1\r\nHost: x\r\n\r\n"],
        [b"PO", b"ST", b" /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"],
        [b"OPTIONS", b" /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"],
    ],
    ids=["G|ET", "PO|ST|", "OPTIONS|"],
)
def test_a_request_line_in_pieces_is_answered_400(loop_name: str, tls: tuple[Tls, Path], pieces: list[bytes]) -> None:
    reply, reasons, peeks = _serve(loop_name, tls[0], lambda port, sock: _in_pieces(port, sock.peeked, pieces))
    assert peeks[0] == pieces[0]  # the listener's first look saw the first piece alone
    assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n"), reply
    head, body = reply.split(b"\r\n\r\n", 1)
    assert b"Connection: close" in head.split(b"\r\n")
    error = json.loads(body)
    message = error["error"]["message"] if isinstance(error["error"], dict) else error["error"]
    assert "use https://" in message
    assert reasons == ["http_request"]


@pytest.mark.parametrize("loop_name", LOOPS)
def test_not_http_after_a_capital_is_still_a_failed_handshake(loop_name: str, tls: tuple[Tls, Path]) -> None:
    """Bytes that begin as a method and then are none (nor TLS: a TLS record begins 0x14 to 0x18) are closed
    unanswered and counted as OpenSSL counts such bytes (`wrong_version_number`)."""
    reply, reasons, _ = _serve(
        loop_name, tls[0], lambda port, sock: _in_pieces(port, sock.peeked, [b"GE", b"T\x00\x01\x02 junk"])
    )
    assert reply == b""
    assert reasons == ["wrong_version_number"]


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_client_closing_mid_method_is_not_counted(loop_name: str, tls: tuple[Tls, Path]) -> None:
    """As a client that closes during the handshake: it cannot be told from a health check."""

    def client(port: int, sock: _Listening) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            raw.sendall(b"GE")
            assert sock.peeked.wait(10)
        return b""

    _, reasons, _ = _serve(loop_name, tls[0], client)
    assert reasons == []


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_tls_client_hello_in_pieces_is_still_served(loop_name: str, tls: tuple[Tls, Path]) -> None:
    """A ClientHello whose first byte (0x16) came alone goes to the handshake at once, and is served."""
    server_tls, cafile = tls

    def client(port: int, sock: _Listening) -> bytes:
        context = ssl.create_default_context(cafile=str(cafile))
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        conn = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            try:
                conn.do_handshake()
            except ssl.SSLWantReadError:
                pass
            hello = outgoing.read()
            raw.sendall(hello[:1])
            assert sock.peeked.wait(10)
            raw.sendall(hello[1:])
            while True:  # the rest of the handshake, then one request
                try:
                    conn.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    if out := outgoing.read():
                        raw.sendall(out)
                    data = raw.recv(65536)
                    assert data, "closed during the handshake"
                    incoming.write(data)
            if out := outgoing.read():
                raw.sendall(out)
            conn.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            raw.sendall(outgoing.read())
            reply = b""
            while not reply.endswith(b"\r\n\r\nserved") and (data := raw.recv(65536)):
                incoming.write(data)
                with contextlib.suppress(ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                    while piece := conn.read(65536):
                        reply += piece
            return reply

    reply, reasons, peeks = _serve(loop_name, server_tls, client)
    assert peeks[0] == b"\x16"
    assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"served"), reply
    assert reasons == []

"""An answer that closes the connection to a request that came whole (a head refused as it was parsed: TRACE, two Host
fields, an HTTP/2.0 line, CONNECT; an internal error) lingers as a refused body's does (`HttpConnection._close`): the
writing side is shut after it, what still comes is read for LINGER_S, and the requests in it are recorded refused as
that one (`record_unserved`), PIPELINE_DEPTH at most; but for behind an HTTP/2.0 line, read as HTTP/1.0's, whose
connection closes with it (RFC 9112 §9.6: what follows is not read). Before 2026-12-07 the connection closed outright:
bytes unread in its socket reset it, so a client still sending got ECONNRESET, its send failing before it read the
answer, and a request whose bytes came after the answer was dropped with no record. Real sockets, on both event loops."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from typing import Any

import pytest
import uvloop

from proxy.config import Limits
from proxy.errors import ProxyError
from proxy.ingress.wire import PIPELINE_DEPTH, HttpConnection, HttpServer, Request

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.SelectorEventLoop,
    "uvloop": uvloop.Loop,
}
HEADS = {
    "trace": b"TRACE /r HTTP/1.1\r\nHost: x\r\n\r\n",
    "two-hosts": b"GET /r HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
    "http2-line": b"GET /r HTTP/2.0\r\nHost: x\r\n\r\n",
    "connect": b"CONNECT example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n",
    "internal-error": b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n",
}
BEHIND = b"GET /behind HTTP/1.1\r\nHost: x\r\n\r\n"
# what a client still sending puts after the refused head in one send: past what one read takes (256 KiB), and
# what the two sockets' buffers hold, so some is unread when the answer goes out
FLOOD = BEHIND * (8 * 1024 * 1024 // len(BEHIND))


class Seen:
    """What the listener did: the statuses it refused with, the paths it recorded unserved."""

    def __init__(self) -> None:
        self.refused: list[int] = []
        self.unserved: list[str] = []


def _server(seen: Seen, limits: Limits | None = None) -> HttpServer:
    async def handler(request: Request, conn: HttpConnection) -> None:
        if request.path == "/boom":
            raise RuntimeError("an internal error (the test's)")
        conn.reply(request, 200, b"text/plain", b"ok")

    async def record_refusal(request: Request, error: ProxyError, conn: HttpConnection) -> list[tuple[str, str]]:
        seen.refused.append(error.status)
        return []

    def record_unserved(request: Request, conn: HttpConnection, whole: bool) -> None:
        seen.unserved.append(request.path)

    return HttpServer(handler, limits or Limits(), record_refusal, record_unserved)


def _run(loop_name: str, main: Callable[[], Any]) -> None:
    loop = LOOPS[loop_name]()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


async def _read_to_end(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> bytes:
    """What the listener sends until its end of writing (raising ConnectionResetError if it resets instead)."""
    got = b""
    async with asyncio.timeout(20):
        while piece := await loop.sock_recv(sock, 65536):
            got += piece
    return got


async def _listening(server: HttpServer) -> socket.socket:
    listening = socket.create_server(("127.0.0.1", 0))
    listening.setblocking(False)
    await server.start(listening)
    return listening


async def _connected(loop: asyncio.AbstractEventLoop, listening: socket.socket) -> socket.socket:
    sock = socket.socket()
    sock.setblocking(False)
    await loop.sock_connect(sock, listening.getsockname())
    return sock


async def _ended(server: HttpServer, listening: socket.socket) -> None:
    async with asyncio.timeout(10):
        while server.connections:
            await asyncio.sleep(0.01)
    await server.shutdown(1.0)
    listening.close()
    assert server.held == 0


@pytest.mark.parametrize("loop_name", LOOPS)
@pytest.mark.parametrize("kind", HEADS)
def test_a_client_still_sending_behind_a_closing_refusal_gets_its_answer_not_a_reset(loop_name: str, kind: str) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        seen = Seen()
        server = _server(seen)
        listening = await _listening(server)
        sock = await _connected(loop, listening)
        with sock:
            await loop.sock_sendall(sock, HEADS[kind] + FLOOD)  # failed before: ConnectionResetError, BrokenPipeError
            got = await _read_to_end(loop, sock)  # failed before: ConnectionResetError
        if kind == "internal-error":
            assert got == b""  # (the listener writes no answer of its own to one)
        else:
            assert got.startswith(b"HTTP/1.1 400 ") and b"connection: close" in got.lower(), got[:300]
            assert got.count(b"\r\nDate: ") == 1
            assert seen.refused == [400]
        await _ended(server, listening)

    _run(loop_name, main)


@pytest.mark.parametrize("loop_name", LOOPS)
@pytest.mark.parametrize("kind", ["trace", "two-hosts"])
def test_a_request_whose_bytes_come_after_a_closing_refusal_is_recorded_as_behind_it(loop_name: str, kind: str) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        seen = Seen()
        server = _server(seen)
        listening = await _listening(server)
        sock = await _connected(loop, listening)
        with sock:
            await loop.sock_sendall(sock, HEADS[kind])
            assert (await loop.sock_recv(sock, 65536)).startswith(b"HTTP/1.1 400 ")
            # PIPELINE_DEPTH + 2 after the answer: the first PIPELINE_DEPTH recorded (failed before: none, unread)
            await loop.sock_sendall(sock, BEHIND * (PIPELINE_DEPTH + 2))
            got = await _read_to_end(loop, sock)
        assert b"HTTP/1.1 200" not in got  # none served
        await _ended(server, listening)
        assert seen.unserved == ["/behind"] * PIPELINE_DEPTH

    _run(loop_name, main)


@pytest.mark.parametrize("loop_name", LOOPS)
@pytest.mark.parametrize("how", ["same-send", "after-the-answer"])
def test_what_follows_an_http2_line_closes_with_it_unread(loop_name: str, how: str) -> None:
    """An HTTP/2.0 request line is refused (400) and read as HTTP/1.0's, with no keep-alive (llhttp's reading): what
    follows it is not read, as after any request that closes its connection, neither answered nor recorded; the
    connection lingers all the same, so the client gets the answer and the listener's end of writing."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        seen = Seen()
        server = _server(seen)
        listening = await _listening(server)
        sock = await _connected(loop, listening)
        with sock:
            if how == "same-send":
                await loop.sock_sendall(sock, HEADS["http2-line"] + BEHIND)
                got = await _read_to_end(loop, sock)
            else:
                await loop.sock_sendall(sock, HEADS["http2-line"])
                got = await loop.sock_recv(sock, 65536)
                await loop.sock_sendall(sock, BEHIND)
                got += await _read_to_end(loop, sock)
        assert got.startswith(b"HTTP/1.1 400 ") and got.count(b"\r\nDate: ") == 1, got[:300]
        await _ended(server, listening)
        assert seen.refused == [400]
        assert seen.unserved == []

    _run(loop_name, main)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_client_still_sending_past_the_connection_cap_gets_its_503_not_a_reset(loop_name: str) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        seen = Seen()
        server = _server(seen, Limits(max_connections=1))
        listening = await _listening(server)
        first = await _connected(loop, listening)
        await loop.sock_sendall(first, BEHIND)  # the one the cap lets in: served
        assert (await loop.sock_recv(first, 65536)).startswith(b"HTTP/1.1 200 ")
        sock = await _connected(loop, listening)
        with sock:
            await loop.sock_sendall(sock, BEHIND + FLOOD)  # failed before: ConnectionResetError, BrokenPipeError
            got = await _read_to_end(loop, sock)  # failed before: ConnectionResetError
        first.close()
        assert got.startswith(b"HTTP/1.1 503 ") and got.count(b"\r\nDate: ") == 1, got[:300]
        assert seen.refused == [503]
        await _ended(server, listening)

    _run(loop_name, main)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_head_cut_behind_a_closing_refusal_whose_client_left_before_its_answer_is_recorded(loop_name: str) -> None:
    """The client leaves while the refusal is being recorded, a head only partly sent behind the refused one: that
    head is recorded as cut behind the answer (`_head_cut`), not left to a lingering that never comes."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        recording = asyncio.Event()
        release = asyncio.Event()
        cut: list[tuple[str, bool]] = []

        async def handler(request: Request, conn: HttpConnection) -> None:
            conn.reply(request, 200, b"text/plain", b"ok")

        async def record_refusal(request: Request, error: ProxyError, conn: HttpConnection) -> list[tuple[str, str]]:
            recording.set()
            await release.wait()
            return []

        def record_unserved(request: Request, conn: HttpConnection, whole: bool) -> None:
            cut.append((request.path, whole))

        server = HttpServer(handler, Limits(), record_refusal, record_unserved)
        listening = await _listening(server)
        sock = await _connected(loop, listening)
        await loop.sock_sendall(sock, HEADS["trace"] + b"GET /cut HTTP/1.1\r\nHost: x\r\n")
        await asyncio.wait_for(recording.wait(), 10)
        (conn,) = server.connections
        sock.close()
        await asyncio.wait_for(conn.closed, 10)  # its client gone while the refusal is recorded
        release.set()
        await _ended(server, listening)
        assert cut == [("/cut", False)]

    _run(loop_name, main)


@pytest.mark.parametrize("loop_name", LOOPS)
@pytest.mark.parametrize("kind", ["trace", "two-hosts", "internal-error", "over-cap"])
def test_of_the_requests_read_with_a_closing_refusal_pipeline_depth_are_recorded_behind_it(
    loop_name: str, kind: str
) -> None:
    """Requests pipelined behind a closing refusal of a head that came whole, in its own send (parsed before it is
    answered, as requests to serve): PIPELINE_DEPTH of them are recorded refused as it was, in all (the README's "up to
    8 behind it in all, before its answer or after"), as behind a refused body; the rest are dropped unrecorded. A
    client may not make a record a request of one read (~8,000 in 256 KiB) with one refusal, nor with each
    connection past limits.max_connections."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        seen = Seen()
        server = _server(seen, Limits(max_connections=1) if kind == "over-cap" else None)
        listening = await _listening(server)
        first = None
        if kind == "over-cap":
            first = await _connected(loop, listening)
            await loop.sock_sendall(first, BEHIND)  # the one the cap lets in: served
            assert (await loop.sock_recv(first, 65536)).startswith(b"HTTP/1.1 200 ")
        sock = await _connected(loop, listening)
        head = BEHIND if kind == "over-cap" else HEADS[kind]
        with sock:
            await loop.sock_sendall(sock, head + BEHIND * (PIPELINE_DEPTH * 4))
            got = await _read_to_end(loop, sock)
            with contextlib.suppress(ConnectionError):  # (its lingering over already: nothing more read either)
                await loop.sock_sendall(sock, BEHIND * 2)  # after the answer: none is recorded either
        assert b"HTTP/1.1 200" not in got
        if first is not None:
            first.close()
        await _ended(server, listening)
        assert seen.unserved == ["/behind"] * PIPELINE_DEPTH  # failed before: PIPELINE_DEPTH * 4

    _run(loop_name, main)

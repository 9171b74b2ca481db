"""A TLS client that leaves while the connection's reading is paused behind PIPELINE_DEPTH requests queued unserved
(a call held upstream, a deep pipeline behind it) is heard of as a plain one is (`test_paused_client_leaving`): the
call being served is cancelled, its upstream's with it, those queued recorded unserved. A TLS transport paused
decrypts nothing, so a client's close_notify behind the bytes unread went unheard until its FIN, and an asyncio client
(its streams' `close`) sends that FIN only once the proxy's close_notify came, or its ssl_shutdown_timeout (30 s)
passed: before 2026-12-07 the held call ran on, for 30 s or for good. Now a paused TLS connection reads on, its bytes
held unparsed (until past HELD_BYTES, `_Held`), and what it held is read when reading goes on. Real certificates, the
ssl module's client (asyncio streams, and an SSLSocket's unwrap for a close_notify with no FIN), on both event
loops."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable

import pytest
import uvloop

from proxy.config import Limits, Tls
from proxy.ingress.wire import HELD_BYTES, PIPELINE_DEPTH, HttpConnection, HttpServer, Request
from proxy.tls import ListenerTls
from tests.certs import Authority, Pair

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}
HELD = b"GET /held HTTP/1.1\r\nHost: x\r\n\r\n"
BEHIND = b"GET /behind HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Authority, Pair]:
    ca = Authority(tmp_path_factory.mktemp("pki"))
    return ca, ca.issue("server", common_name="lineage-proxy", server=True)


class Served:
    """A listener over TLS whose /held call waits until released (or cancelled), the rest answered at once."""

    def __init__(self, pki: tuple[Authority, Pair]) -> None:
        self.ca, self.pair = pki
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.unserved: list[str] = []

        async def handler(request: Request, conn: HttpConnection) -> None:
            if request.path == "/held":  # an upstream call that does not end before its client leaves
                self.arrived.set()
                try:
                    await self.release.wait()
                except asyncio.CancelledError:
                    self.cancelled.set()
                    raise
            conn.reply(request, 200, b"text/plain", request.path.encode())

        def record_unserved(request: Request, conn: HttpConnection, whole: bool) -> None:
            self.unserved.append(request.path)

        # the sweep every 0.25 s; no timeout ends the held call
        self.server = HttpServer(handler, Limits(idle_timeout_s=1.0, header_timeout_s=1.0), None, record_unserved)

    async def start(self) -> tuple[str, int]:
        self.listening = socket.create_server(("127.0.0.1", 0))
        self.listening.setblocking(False)
        await self.server.start(
            self.listening, ListenerTls(Tls(str(self.pair.cert), str(self.pair.key), None, False)).context
        )
        address: tuple[str, int] = self.listening.getsockname()
        return address

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca.pair.cert))

    async def paused(self) -> HttpConnection:
        await asyncio.wait_for(self.arrived.wait(), 10)
        (conn,) = self.server.connections
        async with asyncio.timeout(10):
            while conn._reading:  # paused: PIPELINE_DEPTH or more queued behind the held call
                await asyncio.sleep(0.01)
        return conn

    async def stop(self) -> None:
        await self.server.shutdown(1.0)
        self.listening.close()
        assert self.server.held == 0


async def _handshaken(served: Served, address: tuple[str, int]) -> ssl.SSLSocket:
    """A non-blocking TLS client socket, its handshake done (the ssl module's own, no asyncio in the client)."""
    loop = asyncio.get_running_loop()
    raw = socket.socket()
    raw.setblocking(False)
    await loop.sock_connect(raw, address)
    sock = served.client_context().wrap_socket(raw, server_hostname="127.0.0.1", do_handshake_on_connect=False)
    async with asyncio.timeout(10):
        while True:
            try:
                sock.do_handshake()
                return sock
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                await asyncio.sleep(0.005)


async def _send(sock: ssl.SSLSocket, data: bytes) -> None:
    view = memoryview(data)
    async with asyncio.timeout(20):
        while view:
            try:
                view = view[sock.send(view[:16384]) :]
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                await asyncio.sleep(0.005)


def _run(loop_name: str, main: Callable[[], object]) -> None:
    loop = LOOPS[loop_name]()
    try:
        loop.run_until_complete(main())  # type: ignore[arg-type]
    finally:
        loop.close()


@pytest.mark.parametrize("loop_name", LOOPS)
@pytest.mark.parametrize("how", ["asyncio-streams-close", "close-notify-alone", "close-notify-then-fin", "fin-alone"])
def test_a_tls_client_leaving_while_reading_is_paused_is_heard_of(
    pki: tuple[Authority, Pair], loop_name: str, how: str
) -> None:
    async def main() -> None:
        served = Served(pki)
        address = await served.start()
        pipeline = HELD + BEHIND * (PIPELINE_DEPTH + 2)
        writer = sock = None
        if how == "asyncio-streams-close":
            _, writer = await asyncio.open_connection(
                *address, ssl=served.client_context(), server_hostname="127.0.0.1"
            )
            writer.write(pipeline)
        else:
            sock = await _handshaken(served, address)
            await _send(sock, pipeline)
        conn = await served.paused()
        # more bytes, unread behind those: the client's leaving comes after them
        if writer is not None:
            writer.write(BEHIND * 4)
            writer.close()  # close_notify, then its FIN only once the proxy's close_notify comes (or 30 s pass)
        else:
            assert sock is not None
            await _send(sock, BEHIND * 4)
            if how != "fin-alone":
                try:
                    sock.unwrap()  # its close_notify, sent; the proxy's not come yet
                except ssl.SSLWantReadError:
                    pass
            if how != "close-notify-alone":
                sock.shutdown(socket.SHUT_WR)
        await asyncio.wait_for(served.cancelled.wait(), 5)  # failed before: TimeoutError (the held call ran on)
        await asyncio.wait_for(conn.closed, 5)
        # those queued, each recorded (those read on and held unparsed were not parsed: as a plain connection's unread)
        assert served.unserved == ["/behind"] * (PIPELINE_DEPTH + 2)
        if sock is not None:
            sock.close()
        if writer is not None:
            writer.transport.abort()
        await served.stop()

    _run(loop_name, main)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_tls_client_leaving_behind_more_than_the_held_bytes_is_heard_of_at_its_fin(
    pki: tuple[Authority, Pair], loop_name: str
) -> None:
    """Past HELD_BYTES its transport pauses, and the TLS layer's own read-ahead (256 KiB) then holds what comes,
    undecrypted: the close_notify is not heard, but the FIN is, from the socket's TCP state at the sweep, as a plain
    connection's (the TLS transport's socket is its TCP transport's, on both loops)."""

    async def main() -> None:
        served = Served(pki)
        address = await served.start()
        sock = await _handshaken(served, address)
        await _send(sock, HELD + BEHIND * (PIPELINE_DEPTH + 2))
        conn = await served.paused()
        piece = BEHIND * (16384 // len(BEHIND))
        async with asyncio.timeout(10):
            while conn._held is None or not conn._held.paused:  # past HELD_BYTES, and no more (its FIN must come)
                await _send(sock, piece)
                await asyncio.sleep(0.01)
        try:
            sock.unwrap()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass
        sock.shutdown(socket.SHUT_WR)
        await asyncio.wait_for(served.cancelled.wait(), 5)
        await asyncio.wait_for(conn.closed, 5)
        assert served.unserved == ["/behind"] * (PIPELINE_DEPTH + 2)
        sock.close()
        await served.stop()

    _run(loop_name, main)


@pytest.mark.parametrize("loop_name", LOOPS)
@pytest.mark.parametrize("behind", [PIPELINE_DEPTH * 4, HELD_BYTES * 3 // len(BEHIND)])
def test_what_a_paused_tls_connection_held_is_served_in_order(
    pki: tuple[Authority, Pair], loop_name: str, behind: int
) -> None:
    """What is read on while reading is paused, held unparsed (fewer bytes than HELD_BYTES, and more: its transport
    paused then), is read when the queue drains: every request answered, in order, none recorded unserved."""

    async def main() -> None:
        served = Served(pki)
        address = await served.start()
        reader, writer = await asyncio.open_connection(
            *address, ssl=served.client_context(), server_hostname="127.0.0.1"
        )
        paths = [f"/p{n}" for n in range(behind)]
        writer.write(HELD + b"".join(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % p.encode() for p in paths))
        conn = await served.paused()
        async with asyncio.timeout(10):
            while conn._held is None or (behind * len(BEHIND) > 2 * HELD_BYTES and not conn._held.paused):
                await asyncio.sleep(0.01)
        served.release.set()
        bodies = []
        async with asyncio.timeout(30):
            for _ in range(behind + 1):
                status = await reader.readline()
                assert status == b"HTTP/1.1 200 OK\r\n", status
                length = 0
                while (line := await reader.readline()) != b"\r\n":
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                bodies.append((await reader.readexactly(length)).decode())
        assert bodies == ["/held", *paths]
        assert served.unserved == []
        writer.close()
        await served.stop()

    _run(loop_name, main)

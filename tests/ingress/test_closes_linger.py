"""Closes that are not refusals linger as refusals' do (`HttpConnection._close`, RFC 9112 §9.6): after the SIGTERM
drain's answer, and at the header timeout of a head pipelined behind an answer, the writing side is shut, what the
client still sends is read and dropped (LINGER_S at most), and the connection closes when the client does. Before
2026-12-07 each closed outright: bytes the client sent after the close (the next request, pipelined or sent as the
answer went out) reset the connection, and what of the answer the client had not read yet (a large one, read slowly)
was lost to the reset: its read failed ECONNRESET part-way. An idle connection's close (limits.idle_timeout_s) and the
drain's close of an idle one stay outright: nothing came since the last answer, so nothing unread resets them, and that
answer is read whole (checked here too). So does the close after a request that closes the connection itself
(`Connection: close`, HTTP/1.0): its client sends no more (RFC 9112 §9.6), and lingering for its close held the
connection's slot past its answer, 503 at limits.max_connections for clients connecting anew for each call (review
revwire12; a client that sends more after such a request, against the RFC, may lose the answer's tail, as before
2026-12-07). Real sockets, on both event loops; the openai SDK through the proxy for a client that closes at once."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import Any

import openai
import pytest
import uvloop

from proxy.config import Limits
from proxy.ingress.wire import LINGER_S, HttpConnection, HttpServer, Request
from tests.harness import LoopThread
from tests.ingress.test_wire import CONFIG, _until, on_loop
from tests.servers.vllm_like import SERVED

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.SelectorEventLoop,
    "uvloop": uvloop.Loop,
}
BIG = bytes(range(256)) * (8 * 1024 * 1024 // 256)  # more than the sockets' buffers on the way hold
NEXT = b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"


class Served:
    def __init__(self, limits: Limits | None = None) -> None:
        self.release = asyncio.Event()
        self.arrived = asyncio.Event()
        self.unserved: list[str] = []

        async def handler(request: Request, conn: HttpConnection) -> None:
            if request.path == "/held":
                self.arrived.set()
                await self.release.wait()
            conn.reply(request, 200, b"application/octet-stream", BIG)

        def record_unserved(request: Request, conn: HttpConnection, whole: bool) -> None:
            self.unserved.append(request.path)

        self.server = HttpServer(handler, limits or Limits(), None, record_unserved)

    async def start(self) -> socket.socket:
        self.listening = socket.create_server(("127.0.0.1", 0))
        self.listening.setblocking(False)
        await self.server.start(self.listening)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)  # a slow reader: the answer waits at the proxy
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, self.listening.getsockname())
        return sock

    async def connection(self) -> HttpConnection:
        async with asyncio.timeout(10):
            while not self.server.connections:  # (accepted a turn of the loop after the client's connect)
                await asyncio.sleep(0.01)
        (conn,) = self.server.connections
        return conn

    async def stop(self) -> None:
        async with asyncio.timeout(10):
            while self.server.connections:
                await asyncio.sleep(0.01)
        await self.server.shutdown(1.0)
        self.listening.close()


async def _read_until(sock: socket.socket, done: Callable[[], bool]) -> bytes:
    """Read, a piece at a time, until `done()` (the proxy has closed, or begun to): part of the answer, the rest unread."""
    loop = asyncio.get_running_loop()
    got = b""
    async with asyncio.timeout(20):
        while not done():
            piece = await loop.sock_recv(sock, 4096)
            if not piece:  # (its end: read whole already)
                break
            got += piece
            # (a turn of the loop a read: asyncio's `sock_recv` returns bytes waiting without one, and the proxy, on
            # the same loop, would not close until the client had read the answer whole)
            await asyncio.sleep(0)
    return got


async def _read_to_end(sock: socket.socket) -> bytes:
    loop = asyncio.get_running_loop()
    got = b""
    async with asyncio.timeout(30):
        while piece := await loop.sock_recv(sock, 65536):  # failed before: ConnectionResetError part-way
            got += piece
    return got


def _body(reply: bytes) -> bytes:
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head[:200]
    return body


def _run(loop_name: str, main: Callable[[], Any]) -> None:
    loop = LOOPS[loop_name]()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


@pytest.mark.parametrize("loop_name", LOOPS)
def test_bytes_sent_after_the_drains_answer_do_not_cost_it(loop_name: str) -> None:
    async def main() -> None:
        served = Served()
        sock = await served.start()
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(sock, b"GET /held HTTP/1.1\r\nHost: x\r\n\r\n" + NEXT)
        await asyncio.wait_for(served.arrived.wait(), 10)
        conn = await served.connection()
        draining = loop.create_task(served.server.shutdown(20.0))  # SIGTERM: its answer says close
        await asyncio.sleep(0)
        served.release.set()
        got = await _read_until(sock, lambda: conn._task is not None and conn._task.done())
        await loop.sock_sendall(sock, NEXT)  # the client pipelines on, not yet reading the answer
        got += await _read_to_end(sock)
        sock.close()
        assert b"connection: close" in got.partition(b"\r\n\r\n")[0].lower()
        assert _body(got) == BIG
        await asyncio.wait_for(draining, 10)
        assert served.unserved == ["/next"]  # the one pipelined behind it, read before its answer: the drain's cut
        served.listening.close()

    _run(loop_name, main)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_head_late_behind_an_answer_not_yet_read_does_not_cost_that_answer(loop_name: str) -> None:
    async def main() -> None:
        served = Served(Limits(header_timeout_s=0.3, idle_timeout_s=30.0))
        sock = await served.start()
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(sock, b"GET /big HTTP/1.1\r\nHost: x\r\n\r\nGET /late HTTP/1.1\r\nHo")
        conn = await served.connection()
        transport = conn.transport
        assert transport is not None
        # the header timeout closes it (before, outright; now it lingers: `is_closing` only once that ends)
        got = await _read_until(sock, lambda: transport.is_closing() or conn._lingering is not None)
        await loop.sock_sendall(sock, b"st: x\r\n\r\n")  # the rest of the head, late
        got += await _read_to_end(sock)
        sock.close()
        assert _body(got) == BIG
        assert served.unserved == []
        await served.stop()

    _run(loop_name, main)


@pytest.mark.parametrize("loop_name", LOOPS)
@pytest.mark.parametrize("by", ["idle-timeout", "drain"])
def test_an_idle_connection_closes_outright_and_its_last_answer_is_read_whole(loop_name: str, by: str) -> None:
    """Holds before and after: nothing came since its last answer, so its close resets nothing."""

    async def main() -> None:
        served = Served(Limits(idle_timeout_s=0.3, header_timeout_s=0.3) if by == "idle-timeout" else None)
        sock = await served.start()
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(sock, b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        conn = await served.connection()
        transport = conn.transport
        assert transport is not None
        draining = None
        if by == "drain":
            got = await _read_until(sock, lambda: conn.serving is None)  # waiting for its next request
            draining = loop.create_task(served.server.shutdown(20.0))
            got += await _read_until(sock, transport.is_closing)
        else:
            got = await _read_until(sock, transport.is_closing)
        assert conn._lingering is None  # closed outright
        got += await _read_to_end(sock)
        sock.close()
        assert _body(got) == BIG
        if draining is not None:
            await asyncio.wait_for(draining, 10)
            served.listening.close()
        else:
            await served.stop()

    _run(loop_name, main)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_client_that_closes_at_once_ends_the_lingering_at_once(loop_name: str) -> None:
    """The lingering ends when the client closes, not LINGER_S later: a client that reads the drain's answer and closes
    (as every HTTP client does after `Connection: close`) does not hold the connection, nor the drain."""

    async def main() -> None:
        served = Served()
        sock = await served.start()
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(sock, b"GET /held HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.wait_for(served.arrived.wait(), 10)
        conn = await served.connection()
        draining = loop.create_task(served.server.shutdown(20.0))  # SIGTERM: its answer says close
        await asyncio.sleep(0)
        served.release.set()
        assert _body(await _read_to_end(sock)) == BIG
        assert conn._lingering is not None  # (its writing side shut: the client read to its end)
        started = loop.time()
        sock.close()
        await asyncio.wait_for(conn.closed, 5)
        assert loop.time() - started < LINGER_S / 2
        await asyncio.wait_for(draining, 10)
        served.listening.close()

    _run(loop_name, main)


def test_the_openai_sdk_closing_after_its_answer_ends_the_lingering_at_once(  # type: ignore[no-untyped-def]
    vllm, make_proxy, loop_thread: LoopThread
) -> None:
    """Through the proxy: the openai SDK asking `Connection: close` gets its answer, closes, and the connection is gone
    at once, not LINGER_S later (it closes outright with that answer); one kept alive closes outright at the drain."""
    proxy = make_proxy(CONFIG, UPSTREAM=vllm[1], PROTOCOL="openai")

    def connections() -> list[HttpConnection]:
        return on_loop(loop_thread, lambda: [c for s in proxy.process._servers for c in s.connections])  # type: ignore[no-any-return]

    with openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="k", max_retries=0,
                       default_headers={"Connection": "close"}) as client:  # fmt: skip
        reply = client.chat.completions.create(model=SERVED, messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content
        started = time.monotonic()
        _until(lambda: not connections(), "the connection closed")
        assert time.monotonic() - started < LINGER_S / 2
    with openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="k", max_retries=0) as client:
        client.chat.completions.create(model=SERVED, messages=[{"role": "user", "content": "hi"}])
        (conn,) = connections()
        started = time.monotonic()
        loop_thread.run(proxy.process.stop())  # the drain: an idle connection, closed outright
        assert conn._lingering is None and conn.lost
        assert time.monotonic() - started < LINGER_S


@pytest.mark.parametrize("loop_name", LOOPS)
@pytest.mark.parametrize("drain", ["at-once", "after-the-rest"])
def test_a_head_late_behind_an_answer_is_not_recorded_when_the_drain_comes_while_it_lingers(
    loop_name: str, drain: str
) -> None:
    """A head whose header timeout passed is no call (nothing of it recorded: the connection closed on a client too
    slow), whether the connection closed outright (before 2026-12-07) or lingers: a SIGTERM drain that comes while it
    lingers, the rest of that head come or not, does not record it `drain_timeout`, a head the drain cut (review
    revwire12: it did, from the drain's `shutdown` and its end, and counted it in `heads_cut`)."""

    async def main() -> None:
        served = Served(Limits(header_timeout_s=0.3, idle_timeout_s=30.0))
        sock = await served.start()
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(sock, b"GET /big HTTP/1.1\r\nHost: x\r\n\r\nGET /late HTTP/1.1\r\nHo")
        conn = await served.connection()
        transport = conn.transport
        assert transport is not None
        # read until the header timeout passed (the rest of the answer unread: the proxy holds its tail)
        got = await _read_until(sock, lambda: transport.is_closing() or conn._lingering is not None)
        if drain == "after-the-rest":
            await loop.sock_sendall(sock, b"st: x\r\n\r\n")
        draining = loop.create_task(served.server.shutdown(0.2 if drain == "at-once" else 20.0))
        await asyncio.sleep(0.3)  # (at-once: the drain's time ends while the client has not read the answer)
        if drain == "after-the-rest":
            got += await _read_to_end(sock)
            assert _body(got) == BIG
        sock.close()
        await asyncio.wait_for(draining, 10)
        assert served.unserved == []
        assert served.server.heads_cut == 0
        served.listening.close()

    _run(loop_name, main)


@pytest.mark.parametrize("loop_name", LOOPS)
@pytest.mark.parametrize("version", ["connection-close", "http-1.0"])
def test_clients_that_close_after_each_answer_are_not_refused_at_the_connection_cap(
    loop_name: str, version: str
) -> None:
    """A client that sends no more after a request that closes its connection (RFC 9112 §9.6: it MUST NOT), reads the
    answer and closes, then connects again, as curl, health checks and ApacheBench do, 4 such clients at once, are
    never over limits.max_connections (here 4): each connection closes outright with its answer, its slot given back at
    once. Review revwire12: while each such connection lingered for the client's FIN (h-wire12), the next one came
    before it, and got 503 (88 of 2,800 calls with 4 clients at a cap of 4; 1,060 of 3,300 with 8)."""

    async def main() -> None:
        async def handler(request: Request, conn: HttpConnection) -> None:
            conn.reply(request, 200, b"text/plain", b"x" * 2000)

        server = HttpServer(handler, Limits(max_connections=4), None, None)
        listening = socket.create_server(("127.0.0.1", 0))
        listening.setblocking(False)
        await server.start(listening)
        address = listening.getsockname()
        request = (
            b"GET / HTTP/1.0\r\n\r\n"
            if version == "http-1.0"
            else b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )

        def client() -> list[bytes]:
            statuses = []
            for _ in range(150):
                with socket.create_connection(address, timeout=10) as sock:
                    sock.sendall(request)
                    got = b""
                    while piece := sock.recv(65536):
                        got += piece
                    statuses.append(got[9:12])
            return statuses

        loop = asyncio.get_running_loop()
        every = await asyncio.gather(*(loop.run_in_executor(None, client) for _ in range(4)))
        statuses = [status for some in every for status in some]
        assert statuses == [b"200"] * 600, statuses.count(b"503")
        assert server.refused == 0
        await server.shutdown(1.0)
        listening.close()

    _run(loop_name, main)

"""A client that leaves while the connection's reading is paused behind PIPELINE_DEPTH requests queued unserved (a
call held upstream, a deep pipeline behind it) is heard of by the server's sweep, from its socket's TCP state: the
call being served is cancelled (and so its upstream's), those queued recorded unserved, within a sweep. Before
2026-12-07 its FIN (or reset), behind the bytes not read, was not heard of until the queue drained: the held call ran
on for a client gone. Closing, resetting or half-closing (a FIN is a client's leaving, README); on both event loops,
with real sockets."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Callable

import pytest
import uvloop

from proxy.config import Limits
from proxy.ingress.wire import PIPELINE_DEPTH, HttpConnection, HttpServer, Request
from proxy.logs import ACCESS
from tests.harness import LoopThread, serving
from tests.ingress.test_wire import CONFIG, Origin, _until, connect, get, on_loop, only_connection

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.SelectorEventLoop,
    "uvloop": uvloop.Loop,
}
HELD = b"GET /held HTTP/1.1\r\nHost: x\r\n\r\n"
BEHIND = b"GET /behind HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize("loop_name", LOOPS)
@pytest.mark.parametrize("how", ["close", "reset", "half-close"])
def test_a_client_leaving_while_reading_is_paused_behind_a_deep_pipeline_is_heard_of(loop_name: str, how: str) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        arrived = asyncio.Event()
        cancelled = asyncio.Event()
        unserved: list[str] = []

        async def handler(request: Request, conn: HttpConnection) -> None:
            if request.path == "/held":  # an upstream call that does not end before its client leaves
                arrived.set()
                try:
                    await asyncio.Event().wait()
                except asyncio.CancelledError:
                    cancelled.set()
                    raise
            conn.reply(request, 200, b"text/plain", b"ok")

        def record_unserved(request: Request, conn: HttpConnection, whole: bool) -> None:
            unserved.append(request.path)

        # the sweep every 0.25 s (a quarter of the shortest timeout); no timeout ends the held call
        server = HttpServer(handler, Limits(idle_timeout_s=1.0, header_timeout_s=1.0), None, record_unserved)
        listening = socket.create_server(("127.0.0.1", 0))
        listening.setblocking(False)
        await server.start(listening)
        sock = socket.socket()
        sock.setblocking(False)
        await loop.sock_connect(sock, listening.getsockname())
        await loop.sock_sendall(sock, HELD + BEHIND * (PIPELINE_DEPTH + 2))
        await asyncio.wait_for(arrived.wait(), 10)
        (conn,) = server.connections
        async with asyncio.timeout(10):
            while conn._reading:  # paused: PIPELINE_DEPTH or more queued behind the held call
                await asyncio.sleep(0.01)
        # more bytes, left unread in the socket behind those: the client's leaving comes after them
        await loop.sock_sendall(sock, BEHIND * 4)
        if how == "half-close":
            sock.shutdown(socket.SHUT_WR)
        elif how == "reset":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        if how != "half-close":
            sock.close()
        await asyncio.wait_for(cancelled.wait(), 5)  # failed before: TimeoutError (the held call ran on)
        await asyncio.wait_for(conn.closed, 5)
        sock.close()
        assert unserved == ["/behind"] * (PIPELINE_DEPTH + 2)  # those queued, each recorded: its client left
        assert server.held == 0
        await server.shutdown(1.0)
        listening.close()

    loop = LOOPS[loop_name]()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


def test_through_the_proxy_the_held_call_is_cancelled_and_each_queued_one_recorded_client_disconnected(  # type: ignore[no-untyped-def]
    make_proxy, loop_thread: LoopThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)
    server = Origin()
    with serving(loop_thread, server.app()) as url:
        proxy = make_proxy(CONFIG + "logging: {access: true}\n", UPSTREAM=url)
        assert server.arrived is not None and server.cancelled is not None
        sock = connect(proxy)
        sock.sendall(get("/never", "X-Test: 0") + b"".join(get("/p", f"X-Test: {n}") for n in range(1, 11)))
        loop_thread.run(asyncio.wait_for(server.arrived.wait(), 5))
        conn = on_loop(loop_thread, lambda: only_connection(proxy))
        _until(lambda: not on_loop(loop_thread, lambda: conn._reading), "reading paused behind the pipeline")
        sock.sendall(get("/p", "X-Test: 11"))  # left unread in the socket, the FIN behind it
        sock.close()
        loop_thread.run(asyncio.wait_for(server.cancelled.wait(), 5))  # failed before: TimeoutError
        _until(lambda: on_loop(loop_thread, lambda: conn.lost), "the connection ends")
        loop_thread.run(proxy.process.runtime.sinks.flush())
    lines = [r for r in caplog.records if r.name == ACCESS]
    assert [(line.code, line.status) for line in lines] == [("client_disconnected", 0)] * 11
    assert [r[1] for r in server.marked()] == ["/never"]

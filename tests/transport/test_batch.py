"""The writes of one turn of the loop, sent together at its end while several calls are in flight
(`proxy.transport.batch`): what each connection's peer gets, and in which order, is what it got when every
write went out at once; with one call in flight a write still does."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import uvloop

from proxy.config.model import Limits
from proxy.flow import ALLOW, Call, Decision, Outcome, TraceContext
from proxy.ingress.wire import HttpConnection, HttpServer, Request
from proxy.record.sinks import FanOut
from proxy.transport.batch import BATCH_FROM, Outbox, outbox
from proxy.transport.connection import Connection
from tests.harness import FakeTransport

LOOPS = [pytest.param(asyncio.new_event_loop, id="asyncio"), pytest.param(uvloop.new_event_loop, id="uvloop")]


class Transport(FakeTransport):
    """A fake transport that refuses a write once closed, as a socket's does (uvloop raises)."""

    def write(self, data: bytes) -> None:
        if self.closed:
            raise RuntimeError("write after close")
        super().write(data)


def run(new_loop: Callable[[], asyncio.AbstractEventLoop], main: Callable[[], Awaitable[None]]) -> None:
    loop = new_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


def turn_end() -> Awaitable[None]:
    """Resumes once the callbacks scheduled before it (the outbox's turn end among them) have run."""
    return asyncio.sleep(0)


@contextlib.contextmanager
def others_in_flight() -> Iterator[Outbox]:
    """Other calls in flight on the running loop (its Outbox's count), for the length of the block."""
    box = outbox(asyncio.get_running_loop())
    box.busy += BATCH_FROM
    try:
        yield box
    finally:
        box.busy -= BATCH_FROM


def busy_outbox(errors: list[dict[str, Any]] | None = None) -> Outbox:
    """A new Outbox on the running loop, with several calls in flight; what the loop is told of failures kept in
    `errors`."""
    loop = asyncio.get_running_loop()
    if errors is not None:
        loop.set_exception_handler(lambda _, context: errors.append(context))
    box = Outbox(loop)
    box.busy = BATCH_FROM
    return box


@pytest.mark.parametrize("new_loop", LOOPS)
def test_with_several_calls_in_flight_the_writes_of_a_turn_go_out_at_its_end_each_connection_in_order(
    new_loop: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    async def main() -> None:
        box = busy_outbox()
        one, two = Transport(), Transport()
        box.write(one, b"a")  # type: ignore[arg-type]
        box.write(two, b"b")  # type: ignore[arg-type]
        box.write(one, b"c")  # type: ignore[arg-type]
        assert one.written == [] and two.written == []
        await turn_end()
        assert one.written == [b"a", b"c"] and two.written == [b"b"]

    run(new_loop, main)


@pytest.mark.parametrize("busy", [0, 1])
def test_with_one_call_in_flight_a_write_goes_out_at_once(busy: int) -> None:
    async def main() -> None:
        box = Outbox(asyncio.get_running_loop())
        box.busy = busy
        transport = Transport()
        box.write(transport, b"a")  # type: ignore[arg-type]
        assert transport.written == [b"a"]

    run(uvloop.new_event_loop, main)


def test_a_write_waiting_when_the_calls_drop_to_one_keeps_the_next_behind_it() -> None:
    async def main() -> None:
        box = busy_outbox()
        transport = Transport()
        box.write(transport, b"first")  # type: ignore[arg-type]
        box.busy = 1
        box.write(transport, b"second")  # type: ignore[arg-type]  # not before the first
        assert transport.written == []
        await turn_end()
        assert transport.written == [b"first", b"second"]

    run(uvloop.new_event_loop, main)


def test_a_write_to_a_transport_closed_while_it_waited_is_dropped_and_the_others_go_out() -> None:
    async def main() -> None:
        box = busy_outbox()
        gone, kept = Transport(), Transport()
        box.write(gone, b"a")  # type: ignore[arg-type]
        box.write(kept, b"b")  # type: ignore[arg-type]
        gone.abort()
        await turn_end()
        assert gone.written == [] and kept.written == [b"b"]

    run(uvloop.new_event_loop, main)


def test_work_after_the_writes_runs_once_they_are_sent_and_one_failing_stops_no_other() -> None:
    seen: list[tuple[str, list[bytes]]] = []
    errors: list[dict[str, Any]] = []

    async def main() -> None:
        box = busy_outbox(errors)
        transport = Transport()

        def failing() -> None:
            raise ValueError("a sink's defect")

        box.after_writes(lambda: seen.append(("first", list(transport.written))))
        box.after_writes(failing)
        box.write(transport, b"reply")  # type: ignore[arg-type]  # written after the work was asked for
        box.after_writes(lambda: seen.append(("last", list(transport.written))))
        await turn_end()

    run(uvloop.new_event_loop, main)
    assert seen == [("first", [b"reply"]), ("last", [b"reply"])]
    assert [type(context["exception"]) for context in errors] == [ValueError]


def test_one_outbox_a_loop_and_those_of_closed_loops_are_let_go() -> None:
    first = uvloop.new_event_loop()
    box = outbox(first)
    assert outbox(first) is box and box.loop is first
    first.close()
    second = uvloop.new_event_loop()
    try:
        assert outbox(second) is not box
        import proxy.transport.batch as batch

        assert first not in batch._OUTBOXES
    finally:
        second.close()


# -- through the connections that write

HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n%s\r\n{}"


def test_the_ingress_counts_its_calls_in_flight_and_their_replies_go_out_together() -> None:
    """Two connections, each serving a call: the replies written in one turn reach the clients at its
    end, each whole; the count goes back to none as the calls end."""
    replied: list[str] = []
    release: list[asyncio.Future[None]] = []

    async def handler(request: Request, conn: HttpConnection) -> None:
        waiter = asyncio.get_running_loop().create_future()
        release.append(waiter)
        await waiter
        conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        replied.append(request.target)

    async def main() -> None:
        server = HttpServer(handler, Limits())  # type: ignore[arg-type]
        box = outbox(asyncio.get_running_loop())
        clients = [Transport(), Transport()]
        conns = [server(), server()]
        for conn, transport in zip(conns, clients, strict=True):
            conn.connection_made(transport)  # type: ignore[arg-type]
            conn.data_received(HEAD % b"")
        while len(release) < 2:
            await asyncio.sleep(0)
        assert box.busy == 2
        for waiter in release:
            waiter.set_result(None)
        # the handlers resume in this order before this test does (the loop's callbacks run in order), and the
        # outbox's turn end, scheduled by the first write, after it
        while len(replied) < 2:
            await asyncio.sleep(0)
        assert [t.written for t in clients] == [[], []]  # written in this turn: sent at its end
        await turn_end()
        assert [t.written for t in clients] == [[b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]] * 2
        while box.busy:
            await asyncio.sleep(0)
        for conn in conns:
            conn.connection_lost(None)

    run(uvloop.new_event_loop, main)


def test_a_connection_closing_sends_what_waits_for_the_turn_end_before_it_closes() -> None:
    async def handler(request: Request, conn: HttpConnection) -> None:
        conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

    async def main() -> None:
        server = HttpServer(handler, Limits())  # type: ignore[arg-type]
        box = outbox(asyncio.get_running_loop())
        box.busy += BATCH_FROM  # other calls in flight: this reply waits for the turn's end
        try:
            transport = Transport()
            conn = server()
            conn.connection_made(transport)  # type: ignore[arg-type]
            conn.data_received(HEAD % b"Connection: close\r\n")
            assert conn._task is not None
            await asyncio.wait_for(conn._task, 5)  # the connection serves the request, then closes
            assert transport.closed
            assert transport.written == [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"]
        finally:
            box.busy -= BATCH_FROM

    run(uvloop.new_event_loop, main)


def test_an_upstream_request_written_in_a_busy_turn_goes_out_whole_at_its_end() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        with others_in_flight():
            transport = Transport()
            conn = Connection(loop)
            conn.connection_made(transport)  # type: ignore[arg-type]
            conn.send("POST", b"POST / HTTP/1.1\r\nHost: u\r\n\r\n", b"{}")
            large = b"x" * 70_000
            assert transport.written == []
            await turn_end()
            assert transport.written == [b"POST / HTTP/1.1\r\nHost: u\r\n\r\n{}"]
            conn.parser.start("POST")
            conn.send("POST", b"head", large)
            await turn_end()
            assert transport.written[1:] == [b"head", large]

    run(uvloop.new_event_loop, main)


class Sink:
    """A deferred sink that keeps what the client's transport held when it ran."""

    name = "seen"
    durable = False

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.saw: list[list[bytes]] = []

    def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def on_end(self, call: Call, decision: Decision, outcome: Outcome, output_labels: frozenset[str]) -> None:
        self.saw.append(list(self.transport.written))


def test_the_deferred_record_work_of_a_busy_turn_runs_once_its_replies_are_sent() -> None:
    async def main() -> None:
        with others_in_flight() as box:
            transport = Transport()
            sink = Sink(transport)
            sinks = FanOut([sink])  # type: ignore[list-item]
            call = Call("openai", "chat", "m", TraceContext(trace_id=1, span_id=2))
            # the call ends, then its reply is written
            sinks.on_end(call, Decision(ALLOW, None), Outcome(started_ns=1), frozenset())
            box.write(transport, b"reply")  # type: ignore[arg-type]
            await turn_end()
            assert sink.saw == [[b"reply"]]

    run(uvloop.new_event_loop, main)


def test_a_connection_cut_mid_reply_hands_what_was_written_before_to_the_socket_first() -> None:
    """As when each write went out at once: the client has the part of a stream sent before the upstream failed."""

    async def main() -> None:
        server = HttpServer(_never, Limits())  # type: ignore[arg-type]
        with others_in_flight():
            transport = Transport()
            conn = server()
            conn.connection_made(transport)  # type: ignore[arg-type]
            conn.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
            conn.abort()
            assert transport.written == [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"]
            assert transport.closed

    run(uvloop.new_event_loop, main)


async def _never(request: Request, conn: HttpConnection) -> None:
    raise AssertionError("no request is read")


class Shut(Transport):
    """A transport whose writing side was shut (asyncio raises on a write after `write_eof`)."""

    def write(self, data: bytes) -> None:
        raise RuntimeError("Cannot call write() after write_eof()")


def test_a_write_that_fails_at_the_turn_end_costs_no_other_write_its_bytes_nor_the_work_after_them() -> None:
    ran: list[str] = []
    errors: list[dict[str, Any]] = []

    async def main() -> None:
        box = busy_outbox(errors)
        shut, kept = Shut(), Transport()
        box.write(shut, b"late")  # type: ignore[arg-type]
        box.write(kept, b"reply")  # type: ignore[arg-type]
        box.after_writes(lambda: ran.append("record"))
        await turn_end()
        assert kept.written == [b"reply"]
        box.busy = 0  # the turn end is scheduled again when asked: nothing was left half done
        box.after_writes(lambda: ran.append("next"))
        await turn_end()

    run(uvloop.new_event_loop, main)
    assert ran == ["record", "next"]
    assert [type(context["exception"]) for context in errors] == [RuntimeError]


REPLY = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def test_a_connection_the_sweep_closes_in_the_turn_of_a_reply_sends_the_reply_first() -> None:
    """A pipelining client whose next head stalls: its header timeout runs from that head's first byte, so the
    sweep may close the connection in the very turn the reply before it is written."""
    release: list[asyncio.Future[None]] = []

    async def handler(request: Request, conn: HttpConnection) -> None:
        waiter = asyncio.get_running_loop().create_future()
        release.append(waiter)
        await waiter
        conn.write(REPLY)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        clock = [0.0]
        server = HttpServer(handler, Limits())  # type: ignore[arg-type]
        server.now = lambda: clock[0]  # type: ignore[method-assign]
        with others_in_flight():
            transport = Transport()
            conn = server()
            conn.connection_made(transport)  # type: ignore[arg-type]
            conn.data_received(HEAD % b"" + b"POST /b HTTP/1.1\r\nHost: x\r\n")  # the second head left open
            while not release:
                await asyncio.sleep(0)
            clock[0] = 100.0  # past the open head's header timeout
            release[0].set_result(None)
            loop.call_soon(conn.expire, clock[0])  # the sweep, in the turn the handler writes its reply (after it)
            await turn_end()
            assert transport.closed and transport.written == [REPLY]
            conn.connection_lost(None)  # as the closed socket's transport says

    run(uvloop.new_event_loop, main)


class Full(Transport):
    """A transport whose buffer is over its high-water mark from the first write on: the client reads nothing."""

    protocol: HttpConnection

    def write(self, data: bytes) -> None:
        super().write(data)
        self.protocol.pause_writing()


def test_a_pipelining_client_that_reads_nothing_gets_no_more_replies_buffered_in_a_busy_turn() -> None:
    served: list[str] = []

    async def handler(request: Request, conn: HttpConnection) -> None:
        served.append(request.target)
        conn.write(REPLY)

    async def main() -> None:
        server = HttpServer(handler, Limits())  # type: ignore[arg-type]
        with others_in_flight():
            transport = Full()
            conn = server()
            transport.protocol = conn
            conn.connection_made(transport)  # type: ignore[arg-type]
            conn.data_received(b"".join(b"POST /%d HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}" % n
                                        for n in (1, 2, 3)))  # fmt: skip
            while not served or conn._drained is None:  # until the first reply is sent and its drain awaited
                await asyncio.sleep(0)
            assert served == ["/1"]
            conn.connection_lost(None)

    run(uvloop.new_event_loop, main)


def test_an_upstream_request_waiting_when_its_connection_dies_is_dropped_and_its_wait_ends() -> None:
    """A dead upstream in a busy turn: the request is not written to the closed socket, and the call waiting for its
    reply wakes to the connection's loss (the pool then fails or retries it) instead of waiting out its timeout."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        with others_in_flight():
            transport = Transport()
            conn = Connection(loop)
            conn.connection_made(transport)  # type: ignore[arg-type]
            conn.send("POST", b"POST / HTTP/1.1\r\nHost: u\r\n\r\n", b"{}")
            waiter = conn.wait(60.0)
            transport.abort()
            conn.connection_lost(ConnectionResetError("reset by the upstream"))
            await asyncio.wait_for(waiter, 5)
            await turn_end()
            assert transport.written == []
            assert isinstance(conn.lost, ConnectionResetError)

    run(uvloop.new_event_loop, main)


def test_the_bytes_a_connection_has_waiting_for_the_turn_end_count_as_unsent() -> None:
    """The SIGTERM drain waits while a connection has bytes unsent: those waiting in the outbox are."""

    class Buffered(Transport):
        def get_write_buffer_size(self) -> int:
            return 0  # the socket took all it was given

    async def handler(request: Request, conn: HttpConnection) -> None:
        pass

    async def main() -> None:
        server = HttpServer(handler, Limits())  # type: ignore[arg-type]
        transport, other = Buffered(), Buffered()
        conn = server()
        conn.connection_made(transport)  # type: ignore[arg-type]
        with others_in_flight() as box:
            box.write(other, b"another connection's")  # type: ignore[arg-type]
            conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            assert transport.written == [] and conn.unsent() == 40
            await turn_end()
            assert transport.written == [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"] and conn.unsent() == 0
        conn.abort()
        assert conn.unsent() == 0

    run(uvloop.new_event_loop, main)

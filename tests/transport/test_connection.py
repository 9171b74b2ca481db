"""One upstream connection driven through asyncio's Protocol calls with a recording transport, no socket."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from proxy.transport import UpstreamClosed, UpstreamProtocolError
from proxy.transport.connection import HIGH_WATER, Connection


class RecordingTransport:
    """Stands in for the socket's transport: records what the connection asks of it."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def writelines(self, lines: tuple[bytes, ...]) -> None:
        self.written.extend(lines)

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")

    def abort(self) -> None:
        self.calls.append("abort")


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def connected(loop: asyncio.AbstractEventLoop) -> tuple[Connection, RecordingTransport]:
    conn = Connection(loop)
    transport = RecordingTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport


def test_a_request_is_one_write_and_a_large_body_is_not_copied_into_it(loop: asyncio.AbstractEventLoop) -> None:
    conn, transport = connected(loop)
    conn.send("POST", b"POST / HTTP/1.1\r\n\r\n", b"{}")
    assert transport.written == [b"POST / HTTP/1.1\r\n\r\n{}"]
    big = b"x" * 65536
    conn.send("POST", b"head", big)
    assert transport.written[1:] == [b"head", big] and transport.written[2] is big


def test_reading_pauses_above_the_high_water_mark_until_the_body_is_taken(loop: asyncio.AbstractEventLoop) -> None:
    conn, transport = connected(loop)
    conn.send("GET", b"", b"")
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (4 * HIGH_WATER))
    block = b"x" * (HIGH_WATER // 2)
    conn.data_received(block)
    conn.data_received(block)
    assert transport.calls == []  # at the mark, not above it
    conn.data_received(b"x")
    conn.data_received(b"x")
    assert transport.calls == ["pause"]  # once
    assert len(conn.take()) == HIGH_WATER + 2 and transport.calls == ["pause", "resume"]
    conn.data_received(block)
    conn.take()
    assert transport.calls == ["pause", "resume"]  # not paused, so not resumed


def test_a_protocol_error_aborts_the_connection(loop: asyncio.AbstractEventLoop) -> None:
    conn, transport = connected(loop)
    conn.send("GET", b"", b"")
    conn.data_received(b"SSH-2.0-OpenSSH\r\n\r\n")
    assert isinstance(conn.lost, UpstreamProtocolError) and transport.calls == ["abort"]
    assert not conn.parser.keep_alive and conn.received
    conn.connection_lost(None)  # what the abort leads to: the protocol error stays the reason
    assert isinstance(conn.lost, UpstreamProtocolError)


def test_the_end_of_the_connection_ends_a_close_delimited_reply_only(loop: asyncio.AbstractEventLoop) -> None:
    conn, _ = connected(loop)
    conn.send("GET", b"", b"")
    conn.data_received(b"HTTP/1.0 200 OK\r\n\r\nall of it")
    conn.connection_lost(None)
    assert conn.parser.done and conn.take() == b"all of it" and isinstance(conn.lost, UpstreamClosed)

    conn, _ = connected(loop)
    conn.send("GET", b"", b"")
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart")
    conn.connection_lost(None)
    assert not conn.parser.done and str(conn.lost) == "the upstream closed the connection"

    conn, _ = connected(loop)
    conn.send("GET", b"", b"")
    conn.data_received(b"HTTP/1.0 200 OK\r\n\r\nall of it")
    reset = ConnectionResetError()
    conn.connection_lost(reset)  # a reset is not a clean end, even without a length
    assert not conn.parser.done and conn.lost is reset


def test_each_request_starts_a_new_reply(loop: asyncio.AbstractEventLoop) -> None:
    conn, _ = connected(loop)
    conn.send("HEAD", b"", b"")
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n")
    assert conn.parser.done and conn.received
    conn.send("GET", b"", b"")
    assert conn.parser.head is None and not conn.received
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert conn.take() == b"ok"


def test_wait_wakes_on_data_and_on_the_end_and_times_out_without(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        conn, _ = connected(loop)
        conn.send("GET", b"", b"")
        loop.call_soon(conn.data_received, b"HTTP/1.1 200 OK\r\n\r\n")
        await conn.wait(5.0)
        assert conn.parser.head is not None
        with pytest.raises(TimeoutError):
            await conn.wait(0.01)
        loop.call_soon(conn.connection_lost, None)
        await conn.wait(5.0)
        assert conn.parser.done

    loop.run_until_complete(main())

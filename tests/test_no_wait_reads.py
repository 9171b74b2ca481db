"""A request body and an upstream reply already whole are taken without a wait (`Request.received`,
`Response.complete`): what they give, and what they leave (the connection back in its pool or not), is what
the waiting reads (`HttpConnection.body`, `Response.read`) give and leave, however the bytes were split."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.config import Upstream
from proxy.config.model import Limits
from proxy.errors import InvalidRequest, RequestTooLarge
from proxy.ingress.wire import HttpServer, Request
from proxy.transport.connection import Connection
from proxy.transport.pool import ConnectionPool, Response
from tests.harness import FakeTransport


async def unserved(request: object, conn: object) -> None:
    raise AssertionError("the test reads the request itself")


BODY = b'{"model":"m","messages":[{"role":"user","content":"' + b"x" * 300 + b'"}]}'
SIZED = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
CHUNKED = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"".join(b"%x\r\n%s\r\n" % (len(BODY[i : i + 7]), BODY[i : i + 7]) for i in range(0, len(BODY), 7))
    + b"0\r\n\r\n"
)
BAD_CHUNK = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab\r\nzz\r\n"


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True) if b > a]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([SIZED, CHUNKED]), st.lists(st.integers(min_value=0), max_size=6))
def test_a_body_is_received_once_whole_and_as_the_waiting_read_gives_it(data: bytes, cuts: list[int]) -> None:
    async def main() -> None:
        server = HttpServer(unserved, Limits())  # type: ignore[arg-type]
        conn = server()
        conn.connection_made(FakeTransport())  # type: ignore[arg-type]
        for piece in _split(data, cuts):
            conn.data_received(piece)
            request = conn.serving or (conn.queue[0] if conn.queue else None)
            if isinstance(request, Request):
                taken = request.received()
                assert (taken is not None) == request.complete
        request = conn.queue[0]
        assert isinstance(request, Request) and request.complete
        taken = request.received()
        assert taken == BODY and type(taken) is bytes
        assert await conn.body(request) == taken
        conn.connection_lost(None)
        if conn._task is not None:
            conn._task.cancel()

    asyncio.run(main())


@pytest.mark.parametrize(("data", "limits", "error"), [
    (SIZED, Limits(max_body_bytes=100), RequestTooLarge),  # refused from its Content-Length
    (CHUNKED, Limits(max_body_bytes=100), RequestTooLarge),  # refused as it came
    (BAD_CHUNK, Limits(), InvalidRequest),  # malformed framing
])  # fmt: skip
def test_a_refused_body_is_not_received_and_the_waiting_read_raises_what_refused_it(
    data: bytes, limits: Limits, error: type[Exception]
) -> None:
    async def main() -> None:
        server = HttpServer(unserved, limits)  # type: ignore[arg-type]
        conn = server()
        conn.connection_made(FakeTransport())  # type: ignore[arg-type]
        conn.data_received(data)
        request = conn.queue[0]
        assert isinstance(request, Request)
        assert request.received() is None
        with pytest.raises(error):
            await conn.body(request)
        conn.connection_lost(None)
        if conn._task is not None:
            conn._task.cancel()

    asyncio.run(main())


REPLY_BODY = b'{"id":"1","choices":[]}'
REPLIES = [
    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(REPLY_BODY), REPLY_BODY),
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n"
    % (REPLY_BODY[:5], len(REPLY_BODY) - 5, REPLY_BODY[5:]),
    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(REPLY_BODY), REPLY_BODY),
    b"HTTP/1.1 204 No Content\r\n\r\n",
]


def _replied(loop: asyncio.AbstractEventLoop, data: bytes, cuts: list[int]) -> tuple[ConnectionPool, Response]:
    pool = ConnectionPool(Upstream(name="up", protocol="openai", url="http://127.0.0.1:9"))
    pool.open = 1
    conn = Connection(loop)
    conn.connection_made(FakeTransport())  # type: ignore[arg-type]
    conn.send("POST", b"POST / HTTP/1.1\r\n\r\n", b"{}")
    pieces = _split(data, cuts)
    end = data.index(b"\r\n\r\n") + 4
    fed = 0
    for piece in pieces:  # up to the piece that completes the head
        conn.data_received(piece)
        fed += len(piece)
        if fed >= end:
            break
    resp = Response(pool, conn)
    rest = data[fed:]
    return pool, resp if not rest else _more(resp, conn, rest)


def _more(resp: Response, conn: Connection, rest: bytes) -> Response:
    assert resp.complete() is None  # more to come: nothing taken, the connection still the reply's
    assert resp._conn is conn and not conn.idle
    conn.data_received(rest)
    return resp


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(REPLIES), st.lists(st.integers(min_value=0), max_size=4))
def test_a_complete_reply_is_taken_as_read_takes_it(data: bytes, cuts: list[int]) -> None:
    loop = asyncio.new_event_loop()
    try:
        pool_a, taken_by_complete = _replied(loop, data, cuts)
        pool_b, taken_by_read = _replied(loop, data, cuts)
        body = taken_by_complete.complete()
        assert body is not None
        assert body == loop.run_until_complete(taken_by_read.read())
        assert body == (b"" if data.startswith(b"HTTP/1.1 204") else REPLY_BODY)
        # the connection given back (or dropped, when the upstream said close) as after `read`
        assert (len(pool_a.idle), pool_a.open) == (len(pool_b.idle), pool_b.open)
        assert len(pool_a.idle) == (0 if b"close" in data else 1)
        assert taken_by_complete._conn is None and taken_by_complete.complete() is None
    finally:
        loop.close()


def test_a_wait_left_by_its_caller_leaves_the_next_wait_woken_and_timed_as_before() -> None:
    """`Connection.wait` gives the future itself: one its caller left (cancelled) is never woken or failed
    again, and the waits after it wake on data and time out as they did."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        conn = Connection(loop)
        conn.connection_made(FakeTransport())  # type: ignore[arg-type]
        conn.send("GET", b"GET / HTTP/1.1\r\n\r\n", b"")
        conn.wait(5.0).cancel()  # as a task cancelled while awaiting it leaves it
        conn.data_received(b"HTTP/1.1 200 OK\r\n")  # woken no more: nothing raised
        with pytest.raises(TimeoutError):
            await conn.wait(0.01)
        loop.call_soon(conn.data_received, b"Content-Length: 2\r\n\r\nok")
        await conn.wait(5.0)
        assert conn.parser.done and conn.take() == b"ok"
        assert conn._waiter is None  # a woken wait is not kept
        conn.connection_lost(None)

    asyncio.run(main())

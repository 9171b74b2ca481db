"""A streamed reply read without a coroutine a wait (`Response.more`, the loop of
`HttpIngress._streamed_reply`) reads what `readany` read: the same bytes, the same end (the connection given
back or dropped) and the same failure (the upstream gone mid-reply, a malformed chunk, a stall past the
upstream's timeout), however the reply's bytes were split and whenever they came."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.config import Upstream
from proxy.transport.connection import Connection
from proxy.transport.pool import ConnectionPool, Response
from tests.harness import FakeTransport

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
EVENTS = [b'data: {"choices":[{"delta":{"content":"%d"}}]}\n\n' % i for i in range(6)]
BODY = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in EVENTS)
ENDS = {
    "whole": b"0\r\n\r\n",  # the connection back in its pool
    "lost": None,  # the upstream closes mid-reply
    "malformed": b"zz\r\n",  # not a chunk size
    "stalled": b"",  # nothing more: the upstream's timeout
}


async def by_readany(resp: Response) -> list[bytes]:
    got = []
    while chunk := resp.buffered() or await resp.readany():
        got.append(chunk)
    return got


async def by_more(resp: Response) -> list[bytes]:
    got = []
    chunk = resp.buffered()
    waiting = None if chunk else resp.more()
    while chunk or waiting is not None:
        if waiting is not None:
            await waiting
        else:
            got.append(chunk)
        chunk = resp.buffered()
        waiting = None if chunk else resp.more()
    return got


async def streamed(read: str, pieces: list[tuple[bytes, int]], end: str) -> tuple[bytes, str, int, int]:
    """The bytes read, the failure (its type and message), and the pool's idle and open connections after."""
    loop = asyncio.get_running_loop()
    pool = ConnectionPool(Upstream(name="up", protocol="openai", url="http://127.0.0.1:9", timeout_s=0.05))
    pool.open = 1
    conn = Connection(loop)
    conn.connection_made(FakeTransport())  # type: ignore[arg-type]
    conn.send("POST", b"POST / HTTP/1.1\r\n\r\n", b"{}")
    conn.data_received(HEAD)
    resp = Response(pool, conn)

    async def upstream() -> None:
        for piece, turns in pieces:
            for _ in range(turns):  # the reader's turns between two pieces: none, or it waits
                await asyncio.sleep(0)
            conn.data_received(piece)
        tail = ENDS[end]
        if tail is None:
            conn.connection_lost(None)
        elif tail:
            conn.data_received(tail)

    feeding = loop.create_task(upstream())
    failure = ""
    got: list[bytes] = []
    try:
        got = await (by_readany(resp) if read == "readany" else by_more(resp))
    except Exception as exc:
        failure = f"{type(exc).__name__}: {exc}"
    await feeding
    resp.release()
    return b"".join(got), failure, len(pool.idle), pool.open


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=len(BODY)), max_size=8),
    st.lists(st.integers(min_value=0, max_value=3), min_size=9, max_size=9),
    st.sampled_from(sorted(ENDS)),
)
def test_a_stream_read_by_its_waits_reads_as_readany_read_it(cuts: list[int], turns: list[int], end: str) -> None:
    points = sorted(set(cuts))
    pieces = [BODY[a:b] for a, b in zip([0, *points], [*points, len(BODY)], strict=True) if b > a]
    timed = list(zip(pieces, turns, strict=False))
    old = asyncio.run(streamed("readany", timed, end))
    new = asyncio.run(streamed("more", timed, end))
    assert new == old
    data, failure, idle, _ = new
    assert data == b"".join(EVENTS)[: len(data)]
    if end == "whole":
        assert (data, failure, idle) == (b"".join(EVENTS), "", 1)
    else:
        assert failure and idle == 0

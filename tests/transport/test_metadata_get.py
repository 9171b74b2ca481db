"""A metadata GET (`ConnectionPool.get`: checkpoint discovery, readiness) reads its reply alike on both of its
paths: on a pooled connection when the pool has room, on a connection of its own outside `max_connections`
("aside") when calls hold every one. Same framing, same errors, same timeouts; only what becomes of the
connection differs: a pooled one is kept when its reply ended cleanly, an aside one is closed after its
reply and cut when left before its end, never counted in the pool's budget, one at a time.

Each test holds the pool's one connection with a call whose reply the upstream leaves unfinished (`aside`),
or not (`pooled`). Synchronisation: the upstream says what it has read and when a connection ends; no sleeps.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import pytest

from proxy.config import Upstream
from proxy.transport import UpstreamClosed, UpstreamProtocolError
from proxy.transport.connection import HIGH_WATER
from proxy.transport.pool import ConnectionPool, UpstreamPool

WAIT_S = 10.0  # bound on every wait; each normally takes milliseconds
PATHS = ("pooled", "aside")


class MetadataUpstream:
    """Answers each GET with `reply` written piece by piece (then closes when `close`); a POST with a head
    whose body it leaves unfinished until `free`. It records the requests it read and the connections open
    at once at most (`peak`), and sets `ended` whenever a connection ends."""

    def __init__(self, reply: Sequence[bytes], close: bool = False, answer: asyncio.Event | None = None) -> None:
        self.reply = reply
        self.close = close
        self.answer = answer  # when given, GETs are answered only once it is set
        self.free = asyncio.Event()
        self.requests: list[bytes] = []
        self.read = asyncio.Event()  # set at each request read
        self.ended = asyncio.Event()  # set at each connection's end
        self.connections = 0
        self.live = 0
        self.peak = 0
        self.server: asyncio.Server | None = None
        self.url = ""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.live += 1
        self.peak = max(self.peak, self.live)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)  # fmt: skip
                self.requests.append(head + await reader.readexactly(length))
                self.read.set()
                if head.startswith(b"POST "):  # a call holding its connection: its reply's head, the rest on `free`
                    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                    await self.free.wait()
                    writer.write(b"0\r\n\r\n")
                    continue
                if self.answer is not None and not await self._answer_or_end(reader):
                    return
                for piece in self.reply:
                    writer.write(piece)
                    await writer.drain()
                if self.close:
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.live -= 1
            writer.close()
            self.ended.set()

    async def _answer_or_end(self, reader: asyncio.StreamReader) -> bool:
        """Until `answer` is set (True) or the client ends the connection (False)."""
        assert self.answer is not None
        answer, end = asyncio.ensure_future(self.answer.wait()), asyncio.ensure_future(reader.read(1))
        await asyncio.wait((answer, end), return_when=asyncio.FIRST_COMPLETED)
        answer.cancel()
        end.cancel()
        return self.answer.is_set() and not end.done()

    def gets(self) -> int:
        return sum(1 for r in self.requests if r.startswith(b"GET "))

    async def until(self, condition: Callable[[], object]) -> None:
        async with asyncio.timeout(WAIT_S):
            while not condition():
                self.read.clear()
                await self.read.wait()


def upstream(url: str, timeout_s: float = 30.0) -> Upstream:
    return Upstream(name="up", protocol="openai", url=url + "/prefix", max_connections=1, timeout_s=timeout_s)


@asynccontextmanager
async def pool_on(server: MetadataUpstream, path: str, timeout_s: float = 30.0) -> AsyncIterator[ConnectionPool]:
    """The upstream's pool, its one connection held by a call when `path` is "aside"."""
    server.server = await asyncio.start_server(server._serve, "127.0.0.1", 0)
    server.url = f"http://127.0.0.1:{server.server.sockets[0].getsockname()[1]}"
    pools = UpstreamPool()
    pool = pools.pool(upstream(server.url, timeout_s))
    call = None
    if path == "aside":  # a call whose reply the caller has not read yet: no timeout runs for it meanwhile
        call = await pool.request("POST", "/v1/chat/completions", [], b"{}")
        assert pool.open == 1 and not pool.idle  # full: the GET cannot take a pooled connection
    try:
        yield pool
    finally:
        server.free.set()
        if call is not None:
            call.release()
        await pools.close()
        server.server.close()


async def ended(server: MetadataUpstream, connections: int) -> None:
    """Until `connections` connections have ended at the upstream."""
    async with asyncio.timeout(WAIT_S):
        while server.connections - server.live < connections:
            server.ended.clear()
            await server.ended.wait()


def after(pool: ConnectionPool, path: str, kept: bool) -> None:
    """What became of the GET's connection: an aside one is never in the pool's budget; a pooled one is
    kept only when its reply ended cleanly."""
    if path == "aside":
        assert (pool.open, len(pool.idle)) == (1, 0)  # the held call's only
    else:
        assert (pool.open, len(pool.idle)) == ((1, 1) if kept else (0, 0))


CHUNKED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    b'7;ext=1\r\n{"data"\r\n',
    b"4\r\n:[]}\r\n0\r\nX-Trailer: dropped\r\n\r\n",
)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    ("reply", "close", "status", "body"),
    [
        ((b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n", b'{"data":[]}'), False, 200, b'{"data":[]}'),
        (CHUNKED, False, 200, b'{"data":[]}'),
        ((b'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{"data"', b":[]}"), True, 200, b'{"data":[]}'),
        (
            (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope",),
            False,
            404,
            b"nope",
        ),
        ((b"HTTP/1.1 204 No Content\r\n\r\n",), False, 204, b""),
    ],
    ids=["content-length", "chunked", "until-close", "interim-then-404", "no-content"],
)
def test_a_metadata_get_reads_its_reply_whole_on_either_path(
    path: str, reply: tuple[bytes, ...], close: bool, status: int, body: bytes
) -> None:
    async def main() -> None:
        server = MetadataUpstream(reply, close)
        async with pool_on(server, path) as pool:
            assert await pool.get("/v1/models", [("Authorization", "Bearer k")]) == (status, body)
            port = server.url.rsplit(":", 1)[1].encode()
            assert server.requests[-1] == (  # the same request on the wire either way
                b"GET /prefix/v1/models HTTP/1.1\r\nHost: 127.0.0.1:" + port + b"\r\nAuthorization: Bearer k\r\n\r\n"
            )
            after(pool, path, kept=not close)
            if path == "aside":
                await ended(server, 1)  # closed after its reply, though the reply allowed keep-alive
            await pool.get("/v1/models", [])  # and the next one goes as well
            assert server.gets() == 2

    asyncio.run(main())


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    ("reply", "close", "error", "message"),
    [
        ((b"SSH-2.0-OpenSSH\r\n\r\n",), False, UpstreamProtocolError, "not an HTTP/1.x status line"),
        ((b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",), False, UpstreamProtocolError,
         "bad Content-Length"),
        ((b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",), False, UpstreamProtocolError,
         "bad chunk size"),
        ((b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70_000,), False, UpstreamProtocolError, "reply head is over 65536"),
        ((b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this",), True, UpstreamClosed,
         "closed the connection"),
        ((b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n",), True, UpstreamClosed,
         "closed the connection"),
        ((b"HTTP/1.1 200 OK\r\nCont",), True, UpstreamClosed, "closed the connection"),
    ],
    ids=["not-http", "two-lengths", "chunk-size", "head-over-limit", "cut-short", "chunked-cut-short", "head-cut"],
)  # fmt: skip
def test_a_metadata_get_fails_alike_on_either_path(
    path: str, reply: tuple[bytes, ...], close: bool, error: type[Exception], message: str
) -> None:
    async def main() -> None:
        server = MetadataUpstream(reply, close)
        async with pool_on(server, path) as pool:
            with pytest.raises(error, match=message):
                await pool.get("/v1/models", [])
            after(pool, path, kept=False)
            await ended(server, 1)  # the broken connection is gone, whichever it was

    asyncio.run(main())


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("reply", [(), (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n",)],
                         ids=["no-head", "stalled-body"])  # fmt: skip
def test_a_metadata_get_times_out_alike_on_either_path(path: str, reply: tuple[bytes, ...]) -> None:
    """`timeout_s` bounds the wait for the head and for each piece after it; the connection left is cut."""

    async def main() -> None:
        server = MetadataUpstream(reply)
        async with pool_on(server, path, timeout_s=0.2) as pool:
            start = time.monotonic()
            with pytest.raises(TimeoutError):
                await pool.get("/v1/models", [])
            assert time.monotonic() - start < WAIT_S / 2  # the upstream's timeout, not a caller's
            after(pool, path, kept=False)
            await ended(server, 1)

    asyncio.run(main())


@pytest.mark.parametrize("path", PATHS)
def test_a_large_metadata_reply_is_read_whole_through_the_read_pauses(path: str) -> None:
    total = 4 * HIGH_WATER
    block = b"x" * 65536
    reply = (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total, *[block] * (total // len(block)))

    async def main() -> None:
        server = MetadataUpstream(reply)
        async with pool_on(server, path) as pool:
            assert await pool.get("/v1/models", []) == (200, b"x" * total)
            after(pool, path, kept=True)

    asyncio.run(main())


def test_aside_gets_go_one_at_a_time_and_a_cancelled_one_is_cut() -> None:
    """With the pool full, the upstream sees at most `max_connections` + 1; a GET its caller stops waiting for
    (get_json's bound) cuts its connection and lets the next one go."""

    async def main() -> None:
        answer = asyncio.Event()
        server = MetadataUpstream((b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",), answer=answer)
        async with pool_on(server, "aside") as pool:
            first = asyncio.ensure_future(pool.get("/v1/models", []))
            second = asyncio.ensure_future(pool.get("/v1/models", []))
            await server.until(lambda: server.gets() == 1)
            assert not second.done() and server.connections == server.peak == 2  # the held call's, the first GET's
            first.cancel()  # as get_json's timeout does
            with pytest.raises(asyncio.CancelledError):
                await first
            await ended(server, 1)  # cut at once, unanswered
            await server.until(lambda: server.gets() == 2)  # the second goes now
            answer.set()
            assert await second == (200, b"{}")
            assert server.connections == 3
            after(pool, "aside", kept=False)

    asyncio.run(main())

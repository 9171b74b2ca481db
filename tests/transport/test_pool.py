"""The upstream HTTP/1.1 client (`proxy.transport.pool`) against scripted servers that write exact bytes on the wire.

Each test's server is a real TCP listener on 127.0.0.1; it records every request it reads and answers
with the bytes the test gives it, so framing, keep-alive and failure handling are checked exactly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.config import Upstream
from proxy.transport import pool as pool_module
from proxy.transport.connection import HIGH_WATER, UpstreamClosed
from proxy.transport.http11 import UpstreamProtocolError
from proxy.transport.pool import UpstreamPool

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


class Scripted:
    """A listener running `script(reader, writer, connection_number)` for each connection."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.requests: list[bytes] = []
        self.closed = asyncio.Event()  # a connection saw EOF from the client
        self.server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> Scripted:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.script(reader, writer, self.connections)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        """One request head and its Content-Length body; b"" when the client closed."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            self.closed.set()
            return b""
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        request = head + await reader.readexactly(length)
        self.requests.append(request)
        return request


def upstream(url: str, **kw: object) -> Upstream:
    return Upstream(name="up", protocol="openai", url=url, **kw)  # type: ignore[arg-type]


def keep_answering(*pieces: bytes) -> Callable[[Scripted], Script]:
    """Per request, for as long as the connection lasts: the reply, written (and drained) piece by piece."""

    def script(server: Scripted) -> Script:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
            while await server.read_request(reader):
                for piece in pieces:
                    writer.write(piece)
                    await writer.drain()

        return run

    return script


def replies_then_close(*replies: bytes) -> Callable[[Scripted], Script]:
    """Per connection: read a request and write the next reply, for each reply; then close."""

    def script(server: Scripted) -> Script:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
            for reply in replies:
                await server.read_request(reader)
                writer.write(reply)
                await writer.drain()

        return run

    return script


def serve(make: Callable[[Scripted], Script]) -> Scripted:
    holder: list[Scripted] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await make(holder[0])(reader, writer, n)

    server = Scripted(script)
    holder.append(server)
    return server


async def fetch(pool: UpstreamPool, up: Upstream, method: str = "POST", body: bytes = b"{}") -> tuple[int, bytes]:
    resp = await pool.request(up, method, "/v1/x", [("Content-Type", "application/json")], body)
    try:
        return resp.status, await resp.read()
    finally:
        resp.release()


def test_the_request_on_the_wire_and_keep_alive_reuse() -> None:
    async def main() -> None:
        async with serve(keep_answering(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")) as server:
            pool = UpstreamPool()
            up = upstream(server.url + "/prefix")
            assert await fetch(pool, up, body=b'{"a":1}') == (200, b"hello")
            assert await fetch(pool, up, "GET", b"") == (200, b"hello")
            await pool.close()
        port = server.url.rsplit(":", 1)[1]
        assert server.requests[0] == (
            b"POST /prefix/v1/x HTTP/1.1\r\nHost: 127.0.0.1:" + port.encode() + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: 7\r\n\r\n" + b'{"a":1}'
        )
        assert server.requests[1].startswith(b"GET /prefix/v1/x HTTP/1.1\r\n")
        assert b"Content-Length" not in server.requests[1]  # a GET without a body says nothing of one
        assert server.connections == 1

    asyncio.run(main())


CHUNKED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/event-stream\r\n\r\n"
    b"6;ext=1\r\ndata: \r\n"
    b'1a\r\n{"choices":[{"text":"x"}]}\r\n'
    b"0\r\nX-Trailer: dropped\r\n\r\n"
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(CHUNKED) - 1), max_size=8, unique=True))
def test_chunked_replies_are_dechunked_however_the_bytes_are_split(cuts: list[int]) -> None:
    cuts = sorted(cuts)
    pieces = [CHUNKED[a:b] for a, b in zip([0, *cuts], [*cuts, len(CHUNKED)], strict=True)]

    make = keep_answering(*pieces)

    async def main() -> None:
        async with serve(make) as server:
            pool = UpstreamPool()
            up = upstream(server.url)
            for _ in range(2):
                resp = await pool.request(up, "POST", "/", [], b"{}")
                assert resp.content_length is None and resp.headers["Content-Type"] == "text/event-stream"
                assert await resp.read() == b'data: {"choices":[{"text":"x"}]}'
            await pool.close()
        assert server.connections == 1  # the chunked reply ended cleanly, so the connection was kept

    asyncio.run(main())


def test_a_reply_framed_by_closing_the_connection() -> None:
    make = replies_then_close(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\npart one, part two")

    async def main() -> None:
        async with serve(make) as server:
            pool = UpstreamPool()
            up = upstream(server.url)
            assert await fetch(pool, up) == (200, b"part one, part two")
            assert await fetch(pool, up) == (200, b"part one, part two")
            await pool.close()
        assert server.connections == 2

    asyncio.run(main())


def test_interim_replies_head_and_no_content_have_no_body() -> None:
    replies = [
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",  # to a HEAD: the length of what a GET would get
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nend",
    ]

    make = replies_then_close(*replies)

    async def main() -> None:
        async with serve(make) as server:
            pool = UpstreamPool()
            up = upstream(server.url)
            assert await fetch(pool, up) == (201, b"ok")
            assert await fetch(pool, up, "HEAD", b"") == (200, b"")
            assert await fetch(pool, up, "DELETE", b"") == (204, b"")
            assert await fetch(pool, up) == (200, b"end")
            await pool.close()
        assert server.connections == 1

    asyncio.run(main())


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 abc OK\r\n\r\n", "bad status code"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", "bad Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "bad Content-Length"),
        (b"HTTP/1.1 200 OK\r\nBad header\r\n\r\n", "malformed header line"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY", "not followed by CRLF"),
    ],
)
def test_malformed_replies_are_clear_errors(reply: bytes, message: str) -> None:
    async def main() -> None:
        async with serve(keep_answering(reply)) as server:
            pool = UpstreamPool()
            with pytest.raises(UpstreamProtocolError, match=message):
                await fetch(pool, upstream(server.url, timeout_s=5.0))
            await pool.close()

    asyncio.run(main())


def test_a_reply_cut_short_is_an_error_not_a_short_body() -> None:
    make = replies_then_close(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")

    async def main() -> None:
        async with serve(make) as server:
            pool = UpstreamPool()
            with pytest.raises(UpstreamClosed):
                await fetch(pool, upstream(server.url))
            await pool.close()

    asyncio.run(main())


def test_a_server_closing_an_idle_connection_is_not_a_failed_request() -> None:
    make = replies_then_close(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")  # then keep-alive ends it

    async def main() -> None:
        async with serve(make) as server:
            pool = UpstreamPool()
            up = upstream(server.url)
            for _ in range(3):
                assert await fetch(pool, up) == (200, b"ok")
                idle = pool.pool(up).idle[0]
                while idle.lost is None:  # until the client has seen the close (no timing assumed)
                    await asyncio.sleep(0)
            assert await fetch(pool, up) == (200, b"ok")
            await pool.close()
        assert server.connections == 4

    asyncio.run(main())


def test_a_stale_connection_is_retried_for_a_get_but_never_for_a_post(monkeypatch: pytest.MonkeyPatch) -> None:
    """The race a keep-alive pool cannot avoid: the server closes as the request is sent."""

    def make(server: Scripted) -> Script:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
            await server.read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            await server.read_request(reader)  # the second request on this connection: dropped unanswered

        return run

    async def main() -> None:
        async with serve(make) as server:
            pool = UpstreamPool()
            up = upstream(server.url)
            assert await fetch(pool, up, "GET", b"") == (200, b"ok")
            assert await fetch(pool, up, "GET", b"") == (200, b"ok")  # retried once on a new connection
            assert server.connections == 2
            with pytest.raises(UpstreamClosed):
                await fetch(pool, up, "POST")  # may have been acted on: not sent twice
            assert server.connections == 2
            await pool.close()

    asyncio.run(main())


@pytest.mark.interpreted  # patches what a compiled module calls directly (tests/conftest.py)
def test_idle_connections_expire_before_a_typical_server_keep_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    async def main() -> None:
        async with serve(keep_answering(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")) as server:
            pool = UpstreamPool()
            up = upstream(server.url)
            await fetch(pool, up)
            monkeypatch.setattr(pool_module, "IDLE_S", 0.0)
            await fetch(pool, up)
            await pool.close()
        assert server.connections == 2

    asyncio.run(main())


def test_max_connections_queues_requests() -> None:
    release = asyncio.Event()

    def make(server: Scripted) -> Script:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
            while await server.read_request(reader):
                if len(server.requests) == 1:
                    await release.wait()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

        return run

    async def main() -> None:
        async with serve(make) as server:
            pool = UpstreamPool()
            up = upstream(server.url, max_connections=1)
            calls = [asyncio.ensure_future(fetch(pool, up)) for _ in range(3)]
            while not server.requests:
                await asyncio.sleep(0)
            assert len(server.requests) == 1 and pool.pool(up).waiters  # the others wait for the connection
            release.set()
            assert await asyncio.gather(*calls) == [(200, b"ok")] * 3
            await pool.close()
        assert server.connections == 1

    asyncio.run(main())


def test_timeouts_for_the_head_and_between_chunks() -> None:
    gone: list[int] = []

    def make(server: Scripted) -> Script:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
            await server.read_request(reader)
            if n == 2:
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n")
            await reader.read()  # then silence until the client gives up and closes
            gone.append(n)
            if len(gone) == 2:
                server.closed.set()

        return run

    async def main() -> None:
        async with serve(make) as server:
            pool = UpstreamPool()
            up = upstream(server.url, timeout_s=0.2)
            with pytest.raises(TimeoutError):
                await pool.request(up, "POST", "/", [], b"{}")
            resp = await pool.request(up, "POST", "/", [], b"{}")
            assert await resp.readany() == b"a"
            with pytest.raises(TimeoutError):
                await resp.readany()
            resp.release()
            await server.closed.wait()  # both abandoned connections were closed, so the server knows
            await pool.close()

    asyncio.run(main())


def test_one_timer_serves_every_wait_on_a_connection() -> None:
    """Each wait (a reply's head, each piece of a stream) made a timer and cancelled it (~2 µs of CPU each, the
    cancel on the path from the upstream's bytes to the client's); one timer now serves a connection's waits,
    moved along by each (the timeouts hold: the test above). The server writes each piece only once the client
    waits for it, so every piece is a wait."""
    made: list[float] = []
    pieces = 20
    asked = asyncio.Event()

    class Counting(asyncio.SelectorEventLoop):
        def call_at(self, when: float, callback: Any, *args: Any, context: Any = None) -> asyncio.TimerHandle:
            if getattr(callback, "__name__", "") == "_expire":  # the pool's wait timers
                made.append(when)
            return super().call_at(when, callback, *args, context=context)

    def make(server: Scripted) -> Script:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
            await server.read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(pieces):
                await asked.wait()
                asked.clear()
                writer.write(b"1\r\na\r\n")
            await asked.wait()
            writer.write(b"0\r\n\r\n")
            await reader.read()  # until the pool closes the connection
            server.closed.set()

        return run

    async def main() -> bytes:
        async with serve(make) as server:
            pool = UpstreamPool()
            resp = await pool.request(upstream(server.url, timeout_s=60), "POST", "/", [], b"{}")
            got = b""
            while True:
                read = asyncio.ensure_future(resp.readany())
                await asyncio.sleep(0)  # the read is waiting (nothing buffered): the server may write
                asked.set()
                piece = await read
                if not piece:
                    break
                got += piece
            resp.release()
            await pool.close()
            await server.closed.wait()
            return got

    loop = Counting()
    try:
        assert loop.run_until_complete(main()) == b"a" * pieces
    finally:
        loop.close()
    assert 1 <= len(made) <= 2, f"{len(made)} timers for {pieces + 2} waits"


def test_a_slow_reader_pauses_the_upstream_instead_of_buffering_everything() -> None:
    total = 16 * HIGH_WATER

    block = b"x" * 65536
    make = keep_answering(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total, *[block] * (total // len(block)))

    async def main() -> None:
        async with serve(make) as server:
            pool = UpstreamPool()
            up = upstream(server.url)
            resp = await pool.request(up, "POST", "/", [], b"{}")
            conn = resp._conn
            assert conn is not None
            while not conn._paused:
                await conn.wait(5.0)
            peak = conn.parser.buffered
            assert HIGH_WATER < peak < HIGH_WATER + 1024 * 1024
            received = 0
            while chunk := await resp.readany():
                received += len(chunk)
            assert received == total
            await pool.close()

    asyncio.run(main())


def test_a_dead_upstream_frees_its_connection_slot() -> None:
    async def main() -> None:
        pool = UpstreamPool()
        with socket_bound_not_listening() as port:
            up = upstream(f"http://127.0.0.1:{port}", max_connections=1)
            for _ in range(3):  # a leaked slot would make the second call wait forever
                with pytest.raises(ConnectionRefusedError):
                    await fetch(pool, up)
            assert pool.pool(up).open == 0
        await pool.close()

    asyncio.run(main())


class socket_bound_not_listening:
    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return int(self.sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def test_a_reload_that_changes_an_upstream_retires_its_connections() -> None:
    async def main() -> None:
        async with serve(keep_answering(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")) as server:
            pool = UpstreamPool()
            old = upstream(server.url)
            in_flight = await pool.request(old, "POST", "/", [], b"{}")  # a call still running
            assert await fetch(pool, old) == (200, b"ok")  # and an idle keep-alive connection
            retired = pool.pool(old)
            new = upstream(server.url, timeout_s=5.0)  # the reloaded config changed this upstream
            assert pool.pool(new) is not retired and retired.retired
            await server.closed.wait()  # the idle connection of the old pool was closed at once
            assert await in_flight.read() == b"ok"  # the call in flight finished normally
            assert retired.open == 0 and not retired.idle  # and its connection was not kept either
            assert await fetch(pool, new) == (200, b"ok")
            await pool.close()

    asyncio.run(main())


@settings(max_examples=100, deadline=None)
@given(
    calls=st.lists(
        st.tuples(
            st.sampled_from(["POST", "GET", "PUT", "HEAD"]),
            st.sampled_from(["/v1/chat/completions", "/v1/models", "/v2/models/m/infer", "/x?a=\xe9", "/" + "a" * 300])
            | st.text(alphabet="abz/?=", max_size=8).map(lambda tail: "/t" + tail),
        ),
        max_size=150,
    )
)
def test_a_request_line_kept_by_target_is_the_one_made_afresh(calls: list[tuple[str, str]]) -> None:
    # (kept by target with its method: the same target asked with another method gets its own line; the table is
    # bounded, and a long target is not kept)
    pool = pool_module.ConnectionPool(Upstream(name="u", url="http://up.example:8081/base/"))
    for method, target in calls:
        head, rest = pool._head(method, target, b"", b"")
        assert head.startswith(f"{method} /base{target} HTTP/1.1\r\nHost: up.example:8081\r\n".encode("latin-1"))
        assert rest == b"" and len(pool.lines) <= 64 and all(len(kept) <= 256 for kept in pool.lines)

"""A plain HTTP request to the TLS listener is answered 400 (`HttpServer._plain_http`), its bytes read and dropped
before and after the answer. Both reads ran until no byte was waiting, and a read that finds bytes waiting does not
give the event loop a turn: a client that kept sending (a large upload to http://, or anyone, no key needed) held the
loop, and every other connection's calls, as long as it kept the socket's buffer from running dry (0.4 s measured on
loopback with one such client; with a socket that always has bytes, never ending). Now at most a few reads come before
the answer, and after it one read a turn.

The client here is a socket whose bytes are always there, for `FLOOD` reads, then it closes: what a client sending
faster than the proxy reads looks like to it. No timing: how many reads came before another task had a turn. (uvloop's
`sock_recv` reads the descriptor itself, not through the socket's `recv`: on uvloop the client's far end is closed,
and what is checked is the read before the answer, which both loops make through `recv`.)"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvloop

from proxy.config import Limits
from proxy.ingress.wire import HttpConnection, HttpServer, Request

FLOOD = 5000  # reads of 64 KiB before the client stops (about 320 MiB)


class _Flood(socket.socket):
    """A client whose bytes are there at every read, `FLOOD` reads long (then it has closed: b""); each read notes
    how many turns another task had by then."""

    turns: list[int]
    seen: list[int]

    def recv(self, size: int, flags: int = 0) -> bytes:
        self.seen.append(self.turns[0])
        return b"x" * min(size, 64) if len(self.seen) <= FLOOD else b""


def _served_while_flooded(new_loop: Any, far_end_open: bool) -> list[int]:
    """Each read's count of the turns another task had by then."""

    async def main() -> list[int]:
        async def handler(request: Request, conn: HttpConnection) -> None:
            raise AssertionError("no request is served")

        server = HttpServer(handler, Limits())
        one, other = socket.socketpair()
        conn = _Flood(one.family, one.type, fileno=one.detach())
        conn.setblocking(False)
        conn.turns, conn.seen = [0], []
        if not far_end_open:
            other.close()
        running = True

        async def other_calls() -> None:  # the event loop's other work: a turn each time it is given one
            while running:
                await asyncio.sleep(0)
                conn.turns[0] += 1

        ticking = asyncio.ensure_future(other_calls())
        await asyncio.sleep(0)
        try:
            await server._plain_http(asyncio.get_running_loop(), conn, ("127.0.0.1", 1), b"POST /v1/chat HTTP/1.1\r\n")
        finally:
            running = False
            await ticking
            other.close()
        return conn.seen

    loop = new_loop()
    try:
        return loop.run_until_complete(main())  # type: ignore[no-any-return]
    finally:
        loop.close()


def test_a_client_that_keeps_sending_plain_http_does_not_hold_the_event_loop() -> None:
    seen = _served_while_flooded(
        asyncio.SelectorEventLoop, far_end_open=True
    )  # not the policy's: uvloop once a test set it
    assert len(seen) > FLOOD  # read to its end (it closed), as before: nothing left to reset the answer
    # reads before another task had a turn: a few (it held the loop: every one of its reads, FLOOD)
    assert seen.count(0) <= 64, seen.count(0)
    assert seen[FLOOD - 1] >= FLOOD - 100  # and after: a turn a read
    seen = _served_while_flooded(uvloop.new_event_loop, far_end_open=False)
    assert seen.count(0) <= 64, seen.count(0)

"""A call that waited in an upstream's queue (`max_queue`) keeps its turn. The pool wakes the first waiter when a
connection is given back, but a new call may take that connection first (a free connection is taken at once,
without a coroutine). The woken call then had to queue again, counted against `max_queue` like a newcomer: with
the queue filled meanwhile by a call that came later, the call that had waited was refused 503 `overloaded`
and the later one served. The woken call now goes back to the head of the queue, and while it has not run yet
it still counts against `max_queue`, so the queue never holds more than `max_queue` calls."""

from __future__ import annotations

import asyncio

from proxy.config import Upstream
from proxy.errors import Overloaded
from proxy.transport.pool import ConnectionPool
from tests.harness import LoopThread

REPLY = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Every request on the connection answered at once, kept alive."""
    try:
        while await reader.readuntil(b"\r\n\r\n"):
            writer.write(REPLY)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def test_a_call_woken_in_the_queue_keeps_its_turn_against_later_calls(loop_thread: LoopThread) -> None:
    async def run() -> tuple[str, str]:
        listening = await asyncio.start_server(_answer, "127.0.0.1", 0)
        port = listening.sockets[0].getsockname()[1]
        upstream = Upstream(name="one", url=f"http://127.0.0.1:{port}", max_connections=1, max_queue=1)
        pool = ConnectionPool(upstream)

        async def call() -> str:
            try:
                reply = await pool.request("GET", "/", [], b"")
            except Overloaded:
                return "overloaded"
            body = reply.complete()
            return "ok" if body == b"ok" else repr(body)

        try:
            async with asyncio.timeout(10):
                first = await pool.request("GET", "/", [], b"")  # holds the one connection until released
                waiting = asyncio.ensure_future(call())  # queued: the one place of max_queue
                while not pool.waiters:
                    await asyncio.sleep(0)
                later = asyncio.ensure_future(call())  # begins after the release below, before `waiting` resumes
                assert first.complete() == b"ok"  # the connection given back: `waiting` is woken
                taken = await pool.request("GET", "/", [], b"")  # a new call takes the free connection first
                assert taken.complete() == b"ok"
                return await waiting, await later
        finally:
            pool.close()
            listening.close()

    # was ("overloaded", "ok"): the call that had waited refused, the later one served
    assert loop_thread.run(run(), timeout=30) == ("ok", "overloaded")

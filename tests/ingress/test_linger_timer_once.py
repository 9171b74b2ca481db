"""A connection lingering after a refused body's answer (its writing side closed, what still comes read and dropped
for LINGER_S: `HttpConnection._close`) has one timer that cuts it, cancelled when the connection is lost, however it
is closed again meanwhile: by the drain (SIGTERM), whose `shutdown` closes it a second time, or by `shutdown` alone
(a reload that changed client authentication) before its client leaves. Before 2026-12-07 the second close made a
second timer and left the first uncancelled: the loop held the connection, and the request it was reading, until the
first one fired, LINGER_S after the answer. Observed through the loop (a subclass counting the timers made for the
connection), on both event loops, with real sockets."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import pytest
import uvloop

from proxy.config import Limits
from proxy.errors import ProxyError
from proxy.ingress.wire import HttpConnection, HttpServer, Request

_HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n"


def _counting(base: type[asyncio.AbstractEventLoop]) -> Callable[[], Any]:
    """A loop of `base` that keeps every timer made for a connection's lingering (`_linger`)."""

    class Counting(base):  # type: ignore[valid-type,misc]
        def __init__(self) -> None:
            super().__init__()
            self.lingers: list[Any] = []

        def call_later(self, delay: float, callback: Any, *args: Any, context: Any = None) -> Any:
            handle = super().call_later(delay, callback, *args, context=context)
            if getattr(callback, "__name__", "") == "_linger":
                self.lingers.append(handle)
            return handle

        def live(self) -> int:
            """The lingering timers neither cancelled nor due yet: each holds its connection."""
            return sum(not h.cancelled() and h.when() > self.time() for h in self.lingers)

    return Counting


LOOPS: dict[str, Callable[[], Any]] = {
    "asyncio": _counting(asyncio.SelectorEventLoop),
    "uvloop": _counting(uvloop.Loop),
}


async def _refuse(request: Request, conn: HttpConnection) -> None:
    """The handler's part of a body over limits.max_body_bytes: 413, and the connection closes (it lingers)."""
    try:
        await conn.body(request)
    except ProxyError as error:
        conn.error(request, error, [], keep_alive=False)


@pytest.mark.parametrize("loop_name", LOOPS)
@pytest.mark.parametrize("how", ["drain", "shutdown-then-client-leaves", "reload-then-client-leaves"])
def test_a_lingering_connection_closed_again_has_one_timer_cancelled_when_it_is_lost(loop_name: str, how: str) -> None:
    async def main() -> None:
        loop: Any = asyncio.get_running_loop()
        server = HttpServer(_refuse, Limits(max_body_bytes=1000))
        listening = socket.create_server(("127.0.0.1", 0))
        listening.setblocking(False)
        await server.start(listening)
        reader, writer = await asyncio.open_connection("127.0.0.1", listening.getsockname()[1])
        writer.write(_HEAD + b"x" * 2000)
        answer = await asyncio.wait_for(reader.read(), 10)  # the 413, then the proxy's end of writing
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
        (conn,) = server.connections
        assert loop.live() == 1  # lingering: reading on, dropping what comes, for LINGER_S
        if how == "drain":
            await server.shutdown(5.0)  # closes it again (`HttpConnection.shutdown`), then cuts it: nothing unsent
        else:
            conn.shutdown(reload=how.startswith("reload"))
            assert loop.live() == 1, "closed again: still one timer"
            writer.close()
        await asyncio.wait_for(conn.closed, 10)
        assert conn.lost
        assert loop.live() == 0, "lost: no timer left to hold it"
        writer.close()
        await server.shutdown(1.0)

    loop = LOOPS[loop_name]()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()

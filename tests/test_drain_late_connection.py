"""A connection accepted as the drain (SIGTERM) begins, its `connection_made` run after the drain woke the connections
it had (asyncio and uvloop accept in one step of the loop and call `connection_made` in a later one), sending nothing:
closed by the drain, which does not wait for it. Since its serve loop is begun at its accept (2026-12-06, helper idle),
one no drain had woken waited for a first request, and the drain with it, for all of `limits.drain_timeout_s` (review
revidle)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import pytest
import uvloop

from proxy.config import Limits
from proxy.ingress.wire import HttpConnection, HttpServer

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


async def _never(request: object, conn: object) -> None:
    raise AssertionError("no request is sent")


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_connection_made_as_the_drain_begins_is_closed_not_waited_for(loop_name: str) -> None:
    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        server = HttpServer(_never, Limits())
        drains: list[asyncio.Task[None]] = []
        made = asyncio.Event()

        def accepted() -> HttpConnection:
            # the drain begins between the accept and `connection_made`, called after this returns
            drains.append(loop.create_task(server.shutdown(60.0)))
            made.set()
            return server()

        listener = await loop.create_server(accepted, "127.0.0.1", 0)
        client = socket.socket()
        client.setblocking(False)
        try:
            await loop.sock_connect(client, listener.sockets[0].getsockname())
            await made.wait()
            await asyncio.wait_for(drains[0], 10.0)  # (before the fix: the drain's 60 s)
            return await asyncio.wait_for(loop.sock_recv(client, 1024), 10.0)
        finally:
            client.close()
            listener.close()

    loop = LOOPS[loop_name]()
    try:
        assert loop.run_until_complete(main()) == b""  # closed, nothing said: it sent nothing
    finally:
        loop.close()

"""An idle upstream connection the upstream has closed is never given a request, even in the turn between the
transport's closing (the upstream's FIN read: `Connection.eof_received` says close) and `connection_lost`: a request
that arrives in that turn goes out on a new connection, a POST too, instead of failing unsent as
`the upstream closed the connection`."""

from __future__ import annotations

import pytest
import uvloop

from proxy.transport.pool import UpstreamPool
from tests.transport.test_pool import fetch, keep_answering, serve, upstream


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_a_request_is_not_sent_on_an_idle_connection_already_closing(method: str) -> None:
    async def main() -> None:
        async with serve(keep_answering(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")) as server:
            pool = UpstreamPool()
            up = upstream(server.url)
            assert await fetch(pool, up, method, b"") == (200, b"ok")
            idle = pool.pool(up).idle[0]
            assert idle.transport is not None
            idle.transport.close()  # as the transport closes itself on the upstream's FIN, connection_lost to come
            assert idle.lost is None
            assert await fetch(pool, up, method, b"") == (200, b"ok")
            assert len(server.requests) == 2 and server.connections == 2  # the second on a new connection
            await pool.close()

    uvloop.run(main())

"""An idle pooled upstream connection holds nothing of the reply it carried last.

The reply's head, its fields and its first packet belong to the call that read them: they are freed with it. Kept by
the connection's parser until its next request (at 64 calls in flight, ~64 calls later), every idle connection held
its last reply's objects and first packet (the whole of a small reply) while other calls' objects were made and
freed around them.
"""

from __future__ import annotations

import asyncio
import gc

from proxy.transport.pool import UpstreamPool
from tests.transport.test_pool import fetch, keep_answering, serve, upstream

FIELD = b"x" * 2000  # a field value no other object on the connection holds


def test_an_idle_connection_holds_nothing_of_its_last_reply() -> None:
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Padding: " + FIELD + b"\r\n\r\nhello"

    async def main() -> None:
        async with serve(keep_answering(reply)) as server:
            pool = UpstreamPool()
            up = upstream(server.url)
            for _ in range(2):  # the first reply on a new connection and one on a reused connection
                assert await fetch(pool, up) == (200, b"hello")
                (idle,) = pool.pool(up).idle
                parser = idle.parser
                assert parser.head is None and parser.raw_fields == []
                # nothing the parser refers to holds the reply's bytes: not its fields, not its first packet
                held = [o for o in gc.get_referents(parser) if isinstance(o, bytes) and len(o) > 64]
                assert held == []
            assert server.connections == 1  # the connection was kept, and reused
            await pool.close()

    asyncio.run(main())

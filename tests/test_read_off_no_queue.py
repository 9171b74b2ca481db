"""A reply read off past its call's end (the upstream holds its body open after the stream's last event) is no one's:
its connection goes to the next call that needs one (`test_read_off_gives_way.py`). With `max_queue: 0` (refuse at
once when every connection is busy) that call was refused 503 `overloaded` instead, for as long as the upstream held
the reply read off (up to `timeout_s`, 600 s by default): the pool counted the read-off connection as busy and refused
before it gave it up."""

from __future__ import annotations

import asyncio

from proxy.config import Upstream
from proxy.transport.pool import ConnectionPool
from tests.harness import LoopThread
from tests.test_stream_end_body_open import HeldReply


def test_a_reply_read_off_gives_way_to_a_call_that_may_not_queue(loop_thread: LoopThread) -> None:
    held = HeldReply(rest=0)  # its body held open after `data: [DONE]` until released

    async def run() -> tuple[bool, int]:
        listening = await asyncio.start_server(held.serve, "127.0.0.1", 0)
        port = listening.sockets[0].getsockname()[1]
        upstream = Upstream(name="held", url=f"http://127.0.0.1:{port}", timeout_s=60, max_connections=1, max_queue=0)
        pool = ConnectionPool(upstream)
        try:
            first = await pool.request("POST", "/v1/chat/completions", [], b"{}")
            assert first.buffered().startswith(b"data: [DONE]")
            first.read_off()
            assert len(pool.reading_off) == 1 and pool.open == 1  # the one connection, read off: no call's
            async with asyncio.timeout(10):
                second = await pool.request("POST", "/v1/chat/completions", [], b"{}")  # not 503 overloaded
            mine = second.buffered()
            held.release.set()
            return mine.startswith(b"data: [DONE]"), pool.open
        finally:
            pool.close()
            listening.close()

    assert loop_thread.run(run(), timeout=30) == (True, 1)

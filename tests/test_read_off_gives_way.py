"""A reply read off past its call's end (`Response.read_off`: the upstream holds its body open after the stream's
last event) is no one's: its connection is given up for a call that waits for one. Kept for the reply's end, it held
one of the pool's `max_connections` for up to `timeout_s` (600 s by default) after its client had gone, the call
waiting all that while, and every call behind it."""

from __future__ import annotations

import asyncio

from proxy.config import Upstream
from proxy.transport.pool import ConnectionPool
from tests.harness import LoopThread
from tests.test_stream_end_body_open import HeldReply


def test_a_call_waiting_for_a_connection_is_not_kept_waiting_by_a_reply_read_off(loop_thread: LoopThread) -> None:
    held = HeldReply(rest=0)  # its body held open after `data: [DONE]` until released

    async def run() -> tuple[int, bool, int]:
        listening = await asyncio.start_server(held.serve, "127.0.0.1", 0)
        port = listening.sockets[0].getsockname()[1]
        pool = ConnectionPool(Upstream(name="held", url=f"http://127.0.0.1:{port}", timeout_s=60, max_connections=1))
        try:
            first = await pool.request("POST", "/v1/chat/completions", [], b"{}")
            assert first.buffered().startswith(b"data: [DONE]")
            first.read_off()
            assert len(pool.reading_off) == 1 and pool.open == 1  # the one connection, read off
            async with asyncio.timeout(10):  # not the 60 s of the reply read off
                second = await pool.request("POST", "/v1/chat/completions", [], b"{}")
                await held.closed.wait()  # the first connection was closed: the upstream saw it at once
            mine = second.buffered()  # the second call's own reply, on a connection of its own
            held.release.set()
            return pool.open, mine.startswith(b"data: [DONE]"), len(pool.reading_off)
        finally:
            pool.close()
            listening.close()

    assert loop_thread.run(run(), timeout=30) == (1, True, 0)

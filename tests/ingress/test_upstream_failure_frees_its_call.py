"""A call whose upstream fails (a reply not HTTP/1.1, a connection reset or closed before the reply, refused, a reply
too slow) leaves none of its frames, nor the body it forwarded, in a reference cycle for the collector: the error a
connection keeps (`Connection.lost`) holds no traceback, the pool raises a copy of it (not the error the
connection keeps, from frames holding that connection), and the reply's parser raises a callback's refusal from
no variable of its own frame (before 2026-12-05, each such call left ~30 frames, `_forward` and `request` among
them, in cycles). Run interpreted, where frames exist (compiled, the proxy's own functions have none)."""

from __future__ import annotations

import asyncio
import gc
import socket
import struct
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
import pytest

from tests.configs import ONE_UPSTREAM
from tests.harness import LoopThread, ProxyHandle, proxy_before
from tests.servers.raw_origin import raw_origin, request_body

_SLOW = ONE_UPSTREAM.replace("url: ${UPSTREAM}\n", "url: ${UPSTREAM}\n    timeout_s: 0.2\n")


async def _status_999(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    await request_body(head, reader)
    writer.write(b"HTTP/1.1 999 Weird\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()
    return True


async def _reset(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    await request_body(head, reader)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # the close sends RST
    return False


async def _closed(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    await request_body(head, reader)
    return False


async def _silent(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    await request_body(head, reader)
    await reader.read()  # no reply: the proxy's timeout_s ends the call, and its connection
    return False


Origin = Callable[[bytes, asyncio.StreamReader, asyncio.StreamWriter], Coroutine[Any, Any, bool]]


@pytest.mark.interpreted
@pytest.mark.parametrize(
    ("answer", "config", "status"),
    [(_status_999, ONE_UPSTREAM, 502), (_reset, ONE_UPSTREAM, 502), (_closed, ONE_UPSTREAM, 502),
     (_silent, _SLOW, 504)],
    ids=["status-999", "reset", "closed", "timeout"],
)  # fmt: skip
def test_a_call_whose_upstream_fails_leaves_no_frame_in_a_reference_cycle(
    make_proxy: Callable[..., ProxyHandle], loop_thread: LoopThread, answer: Origin, config: str, status: int
) -> None:
    with proxy_before(loop_thread, make_proxy, config, raw_origin(answer)) as port:
        assert _frames_left(f"http://127.0.0.1:{port}/v1/chat/completions", status) == []


@pytest.mark.interpreted
def test_a_call_whose_upstream_refuses_the_connection_leaves_no_frame_in_a_reference_cycle(
    make_proxy: Callable[..., ProxyHandle],
) -> None:
    with socket.socket() as taken:  # a port bound once and closed: nothing listens there
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
    proxy = make_proxy(ONE_UPSTREAM, wait="probed", UPSTREAM=f"http://127.0.0.1:{port}")
    assert _frames_left(f"{proxy.url}/v1/chat/completions", 502) == []


# the frames a call's failure kept (4f96bf1): its handler's, the upstream exchange's and the reply's parsing; not a
# background task's (the pool's sweep, the metadata's retries against an upstream that refuses: their `sleep`), whose
# garbage an earlier test's proxy or this one's discovery may leave for the same collection, one per run, not a call
_CALLS = frozenset({
    "handle", "_forward", "request", "data_received", "feed", "_execute", "on_headers_complete", "on_body",
    "on_message_complete", "admit", "forwarded", "upstream_failed", "_fail", "_broken", "acquire", "send", "_exchange",
})  # fmt: skip


def _frames_left(url: str, status: int) -> list[str]:
    """The frames that 3 calls failed with `status` left in reference cycles (their functions' names)."""
    body = {"model": "m", "messages": [{"role": "user", "content": "x" * 4096}]}
    with httpx.Client(timeout=30) as client:
        gc.collect()
        gc.disable()
        try:
            for _ in range(3):
                reply = client.post(url, json=body)
                assert reply.status_code == status, reply.text
            gc.set_debug(gc.DEBUG_SAVEALL)
            gc.collect()
            return [o.f_code.co_name for o in gc.garbage if type(o).__name__ == "frame" and o.f_code.co_name in _CALLS]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()

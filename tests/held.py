"""A held upstream: one call through the proxy that the upstream (`VllmLike`) never answers (`__slow__`), in
flight at the upstream for as long as the block lasts. With the upstream's `max_connections: 1` it holds the
pool's only connection, so the next call finds the pool full (and with `max_queue: 0`, no room to wait)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import aiohttp
import pytest

from tests.harness import LoopThread
from tests.servers.vllm_like import SERVED, VllmLike


def until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll `condition` until it holds or `timeout` passes; whether it held."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@contextmanager
def one_call_held(proxy_url: str, server: VllmLike, loop_thread: LoopThread) -> Iterator[None]:
    """While the block runs, a call to `proxy_url` is in flight at `server`, unanswered; cancelled after it."""

    async def held() -> None:
        async with aiohttp.ClientSession() as session:
            body = {"model": SERVED, "messages": [{"role": "user", "content": "__slow__"}]}
            async with session.post(f"{proxy_url}/v1/chat/completions", json=body) as reply:
                await reply.read()

    call = asyncio.run_coroutine_threadsafe(held(), loop_thread.loop)
    try:
        assert until(lambda: len(server.data_requests()) == 1), "the held call never reached the upstream"
        yield
    finally:
        call.cancel()
        with pytest.raises((asyncio.CancelledError, Exception)):
            call.result(10)

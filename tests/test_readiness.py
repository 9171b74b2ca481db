"""Readiness follows the upstream: a call that cannot reach it has its metadata asked again at once, so
/readyz and `lineage_proxy_upstream_up` say it is down within a round trip, not a discovery interval."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from aiohttp import web

from tests.harness import LoopThread, start_app
from tests.servers.vllm_like import SERVED, VllmLike

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - name: vllm
    url: ${UPSTREAM}
    discovery_interval_s: 600
routes:
  - model: "*"
    upstream: vllm
policy: {anonymous: allow, default_purpose: assistant}
lineage:
  store: ${STORE}
"""


def test_a_call_that_cannot_reach_its_upstream_makes_readiness_follow(loop_thread: LoopThread, make_proxy) -> None:  # type: ignore[no-untyped-def]
    runner, port = loop_thread.run(start_app(VllmLike().app()))
    proxy = make_proxy(CONFIG, UPSTREAM=f"http://127.0.0.1:{port}")
    assert proxy.process.ready()[0]
    loop_thread.run(runner.cleanup())  # the upstream dies; its next metadata poll is 10 minutes away
    body = {"model": SERVED, "messages": [{"role": "user", "content": "hi"}]}
    reply = httpx.post(f"{proxy.url}/v1/chat/completions", json=body, timeout=10)
    assert reply.status_code == 502 and reply.json()["error"]["code"] == "upstream_unavailable"
    deadline = time.monotonic() + 5
    while proxy.process.ready()[0]:
        assert time.monotonic() < deadline, "/readyz still says ready after a call found the upstream down"
        loop_thread.run(asyncio.sleep(0.01))
    assert proxy.process.ready()[1]["upstreams_down"] == ["vllm"]


@pytest.mark.interpreted  # patches what a compiled module calls directly (tests/conftest.py)
def test_readiness_comes_back_as_soon_as_the_upstream_does(loop_thread: LoopThread, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """Metadata is asked again quickly while an upstream is down, however long the proxy has run: the
    retry delay grew over every poll and was never reset, so after ten polls an upstream back up waited
    a whole `discovery_interval_s` to be ready again."""
    runner, port = loop_thread.run(start_app(VllmLike().app()))
    proxy = make_proxy(CONFIG, UPSTREAM=f"http://127.0.0.1:{port}")
    book = proxy.process.book
    polls: list[bool] = []
    refresh = book.refresh

    async def counted(upstream):  # type: ignore[no-untyped-def]
        await refresh(upstream)
        polls.append(book.reachable["vllm"])

    book.refresh = counted  # type: ignore[method-assign]
    for done in range(12):  # a dozen polls, as ten minutes of a 60 s interval would make
        loop_thread.loop.call_soon_threadsafe(book._wake["vllm"].set)
        until(loop_thread, lambda: len(polls) > done, "a poll")  # noqa: B023
    loop_thread.run(runner.cleanup())
    body = {"model": SERVED, "messages": [{"role": "user", "content": "hi"}]}
    assert httpx.post(f"{proxy.url}/v1/chat/completions", json=body, timeout=10).status_code == 502
    until(loop_thread, lambda: not proxy.process.ready()[0], "the upstream seen down")

    async def back() -> web.AppRunner:
        again = web.AppRunner(VllmLike().app())
        await again.setup()
        await web.TCPSite(again, "127.0.0.1", port).start()
        return again

    again = loop_thread.run(back())
    try:
        until(loop_thread, lambda: proxy.process.ready()[0], "the upstream seen back")
    finally:
        loop_thread.run(again.cleanup())


def until(loop_thread: LoopThread, predicate, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 5
    while not predicate():
        assert time.monotonic() < deadline, f"not within 5 s (discovery_interval_s is 600): {what}"
        loop_thread.run(asyncio.sleep(0.01))

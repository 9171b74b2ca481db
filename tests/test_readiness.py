"""Readiness follows the upstream: a call that cannot reach it has its metadata asked again at once, so
/readyz and `lineage_proxy_upstream_up` say it is down within a round trip, not a discovery interval."""

from __future__ import annotations

import asyncio
import time

import httpx

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

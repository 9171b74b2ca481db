"""A busy upstream is not a down one: with every pooled connection held by calls (`max_connections`) and no
room to wait (`max_queue: 0`), the background metadata check took the same full pool, failed with "upstream
... is saturated", and /readyz and `lineage_proxy_upstream_up` said the upstream was down until the calls
ended. The metadata GET now takes a connection of its own outside the call budget when the pool is full."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.harness import LoopThread, ProxyHandle, dead_port
from tests.held import one_call_held, until
from tests.servers.vllm_like import ROOT, SERVED, VllmLike

CONFIG = """listen: {{http: "127.0.0.1:0"}}
upstreams:
  - name: busy
    url: "{url}"
    max_connections: 1
    max_queue: 0
    discovery_interval_s: 0.1
routes:
  - model: "*"
    upstream: busy
policy:
  anonymous: allow
  default_purpose: assistant
telemetry: {{exporter: none}}
lineage:
  store: null
"""


def listings(server: VllmLike) -> int:
    return sum(1 for r in server.requests if r.path == "/v1/models")


def test_a_saturated_pool_is_not_an_upstream_down(
    vllm: tuple[VllmLike, str], make_proxy: Callable[..., ProxyHandle], loop_thread: LoopThread
) -> None:
    server, url = vllm
    proxy = make_proxy(CONFIG.format(url=url))
    book = proxy.process.book
    with one_call_held(proxy.url, server, loop_thread):  # it holds the pool's one connection
        busy = httpx.post(f"{proxy.url}/v1/chat/completions", json={"model": SERVED, "messages": []}, timeout=10)
        assert busy.status_code == 503 and busy.json()["error"]["code"] == "overloaded"  # the pool is full
        seen = listings(server)
        # rounds every 0.1 s: one reaches the upstream (old code: each failed as saturated, and it was down)
        assert until(lambda: listings(server) >= seen + 2 or not book.reachable["busy"])
        assert book.reachable["busy"], "a full pool was reported as the upstream down"
        ready = httpx.get(f"{proxy.url}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        metrics = httpx.get(f"{proxy.url}/metrics", timeout=10).text
        assert 'lineage_proxy_upstream_up{upstream="busy"} 1\n' in metrics
        assert book.resolve(proxy.config.upstreams[0], SERVED, learn=False) is not None  # still discovered
        assert book.resolve(proxy.config.upstreams[0], SERVED, learn=False).name == ROOT  # type: ignore[union-attr]
        # the pool's budget is the calls': the aside connection is not kept, and no call takes it
        pool = proxy.process.pool.pool(proxy.config.upstreams[0])
        assert pool.open == 1 and not pool.idle


def test_an_upstream_that_does_not_answer_is_still_down(make_proxy: Callable[..., ProxyHandle]) -> None:
    proxy = make_proxy(CONFIG.format(url=f"http://127.0.0.1:{dead_port()}"), wait="probed")
    assert not proxy.process.book.reachable["busy"]
    ready = httpx.get(f"{proxy.url}/readyz", timeout=10)
    assert ready.status_code == 503 and "busy" in ready.text

"""A call refused for an upstream's `max_queue` (503 `overloaded`) is recorded `deny`, rule `upstream:NAME`
(tests/test_upstream_overloaded.py); `lineage_proxy_decisions_total` counted it `allow`, as it was decided
before its upstream had no room for it. The counter now counts each call as its record says, once, when it
is recorded."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.harness import LoopThread
from tests.held import one_call_held, until
from tests.servers.vllm_like import SERVED, VllmLike

CONFIG = """listen: {{http: "127.0.0.1:0"}}
upstreams:
  - {{name: busy, url: "{url}", max_connections: 1, max_queue: 0}}
routes: [{{model: "*", upstream: busy}}]
policy: {{anonymous: allow, default_purpose: assistant}}
telemetry: {{exporter: none}}
lineage: {{store: "${{STORE}}"}}
"""


def _decisions(text: str) -> dict[str, int]:
    return {m[1]: int(m[2]) for m in re.finditer(r'^lineage_proxy_decisions_total\{decision="([^"]+)"\} (\d+)$',
                                                 text, re.M)}  # fmt: skip


def test_an_upstream_s_max_queue_refusal_is_counted_as_a_denial(
    vllm: tuple[VllmLike, str], make_proxy: Any, loop_thread: LoopThread
) -> None:
    server, url = vllm
    proxy = make_proxy(CONFIG.format(url=url))
    with one_call_held(proxy.url, server, loop_thread):
        reply = httpx.post(f"{proxy.url}/v1/chat/completions", timeout=10,
                           json={"model": SERVED, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
        assert reply.status_code == 503 and reply.headers["x-lineage-decision"] == "deny", reply.text
        counted = _decisions(proxy.process.metrics_text())
        # was allow 2 (the held call and the refused one), deny 0; the held call is counted once it is recorded
        assert counted.get("deny") == 1 and not counted.get("allow"), counted
    # the held call, recorded as its client left
    assert until(lambda: bool(_decisions(proxy.process.metrics_text()).get("allow"))), "the held call was never counted"
    assert _decisions(proxy.process.metrics_text()) == {"allow": 1, "deny": 1, "reroute": 0, "audit-deny": 0}

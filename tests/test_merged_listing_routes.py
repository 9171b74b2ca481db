"""`GET /v1/models` with several upstreams merges their lists, each model once. A model two upstreams list is
described by the upstream its route sends calls for it to: it was the first upstream's entry (config order), so a
client reading the listing's `root` and `parent` was told of weights its calls for that model never reach. A model
only an upstream its calls never reach lists is not offered (a call for it goes to the route's upstream, which
answered the listing without it: a 404)."""

from __future__ import annotations

from typing import Any

import openai

from tests.harness import LoopThread, serving
from tests.servers.vllm_like import VllmLike

CONFIG = """listen: {{http: "127.0.0.1:0"}}
upstreams:
  - {{name: first, url: "{first}"}}
  - {{name: second, url: "{second}"}}
routes:
  - {{model: chat, upstream: second}}
  - {{model: "*", upstream: first}}
policy: {{anonymous: allow, default_purpose: assistant}}
"""


def _listing(root: str, *others: str) -> list[dict[str, Any]]:
    entries = [{"id": "chat", "object": "model", "created": 1, "owned_by": "vllm", "root": root, "parent": None}]
    entries += [dict(entries[0], id=other, root=f"org/{other}") for other in others]
    return entries


def test_a_model_two_upstreams_list_is_described_by_the_upstream_its_route_reaches(
    make_proxy: Any, loop_thread: LoopThread
) -> None:
    first, second = (
        VllmLike(models=_listing("org/first-weights", "only-first")),
        VllmLike(models=_listing("org/second-weights", "only-second")),
    )
    with serving(loop_thread, first.app()) as first_url, serving(loop_thread, second.app()) as second_url:
        proxy = make_proxy(CONFIG.format(first=first_url, second=second_url))
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0)
        listed = {model.id: model for model in client.models.list()}
        reply = client.chat.completions.with_raw_response.create(
            model="chat", messages=[{"role": "user", "content": "hello"}]
        )
    assert set(listed) == {"chat", "only-first"}  # each model once; `only-second`'s calls go to `first` (was listed)
    assert reply.headers["x-lineage-upstream"] == "second"
    assert reply.headers["x-lineage-checkpoint"] == "org/second-weights"
    assert listed["chat"].root == "org/second-weights"  # type: ignore[attr-defined]  # was: org/first-weights

"""A llama-server's LoRA scales set through the proxy (`POST /lora-adapters`, relayed as a passthrough call) change
what serves every call without its own `lora`. The proxy read them only at its next discovery round
(`discovery_interval_s`, a minute by default): until then each call was recorded, and checked against the baseline,
with the scales read before, as served by an adapter mix the server no longer applied. A successful `POST
/lora-adapters` now has the upstream's metadata asked again before its reply goes out, so the client's next call
is recorded with the scales it set."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from tests.harness import LoopThread, serving
from tests.servers.vllm_like import VllmLike
from tests.test_llama_lora import ADAPTERS, DEFAULT, LLAMA_SERVER

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - {name: llamacpp, url: "${UPSTREAM}", discovery_interval_s: 600}
routes:
  - {model: "*", upstream: llamacpp}
policy:
  anonymous: allow
  default_purpose: assistant
lineage:
  store: ${STORE}
"""


@pytest.fixture
def llama_server(loop_thread: LoopThread) -> Iterator[str]:
    """llama-server's two LoRA endpoints as it has them: GET lists the adapters with their scales; POST sets the
    scales it names and every other to 0 (`parse_lora_request`), answering `{"success": true}`."""
    server = VllmLike(models=[LLAMA_SERVER])
    app = server.app()
    adapters = [dict(adapter) for adapter in ADAPTERS]

    async def listed(request: web.Request) -> web.Response:
        return web.json_response(adapters)

    async def set_scales(request: web.Request) -> web.Response:
        scales = {entry["id"]: entry["scale"] for entry in await request.json()}
        for adapter in adapters:
            adapter["scale"] = scales.get(adapter["id"], 0.0)
        return web.json_response({"success": True})

    app.router.add_get("/lora-adapters", listed)
    app.router.add_post("/lora-adapters", set_scales)
    with serving(loop_thread, app) as url:
        yield url


def test_scales_set_through_the_proxy_name_the_next_call_s_checkpoint(llama_server: str, make_proxy: Any) -> None:
    proxy = make_proxy(CONFIG, UPSTREAM=llama_server)
    body = {"model": "gemma", "messages": [{"role": "user", "content": "hi"}]}
    before = httpx.post(f"{proxy.url}/v1/chat/completions", json=body, timeout=10)
    assert before.status_code == 200 and before.headers["x-lineage-checkpoint"] == DEFAULT, before.headers
    scales = [{"id": 0, "scale": 0.25}]  # sql.gguf at 0.25, med.gguf (not named) at 0
    set_ = httpx.post(f"{proxy.url}/lora-adapters", json=scales, timeout=10)
    assert set_.status_code == 200 and set_.json() == {"success": True}, set_.text
    after = httpx.post(f"{proxy.url}/v1/chat/completions", json=body, timeout=10)
    assert after.status_code == 200, after.text
    # was org/gemma-3+lora:/lora/med.gguf:0.5 until the next round, 600 s later
    assert after.headers["x-lineage-checkpoint"] == "org/gemma-3+lora:sql.gguf:0.25"

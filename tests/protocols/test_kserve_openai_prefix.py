"""KServe's Hugging Face runtime (and any `kserve` OpenAI model) serves OpenAI's API under `/openai`
(`/openai/v1/chat/completions`, `/openai/v1/models`; KServe's `KSERVE_OPENAI_ROUTE_PREFIX`), beside KServe V1's own
`/v1/models`. The README's setup: the upstream's url holds the prefix (`url: http://host:8080/openai`, `protocol:
openai`) and clients use the proxy's `/v1`, so calls are read as OpenAI's, and the checkpoint is discovered from
`/openai/v1/models`. (KServe's OpenAI endpoints need vLLM installed, so this upstream is a stand-in serving the same
paths and shapes.)"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest
from aiohttp import web

from tests.harness import LoopThread, ProxyHandle, serving


def kserve_hf(seen: list[Any]) -> web.Application:
    async def v1_models(request: web.Request) -> web.Response:  # KServe V1's list, not OpenAI's
        return web.json_response({"models": ["llm"]})

    async def openai_models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "llm", "object": "model", "created": 1,
                                                                "owned_by": ""}]})  # fmt: skip

    async def chat(request: web.Request) -> web.Response:
        seen.append(await request.json())
        return web.json_response({"id": "c", "object": "chat.completion", "created": 1, "model": "llm", "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}]})  # fmt: skip

    app = web.Application()
    app.router.add_get("/v1/models", v1_models)
    app.router.add_get("/openai/v1/models", openai_models)
    app.router.add_post("/openai/v1/chat/completions", chat)
    return app


def test_kserves_openai_endpoints_behind_the_upstreams_url_prefix(
    loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle]
) -> None:
    seen: list[Any] = []
    with serving(loop_thread, kserve_hf(seen)) as kserve:
        proxy = make_proxy("""
listen: {http: "127.0.0.1:0"}
upstreams: [{name: hf, url: "${KSERVE}/openai", protocol: openai}]
routes: [{model: llm, upstream: hf}]
policy: {anonymous: allow, default_purpose: care}
zones: [{name: personal, labels: ["pii:email"], allow_purposes: [care]}]
detectors: [email]
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
""", wait="probed", KSERVE=kserve)  # fmt: skip
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="x", max_retries=0)
        messages: Any = [{"role": "user", "content": "mail alice@example.com"}]
        with pytest.raises(openai.PermissionDeniedError, match="pii:email"):
            client.chat.completions.create(model="llm", messages=messages, extra_headers={"x-purpose": "ads"})
        assert seen == []
        reply = client.chat.completions.with_raw_response.create(model="llm", messages=messages)
        assert reply.headers["x-lineage-checkpoint"] == "llm" and "pii:email" in reply.headers["x-data-labels"]
        assert [model.id for model in client.models.list()] == ["llm"]
    assert len(seen) == 1

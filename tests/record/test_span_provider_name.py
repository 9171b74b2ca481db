"""`gen_ai.provider.name` is on every GenAI span: the OTel GenAI conventions make it Required on inference and
embeddings spans ("SHOULD be set based on the instrumentation's best knowledge and may differ from the actual model
provider"; for Anthropic "MUST be set to `anthropic`"). It names the engine when the config or the upstream's
metadata does; it was left out otherwise: a call to an upstream whose `/v1/models` names no engine (OpenAI's own
API, an organisation's `owned_by`), every call to Anthropic's API (whose listing has no `owned_by`), and every
denied call. Now the provider whose API the call speaks is named then (`openai`, `anthropic`)."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from aiohttp import web

from tests.configs import ONE_UPSTREAM
from tests.harness import serving
from tests.test_anthropic_cached_input_tokens import USAGE, anthropic_app

TELEMETRY = "telemetry:\n  exporter: otlp\n  endpoint: ${OTLP}\n  protocol: grpc\n"
PROVIDER = "gen_ai.provider.name"


def organisation_app(owned_by: str = "acme-org") -> web.Application:
    """An OpenAI-compatible upstream whose `/v1/models` names `owned_by` (an organisation, no engine, by default)."""

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "m", "object": "model", "owned_by": owned_by}]})

    async def chat(request: web.Request) -> web.Response:
        return web.json_response({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        })  # fmt: skip

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    return app


@pytest.mark.parametrize(
    ("owned_by", "provider"),
    [("acme-org", "openai"), ("Triton Inference Server", "triton"), ("tensorrt_llm", "tensorrt_llm")],
)
def test_openai_call_names_the_engine_else_openai(
    loop_thread: Any, otlp: Any, make_proxy: Any, owned_by: str, provider: str
) -> None:
    """Triton's OpenAI frontend and trtllm-serve name themselves in `owned_by` (`"Triton Inference Server"`,
    `"tensorrt_llm"`): the engine; an organisation names none: the API's provider."""
    with serving(loop_thread, organisation_app(owned_by)) as url:
        proxy = make_proxy(ONE_UPSTREAM + TELEMETRY, UPSTREAM=url, OTLP=f"http://127.0.0.1:{otlp.port}")
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="k", max_retries=0, timeout=10)
        reply = client.chat.completions.with_raw_response.create(model="m", messages=[{"role": "user", "content": "x"}])
        span = otlp.by_trace(reply.http_response.headers["x-trace-id"])
    assert span.attributes.get(PROVIDER) == provider
    assert span.attributes["lineage.upstream"] == "vllm"  # the config's name stays in the lineage namespace


def test_anthropic_call_names_anthropic(loop_thread: Any, otlp: Any, make_proxy: Any) -> None:
    with serving(loop_thread, anthropic_app(USAGE)) as url:
        proxy = make_proxy(ONE_UPSTREAM + TELEMETRY, UPSTREAM=url, OTLP=f"http://127.0.0.1:{otlp.port}")
        body = {"model": "claude", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
        reply = httpx.post(f"{proxy.url}/v1/messages", json=body, timeout=10)
        assert reply.status_code == 200
        span = otlp.by_trace(reply.headers["x-trace-id"])
    assert span.attributes.get(PROVIDER) == "anthropic"


def test_denied_call_names_the_protocols_provider(loop_thread: Any, otlp: Any, make_proxy: Any) -> None:
    config = ONE_UPSTREAM.replace("anonymous: allow", "anonymous: deny") + TELEMETRY
    with serving(loop_thread, organisation_app()) as url:
        proxy = make_proxy(config, UPSTREAM=url, OTLP=f"http://127.0.0.1:{otlp.port}")
        body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
        reply = httpx.post(f"{proxy.url}/v1/chat/completions", json=body, timeout=10)
        assert reply.status_code == 401
        span = otlp.by_trace(reply.headers["x-trace-id"])
    assert span.attributes["lineage.decision"] == "deny"
    assert span.attributes.get(PROVIDER) == "openai"


def test_a_configured_engine_still_wins(loop_thread: Any, otlp: Any, make_proxy: Any) -> None:
    config = ONE_UPSTREAM.replace("    url: ${UPSTREAM}\n", "    url: ${UPSTREAM}\n    provider: sglang\n") + TELEMETRY
    with serving(loop_thread, organisation_app()) as url:
        proxy = make_proxy(config, UPSTREAM=url, OTLP=f"http://127.0.0.1:{otlp.port}")
        body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
        reply = httpx.post(f"{proxy.url}/v1/chat/completions", json=body, timeout=10)
        span = otlp.by_trace(reply.headers["x-trace-id"])
    assert span.attributes.get(PROVIDER) == "sglang"

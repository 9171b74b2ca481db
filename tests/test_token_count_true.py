"""A token count is a JSON integer: a usage's `true` (which `isinstance(True, int)` took) is no count. The span said
`gen_ai.usage.input_tokens` `true` (a bool attribute) interpreted and `1` compiled, where the compiled `Outcome`'s
`int` field stored it; now neither build records a count for it, and the counts beside it stand."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from aiohttp import web

from tests.configs import ONE_UPSTREAM
from tests.harness import serving
from tests.test_anthropic_cached_input_tokens import TELEMETRY, anthropic_app


def chat_app(usage: dict[str, Any]) -> web.Application:
    """An OpenAI-compatible server answering a chat call whole, with `usage`."""

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "m", "object": "model"}]})

    async def chat(request: web.Request) -> web.Response:
        message = {"role": "assistant", "content": "hi"}
        return web.json_response({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
                                  "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                                  "usage": usage})  # fmt: skip

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    return app


def usage_attributes(loop_thread: Any, otlp: Any, make_proxy: Any, app: web.Application, path: str, body: Any) -> Any:
    """The span's `gen_ai.usage.*` attributes of one call through the proxy to `app`."""
    with serving(loop_thread, app) as url:
        proxy = make_proxy(ONE_UPSTREAM + TELEMETRY, UPSTREAM=url, OTLP=f"http://127.0.0.1:{otlp.port}")
        reply = httpx.post(f"{proxy.url}{path}", json=body, timeout=10)
        assert reply.status_code == 200
        span = otlp.by_trace(reply.headers["x-trace-id"])
    return {k: v for k, v in span.attributes.items() if k.startswith("gen_ai.usage.")}


def test_a_chat_reply_s_true_prompt_tokens_is_no_count(loop_thread: Any, otlp: Any, make_proxy: Any) -> None:
    app = chat_app({"prompt_tokens": True, "completion_tokens": 2, "total_tokens": 3})
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    got = usage_attributes(loop_thread, otlp, make_proxy, app, "/v1/chat/completions", body)
    assert got == {"gen_ai.usage.output_tokens": 2}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({"input_tokens": True, "output_tokens": 2}, {"gen_ai.usage.output_tokens": 2}),
        ({"input_tokens": 3, "cache_read_input_tokens": True, "output_tokens": True}, {"gen_ai.usage.input_tokens": 3}),
    ],
    ids=["input", "cached-and-output"],
)
def test_an_anthropic_usage_s_true_is_no_count(
    loop_thread: Any, otlp: Any, make_proxy: Any, stream: bool, usage: dict[str, Any], expected: dict[str, Any]
) -> None:
    """Streamed, `message_start` says 1 output token (the app's), which stands where `message_delta`'s is `true`."""
    if stream and "gen_ai.usage.output_tokens" not in expected:
        expected = {**expected, "gen_ai.usage.output_tokens": 1}
    body = {"model": "claude", "max_tokens": 16, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    assert usage_attributes(loop_thread, otlp, make_proxy, anthropic_app(usage), "/v1/messages", body) == expected

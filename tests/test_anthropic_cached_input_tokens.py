"""`gen_ai.usage.input_tokens` of an Anthropic Messages call counts the whole prompt, as the OTel GenAI conventions
for Anthropic say (docs/gen-ai/anthropic.md: "Anthropic `input_tokens` excludes cached tokens. Compute:
`gen_ai.usage.input_tokens = input_tokens + cache_read_input_tokens + cache_creation_input_tokens`"). With prompt
caching most of a long prompt is read from the cache: the span said 3 input tokens for a 2,003-token prompt, whole
or streamed (`message_start`'s usage, then `message_delta`'s cumulative one)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web

from tests.configs import ONE_UPSTREAM
from tests.harness import serving

TELEMETRY = "telemetry:\n  exporter: otlp\n  endpoint: ${OTLP}\n  protocol: grpc\n"
USAGE = {"input_tokens": 3, "cache_creation_input_tokens": 500, "cache_read_input_tokens": 1500, "output_tokens": 2}
WHOLE_PROMPT = 3 + 500 + 1500


def anthropic_app(usage: dict[str, Any], delta_usage: dict[str, Any] | None = None) -> web.Application:
    """The Messages API as Anthropic answers it (with `usage`; a stream's `message_delta` with `delta_usage`, when
    given): whole, or as its typed events."""

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": "claude", "type": "model"}], "has_more": False})

    async def messages(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        message = {"id": "msg_1", "type": "message", "role": "assistant", "model": body["model"], "content": [],
                   "stop_reason": None, "stop_sequence": None}  # fmt: skip
        if not body.get("stream"):
            return web.json_response({**message, "content": [{"type": "text", "text": "hi"}],
                                      "stop_reason": "end_turn", "usage": usage})  # fmt: skip
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        events: list[dict[str, Any]] = [
            {"type": "message_start", "message": {**message, "usage": {**usage, "output_tokens": 1}}},
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}},
            {"type": "content_block_stop", "index": 0},
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": delta_usage or usage,
            },
            {"type": "message_stop"},
        ]
        for event in events:
            await response.write(f"event: {event['type']}\ndata: ".encode() + orjson.dumps(event) + b"\n\n")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/messages", messages)
    return app


def input_tokens(
    loop_thread: Any,
    otlp: Any,
    make_proxy: Any,
    usage: dict[str, Any],
    stream: bool,
    delta_usage: dict[str, Any] | None = None,
) -> Any:
    """The `gen_ai.usage.*` of one Messages call through the proxy to an upstream answering with `usage`."""
    with serving(loop_thread, anthropic_app(usage, delta_usage)) as url:
        proxy = make_proxy(ONE_UPSTREAM + TELEMETRY, UPSTREAM=url, OTLP=f"http://127.0.0.1:{otlp.port}")
        body = {"model": "claude", "max_tokens": 16, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
        reply = httpx.post(f"{proxy.url}/v1/messages", json=body, timeout=10)
        assert reply.status_code == 200
        span = otlp.by_trace(reply.headers["x-trace-id"])
    return span.attributes["gen_ai.usage.input_tokens"], span.attributes["gen_ai.usage.output_tokens"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_cached_prompt_tokens_count_as_input_tokens(loop_thread: Any, otlp: Any, make_proxy: Any, stream: bool) -> None:
    assert input_tokens(loop_thread, otlp, make_proxy, USAGE, stream) == (WHOLE_PROMPT, 2)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_reply_without_cache_counts_keeps_its_input_tokens(
    loop_thread: Any, otlp: Any, make_proxy: Any, stream: bool
) -> None:
    usage = {"input_tokens": 3, "cache_read_input_tokens": None, "output_tokens": 2}  # (null: nothing cached)
    assert input_tokens(loop_thread, otlp, make_proxy, usage, stream) == (3, 2)


def test_a_message_delta_without_cache_counts_keeps_the_cached_prompt(
    loop_thread: Any, otlp: Any, make_proxy: Any
) -> None:
    """A stream's `message_delta` may repeat `input_tokens` without the cache's counts, which `message_start` gave:
    the prompt is still the whole one, not the uncached part."""
    delta = {"input_tokens": 3, "output_tokens": 2}
    assert input_tokens(loop_thread, otlp, make_proxy, USAGE, True, delta) == (WHOLE_PROMPT, 2)

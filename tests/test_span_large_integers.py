"""A request parameter is recorded as the number the caller sent. OTLP's AnyValue.int_value is an int64, and a JSON
integer from 2**63 to 2**64 - 1 (orjson reads it as an int; so do the servers behind the proxy: Python's json,
pydantic) was written as its low 64 bits: a collector read a caller's `seed` or `max_tokens` of 2**63 as
-9223372036854775808, and 2**64 - 1 as -1, a request the caller never made. A larger integer the proxy reads as a
double already (as a browser's `JSON.parse` does); one an int64 cannot hold is now written so too, as a double."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from aiohttp import web
from opentelemetry.proto.trace.v1 import trace_pb2

from proxy.record.otlp import key_values
from tests.configs import ONE_UPSTREAM
from tests.harness import serving

TELEMETRY = "telemetry:\n  exporter: otlp\n  endpoint: ${OTLP}\n  protocol: grpc\n"
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


def upstream_app() -> web.Application:
    """An OpenAI-compatible upstream that reads any JSON integer, as Python's json does."""

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "m", "object": "model", "owned_by": "vllm"}]})

    async def chat(request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        return web.json_response({"id": "c-1", "object": "chat.completion", "model": body["model"], "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]})  # fmt: skip

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    return app


@pytest.mark.parametrize("value", [2**63, 2**64 - 1])
def test_a_parameter_past_int64_is_recorded_as_the_number_sent(
    loop_thread: Any, otlp: Any, make_proxy: Any, value: int
) -> None:
    with serving(loop_thread, upstream_app()) as url:
        proxy = make_proxy(ONE_UPSTREAM + TELEMETRY, UPSTREAM=url, OTLP=f"http://127.0.0.1:{otlp.port}")
        body = f'{{"model": "m", "seed": {value}, "max_tokens": {value}, "messages": [{{"role": "user", "content": "hi"}}]}}'
        reply = httpx.post(f"{proxy.url}/v1/chat/completions", content=body, timeout=10,
                           headers={"content-type": "application/json"})  # fmt: skip
        assert reply.status_code == 200
        span = otlp.by_trace(reply.headers["x-trace-id"])
    assert span.attributes["gen_ai.request.seed"] == float(value) > 0
    assert span.attributes["gen_ai.request.max_tokens"] == float(value) > 0


@pytest.mark.parametrize("value", [0, 1, 0x3FFF, 0x4000, INT64_MAX, -1, INT64_MIN])
def test_an_int64_is_still_an_int(value: int) -> None:
    span = trace_pb2.Span.FromString(key_values(9, {"gen_ai.request.seed": value}))
    (attribute,) = span.attributes
    assert attribute.value.WhichOneof("value") == "int_value" and attribute.value.int_value == value


@pytest.mark.parametrize("value", [INT64_MAX + 1, 2**64 - 1, 2**64, INT64_MIN - 1])
def test_an_integer_past_int64_is_a_double(value: int) -> None:
    span = trace_pb2.Span.FromString(key_values(9, {"gen_ai.request.seed": value}))
    (attribute,) = span.attributes
    assert attribute.value.WhichOneof("value") == "double_value" and attribute.value.double_value == float(value)

"""A chat request holding both token limits is recorded with the one the server generates up to. vLLM reads
`max_completion_tokens or max_tokens` (serving: "chat completion endpoint supports max_completion_tokens ... TODO(#9845):
remove max_tokens"), as SGLang does; both OpenAI fields become `gen_ai.request.max_tokens`, and the proxy recorded
whichever came last in the body: `{"max_completion_tokens": 512, "max_tokens": 16}` was recorded as 16 for a call
allowed 512 tokens. A completions request has no `max_completion_tokens` (vLLM's CompletionRequest reads `max_tokens`)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from proxy.protocols.openai import read_request
from tests.configs import ONE_UPSTREAM

TELEMETRY = "telemetry:\n  exporter: otlp\n  endpoint: ${OTLP}\n  protocol: grpc\n"
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("order", ["completion-first", "completion-last"])
def test_a_chat_call_s_max_tokens_is_the_limit_it_ran_with(vllm: Any, otlp: Any, make_proxy: Any, order: str) -> None:
    _, upstream = vllm
    proxy = make_proxy(ONE_UPSTREAM + TELEMETRY, UPSTREAM=upstream, OTLP=f"http://127.0.0.1:{otlp.port}")
    limits = [("max_completion_tokens", 512), ("max_tokens", 16)]
    ordered = dict(limits if order == "completion-first" else limits[::-1])
    body = {"model": "llama-3.1-8b", "messages": MESSAGES, **ordered}
    reply = httpx.post(f"{proxy.url}/v1/chat/completions", content=orjson.dumps(body), timeout=10,
                       headers={"content-type": "application/json"})  # fmt: skip
    assert reply.status_code == 200
    assert otlp.by_trace(reply.headers["x-trace-id"]).attributes["gen_ai.request.max_tokens"] == 512


@pytest.mark.parametrize(
    ("operation", "fields", "expected"),
    [
        ("chat", {"max_completion_tokens": 512, "max_tokens": 16}, 512),
        ("chat", {"max_tokens": 16, "max_completion_tokens": 512}, 512),
        ("chat", {"max_tokens": 16, "max_completion_tokens": None}, 16),
        ("chat", {"max_tokens": 16}, 16),
        ("chat", {"max_completion_tokens": 512}, 512),
        ("text_completion", {"max_completion_tokens": 512, "max_tokens": 16}, 16),
        ("text_completion", {"max_tokens": 16, "max_completion_tokens": 512}, 16),
        ("responses", {"max_output_tokens": 300}, 300),  # (it was not recorded at all)
        ("responses", {"max_tokens": 16, "max_output_tokens": 300}, 300),
    ],
)
def test_one_max_tokens_of_the_field_the_server_reads(operation: str, fields: dict[str, Any], expected: int) -> None:
    data = {"chat": {"messages": MESSAGES}, "responses": {"input": "hi"}}.get(operation, {"prompt": "hi"})
    body = {"model": "m", **data, **fields}
    params = read_request(operation, orjson.dumps(body)).params
    assert [value for name, value in params if name == "max_tokens"] == [expected]

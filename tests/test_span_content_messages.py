"""Captured content as the OpenTelemetry GenAI conventions have it, read as their consumers read it.

`gen_ai.input.messages` and `gen_ai.output.messages` "MUST follow" the conventions' JSON schemas
(gen-ai-input-messages.json, gen-ai-output-messages.json): an array of messages, each with a `role` and
`parts` (`{"type": "text", "content": ...}`), an output message with its `finish_reason`; on a span, that
array as a JSON string. The proxy wrote the bare text (the input's texts joined by newlines, the output's
run together), which a GenAI trace viewer parsing the attribute as the schema's JSON cannot read: the
prompt and reply `capture_content` promises were there, but in no form a consumer takes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.harness import ProxyHandle
from tests.servers.otlp_receiver import OtlpReceiver
from tests.servers.vllm_like import VllmLike

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: u, url: "${UPSTREAM}", protocol: openai, checkpoint: org/w}]
routes: [{model: "*", upstream: u}]
policy: {anonymous: allow, default_purpose: assistant}
detectors: [email]
telemetry: {exporter: otlp, endpoint: "http://127.0.0.1:${OTLP}", capture_content: true}
lineage: {store: null}
"""


def _messages(value: Any, *, output: bool) -> list[dict[str, Any]]:
    """The attribute read as the schema says (a JSON string on a span), its shape checked as the schema's
    required keys and types have it; the messages."""
    assert isinstance(value, str), value
    try:
        messages = json.loads(value)
    except ValueError:
        pytest.fail(f"not the schema's JSON: {value[:200]!r}")
    assert isinstance(messages, list) and messages, messages
    for message in messages:
        assert isinstance(message, dict), message
        assert isinstance(message.get("role"), str), message
        assert isinstance(message.get("parts"), list), message
        for part in message["parts"]:
            assert isinstance(part, dict) and isinstance(part.get("type"), str), part
            if part["type"] == "text":
                assert isinstance(part.get("content"), str), part
        if output:
            assert isinstance(message.get("finish_reason"), str), message
    return messages


def _texts(messages: list[dict[str, Any]]) -> str:
    return "".join(part["content"] for message in messages for part in message["parts"] if part["type"] == "text")


@pytest.mark.parametrize("stream", [False, True])
def test_captured_content_follows_the_genai_message_schemas(
    vllm: tuple[VllmLike, str], make_proxy: Callable[..., ProxyHandle], otlp: OtlpReceiver, stream: bool
) -> None:
    _, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream, OTLP=str(otlp.port))
    body = {"model": "m", "messages": [{"role": "user", "content": "mail ana@example.org"}], "stream": stream}
    sent = httpx.post(f"{proxy.url}/v1/chat/completions", json=body, timeout=10)
    assert sent.status_code == 200
    a = otlp.by_trace(sent.headers["x-trace-id"]).attributes
    inputs = _messages(a["gen_ai.input.messages"], output=False)
    assert _texts(inputs) == "mail [pii:email]"  # masked as before
    outputs = _messages(a["gen_ai.output.messages"], output=True)
    assert outputs[0]["role"] == "assistant"
    assert "[pii:email]" in _texts(outputs) and "ana@example.org" not in _texts(outputs)
    assert outputs[0]["finish_reason"] == "stop"


def test_captured_content_of_a_cut_span_is_still_the_schemas_json(
    vllm: tuple[VllmLike, str], make_proxy: Callable[..., ProxyHandle], otlp: OtlpReceiver
) -> None:
    """Captured content past 16 KiB is cut: the captured messages' texts, not their JSON, which cut short
    reads as nothing."""
    _, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream, OTLP=str(otlp.port))
    body = {"model": "m", "messages": [{"role": "user", "content": "a" * 800_000}] * 6}
    sent = httpx.post(f"{proxy.url}/v1/chat/completions", json=body, timeout=60)
    a = otlp.by_trace(sent.headers["x-trace-id"]).attributes
    assert len(a["gen_ai.input.messages"].encode()) <= 16 << 10
    inputs = _messages(a["gen_ai.input.messages"], output=False)
    assert _texts(inputs).startswith("aaaa")

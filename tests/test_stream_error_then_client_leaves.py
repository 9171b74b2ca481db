"""An upstream's error in band (`data: {"error": ...}` from vLLM, TGI or OpenAI; an Anthropic `event: error`) ends the
stream for its client's SDK: the openai SDK raises `APIError` at it, the Anthropic SDK raises at `event: error`, and
each closes its response there, as it would direct. When the upstream's body was not over at that moment (vLLM sends
`data: [DONE]` after its error; any upstream may be slow to end its body), the proxy recorded the call
`client_disconnected`: the upstream's error was lost from the span, the access line and
`lineage_proxy_errors_total{type="upstream_error"}`, and the call counted as its client's doing."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.test_unsized_replies_output import BODIES, Reply, setup_for  # noqa: F401  # (a fixture)


def sse(event: dict[str, Any], kind: str | None = None) -> bytes:
    return (b"event: %s\n" % kind.encode() if kind else b"") + b"data: " + orjson.dumps(event) + b"\n\n"


def chat(text: str) -> bytes:
    return sse({"id": "c1", "object": "chat.completion.chunk", "model": "m",
                "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]})  # fmt: skip


def error_type(setup: Any, trace_id: str) -> Any:
    setup.loop_thread.run(setup.proxy.process.runtime.sinks.flush())
    return setup.otlp.by_trace(trace_id).attributes.get("error.type")


def test_an_openai_sdk_that_raises_at_the_upstreams_error_leaves_it_recorded(setup_for: Any) -> None:  # noqa: F811
    setup = setup_for()
    gate = asyncio.Event()  # the upstream's `data: [DONE]` comes once the client is done
    error = sse({"error": {"message": "boom", "type": "server_error", "code": 500}})
    setup.upstream.reply = Reply([chat("hello") + error, b"data: [DONE]\n\n"], content_type="text/event-stream",
                                 gate=gate)  # fmt: skip
    client = openai.OpenAI(base_url=f"{setup.proxy.url}/v1", api_key="k", timeout=10, max_retries=0)
    try:
        raw = client.chat.completions.with_raw_response.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        with pytest.raises(openai.APIError, match="boom"):
            list(raw.parse())
    finally:
        setup.loop_thread.loop.call_soon_threadsafe(gate.set)
        client.close()
    assert error_type(setup, raw.headers["x-trace-id"]) == "upstream_error"


def test_a_client_that_leaves_at_an_anthropic_error_event_leaves_it_recorded(setup_for: Any) -> None:  # noqa: F811
    """As the Anthropic SDK does: it raises at `event: error` and closes its response."""
    setup = setup_for()
    gate = asyncio.Event()
    error = sse({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, "error")
    start = sse({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                 "model": "m", "content": [], "usage": {"input_tokens": 1, "output_tokens": 0}}}, "message_start")  # fmt: skip
    setup.upstream.reply = Reply([start + error, b": the body's end comes later\n\n"],
                                 content_type="text/event-stream", gate=gate)  # fmt: skip
    try:
        with httpx.stream("POST", f"{setup.proxy.url}/v1/messages", json=BODIES["/v1/messages"],
                          timeout=10) as response:  # fmt: skip
            got = b""
            chunks = response.iter_raw()
            while not got.endswith(error):
                got += next(chunks)
    finally:
        setup.loop_thread.loop.call_soon_threadsafe(gate.set)
    assert error_type(setup, response.headers["x-trace-id"]) == "upstream_error"

"""A reply framed by its connection's close (no Content-Length, not chunked: an HTTP/1.0 server, or one that says
`Connection: close` and frames nothing) ends with that close, so HTTP cannot tell its end from a cut. An event stream
so framed that closes before its API's last event (`data: [DONE]`, Anthropic's `message_stop`, a Responses
`response.completed`) and before the model said it finished (no finish or stop reason) was cut short as far as
anyone can tell: it was recorded as a call that ended well. It is recorded `upstream_reset`; its client's body ends as
the upstream's did (a client direct would see the same clean end, and its SDK ends alike)."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.test_unsized_replies_output import BODIES, OUT, Reply, setup_for  # noqa: F401  # (a fixture)


def sse(event: dict[str, Any], kind: str | None = None) -> bytes:
    return (b"event: %s\n" % kind.encode() if kind else b"") + b"data: " + orjson.dumps(event) + b"\n\n"


def chat(text: str, reason: str | None = None) -> bytes:
    return sse({"id": "c1", "object": "chat.completion.chunk", "model": "m",
                "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": reason}]})  # fmt: skip


def span_of(setup: Any, trace_id: str) -> Any:
    setup.loop_thread.run(setup.proxy.process.runtime.sinks.flush())
    return setup.otlp.by_trace(trace_id)


def chat_call(setup: Any, pieces: list[bytes], flow: str) -> tuple[list[str | None], Any]:
    setup.upstream.reply = Reply(pieces, framing="close", content_type="text/event-stream")
    client = openai.OpenAI(base_url=f"{setup.proxy.url}/v1", api_key="k", timeout=10, max_retries=0,
                           default_headers={"x-data-labels": flow})  # fmt: skip
    try:
        raw = client.chat.completions.with_raw_response.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        got = [chunk.choices[0].delta.content for chunk in raw.parse()]
    finally:
        client.close()
    return got, span_of(setup, raw.headers["x-trace-id"])


def test_a_chat_stream_closed_before_its_end_is_recorded_cut(setup_for: Any) -> None:  # noqa: F811
    setup = setup_for()
    got, span = chat_call(setup, [chat("hello"), chat(f" write to {OUT}")], "flow-close-cut")
    assert got == ["hello", f" write to {OUT}"]  # every event, and a clean end, as direct
    assert span.attributes.get("error.type") == "upstream_reset"


@pytest.mark.parametrize(
    "end", [pytest.param(b"data: [DONE]\n\n", id="done"), pytest.param(b"", id="finish-reason-only")]
)
def test_a_chat_stream_closed_after_its_end_is_not(setup_for: Any, end: bytes) -> None:  # noqa: F811
    setup = setup_for()
    got, span = chat_call(setup, [chat("hello"), chat(" there", "stop") + end], "flow-close-whole")
    assert got == ["hello", " there"]
    assert span.attributes.get("error.type") is None


def test_a_messages_stream_closed_before_its_end_is_recorded_cut(setup_for: Any) -> None:  # noqa: F811
    setup = setup_for()
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [],
               "usage": {"input_tokens": 1, "output_tokens": 0}}  # fmt: skip
    block = {"type": "text", "text": ""}
    delta = {"type": "text_delta", "text": "hello"}
    pieces = [
        sse({"type": "message_start", "message": message}, "message_start")
        + sse({"type": "content_block_start", "index": 0, "content_block": block}, "content_block_start"),
        sse({"type": "content_block_delta", "index": 0, "delta": delta}, "content_block_delta"),
    ]
    setup.upstream.reply = Reply(pieces, framing="close", content_type="text/event-stream")
    with httpx.stream("POST", f"{setup.proxy.url}/v1/messages", json=BODIES["/v1/messages"], timeout=10,
                      headers={"x-data-labels": "flow-close-messages"}) as response:  # fmt: skip
        got = b"".join(response.iter_raw())  # a clean end: no error
    assert response.status_code == 200 and got == b"".join(pieces)
    assert span_of(setup, response.headers["x-trace-id"]).attributes.get("error.type") == "upstream_reset"


def test_a_llama_cpp_native_stream_closed_after_its_stop_is_not(setup_for: Any) -> None:  # noqa: F811
    """llama.cpp's native completion stream ends with an event whose `stop` is true, and no `[DONE]`."""
    setup = setup_for()
    pieces = [sse({"index": 0, "content": "hello", "stop": False}),
              sse({"index": 0, "content": "", "stop": True, "stop_type": "eos", "tokens_predicted": 1})]  # fmt: skip
    setup.upstream.reply = Reply(pieces, framing="close", content_type="text/event-stream")
    with httpx.stream("POST", f"{setup.proxy.url}/v1/completions", json={"model": "m", "prompt": "hi", "stream": True},
                      timeout=10, headers={"x-data-labels": "flow-close-native"}) as response:  # fmt: skip
        got = b"".join(response.iter_raw())
    assert response.status_code == 200 and got == b"".join(pieces)
    assert span_of(setup, response.headers["x-trace-id"]).attributes.get("error.type") is None

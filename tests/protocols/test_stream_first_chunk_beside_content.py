"""A stream's `gen_ai.response.time_to_first_chunk` (and its `gen_ai.first_token` event, and the
`lineage_proxy_time_to_first_chunk_seconds` histogram) is the time its first chunk of output came: the model's
reasoning or thinking when it thinks first, a tool call when it calls one. It was the time the first *content* text
came: a reasoning model's thinking (seconds of it) counted as waiting, and a stream of tool calls alone had none,
though the README says streams get it. The upstream here holds its reply after the reasoning until the client has
that; the content comes only after the test's clock read, so a first chunk recorded after it is the content's."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import orjson
import pytest

from tests.test_unsized_replies_output import BODIES, Reply, setup_for  # noqa: F401  # (a fixture)

CHAT = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}


def sse(event: dict[str, Any], kind: str | None = None) -> bytes:
    return (b"event: " + kind.encode() + b"\n" if kind else b"") + b"data: " + orjson.dumps(event) + b"\n\n"


def chat(delta: dict[str, Any], finish: str | None = None) -> bytes:
    return sse(CHAT | {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


# (thinking first, then the content), by API: the first piece holds the thinking only
THINKING = {
    "/v1/chat/completions": (
        chat({"role": "assistant", "content": ""}) + chat({"reasoning_content": "Let me think"}),
        chat({"content": "Hello"}) + chat({}, "stop") + b"data: [DONE]\n\n",
    ),
    "/v1/messages": (
        sse({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
             "content": [], "usage": {"input_tokens": 3, "output_tokens": 1}}}, "message_start")
        + sse({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
              "content_block_start")
        + sse({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta",
               "thinking": "Let me think"}}, "content_block_delta"),
        sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
        + sse({"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
              "content_block_start")
        + sse({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Hello"}},
              "content_block_delta")
        + sse({"type": "content_block_stop", "index": 1}, "content_block_stop")
        + sse({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 5}},
              "message_delta")
        + sse({"type": "message_stop"}, "message_stop"),
    ),
    "/v1/responses": (
        sse({"type": "response.created", "response": {"id": "r1", "model": "m", "status": "in_progress"}})
        + sse({"type": "response.output_item.added", "output_index": 0,
               "item": {"type": "reasoning", "id": "rs_1", "summary": []}})
        + sse({"type": "response.reasoning_summary_text.delta", "output_index": 0, "summary_index": 0,
               "item_id": "rs_1", "delta": "Let me think"}),
        sse({"type": "response.output_item.done", "output_index": 0, "item": {"type": "reasoning", "id": "rs_1",
             "summary": [{"type": "summary_text", "text": "Let me think"}]}})
        + sse({"type": "response.output_text.delta", "output_index": 1, "content_index": 0, "item_id": "m_1",
               "delta": "Hello"})
        + sse({"type": "response.completed", "response": {"id": "r1", "model": "m", "status": "completed"}}),
    ),
}  # fmt: skip
TOOL_CALL_ONLY = (
    chat({"role": "assistant", "content": None, "tool_calls": [
        {"index": 0, "id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": ""}}]})
    + chat({"tool_calls": [{"index": 0, "function": {"arguments": '{"q": "weather"}'}}]})
    + chat({}, "tool_calls")
    + b"data: [DONE]\n\n"
)  # fmt: skip


@pytest.mark.parametrize("path", list(THINKING))
def test_the_first_chunk_is_the_thinking_when_the_model_thinks_first(setup_for: Any, path: str) -> None:  # noqa: F811
    setup = setup_for()
    first, rest = THINKING[path]
    gate = asyncio.Event()
    setup.upstream.reply = Reply([first, rest], content_type="text/event-stream", gate=gate)
    got = b""
    with httpx.stream(
        "POST", f"{setup.proxy.url}{path}", json={**BODIES[path], "stream": True}, timeout=30
    ) as response:
        chunks = response.iter_raw()
        while len(got) < len(first):
            got += next(chunks)
        before_content = time.time_ns()  # the upstream sends the content only after this
        setup.loop_thread.loop.call_soon_threadsafe(gate.set)
        got += b"".join(chunks)
    assert got == first + rest
    span = setup.otlp.by_trace(response.headers["x-trace-id"])
    first_chunk = span.start_ns + round(span.attributes["gen_ai.response.time_to_first_chunk"] * 1e9)
    assert first_chunk < before_content
    assert [name for name, _ in span.events].count("gen_ai.first_token") == 1


def test_a_stream_of_a_tool_call_alone_has_its_first_chunk(setup_for: Any) -> None:  # noqa: F811
    setup = setup_for()
    setup.upstream.reply = Reply([TOOL_CALL_ONLY], content_type="text/event-stream")
    path = "/v1/chat/completions"
    with httpx.stream(
        "POST", f"{setup.proxy.url}{path}", json={**BODIES[path], "stream": True}, timeout=30
    ) as response:
        got = b"".join(response.iter_raw())
    assert got == TOOL_CALL_ONLY
    span = setup.otlp.by_trace(response.headers["x-trace-id"])
    assert span.attributes.get("gen_ai.response.time_to_first_chunk", 0) > 0
    assert [name for name, _ in span.events].count("gen_ai.first_token") == 1

"""An event stream's end (`data: [DONE]`, Anthropic's `message_stop`, a Responses `response.completed`) is where the
call is recorded, before the client has that piece (so a client that leaves at it loses no record). What an upstream
sends after it, in a later piece, was passed on to the client unread, and the record called it clean: an Anthropic
or Responses SDK reads every event to the body's end, so an application was given an address the record did not
have. The upstream holds its last piece until the client has the end, so the two cannot come in one read."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest

from tests.test_unsized_replies_output import BODIES, EMAIL, OUT, Reply, setup_for  # noqa: F401  # (a fixture)


def sse(event: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(event) + b"\n\n"


def chat(text: str, reason: str | None) -> bytes:
    return sse({"id": "c1", "object": "chat.completion.chunk", "model": "m",
                "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": reason}]})  # fmt: skip


def anthropic(kind: str, **fields: Any) -> bytes:
    return b"event: " + kind.encode() + b"\n" + sse({"type": kind, **fields})


STREAMS = {
    "/v1/chat/completions": (
        chat("hello", "stop") + b"data: [DONE]\n\n",
        b"[DONE]",
        chat(f"write to {OUT}", "stop") + b"data: [DONE]\n\n",
    ),
    "/v1/messages": (
        anthropic("content_block_start", index=0, content_block={"type": "text", "text": ""})
        + anthropic("content_block_delta", index=0, delta={"type": "text_delta", "text": "hello"})
        + anthropic("content_block_stop", index=0)
        + anthropic("message_stop"),
        b"message_stop",
        anthropic("content_block_delta", index=0, delta={"type": "text_delta", "text": f"write to {OUT}"})
        + anthropic("message_stop"),
    ),
    "/v1/responses": (
        sse({"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "item_id": "m", "delta": "hi"})
        + sse({"type": "response.completed", "response": {"id": "r", "model": "m", "status": "completed"}}),
        b"response.completed",
        sse({"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "item_id": "m",
             "delta": f"write to {OUT}"}),
    ),
}  # fmt: skip


@pytest.mark.parametrize("framing", ["chunked", "sized"])
@pytest.mark.parametrize("path", list(STREAMS))
def test_output_after_a_streams_end_is_not_recorded_clean(setup_for: Any, path: str, framing: str) -> None:  # noqa: F811
    """Chunked, what follows the end is not passed on; sized (a Content-Length), the client is promised those bytes:
    the call ends at the body's last byte, and what follows the end is read for the record."""
    setup = setup_for()
    first, end, after = STREAMS[path]
    gate = asyncio.Event()
    setup.upstream.reply = Reply([first, after], framing=framing, content_type="text/event-stream", gate=gate)
    flow = f"flow-after-end-{framing}-{path.rsplit('/', 1)[1]}"
    got = b""
    with httpx.stream("POST", f"{setup.proxy.url}{path}", json=BODIES[path], timeout=30,
                      headers={"x-data-labels": flow}) as response:  # fmt: skip
        chunks = response.iter_raw()
        while end not in got:
            got += next(chunks)
        setup.loop_thread.loop.call_soon_threadsafe(gate.set)  # the upstream sends the rest now
        got += b"".join(chunks)
    assert response.status_code == 200 and got.startswith(first)
    span_labels, edge_labels = setup.recorded(response, flow)
    assert span_labels == edge_labels and flow in span_labels  # the call is recorded, span and edge alike
    # the client is given no output the record calls clean: what came after the end is not passed on, or is read
    assert OUT.encode() not in got or EMAIL in span_labels
    if framing == "sized":
        assert got == first + after

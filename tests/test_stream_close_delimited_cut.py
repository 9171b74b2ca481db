"""A reply framed by its connection's close (no Content-Length, not chunked: an HTTP/1.0 server, or one that says
`Connection: close` and frames nothing) ends with that close, so HTTP cannot tell its end from a cut. An event stream
so framed that closes before its API's last event (`data: [DONE]`, Anthropic's `message_stop`, a Responses
`response.completed`) and before the model said it finished (no finish or stop reason) was cut short as far as
anyone can tell: it was recorded as a call that ended well. It is recorded `upstream_reset`; its client's body ends as
the upstream's did (a client direct would see the same clean end, and its SDK ends alike)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.event_streams import chat, chat_call, messages_pieces, post_stream, span_of, sse
from tests.test_unsized_replies_output import BODIES, OUT, Reply, setup_for  # noqa: F401  # (a fixture)


def test_a_chat_stream_closed_before_its_end_is_recorded_cut(setup_for: Any) -> None:  # noqa: F811
    setup = setup_for()
    got, span = chat_call(setup, [chat("hello"), chat(f" write to {OUT}")], "flow-close-cut", "close")
    assert got == ["hello", f" write to {OUT}"]  # every event, and a clean end, as direct
    assert span.attributes.get("error.type") == "upstream_reset"


@pytest.mark.parametrize(
    "end", [pytest.param(b"data: [DONE]\n\n", id="done"), pytest.param(b"", id="finish-reason-only")]
)
def test_a_chat_stream_closed_after_its_end_is_not(setup_for: Any, end: bytes) -> None:  # noqa: F811
    setup = setup_for()
    got, span = chat_call(setup, [chat("hello"), chat(" there", "stop") + end], "flow-close-whole", "close")
    assert got == ["hello", " there"]
    assert span.attributes.get("error.type") is None


def test_a_messages_stream_closed_before_its_end_is_recorded_cut(setup_for: Any) -> None:  # noqa: F811
    setup = setup_for()
    pieces = messages_pieces()
    setup.upstream.reply = Reply(pieces, framing="close", content_type="text/event-stream")
    response, got = post_stream(setup, "/v1/messages", BODIES["/v1/messages"], "flow-close-messages", raw=True)
    # a clean end: no error
    assert response.status_code == 200 and got == b"".join(pieces)
    assert span_of(setup, response.headers["x-trace-id"]).attributes.get("error.type") == "upstream_reset"


def test_a_llama_cpp_native_stream_closed_after_its_stop_is_not(setup_for: Any) -> None:  # noqa: F811
    """llama.cpp's native completion stream ends with an event whose `stop` is true, and no `[DONE]`."""
    setup = setup_for()
    pieces = [sse({"index": 0, "content": "hello", "stop": False}),
              sse({"index": 0, "content": "", "stop": True, "stop_type": "eos", "tokens_predicted": 1})]  # fmt: skip
    setup.upstream.reply = Reply(pieces, framing="close", content_type="text/event-stream")
    response, got = post_stream(setup, "/v1/completions", {"model": "m", "prompt": "hi", "stream": True},
                                "flow-close-native", raw=True)  # fmt: skip
    assert response.status_code == 200 and got == b"".join(pieces)
    assert span_of(setup, response.headers["x-trace-id"]).attributes.get("error.type") is None

"""An event stream its upstream ends in good order (a chunked reply's last chunk) before its API's last event (`data:
[DONE]`, Anthropic's `message_stop`, a Responses `response.completed`), before any finish or stop reason and any error
in band, gave its client an incomplete reply: the openai SDK ends its iteration there without an error, as at `[DONE]`,
and the client holds a reply cut short. It was recorded as a call that ended well, where the same stream framed by its
connection's close is `upstream_reset` (`test_stream_close_delimited_cut.py`). It is recorded `upstream_incomplete`; its
client's body ends as the upstream's did. A stream that ends so after its end, or whose API has no last event
(Triton's `generate_stream`), is not."""

from __future__ import annotations

from typing import Any

import pytest

from tests.event_streams import chat, chat_call, generate_pieces, messages_pieces, post_stream, span_of
from tests.test_unsized_replies_output import BODIES, OUT, Reply, setup_for  # noqa: F401  # (a fixture)


def test_a_chat_stream_ended_before_its_end_is_recorded_incomplete(setup_for: Any) -> None:  # noqa: F811
    setup = setup_for()
    got, span = chat_call(setup, [chat("hello"), chat(f" write to {OUT}")], "flow-chunked-incomplete", "chunked")
    assert got == ["hello", f" write to {OUT}"]  # every event, and a clean end: no error from the SDK
    assert span.attributes.get("error.type") == "upstream_incomplete"
    assert span.attributes["http.response.status_code"] == 200  # what the client got: the head went out


@pytest.mark.parametrize(
    "end", [pytest.param(b"data: [DONE]\n\n", id="done"), pytest.param(b"", id="finish-reason-only")]
)
def test_a_chat_stream_ended_after_its_end_is_not(setup_for: Any, end: bytes) -> None:  # noqa: F811
    setup = setup_for()
    got, span = chat_call(setup, [chat("hello"), chat(" there", "stop") + end], "flow-chunked-whole", "chunked")
    assert got == ["hello", " there"]
    assert span.attributes.get("error.type") is None


def test_a_messages_stream_ended_before_its_end_is_recorded_incomplete(setup_for: Any) -> None:  # noqa: F811
    setup = setup_for()
    pieces = messages_pieces()
    setup.upstream.reply = Reply(pieces, framing="chunked", content_type="text/event-stream")
    response, got = post_stream(setup, "/v1/messages", BODIES["/v1/messages"], "flow-chunked-messages")
    # a clean end: no error
    assert response.status_code == 200 and got == b"".join(pieces)
    assert span_of(setup, response.headers["x-trace-id"]).attributes.get("error.type") == "upstream_incomplete"


def test_a_generate_stream_which_has_no_last_event_is_not(setup_for: Any) -> None:  # noqa: F811
    """Triton's `generate_stream` sends its responses and ends: no event of its own says it is the last."""
    setup = setup_for()
    pieces = generate_pieces()
    setup.upstream.reply = Reply(pieces, framing="chunked", content_type="text/event-stream")
    response, got = post_stream(setup, "/v2/models/m/generate_stream", {"text_input": "hi"}, "flow-chunked-generate")
    assert response.status_code == 200 and got == b"".join(pieces)
    span = span_of(setup, response.headers["x-trace-id"])
    assert span.attributes["gen_ai.operation.name"] == "generate"  # read as a generate stream
    assert span.attributes.get("error.type") is None

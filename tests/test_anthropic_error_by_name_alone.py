"""An Anthropic stream's error is the event its SDK raises at: one named `error`, by the last `event:` line before the
blank line that ends it (WHATWG EventSource: each `event:` line replaces the name; the SDK's decoder dispatches the
event under the last), whatever its data. Its `Stream.__stream__` (anthropic-sdk-python 1.13.0) raises
nowhere else: data `{"type": "error", ...}` in an event named `message_delta` (or another name it parses) is passed on
as an event of that type (its `MessageStream` skips it), and in an event named `ping`, another name or none, skipped.
The proxy took each of these for the upstream's error (`upstream_error`): the data's `type` (`erred`), and an
`event: error` line before the data that a later `event:` line renamed (helper ssenormal). The reference is the real
SDK's `Stream` over the bytes (`anthropic_sdk_raises`; 1.13.0 and 2.17.0 read these alike), and the real SDK reading
some of the calls through the proxy."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from tests.test_anthropic_parsed_events import anthropic_sdk_raises, observed_as_the_sdk_reads_it
from tests.test_sse_sdk_remaining_cases import STOP
from tests.test_stream_close_delimited_cut import span_of
from tests.test_unsized_replies_output import Reply, setup_for  # noqa: F401  # (a fixture)

START = (b'event: message_start\ndata: {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role":'
         b' "assistant", "model": "m", "content": [], "usage": {"input_tokens": 1, "output_tokens": 1}}}\n\n'
         b'event: content_block_start\ndata: {"type": "content_block_start", "index": 0, "content_block": {"type":'
         b' "text", "text": ""}}\n\n')  # fmt: skip
DELTA = b'{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}}'
ERROR = b'{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}'
END = b'event: content_block_stop\ndata: {"type": "content_block_stop", "index": 0}\n\n' + STOP
STREAMS = [
    # 1. the last `event:` line names the event
    (START + b"event: error\ndata: " + DELTA + b"\nevent: content_block_delta\n\n" + END, False),
    (START + b"event: error\ndata: " + ERROR + b"\nevent: ping\n\n" + END, False),
    (START + b"event: error\nevent: content_block_delta\ndata: " + DELTA + b"\n\n" + END, False),
    (START + b"event: content_block_delta\ndata: " + DELTA + b"\nevent: error\n\n" + END, True),
    (START + b"event: ping\ndata: " + ERROR + b"\nevent: error\n\n" + END, True),
    (START + b"event: error\ndata: " + ERROR + b"\n\n" + END, True),
    (START + b"event: error\ndata: {}\n\n" + END, True),
    # 2. data whose `type` is `error`, in an event named otherwise
    (START + b"event: message_delta\ndata: " + ERROR + b"\n\n" + END, False),
    (START + b"event: content_block_delta\ndata: " + ERROR + b"\n\n" + END, False),
    (START + b"event: ping\ndata: " + ERROR + b"\n\n" + END, False),
    (START + b"event: overloaded\ndata: " + ERROR + b"\n\n" + END, False),
    (START + b"data: " + ERROR + b"\n\n" + END, False),
    (START + b"data: {\ndata: " + ERROR[1:] + b"\n\n" + END, False),  # (over two lines)
]


@pytest.mark.parametrize(("stream", "raises"), STREAMS)
def test_an_anthropic_error_is_the_event_named_error(setup_for: Any, stream: bytes, raises: bool) -> None:  # noqa: F811
    assert anthropic_sdk_raises(stream) is raises
    observed_as_the_sdk_reads_it(setup_for, stream, raises, "flow-ssenormal")


def anthropic_call(setup: Any, labels: str | None = None) -> tuple[list[str], Exception | None, Any]:
    """A Messages stream through the proxy with the real Anthropic SDK: its events' types, what it raised, the span."""
    headers = {} if labels is None else {"x-data-labels": labels}
    client = anthropic.Anthropic(
        base_url=setup.proxy.url, api_key="k", max_retries=0, timeout=30, default_headers=headers
    )
    types: list[str] = []
    raised: Exception | None = None
    try:
        raw = client.messages.with_raw_response.create(
            model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        try:
            types = [event.type for event in raw.parse()]
        except (anthropic.APIStatusError, ValueError) as error:  # (an `error` event; data no JSON: JSONDecodeError)
            raised = error
    finally:
        client.close()
    return types, raised, span_of(setup, raw.headers["x-trace-id"])


@pytest.mark.parametrize(("stream", "raises"), [STREAMS[0], STREAMS[3], STREAMS[7], STREAMS[11]])
def test_through_the_real_anthropic_sdk(setup_for: Any, stream: bytes, raises: bool) -> None:  # noqa: F811
    """The real SDK reading the proxy's relayed stream: what it raised, and the record, agree."""
    setup = setup_for()
    setup.upstream.reply = Reply([line + b"\n" for line in stream.split(b"\n")[:-1]], content_type="text/event-stream")
    types, raised, span = anthropic_call(setup, "flow-ssenormal-sdk")
    assert (raised is not None) is raises
    if not raises:
        assert types[-1] == "message_stop"
    assert span.attributes.get("error.type") == ("upstream_error" if raises else None)


def test_bare_data_lines_through_the_real_sdk(setup_for: Any) -> None:  # noqa: F811
    """`data` lines without a colon, through the proxy to the real SDK: two in a named event raise (data `\\n`), and the
    span says so; one is skipped (data `""`), no error."""
    for lines, raises in ((b"data\ndata\n", True), (b"data\n", False)):
        setup = setup_for()
        stream = START + b"event: message_delta\n" + lines + b"\n" + STOP
        setup.upstream.reply = Reply([stream], content_type="text/event-stream")
        types, raised, span = anthropic_call(setup)
        assert (raised is not None, span.attributes.get("error.type")) == (raises, "upstream_error" if raises else None)

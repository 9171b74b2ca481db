"""An event stream's events are the upstream's error where its client's SDK raises at them, and only there: the
openai SDK (`Stream.__stream__`) parses each event its SSE decoder dispatches as JSON (`sse.json()`, all but
`[DONE]`), so an event whose data is no JSON text (`data: x`), or empty (a bare `data` line, an event of an `id` line
alone: the decoder dispatches one at a blank line once it has data, a name, an id or a retry) raises; and the decoder
dispatches an event at the blank line that ends it, so an error in an event the reply ends in before that line is
none (the anthropic SDK's decoder is the same code). Driven with the real openai SDK through the proxy, against an
upstream that frames its replies by hand; the record is the call's span."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from proxy.detectors import TRUNCATED
from proxy.protocols import STREAM_ERROR
from tests.event_streams import openai_chat
from tests.test_scan_cost import _streamed
from tests.test_sse_late_events import sdk_raises
from tests.test_tiny_sse_lines import observer_of
from tests.test_unsized_replies_output import Reply, setup_for  # noqa: F401  # (a fixture)

CHUNK = b"data: " + orjson.dumps({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                                  "choices": [{"index": 0, "delta": {"content": "hello"}, "finish_reason": None}]})  # fmt: skip
CHUNK += b"\n\n"
DONE = b"data: [DONE]\n\n"
ERROR = b'data: {"error": {"message": "overloaded", "type": "InternalServerError", "code": 500}}'


def through_sdk(setup: Any, body: bytes, framing: str = "chunked", split: bool = True) -> tuple[int, str, Any]:
    """`body` (an event stream, a piece a line, or one piece unless `split`) through the proxy to the openai SDK's chat
    stream: the chunks it gave, the type of what it raised (`""`: nothing), the call's span."""
    pieces = [line + b"\n" for line in body.split(b"\n")] if split else [body]
    pieces[-1] = pieces[-1][:-1] if split else pieces[-1]
    setup.upstream.reply = Reply([p for p in pieces if p], framing=framing, content_type="text/event-stream")
    chunks, raised, span = openai_chat(setup, timeout=30, catch=Exception)  # (a JSONDecodeError, an APIError)
    return len(chunks), type(raised).__name__ if raised is not None else "", span


@pytest.mark.parametrize(
    ("event", "raised"),
    [
        (b"data: x\n\n", "JSONDecodeError"),  # no JSON text
        (b"data: x\ndata: " + CHUNK[6:], "JSONDecodeError"),  # (its lines joined: no JSON text)
        (b"data\n\n", "JSONDecodeError"),  # a bare `data` line: empty data
        (b"data:\n\n", "JSONDecodeError"),
        (b"id: 7\n\n", "JSONDecodeError"),  # an id alone: dispatched, its data empty
        (b"event: x\n: c\n\n", "JSONDecodeError"),  # a name alone
        (b"data\ndata: " + CHUNK[6:], ""),  # (its lines joined, `\n{...}`: JSON)
        (b"id: 7\n" + CHUNK, ""),
        (b"data: [1,\ndata: 2]\n\n", ""),  # (JSON, no object: the SDK passes it on)
        (b"data: 1\ndata: 2\n\n", "JSONDecodeError"),  # (each line JSON alone, `1\n2` none; helper revsse)
        (b"data: 1\ndata: " + CHUNK[6:], "JSONDecodeError"),  # (`1\n{...}`: none)
        (b"data: 1\n\n", ""),
        (b": ping\nretry\n\n", ""),  # (nothing to dispatch)
        (ERROR + b"\n\n", "APIError"),
    ],
)
def test_an_event_the_openai_sdk_raises_at_is_the_upstreams_error(setup_for: Any, event: bytes, raised: str) -> None:  # noqa: F811
    """Before 2026-12-05 each of the first six passed as a success: `data: x` was content not read, the bare `data`
    line, the `id` line and the lone name were dropped as framing, and the SDK raised at each."""
    got, sdk_raised, span = through_sdk(setup_for(), CHUNK + event + DONE)
    assert sdk_raised == raised
    assert span.attributes.get("error.type") == ("upstream_error" if raised else None), event


@pytest.mark.parametrize("framing", ["chunked", "close"])
@pytest.mark.parametrize(
    "end",
    [ERROR + b"\n", ERROR, b'data: {"error":\ndata: {"message": "overloaded"}}\n'],
    ids=["line-end", "no-line-end", "two-lines"],
)
def test_an_error_in_an_event_the_reply_ends_in_is_none(setup_for: Any, end: bytes, framing: str) -> None:  # noqa: F811
    """The reply ends before the blank line that would end its last event: the SDK's decoder never dispatches it, and
    the SDK gives the chunk before it and ends, raising nothing; the call was `upstream_error` (the event's data read
    at its line, or at the reply's end) before 2026-12-05. With that line, it is."""
    setup = setup_for()
    got, raised, span = through_sdk(setup, CHUNK + end, framing)
    assert (got, raised) == (1, "")
    assert span.attributes.get("error.type") != "upstream_error"
    got, raised, span = through_sdk(setup, CHUNK + end.rstrip(b"\n") + b"\n\n", framing)
    assert (got, raised) == (1, "APIError")
    assert span.attributes.get("error.type") == "upstream_error"


@pytest.mark.parametrize("read", [4096, 65_536])
def test_the_reading_stops_at_its_one_byte_line_not_an_equal_one_before_it(read: int) -> None:
    """Sixteen `x` lines (no field, refused) stop the reading at the last; its event named `error` so far, renamed
    `ping` by a line after it: the anthropic SDK raises at nothing. The late check started at the first `x` line
    before 2026-12-05 (a one-byte line is one object, however many a read is split into: the first was taken for the
    one the reading stopped at), and took the end of the first `x`'s event for this one's, named `error`."""
    tail = b"x\n\n" * 15 + b"event: error\nx\nevent: ping\n\n"
    assert not sdk_raises("anthropic", tail)
    observer, outcome = observer_of("anthropic")
    _streamed(observer, tail, read)
    assert outcome.error_type is None and TRUNCATED in outcome.output_detected
    observer, outcome = observer_of("anthropic")
    _streamed(observer, tail + b"event: error\n\n", read)
    assert outcome.error_type == STREAM_ERROR


@pytest.mark.parametrize("split", [False, True], ids=["one-piece", "a-piece-a-line"])
@pytest.mark.parametrize("framing", ["sized", "chunked"])
@pytest.mark.parametrize("after", [b"data: x\n\n", b"id: 7\n\n", ERROR + b"\n\n"], ids=["no-json", "empty", "error"])
def test_an_event_after_done_is_none(setup_for: Any, after: bytes, framing: str, split: bool) -> None:  # noqa: F811
    """The openai SDK breaks out of its events at `[DONE]`: an event after it, passed on in the piece that holds it or
    in a sized reply's rest, is none it raises at. Before 2026-12-05 (helper revsse) each was `upstream_error`: the
    first two since 917f8e9, an error event since before it."""
    got, raised, span = through_sdk(setup_for(), CHUNK + DONE + after, framing, split)
    assert (got, raised) == (1, "")
    assert span.attributes.get("error.type") is None

"""An Anthropic stream's events as the Anthropic SDK reads them (helper revsse3; anthropic 2.17.0, helper streams). Its
`Stream.__stream__` skips an event named none (or `event:` with no value) and one named `ping`, raises at one named
`error`, skips one without data, and calls `sse.json()` on the data of any other, where `json.loads` raises at data that
is no JSON: `data: x`, `data: [DONE]`, two objects joined by the decoder (two `data:` lines in one event), white space.
The observer read such an event's data as unread (or each object alone) and recorded a success; and until 2026-12-05 it
took a named event without data (`event: message_stop` then a blank line) for one the SDK raises at, as 0.121.0 did,
and one named a name 0.121.0 did not parse (`event: x`) for one it ignores. The reference is the real SDK's `Stream` over
the stream's bytes; the calls also go through the proxy."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2
import pytest
from anthropic.types import RawMessageStreamEvent
from pydantic import BaseModel

from proxy.protocols import STREAM_ERROR
from tests.test_scan_cost import _streamed
from tests.test_sse_sdk_remaining_cases import EVENT, STOP
from tests.test_stream_close_delimited_cut import span_of
from tests.test_tiny_sse_lines import observer_of
from tests.test_unsized_replies_output import Reply, setup_for  # noqa: F401  # (a fixture)

_CLIENT = anthropic.Anthropic(api_key="k", http_client=httpx2.Client(transport=httpx2.MockTransport(lambda _: None)))
_REQUEST = httpx2.Request("POST", "http://upstream/v1/messages")


def anthropic_sdk_raises(stream: bytes, objects: bool = False) -> bool:
    """Whether the Anthropic SDK raises at `stream`: its `Stream` (decoder and `__stream__`) iterated over the bytes, as
    a Messages stream's; with `objects`, also where an event it gives is no object (JSON that is none: `MessageStream`'s
    `accumulate_event` raises `TypeError`, a client reading `event.type` `AttributeError`)."""
    response = httpx2.Response(200, content=stream, headers={"content-type": "text/event-stream"}, request=_REQUEST)
    try:
        events = list(anthropic.Stream(cast_to=RawMessageStreamEvent, response=response, client=_CLIENT))
    except (ValueError, anthropic.APIStatusError):  # (UnicodeDecodeError, JSONDecodeError; an `error` event)
        return True
    return objects and not all(isinstance(event, BaseModel) for event in events)


DELTA = b"event: content_block_delta\n"
STREAMS = [
    (EVENT + DELTA + b"data: x\n\n" + STOP, True),
    (EVENT + DELTA + b"\n" + STOP, False),  # (no data: skipped; `upstream_error` until 2026-12-05, as 0.121.0 raised)
    (EVENT + b"event: message_stop\n\n" + STOP, False),  # (lone, before the last)
    (b"event: message_start\n\n" + EVENT + STOP, False),  # (the first)
    (EVENT + b"event: message_delta\ndata: \n\n" + STOP, False),  # (data `""`)
    (EVENT + b"event: message_delta\ndata:  \n\n" + STOP, True),  # (data ` `: white space, no JSON)
    (EVENT + b"event: message_delta\ndata:\ndata:\n\n" + STOP, True),  # (data `\n`)
    (EVENT + b"event: message_delta\ndata:\ndata: {}\n\n" + STOP, False),  # (`\n{}`: JSON)
    (EVENT + b"event: x\ndata: x\n\n" + STOP, True),  # (any name but `ping` is parsed: a success until 2026-12-05)
    (EVENT + b"event:\ndata: x\n\n" + STOP, False),  # (named none)
    (EVENT + DELTA + b"data: [DONE]\n\n" + STOP, True),
    (EVENT + DELTA + b"data: \x0b\n\n" + STOP, True),
    (EVENT + DELTA + b"data: {}\ndata: {}\n\n" + STOP, True),  # (`{}\n{}`)
    (EVENT + DELTA + b"data: {\ndata: x\n\n" + STOP, True),
    (EVENT + b"data: x\n" + DELTA + b"\n" + STOP, True),  # (named after its data)
    (EVENT + b"event:message_stop\ndata:\n\n" + STOP, False),
    (EVENT + DELTA + b"data: {}\ndata:\n\n" + STOP, False),  # (`{}\n`: JSON)
    (EVENT + DELTA + b"data: {\ndata: }\n\n" + STOP, False),
    (EVENT + b"event: ping\n\n" + STOP, False),  # (not parsed)
    (EVENT + b"event: ping\ndata: x\n\n" + STOP, False),
    (EVENT + b"data: x\n\n" + STOP, False),  # (no name)
    (
        EVENT + b'data: x\n\nevent: message_stop\ndata: {"type": "message_stop"}\n\n',
        False,
    ),  # (the data of the event before)
    (EVENT + b"event:  message_stop\n\n" + STOP, False),  # (` message_stop`, no data)
    (EVENT + STOP + b"event: message_stop\n", False),  # (never dispatched: no blank line)
    # (`data` without a colon: a `data` line with an empty value; dropped as framing until 2026-12-05, helper streams2)
    (EVENT + b"event: message_delta\ndata\ndata\n\n" + STOP, True),  # (data `\n`)
    (EVENT + b"event: message_delta\ndata:\ndata\n\n" + STOP, True),
    (EVENT + b"event: message_delta\ndata\n\n" + STOP, False),  # (data `""`: skipped)
    (EVENT + DELTA + b"data\ndata: {}\n\n" + STOP, False),  # (`\n{}`: JSON)
    (EVENT + DELTA + b"data: {}\ndata\n\n" + STOP, False),  # (`{}\n`)
    (EVENT + b"event: ping\ndata\ndata\n\n" + STOP, False),
    (EVENT + b"data\ndata\n\n" + STOP, False),  # (no name)
]


@pytest.mark.parametrize(("stream", "raises"), STREAMS)
def test_an_event_the_anthropic_sdk_parses_is_json(setup_for: Any, stream: bytes, raises: bool) -> None:  # noqa: F811
    assert anthropic_sdk_raises(stream) is raises
    observed_as_the_sdk_reads_it(setup_for, stream, raises, "flow-revsse3")


def observed_as_the_sdk_reads_it(make_setup: Any, stream: bytes, fails: bool, flow: str) -> None:
    """The observer at `stream` read whole, a byte a read and three bytes a read, then a call through the proxy that
    `make_setup` makes answered with it: a stream error (`upstream_error` on its span) where `fails`, else none."""
    for read in (len(stream), 1, 3):
        observer, outcome = observer_of("anthropic")
        _streamed(observer, stream, read)
        assert (outcome.error_type == STREAM_ERROR) is fails, read
    setup = make_setup()
    response, _ = setup.call("/v1/messages", flow, Reply([stream], content_type="text/event-stream"))
    assert response.status_code == 200
    span = span_of(setup, response.headers["x-trace-id"])
    assert span.attributes.get("error.type") == ("upstream_error" if fails else None)


@pytest.mark.parametrize("line", [b"data:\n", b"data: \n", b"data:  \n"])
def test_a_long_run_of_empty_data_lines_through_the_real_sdk(setup_for: Any, line: bytes) -> None:  # noqa: F811
    """A named event of 100,000 `data:` lines whose value is empty or white space: the SDK raises at its data (`\\n...`),
    and the span says `upstream_error`; until 2026-12-06 the reading stopped past 65,536 of them and the call passed as a
    success, labelled `scan:truncated` (review revstreams2's `empty_data_colon_runs`, helper streams3)."""
    from tests.test_anthropic_error_by_name_alone import anthropic_call

    stream = EVENT + b"event: message_delta\n" + line * 100_000 + b"\n" + STOP
    setup = setup_for()
    setup.upstream.reply = Reply([stream], content_type="text/event-stream")
    types, raised, span = anthropic_call(setup)
    assert isinstance(raised, ValueError)  # (json.loads: JSONDecodeError)
    assert span.attributes.get("error.type") == "upstream_error"
    assert "scan:truncated" not in span.attributes.get("lineage.output.labels", ())

"""An Anthropic stream's events that the Anthropic SDK parses as JSON (helper revsse3). Its `Stream.__stream__`
(anthropic-sdk-python 0.121.0) calls `sse.json()` on every event named `message_start`, `message_delta`,
`message_stop`, `content_block_start`, `content_block_delta`, `content_block_stop` or `completion`, and `json.loads`
raises at data that is no JSON: none at all (`event: message_stop` then a blank line), `data: x`, `data: [DONE]`, two
objects joined by the decoder (two `data:` lines in one event). The observer read such an event's data as unread (or
each object alone) and recorded a success. The reference is a copy of the SDK's decoder and of that parse (the SDK is
not in the venv nor in the test extra); the calls also go through the proxy."""

from __future__ import annotations

import json
from typing import Any

import pytest

from proxy.protocols import STREAM_ERROR
from tests.test_scan_cost import _streamed
from tests.test_sse_sdk_remaining_cases import EVENT, STOP
from tests.test_stream_close_delimited_cut import span_of
from tests.test_tiny_sse_lines import observer_of
from tests.test_unsized_replies_output import Reply, setup_for  # noqa: F401  # (a fixture)

PARSED = {"message_start", "message_delta", "message_stop", "content_block_start", "content_block_delta",
          "content_block_stop", "completion"}  # fmt: skip


def anthropic_sdk_raises(stream: bytes, objects: bool = False) -> bool:
    """Whether the Anthropic SDK raises at `stream`: its decoder (`_iter_chunks`, each chunk's lines decoded as UTF-8,
    fields as the WHATWG EventSource reads them) and `__stream__`'s parse of the events it names (no id nor retry
    in these streams); with `objects`, also where such an event's JSON is no object (`MessageStream`'s
    `accumulate_event` raises `TypeError`, a client reading `event.type` `AttributeError`)."""
    chunks, data = [], b""
    for line in stream.splitlines(keepends=True):
        data += line
        if data.endswith((b"\r\r", b"\n\n", b"\r\n\r\n")):
            chunks.append(data)
            data = b""
    chunks += [data] if data else []
    name: str | None = None
    lines: list[str] = []
    try:
        for chunk in chunks:
            for raw_line in chunk.splitlines():
                line = raw_line.decode("utf-8")
                if not line:
                    if name is None and not lines:
                        continue
                    event, value, name, lines = name, "\n".join(lines), None, []
                    if event == "error":
                        return True
                    if event in PARSED:
                        parsed = json.loads(value)
                        if objects and type(parsed) is not dict:
                            return True
                    continue
                if line.startswith(":"):
                    continue
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "event":
                    name = value
                elif field == "data":
                    lines.append(value)
    except ValueError:  # (UnicodeDecodeError, JSONDecodeError)
        return True
    return False


DELTA = b"event: content_block_delta\n"
STREAMS = [
    (EVENT + DELTA + b"data: x\n\n" + STOP, True),
    (EVENT + DELTA + b"\n" + STOP, True),  # (no data)
    (EVENT + b"event: message_stop\n\n", True),  # (the last, lone)
    (b"event: message_start\n\n" + EVENT + STOP, True),  # (the first)
    (EVENT + DELTA + b"data: [DONE]\n\n" + STOP, True),
    (EVENT + DELTA + b"data: \x0b\n\n" + STOP, True),
    (EVENT + DELTA + b"data: {}\ndata: {}\n\n" + STOP, True),  # (`{}\n{}`)
    (EVENT + DELTA + b"data: {\ndata: x\n\n" + STOP, True),
    (EVENT + b"data: x\n" + DELTA + b"\n" + STOP, True),  # (named after its data)
    (EVENT + b"event:message_stop\ndata:\n\n", True),
    (EVENT + DELTA + b"data: {}\ndata:\n\n" + STOP, False),  # (`{}\n`: JSON)
    (EVENT + DELTA + b"data: {\ndata: }\n\n" + STOP, False),
    (EVENT + b"event: ping\n\n" + STOP, False),  # (not parsed)
    (EVENT + b"event: ping\ndata: x\n\n" + STOP, False),
    (EVENT + b"data: x\n\n" + STOP, False),  # (no name)
    (EVENT + b"data: x\n\nevent: message_stop\ndata: {}\n\n", False),  # (the data of the event before)
    (EVENT + b"event:  message_stop\n\n" + STOP, False),  # (` message_stop`: no name it parses)
    (EVENT + STOP + b"event: message_stop\n", False),  # (never dispatched: no blank line)
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

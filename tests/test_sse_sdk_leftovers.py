"""Event streams read as the SDKs read them, the cases left (helper sse4).

- Anthropic: an event the SDK parses (`message_start` ... `completion`: `sse.json()` in `Stream.__stream__`,
  anthropic-sdk-python 0.121.0) whose data is JSON but no object (`[1]`, `1`, `null`, `"s"`, an array over two `data:`
  lines): `process_data` passes it on, and `MessageStream`'s `accumulate_event` raises `TypeError`, a client reading
  `event.type` `AttributeError`. The observer did not judge an array nor a JSON text alone: recorded a success.
The references are copies of what the SDKs do (the Anthropic SDK is not in the venv nor in the test extra; the fuzz of
this sitting ran the real one, installed apart); the calls also go through the proxy."""

from __future__ import annotations

import json
from typing import Any

import pytest

from proxy.protocols import STREAM_ERROR
from tests.test_anthropic_parsed_events import PARSED
from tests.test_scan_cost import _streamed
from tests.test_sse_sdk_remaining_cases import EVENT, STOP
from tests.test_stream_close_delimited_cut import span_of
from tests.test_tiny_sse_lines import observer_of
from tests.test_unsized_replies_output import Reply, setup_for  # noqa: F401  # (a fixture)


def anthropic_sdk_fails(stream: bytes) -> bool:
    """Whether the Anthropic SDK fails at `stream` (LF line ends, UTF-8, no id nor retry): its decoder's events, and for
    each it parses (`PARSED`) `json.loads` of its data, which must be an object (`accumulate_event`)."""
    name: str | None = None
    lines: list[str] = []
    for line in stream.decode("utf-8").split("\n"):
        if not line:
            if name is None and not lines:
                continue
            event, value, name, lines = name, "\n".join(lines), None, []
            if event == "error":
                return True
            if event in PARSED:
                try:
                    parsed = json.loads(value)
                except ValueError:
                    return True
                if type(parsed) is not dict:
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
    return False


DELTA = b"event: content_block_delta\n"
ANTHROPIC = [
    (EVENT + DELTA + b"data: [1]\n\n" + STOP, True),
    (EVENT + DELTA + b"data: []\n\n" + STOP, True),
    (EVENT + DELTA + b"data: 1\n\n" + STOP, True),
    (EVENT + DELTA + b"data: null\n\n" + STOP, True),
    (EVENT + DELTA + b'data: "s"\n\n' + STOP, True),
    (EVENT + DELTA + b"data: [\ndata: 1]\n\n" + STOP, True),  # (joined: `[\n1]`)
    (EVENT + DELTA + b"data: [1,\ndata: {}]\n\n" + STOP, True),
    (EVENT + b"event: message_stop\ndata: []\n\n", True),  # (the last)
    (EVENT + b"event: ping\ndata: [1]\n\n" + STOP, False),  # (not parsed)
    (EVENT + b"data: [1]\n\n" + STOP, False),  # (no name)
    (EVENT + DELTA + b"data: {}\n\n" + STOP, False),
]


@pytest.mark.parametrize(("stream", "fails"), ANTHROPIC)
def test_an_anthropic_event_it_parses_is_an_object(setup_for: Any, stream: bytes, fails: bool) -> None:  # noqa: F811
    """Before 2026-12-05 an array or a JSON text alone in such an event passed as a success."""
    assert anthropic_sdk_fails(stream) is fails
    for read in (len(stream), 1, 3):
        observer, outcome = observer_of("anthropic")
        _streamed(observer, stream, read)
        assert (outcome.error_type == STREAM_ERROR) is fails, read
    setup = setup_for()
    response, _ = setup.call("/v1/messages", "flow-sse4", Reply([stream], content_type="text/event-stream"))
    assert response.status_code == 200
    span = span_of(setup, response.headers["x-trace-id"])
    assert span.attributes.get("error.type") == ("upstream_error" if fails else None)

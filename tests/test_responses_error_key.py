"""A Responses stream's event holding a truthy `error` (`data: {"error": {...}}`, a server's chat-style error, or any
event beside its fields) is the upstream's error: the openai SDK raises `APIError` at it (`Stream.__stream__`, legacy
stream mode: `if is_mapping(data) and data.get("error")`, whatever the event's type or name), as it does in a chat
stream. The Responses observer took only a `type` of `error` or `response.failed` for one, and recorded such a stream a
success, where it reads the reply and past it (review of helper ssenormal's change: find; helper revssenormal). An
`error` that is falsy (`null`, `{}`, `""`) is none, to the SDK and to the record."""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest

from proxy.detectors import TRUNCATED
from proxy.protocols import STREAM_ERROR
from tests.event_streams import openai_responses
from tests.test_scan_cost import _streamed
from tests.test_sse_late_events import fed
from tests.test_tiny_sse_lines import _given_up, observer_of
from tests.test_unsized_replies_output import Reply, setup_for  # noqa: F401  # (a fixture)

_RESPONSE = {"id": "r1", "object": "response", "created_at": 1, "model": "m", "output": [], "parallel_tool_calls": True,
             "tool_choice": "auto", "tools": []}  # fmt: skip
CREATED = b"event: response.created\ndata: " + orjson.dumps(
    {"type": "response.created", "sequence_number": 0, "response": {**_RESPONSE, "status": "in_progress"}}
) + b"\n\n"  # fmt: skip
COMPLETED = b"event: response.completed\ndata: " + orjson.dumps(
    {"type": "response.completed", "sequence_number": 9, "response": {**_RESPONSE, "status": "completed"}}
) + b"\n\n"  # fmt: skip
BOOM = b'{"message": "boom", "type": "server_error"}'
TAILS = [
    (b"data: {\"error\": " + BOOM + b"}\n\n", True),  # (vLLM's chat error, in a Responses stream)
    (b"event: error\ndata: {\"error\": " + BOOM + b"}\n\n", True),
    (b'event: response.output_text.delta\ndata: {"type": "response.output_text.delta", "output_index": 0, '
     b'"content_index": 0, "delta": "x", "error": ' + BOOM + b"}\n\n", True),  # (beside an event's fields)
    (b'data: {"type": "response.in_progress", "error": "boom"}\n\n', True),
    (b'data: {"error": null}\n\n', False),
    (b'data: {"error": {}}\n\n', False),
    (b'data: {"type": "response.in_progress", "error": ""}\n\n', False),
]  # fmt: skip


@pytest.mark.parametrize(("tail", "raises"), TAILS)
def test_a_responses_event_holding_an_error_is_the_upstreams_error(setup_for: Any, tail: bytes, raises: bool) -> None:  # noqa: F811
    stream = CREATED + tail + COMPLETED
    setup = setup_for()
    setup.upstream.reply = Reply([stream], content_type="text/event-stream")
    given, raised, span = openai_responses(setup, "flow-revssenormal", timeout=30, catch=openai.APIError)
    assert (raised is not None) is raises
    if not raises:
        assert given[-1].type == "response.completed"
    assert span.attributes.get("error.type") == ("upstream_error" if raises else None)
    expected = STREAM_ERROR if raises else None
    for read in (len(stream), 1, 3):
        observer, outcome = observer_of("responses")
        _streamed(observer, stream, read)
        assert outcome.error_type == expected, read
    for read in (7, len(stream)):  # (past where the reply is read)
        outcome = fed("responses", _given_up("responses"), stream, read)
        assert outcome.error_type == expected and TRUNCATED in outcome.output_detected, read


FAILED = {**_RESPONSE, "status": "failed", "error": {"code": "server_error", "message": "boom"}}
FAILURES = {  # (the Responses API's own: an `error` event, a response that failed)
    "error": b'event: error\ndata: {"type": "error", "sequence_number": 1, "code": "server_error", "message": "boom"}\n\n',
    "response.failed": b"event: response.failed\ndata: "
    + orjson.dumps({"type": "response.failed", "sequence_number": 1, "response": FAILED})
    + b"\n\n",
}


@pytest.mark.parametrize("kind", list(FAILURES))
def test_a_responses_failure_the_sdk_yields_is_the_upstreams_error(setup_for: Any, kind: str) -> None:  # noqa: F811
    """The SDK raises at neither: its stream yields each as an event of its type (`ResponseErrorEvent`,
    `ResponseFailedEvent` with `status` `failed`), and its `responses.stream()` helper's `get_final_response()` raises
    (no `response.completed`). The upstream said the call failed, and its client has that: `upstream_error`."""
    setup = setup_for()
    setup.upstream.reply = Reply([CREATED + FAILURES[kind]], content_type="text/event-stream")
    given, _, span = openai_responses(setup, timeout=30)
    assert [event.type for event in given] == ["response.created", kind]
    assert span.attributes.get("error.type") == "upstream_error"

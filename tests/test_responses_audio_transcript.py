"""A Responses stream's spoken reply transcript (`response.audio.transcript.delta`, as OpenAI's SDK types it) is what
the model said: scanned beside the content as a chat reply's `audio.transcript` is, its deltas run together. It was
not read (an event of the API's the adapter did not know passes unread): an address the model spoke left the output
unlabelled. The audio itself (`response.audio.delta`, base64) is no text."""

from __future__ import annotations

from typing import Any

import orjson

from proxy.protocols.openai import ResponsesObserver
from tests.protocols.test_tool_call_output_shapes import EMAIL, read
from tests.test_unsized_replies_output import Reply, setup_for  # noqa: F401  # (a fixture)

DONE = {"id": "resp_1", "object": "response", "model": "m", "status": "completed", "output": []}
EVENTS = [
    {"type": "response.created", "response": {**DONE, "status": "in_progress"}},
    {"type": "response.audio.delta", "delta": "UklGRiQAAABXQVZF", "sequence_number": 1},
    {"type": "response.audio.transcript.delta", "delta": "write to bob@exa", "sequence_number": 2},
    {"type": "response.audio.transcript.delta", "delta": "mple.org today", "sequence_number": 3},
    {"type": "response.audio.transcript.done", "sequence_number": 4},
    {"type": "response.audio.done", "sequence_number": 5},
    {"type": "response.completed", "response": DONE},
]


def test_a_streamed_transcript_is_scanned() -> None:
    assert read(ResponsesObserver, EVENTS).output_detected == {EMAIL}
    audio_only = [event for event in EVENTS if "transcript" not in str(event["type"])]
    assert read(ResponsesObserver, audio_only).output_detected == frozenset()


def test_through_the_proxy_a_spoken_address_labels_the_output(setup_for: Any) -> None:  # noqa: F811
    setup = setup_for()
    body = b"".join(b"data: " + orjson.dumps(event) + b"\n\n" for event in EVENTS)
    got, answer = setup.call("/v1/responses", "flow-spoken", Reply([body], content_type="text/event-stream"))
    assert got.status_code == 200 and answer == body
    span, edge = setup.recorded(got, "flow-spoken")
    assert set(span) == set(edge) == {"flow-spoken", EMAIL}

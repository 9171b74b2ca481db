"""An event stream ends with the blank line that ends its last event (`data: [DONE]`, Anthropic's `message_stop`,
a Responses `response.completed`): a client dispatches no event before that line (WHATWG EventSource, and the
openai and Anthropic SDKs). The piece that holds the end is the last passed on, so the end was taken at the event's
`data:` line: an upstream whose piece ended between that line and its blank line (a large final event split across
reads, a server that writes the blank line on its own) had the blank line dropped, and the client never had the
last event (the openai SDK's Responses stream no `response.completed`)."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.flow import Outcome
from proxy.protocols.sse import SseObserver
from tests.protocols.test_event_stream_reading import EMAIL, KINDS, spec_events, stream
from tests.test_unsized_replies_output import EMAIL as OUT_EMAIL
from tests.test_unsized_replies_output import Reply, setup_for  # noqa: F401  # (a fixture)


def passed_on(kind: type[SseObserver], pieces: list[bytes]) -> tuple[bytes, frozenset[str]]:
    """What the client gets of an unsized reply in these pieces, as the ingress passes them on (up to and with the
    piece that holds the reply's end), and the output's labels."""
    outcome = Outcome(started_ns=1)
    observer = kind(outcome, EMAIL, False)
    observer.head(200, lambda name: "text/event-stream")
    sent = []
    for piece in pieces:
        observer.chunk(piece)
        sent.append(piece)
        if observer.ended:
            break
    observer.finish()
    return b"".join(sent), frozenset(outcome.output_detected)


@pytest.mark.parametrize("name", list(KINDS))
@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"], ids=["lf", "crlf", "cr"])
def test_a_stream_cut_at_every_byte_reaches_the_client_with_its_last_event(name: str, end: bytes) -> None:
    kind, events, done = KINDS[name]
    data = stream(events, done, end, bom=False, pretty=[False])
    expected = spec_events(data)
    for cut in range(len(data) + 1):
        got, labels = passed_on(kind, [data[:cut], data[cut:]])
        assert data.startswith(got) and spec_events(got) == expected, cut
        assert labels == {"pii:email"}, cut


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(list(KINDS)),
    end=st.sampled_from([b"\n", b"\r\n", b"\r"]),
    pretty=st.lists(st.booleans(), min_size=1, max_size=4),
    cuts=st.lists(st.floats(min_value=0, max_value=1), max_size=12),
)
def test_a_stream_cut_anywhere_reaches_the_client_with_every_event(
    name: str, end: bytes, pretty: list[bool], cuts: list[float]
) -> None:
    kind, events, done = KINDS[name]
    data = stream(events, done, end, False, pretty)
    at = sorted({round(cut * len(data)) for cut in cuts})
    pieces = [data[start:stop] for start, stop in zip([0, *at], [*at, len(data)], strict=True)]
    got, labels = passed_on(kind, pieces)
    assert data.startswith(got) and spec_events(got) == spec_events(data)
    assert labels == {"pii:email"}


def sse(event: dict[str, Any]) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def test_the_openai_sdk_has_a_responses_streams_last_event_split_before_its_blank_line(setup_for: Any) -> None:  # noqa: F811
    """The upstream's first piece ends after `response.completed`'s data line, and it sends the blank line once the
    client has the event before (the delta): the SDK's stream ends with `response.completed`, and the record has
    the output's labels."""
    setup = setup_for()
    completed = {"type": "response.completed", "sequence_number": 2,
                 "response": {"id": "r1", "object": "response", "created_at": 1, "model": "m", "status": "completed",
                              "output": [], "parallel_tool_calls": False, "tool_choice": "auto", "tools": []}}  # fmt: skip
    delta = {"type": "response.output_text.delta", "sequence_number": 1, "output_index": 0, "content_index": 0,
             "item_id": "m1", "delta": "write to bob@example.org", "logprobs": []}  # fmt: skip
    first = sse(delta) + sse(completed)[:-1]
    gate = asyncio.Event()
    setup.upstream.reply = Reply([first, b"\n"], content_type="text/event-stream", gate=gate)
    flow = "flow-end-split"
    sdk = openai.OpenAI(base_url=f"{setup.proxy.url}/v1", api_key="k", max_retries=0,
                        default_headers={"x-data-labels": flow})  # fmt: skip
    raw = sdk.responses.with_raw_response.create(model="m", input="hello", stream=True)
    kinds = []
    for event in raw.parse():
        kinds.append(event.type)
        if event.type == "response.output_text.delta":  # the client has the first piece: the upstream sends the rest
            setup.loop_thread.loop.call_soon_threadsafe(gate.set)
    assert kinds == ["response.output_text.delta", "response.completed"]
    assert setup.recorded(raw, flow) == ([flow, OUT_EMAIL], [flow, OUT_EMAIL])

"""A Messages stream is read as Anthropic's SDK reads it. The SDK dispatches on each event's SSE name (`event:
content_block_delta`) and gives an event whose data has no `type` that name as its type (anthropic-sdk-python,
`_streaming.py`: `if is_dict(data) and "type" not in data: data["type"] = sse.event`); its client then has the event's
text. The proxy classified events by the data's `type` alone: such an event's text was not the call's output (not in
its digest), its `message_delta` gave no stop reason nor usage, its `message_stop` no end.
Now a named event's data without a `type` is read as the type its name gives, as the SDK reads it."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.test_stream_close_delimited_cut import span_of
from tests.test_unsized_replies_output import EMAIL, OUT, Reply, setup_for  # noqa: F401  # (a fixture)

MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [],
           "usage": {"input_tokens": 7, "output_tokens": 1}}  # fmt: skip
EVENTS: list[dict[str, Any]] = [
    {"type": "message_start", "message": MESSAGE},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "write to "}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": OUT}},
    {"type": "content_block_stop", "index": 0},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 5}},
    {"type": "message_stop"},
]
READ = ("lineage.output.digest", "gen_ai.response.finish_reasons", "gen_ai.usage.output_tokens",
        "gen_ai.response.id", "lineage.output.labels", "error.type")  # fmt: skip


def stream(typed: bool, framing: str, pretty: bool = False) -> Reply:
    """The Messages stream, each event named; `typed` False: its data without `type`; `pretty`: its data on many
    `data:` lines (pretty-printed JSON, read at the blank line that ends the event)."""

    def one(event: dict[str, Any]) -> bytes:
        data = event if typed else {k: v for k, v in event.items() if k != "type"}
        lines = orjson.dumps(data, option=orjson.OPT_INDENT_2 if pretty else 0).split(b"\n")
        return b"event: %s\n%s\n\n" % (event["type"].encode(), b"\n".join(b"data: " + line for line in lines))

    return Reply([one(event) for event in EVENTS], framing=framing, content_type="text/event-stream")


@pytest.mark.parametrize(("framing", "pretty"), [("chunked", False), ("close", False), ("chunked", True)])
def test_an_event_named_but_untyped_is_read_as_its_name_says(setup_for: Any, framing: str, pretty: bool) -> None:  # noqa: F811
    setup = setup_for()
    recorded = []
    for typed in (True, False):
        flow = f"flow-{framing}-{'pretty' if pretty else 'line'}-{'typed' if typed else 'named'}"
        response, _ = setup.call("/v1/messages", flow, stream(typed, framing, pretty))
        assert response.status_code == 200
        span = span_of(setup, response.headers["x-trace-id"])
        attributes = {key: span.attributes.get(key) for key in READ}
        attributes["lineage.output.labels"] = [x for x in attributes["lineage.output.labels"] if x != flow]
        attributes["first_token"] = bool(span.events)
        recorded.append(attributes)
    typed_record, named_record = recorded
    assert typed_record["lineage.output.labels"] == [EMAIL] and typed_record["error.type"] is None
    assert named_record == typed_record


def test_an_event_named_error_is_the_upstreams_error(setup_for: Any) -> None:  # noqa: F811
    """The SDK raises at an event named `error` whatever its data's type: the call is recorded with the upstream's
    error in band, as one whose data says `error` is."""
    setup = setup_for()
    pieces = stream(True, "chunked").pieces
    delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "x"}}
    pieces[3] = b"event: error\ndata: %s\n\n" % orjson.dumps(delta)
    response, _ = setup.call("/v1/messages", "flow-named-error", Reply(pieces, content_type="text/event-stream"))
    assert response.status_code == 200
    span = span_of(setup, response.headers["x-trace-id"])
    assert span.attributes.get("error.type") == "upstream_error"

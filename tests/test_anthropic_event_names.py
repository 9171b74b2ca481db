"""A Messages stream is read as Anthropic's SDK reads it. The SDK dispatches on each event's SSE name (`event:
content_block_delta`); anthropic 0.x gave an event whose data has no `type` that name as its type (`if "type" not in
data: data["type"] = sse.event`), and the proxy read it so (since 2026-11); anthropic 2.17.0 no longer does: such an
event has type None (the SDK's client reads no text, stop reason nor end from it). Now the proxy reads it as 2.17.0
does: its strings as an unknown event's (its labels), no stop reason, token counts, model, id nor `message_stop` (until
2026-12-05 recorded; helper streams2)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.test_anthropic_error_by_name_alone import anthropic_call
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


@pytest.mark.parametrize("pretty", [False, True])
def test_an_event_named_but_untyped_has_no_type(setup_for: Any, pretty: bool) -> None:  # noqa: F811
    """Through the real SDK: each event's type is None, and the record has none of what a typed event gives (the stream
    never ended, to the SDK's client: `upstream_incomplete`, as a stream without `message_stop` is); its text is read
    for its labels all the same."""
    setup = setup_for()
    setup.upstream.reply = stream(False, "chunked", pretty)
    types, raised, span = anthropic_call(setup, "flow-untyped")
    assert (types, raised) == ([None] * len(EVENTS), None)
    attributes = {key: span.attributes.get(key) for key in READ}
    assert attributes == {
        "lineage.output.digest": None,
        "gen_ai.response.finish_reasons": None,
        "gen_ai.usage.output_tokens": None,
        "gen_ai.response.id": None,
        "lineage.output.labels": ["flow-untyped", EMAIL],
        "error.type": "upstream_incomplete",
    }
    setup.upstream.reply = stream(True, "chunked", pretty)
    types, raised, span = anthropic_call(setup, "flow-typed")
    assert (types, raised) == ([event["type"] for event in EVENTS], None)
    assert span.attributes.get("gen_ai.response.finish_reasons") == ["end_turn"]


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

"""A reply's JSON that orjson refuses but a client reads all the same has its output read as that client reads it,
never left unread with nothing in the record to say so: a lone surrogate escape (`JSON.parse`, Python's `json`);
a byte that is not UTF-8 (a browser's `fetch().json()` reads it as U+FFFD), the output then labelled
`scan:truncated`. Sent whole, passed on as it arrives, or as an event stream's events."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.test_unsized_replies_output import CHAT, EMAIL, TRUNCATED, Reply, setup_for  # noqa: F401  # (a fixture)

# how the reply's text is spoilt, and the labels its output has besides the flow's
ODD = {"utf8": (b" \xff today", {EMAIL, TRUNCATED}), "surrogate": (b" \\ud800 today", {EMAIL})}


def event(text: str) -> bytes:
    return b"data: %s\n\n" % orjson.dumps({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                                           "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]})  # fmt: skip


@pytest.mark.parametrize("odd", sorted(ODD))
@pytest.mark.parametrize("framing", ["sized", "chunked", "events"])
def test_json_a_client_reads_past_a_bad_byte_or_escape_is_read_as_it_reads_it(
    setup_for: Any,  # noqa: F811
    odd: str,
    framing: str,
) -> None:
    setup = setup_for()
    if framing == "events":
        body = event("write to ") + event("bob@example.org today").replace(b" today", ODD[odd][0]) + b"data: [DONE]\n\n"
        reply = Reply([body], content_type="text/event-stream")
    else:
        body = orjson.dumps(CHAT).replace(b" today", ODD[odd][0])
        reply = Reply([body], framing=framing)
    flow = f"flow-{odd}-{framing}"
    response, got = setup.call("/v1/chat/completions", flow, reply)
    assert response.status_code == 200 and got == body  # passed on as it came
    span, edge = setup.recorded(response, flow)
    assert set(span) == set(edge) == {flow, *ODD[odd][1]}


def test_json_orjson_reads_is_not_labelled_truncated(setup_for: Any) -> None:  # noqa: F811
    setup = setup_for()
    response, _ = setup.call("/v1/chat/completions", "flow-plain", Reply([orjson.dumps(CHAT)], framing="sized"))
    span, edge = setup.recorded(response, "flow-plain")
    assert set(span) == set(edge) == {"flow-plain", EMAIL}


def test_a_reply_nested_deeper_than_any_reader_goes_is_passed_on_and_recorded_unread(setup_for: Any) -> None:  # noqa: F811
    """Deeper than orjson reads (1,024) and than Python's `json` can (its recursion limit): passed on, its output
    not read, and the record says so (`scan:truncated`), without a fault logged a call."""
    setup = setup_for()
    body = b'{"choices": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    response, got = setup.call("/v1/chat/completions", "flow-deep", Reply([body], framing="sized"))
    assert response.status_code == 200 and got == body
    span, edge = setup.recorded(response, "flow-deep")
    assert set(span) == set(edge) == {"flow-deep", TRUNCATED}


@pytest.mark.parametrize("framing", ["sized", "chunked"])
def test_a_reply_that_is_no_json_object_is_read_as_events_whole_or_passed_on_as_it_arrives(
    setup_for: Any,  # noqa: F811
    framing: str,
) -> None:
    """Read at `finish` (passed on as it arrives: chunked) as it is read before it is sent (sized): not JSON, so an
    event stream, whatever its `Content-Type` says; its first line, no field of one, passed unread."""
    setup = setup_for()
    body = b"{}\n" + event("write to bob@example.org today") + b"data: [DONE]\n\n"
    flow = f"flow-events-{framing}"
    response, got = setup.call("/v1/chat/completions", flow, Reply([body], framing=framing))
    assert response.status_code == 200 and got == body
    span, edge = setup.recorded(response, flow)
    assert set(span) == set(edge) == {flow, EMAIL, TRUNCATED}

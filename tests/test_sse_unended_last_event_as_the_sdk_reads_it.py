"""A streamed call's record says what the client's SDK gave it. The openai and Anthropic SDKs' decoders dispatch an event
at the blank line that ends it, and none the body ends in before that line: such a last event (`data: [DONE]`, a chunk
holding the finish reason, `message_delta` with its stop reason, `message_stop`, `response.completed`) gives its
client nothing, so the record is that of the stream without it (no finish reason; ended before its last event:
`upstream_incomplete`, or `upstream_reset` framed by its close). Driven with the real SDKs through the proxy, and the
observers at many read sizes beside the openai SDK's decoder."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from openai._streaming import SSEDecoder

from tests.event_streams import chat, openai_chat, sse
from tests.test_anthropic_error_by_name_alone import START, anthropic_call
from tests.test_anthropic_parsed_events import anthropic_sdk_raises
from tests.test_sse_events_as_the_sdk_reads_them import CHUNK, DONE, through_sdk
from tests.test_tiny_sse_lines import observer_of
from tests.test_unsized_replies_output import Reply, setup_for  # noqa: F401  # (a fixture)

FINISH = chat("", "stop")
REASONS = "gen_ai.response.finish_reasons"
MESSAGE_DELTA = sse({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}},
                    "message_delta")  # fmt: skip
MESSAGE_STOP = sse({"type": "message_stop"}, "message_stop")
RESPONSE = {"id": "r1", "object": "response", "created_at": 1, "model": "m", "output": [], "status": "in_progress"}
SECOND_FINISHED = chat("", "length").replace(b'"index":0', b'"index":1')  # (choice 1's)
THIRD_FINISHED = chat("", "stop").replace(b'"index":0', b'"index":2')
NATIVE = b'data: {"content": "hi", "stop": false}\n\n'  # (llama.cpp's own stream)
NATIVE_STOP = b'data: {"content": "", "stop": true}\n\n'
CREATED = sse({"type": "response.created", "response": RESPONSE}, "response.created")
COMPLETED = sse({"type": "response.completed", "response": {**RESPONSE, "status": "completed"}}, "response.completed")


@pytest.mark.parametrize("framing", ["chunked", "close", "sized"])
@pytest.mark.parametrize("last", [DONE, FINISH], ids=["done", "finish-reason"])
@pytest.mark.parametrize("cut", [1, 2], ids=["no-blank-line", "no-line-end"])
def test_an_openai_last_event_no_blank_line_ends_is_none(setup_for: Any, last: bytes, framing: str, cut: int) -> None:  # noqa: F811
    """The SDK gives the one chunk before it, no finish reason, and ends raising nothing: the record is the stream's
    without it. Before 2026-12-05 `data: [DONE]` with its line end was a stream that ended well, without it one that
    ended early; and a finish reason so sent was recorded, the stream then said to end well, in each framing."""
    setup = setup_for()
    _, _, alone = through_sdk(setup, CHUNK, framing)
    ended_early = "upstream_reset" if framing == "close" else "upstream_incomplete"
    assert alone.attributes.get("error.type") == ended_early
    got, raised, span = through_sdk(setup, CHUNK + last[:-cut], framing)
    assert (got, raised) == (1, "")
    assert span.attributes.get("error.type") == ended_early
    assert REASONS not in span.attributes
    got, raised, span = through_sdk(setup, CHUNK + last, framing)  # (its blank line: dispatched)
    assert (got, raised) == (1 if last == DONE else 2, "")
    assert span.attributes.get("error.type") is None
    assert span.attributes.get(REASONS) == (None if last == DONE else ["stop"])


@pytest.mark.parametrize(
    ("kind", "before", "last", "reasons", "given"),
    [
        ("openai", CHUNK, FINISH, ("stop",), ()),
        ("openai", CHUNK + FINISH, DONE, ("stop",), ("stop",)),  # (its finish reason given: ended well)
        ("openai", CHUNK + SECOND_FINISHED, FINISH, ("stop", "length"), ("length",)),  # (n > 1)
        ("anthropic", START, MESSAGE_DELTA, ("end_turn",), ()),
        ("anthropic", START + MESSAGE_DELTA, MESSAGE_STOP, ("end_turn",), ("end_turn",)),
        ("anthropic", START, MESSAGE_STOP, (), ()),
        ("responses", CREATED, COMPLETED, ("completed",), ()),
        ("llama.cpp", NATIVE, NATIVE_STOP, (), ()),  # (its end: `stop`)
    ],
)
def test_an_unended_last_event_gives_nothing_at_any_read(
    kind: str, before: bytes, last: bytes, reasons: Any, given: Any
) -> None:
    """Cut into reads of many sizes, the line end after it or none: its finish or stop reason, or its end, is on the
    record where the blank line after it came, and only there (`cut_short`: the stream ended before its last event
    and before any finish or stop reason); the SDK's decoder dispatches it there, and only there."""
    for cut in (0, 1, 2):
        stream = before + last[: len(last) - cut]
        assert len(list(SSEDecoder().iter_bytes(iter([stream])))) == before.count(b"\n\n") + (cut == 0)
        seen = reasons if cut == 0 else given  # (those given before it stand)
        for read in (1, 2, 3, 5, 7, 13, 64, len(stream)):
            observer, outcome = observer_of(kind)
            for at in range(0, len(stream), read):
                observer.chunk(stream[at : at + read])
            cut_short = observer.cut_short()
            observer.finish()
            assert (outcome.finish_reasons, outcome.error_type) == (seen, None), (cut, read)
            assert cut_short is (cut > 0 and not given), (cut, read)


def test_an_anthropic_stop_reason_no_blank_line_ends_is_none(setup_for: Any) -> None:  # noqa: F811
    """Through the real SDK: it gives no `message_delta`, and ends raising nothing (`MessageStream` too would have no
    stop reason); the record has none, and says the stream ended before its last event."""
    setup = setup_for()
    for stream, ended in ((START + MESSAGE_DELTA[:-1], False), (START + MESSAGE_DELTA + MESSAGE_STOP, True)):
        setup.upstream.reply = Reply([stream], content_type="text/event-stream")
        types, raised, span = anthropic_call(setup)
        assert raised is None and ("message_delta" in types) is ended
        assert span.attributes.get("error.type") == (None if ended else "upstream_incomplete")
        assert span.attributes.get(REASONS) == (["end_turn"] if ended else None)


USAGE = b"data: " + orjson.dumps({"id": "c1", "object": "chat.completion.chunk", "model": "m", "choices": [],
                                  "usage": {"prompt_tokens": 3, "completion_tokens": 4}}) + b"\n\n"  # fmt: skip
DELTA_USAGE = sse({"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                   "usage": {"input_tokens": 5, "output_tokens": 6}}, "message_delta")  # fmt: skip
COMPLETED_USAGE = sse({"type": "response.completed", "response": {**RESPONSE, "id": "r2", "status": "completed",
                                                                  "usage": {"input_tokens": 7, "output_tokens": 8}}},
                      "response.completed")  # fmt: skip
NATIVE_TOKENS = b'data: {"content": "", "stop": false, "tokens_evaluated": 9, "tokens_predicted": 10}\n\n'


USAGE_FINISHED = b"data: " + orjson.dumps({"id": "c1", "object": "chat.completion.chunk", "model": "m",
                                           "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                                           "usage": {"prompt_tokens": 3, "completion_tokens": 4}}) + b"\n\n"  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "before", "last", "given", "seen"),
    [
        ("openai", chat("hi", "stop"), USAGE, (None, None, ("stop",)), (3, 4, ("stop",))),
        (
            "openai",
            SECOND_FINISHED + THIRD_FINISHED,
            USAGE_FINISHED,
            (None, None, ("length", "stop")),
            (3, 4, ("stop", "length", "stop")),
        ),  # (n > 1: the choices' reasons before it, as they were)
        ("anthropic", START, DELTA_USAGE, (1, 1, ()), (5, 6, ("end_turn",))),
        ("anthropic", b"", START[: START.index(b"\n\n") + 2], (None, None, ()), (1, 1, ())),
        ("responses", CREATED, COMPLETED_USAGE, (None, None, ()), (7, 8, ("completed",))),
        ("llama.cpp", NATIVE, NATIVE_TOKENS, (None, None, ()), (9, 10, ())),
    ],
)
def test_an_unended_last_events_usage_is_none(kind: str, before: bytes, last: bytes, given: Any, seen: Any) -> None:
    """Its token counts are the record's only where the blank line after it came, with its finish reason (review
    revstreams' find in helper streams' 55f3a6a: they were recorded though the SDK never gave the event, as its finish
    reason was until then: a usage chunk the body ended in gave `gen_ai.usage.*` its client never had)."""
    for cut in (0, 1, 2):
        stream = before + last[: len(last) - cut]
        for read in (1, 3, 7, 64, len(stream)):
            observer, outcome = observer_of(kind)
            for at in range(0, len(stream), read):
                observer.chunk(stream[at : at + read])
            observer.cut_short()
            observer.finish()
            got = (outcome.input_tokens, outcome.output_tokens, outcome.finish_reasons)
            assert got == (seen if cut == 0 else given), (cut, read)


def test_an_unended_usage_chunk_is_none_through_the_sdk(setup_for: Any) -> None:  # noqa: F811
    """The openai SDK gives no chunk with usage (`stream_options.include_usage`'s, last): the span has no token counts."""
    setup = setup_for()
    for stream, given in ((chat("hi", "stop") + USAGE[:-1], False), (chat("hi", "stop") + USAGE, True)):
        setup.upstream.reply = Reply([stream], content_type="text/event-stream")
        chunks, raised, span = openai_chat(setup, timeout=30)
        assert raised is None and any(chunk.usage is not None for chunk in chunks) is given
        assert span.attributes.get("gen_ai.usage.output_tokens") == (4 if given else None)
        assert span.attributes.get("error.type") is None  # (its finish reason given)


@pytest.mark.parametrize(
    ("kind", "stream"),
    [
        ("openai", chat("hi")),
        ("anthropic", START[: START.index(b"\n\n") + 2]),
        ("responses", CREATED),
        ("openai", b"data: [DONE]\n\n" + chat("hi")),  # (after `[DONE]`, where the SDK stopped: none either)
    ],
)
def test_an_unended_only_events_model_and_id_are_none(kind: str, stream: bytes) -> None:
    """The model and id first named in an event no blank line ended are none: the SDK gave no event (review revstreams:
    recorded until 2026-12-05). Those an earlier event named stand."""
    done = stream.startswith(b"data: [DONE]")
    for cut in (0, 1, 2):
        for read in (1, 3, len(stream)):
            observer, outcome = observer_of(kind)
            for at in range(0, len(stream) - cut, read):
                observer.chunk(stream[at : min(at + read, len(stream) - cut)])
            observer.cut_short()
            observer.finish()
            named = cut == 0 and not done
            assert (outcome.response_model is None, outcome.response_id is None) == (not named, not named), (cut, read)
    observer, outcome = observer_of("openai")
    observer.chunk(chat("hi") + chat("there")[:-2])
    observer.finish()
    assert (outcome.response_model, outcome.response_id) == ("m", "c1")


def test_an_unended_only_events_model_and_id_are_none_through_the_sdk(setup_for: Any) -> None:  # noqa: F811
    """The openai SDK gives no chunk: the span names no response model nor id."""
    setup = setup_for()
    for stream, given in ((chat("hi")[:-1], False), (chat("hi"), True)):
        got, raised, span = through_sdk(setup, stream, split=False)
        assert (got, raised) == (int(given), "")
        assert span.attributes.get("gen_ai.response.model") == ("m" if given else None)
        assert span.attributes.get("gen_ai.response.id") == ("c1" if given else None)


# (cut JSON; a whole object; no JSON; an object's first brace alone)
FIRST_LINES = [CHUNK[: CHUNK.index(b"}") + 1], CHUNK[:-2], b"data: x", b"data: {"]


@pytest.mark.parametrize("first", FIRST_LINES, ids=["cut-json", "object", "no-json", "brace"])
def test_a_body_of_one_data_line_without_its_line_end_is_no_error(first: bytes) -> None:
    """The body holds no line end: the SDKs' decoders dispatch no event, and neither SDK raises; the record has no
    error of the upstream's, at any read (ended before its last event: `cut_short`). Until 2026-12-06 one whose data was
    no JSON object was `upstream_error` (review revstreams' fuzz), where one after an event was none."""
    assert list(SSEDecoder().iter_bytes(iter([first]))) == []
    assert anthropic_sdk_raises(first) is False
    for kind in ("openai", "anthropic"):
        for read in (1, 3, 7, len(first)):
            observer, outcome = observer_of(kind)
            for at in range(0, len(first), read):
                observer.chunk(first[at : at + read])
            cut_short = observer.cut_short()
            observer.finish()
            assert (outcome.error_type, cut_short) == (None, True), (kind, read)


@pytest.mark.parametrize("framing", ["chunked", "close", "sized"])
def test_a_body_of_one_data_line_without_its_line_end_through_the_sdks(setup_for: Any, framing: str) -> None:  # noqa: F811
    """Through the proxy, the openai SDK gives no chunk and the Anthropic SDK no event, each raising nothing: the span
    says the stream ended before its last event, not that the upstream sent an error."""
    setup = setup_for()
    ended_early = "upstream_reset" if framing == "close" else "upstream_incomplete"
    for first in FIRST_LINES:
        got, raised, span = through_sdk(setup, first, framing, split=False)
        assert (got, raised, span.attributes.get("error.type")) == (0, "", ended_early), first
        setup.upstream.reply = Reply([first], framing=framing, content_type="text/event-stream")
        types, anthropic_raised, span = anthropic_call(setup)
        assert (types, anthropic_raised, span.attributes.get("error.type")) == ([], None, ended_early), first

"""Streams of many tiny lines the proxy does not read: `data:` lines that open no event (`data: x`, data that is no
JSON object, or none), `event:` lines that name none, and what comes after the point past which a reply is not read.
Each such line was a Python step (16 MB of `data: x` lines held the event loop 0.8 s, of `event: x` lines 0.5-0.8 s,
interpreted, in 64 KiB reads); and an error the upstream sent after 65,536 events no adapter reads was not recorded
(the reading had stopped), though its client raises at it. Counted, never timed."""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest

from proxy.detectors import TRUNCATED
from proxy.flow import Outcome
from proxy.protocols import MAX_STRINGS, STREAM_ERROR
from tests.event_streams import openai_chat
from tests.test_scan_cost import EMAIL as EMAIL_ONLY
from tests.test_scan_cost import _streamed, python_lines
from tests.test_unsized_replies_output import EMAIL, Reply, setup_for  # noqa: F401  # (a fixture)

READ = 65_536
CHAT = b"data: " + orjson.dumps({"choices": [{"index": 0, "delta": {"content": " ana@example.org"}}]}) + b"\n\n"


def observer_of(kind: str) -> tuple[Any, Outcome]:
    from proxy.protocols.anthropic import MessagesObserver
    from proxy.protocols.ollama import OllamaObserver
    from proxy.protocols.openai import ReplyObserver, ResponsesObserver
    from proxy.protocols.tgi import TgiObserver

    outcome = Outcome(started_ns=0)
    observer = {"openai": ReplyObserver, "llama.cpp": ReplyObserver, "responses": ResponsesObserver,
                "anthropic": MessagesObserver, "anthropic-named": MessagesObserver, "tgi": TgiObserver,
                "ollama": OllamaObserver}[kind](outcome, EMAIL_ONLY, False)  # fmt: skip
    kind_of = "application/x-ndjson" if kind == "ollama" else "text/event-stream"
    observer.head(200, lambda name: kind_of if name == "content-type" else None)
    return observer, outcome


# -- `data:` lines that open no event


@pytest.mark.interpreted  # (counts the lines run in sse.py)
@pytest.mark.parametrize("line", [b"data: x\n", b"data: x\n\n", b"data:\n", b"data: 1\n"])
def test_data_lines_that_open_no_event_are_read_up_to_the_limit(line: bytes) -> None:
    """Each is an event no adapter reads, as one `unknown` does not: past `MAX_STRINGS` of them (with such events) the
    rest of the reply is not read; fewer are passed over, and the events after them read (`test_event_lines_not_json`).
    """
    from proxy.protocols import sse

    observer, outcome = observer_of("openai")
    stream = line * (MAX_STRINGS * 8) + CHAT
    steps = python_lines(lambda: _streamed(observer, stream, READ), sse.__file__)
    assert steps < 32 * MAX_STRINGS  # 524,288 lines: 15-22 steps a line before, now for 65,537 of them
    assert outcome.output_detected == {TRUNCATED}  # the event after them was not read
    observer, outcome = observer_of("openai")
    _streamed(observer, line * 1000 + CHAT + b"data: [DONE]\n\n", READ)
    if line == b"data: 1\n":  # (JSON alone: read joined as the SDK reads them, `1\n1\n...{...}`, no JSON, raised at)
        assert outcome.output_detected == {TRUNCATED} and outcome.error_type == STREAM_ERROR and observer.ended
        return
    assert EMAIL in outcome.output_detected and observer.ended


@pytest.mark.interpreted
@pytest.mark.parametrize("line", [b"data: x\n", b"data:\n"])
def test_an_event_of_many_data_lines_is_kept_up_to_the_limit(line: bytes) -> None:
    """An event's `data:` lines are kept to be read joined at its end: each a Python step, 16 MB of them after `data: {`
    held the loop 3.2 s. Past `MAX_STRINGS` lines the event, and the rest of the reply, is not read; an event of fewer
    (pretty-printed JSON) is read as before."""
    from proxy.protocols import sse

    observer, outcome = observer_of("openai")
    stream = b"data: {\n" + line * (MAX_STRINGS * 8) + b"\n" + CHAT
    steps = python_lines(lambda: _streamed(observer, stream, READ), sse.__file__)
    assert steps < 16 * MAX_STRINGS  # 524,288 lines: 8 steps a line before
    assert outcome.output_detected == {TRUNCATED}
    observer, outcome = observer_of("openai")
    pretty = orjson.dumps(
        {"choices": [{"index": 0, "delta": {"content": " ana@example.org"}}]}, option=orjson.OPT_INDENT_2
    )
    lines = pretty.replace(b"{\n", b"{\n" + b"\n" * 5_000).split(b"\n")  # (blank data lines inside the object)
    _streamed(observer, b"".join(b"data: " + one + b"\n" for one in lines) + b"\ndata: [DONE]\n\n", READ)
    assert outcome.output_detected == {EMAIL} and observer.ended


# -- `event:` lines that name no event


@pytest.mark.interpreted
@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_event_lines_that_name_no_event_are_not_read_one_by_one(kind: str) -> None:
    """All but the last `event:` line of a run, and one between blank lines, name nothing: dropped in C (a run at a
    time) with the other lines that change nothing."""
    from proxy.protocols import sse

    observer, outcome = observer_of(kind)
    event = CHAT
    if kind == "anthropic":
        delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " ana@example.org"}}
        event = b"event: content_block_delta\ndata: " + orjson.dumps(delta) + b"\n\n"
    framing = b"event: x\n" * 100_000 + b"\n" + b"event: y\n\n" * 100_000 + b"event: a\nevent: b\n\n" * 20_000
    stream = event + framing + event + framing + event
    steps = python_lines(lambda: _streamed(observer, stream, READ), sse.__file__)
    assert steps < 5_000  # 480,000 `event:` lines: 2,400,000 steps before
    assert outcome.output_detected == {EMAIL}


@pytest.mark.parametrize("read", [1, 2, 3, 7, 64, READ])
def test_the_last_event_line_before_data_names_its_event(read: int) -> None:
    """However the stream is cut into reads, an event is named by the last `event:` line before its end, as the SDK
    reads it: an Anthropic event without a `type` named `error` is the upstream's error; one named after a blank
    line, or before an `event:` line that names it otherwise, is not."""
    untyped = b'data: {"error": {"type": "overloaded_error", "message": "busy"}}\n\n'
    cases = {
        b"event: ping\n\nevent: message_stop\n" + untyped: None,  # a `message_stop` (untyped data)
        b"event: error\nevent: ping\n" + untyped: None,
        b"event: ping\n\n\nevent: ping\nevent: error\n" + untyped: STREAM_ERROR,
        b"event: ping\n: c\nevent: error\nid: 2\n" + untyped: STREAM_ERROR,
        b"event: error\n\n" * 3 + b'data: {"message":\nevent: ping\nevent: error\ndata: "x"}\n\n': STREAM_ERROR,
    }
    for stream, error in cases.items():
        observer, outcome = observer_of("anthropic")
        _streamed(observer, b"event: ping\ndata: {}\n\n" + stream, read)
        assert outcome.error_type == error, stream


DELTA = b'data: {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "raise error"}}\n'


@pytest.mark.parametrize("read", [1, 2, 3, 7, 64, READ])
def test_an_anthropic_event_named_error_is_the_upstreams_error_whatever_its_data(read: int) -> None:
    """The SDK (its SSE decoder dispatches an event at a blank line once it has a name, data or none) raises at an
    event named `error` whatever its data: none (alone between blank lines, which names no event in the WHATWG
    reading, and was dropped in C as naming none), no JSON, or read before the `event:` line came. Before 2026-12-04
    each was recorded as a success; a name another `event:` line replaces, or one no blank line ends, is no error."""
    cases = {
        b"event: error\n\n": STREAM_ERROR,
        b"\nevent:error\n\n" + DELTA: STREAM_ERROR,
        b"event: ping\nevent: error\n\n\n": STREAM_ERROR,
        b"event: error\ndata: overloaded\n\n": STREAM_ERROR,
        DELTA + b"event: error\n\n": STREAM_ERROR,
        b"event: error\nevent: ping\n\n" + b"event: x\n\n" * 3: None,
        b"event:  error\n\nevent: errors\n\n\nevent: error\n": None,
    }
    for stream, error in cases.items():
        observer, outcome = observer_of("anthropic")
        _streamed(observer, b"event: content_block_delta\n" + DELTA + b"\n" + stream + b"event: x\n\n" * 2, read)
        assert outcome.error_type == error, stream
    observer, outcome = observer_of("anthropic")
    _streamed(observer, b"event: content_block_delta\n" + DELTA + b"\nevent: error\n", read)  # (no blank line after)
    assert outcome.error_type is None


# -- past where a reply is read


def _given_up(kind: str) -> bytes:
    """`MAX_STRINGS` + 1 events `kind`'s adapter does not read: the rest of the reply is not read."""
    if kind == "ollama":
        return b'{"x": 1}\n' * (MAX_STRINGS + 1)
    return b'data: {"x": 1}\n\n' * (MAX_STRINGS + 1)


ERRORS = {
    "openai": b'data: {"error": {"message": "late"}}\n\n',
    "llama.cpp": b'error: {"code": 500, "message": "late", "type": "server_error"}\n\n',
    "responses": b'event: error\ndata: {"type": "error", "message": "late"}\n\n',
    "anthropic": b'event: error\ndata: {"type": "error", "error": {"message": "late"}}\n\n',
    "anthropic-named": b'event: error\ndata: {"message": "late"}\n\n',
    "tgi": b'data: {"error": "late", "error_type": "generation"}\n\n',
    "ollama": b'{"error": "late"}\n',
}


@pytest.mark.parametrize("kind", list(ERRORS))
@pytest.mark.parametrize("read", [7, 4096, READ])
def test_an_error_past_where_a_reply_is_read_is_the_upstreams_error(kind: str, read: int) -> None:
    observer, outcome = observer_of(kind)
    decoy = b'{"x": "no error here"}\n' if kind == "ollama" else b'data: {"x": "no error here"}\n\n'
    _streamed(
        observer, _given_up(kind) + decoy * 10 + ERRORS[kind] + (b"" if kind == "ollama" else b"data: [DONE]\n\n"), read
    )
    assert outcome.error_type == STREAM_ERROR and TRUNCATED in outcome.output_detected
    observer, outcome = observer_of(kind)  # no error: none recorded
    _streamed(observer, _given_up(kind) + decoy * 10, read)
    assert outcome.error_type is None


@pytest.mark.parametrize(
    "late",
    [b'data: {"error": {"message": "bad \\ud800"}}\n\n', b'data: {"error": {"message": "late", "param": NaN}}\n\n'],
)
def test_an_error_orjson_refuses_past_where_a_reply_is_read_is_the_upstreams_error(late: bytes) -> None:
    """Its JSON read as the events before it are (`reply_json`: a lone surrogate escape, `NaN`, as Python's `json`
    reads them, and the SDK raises at it); before, orjson alone read it, and the call was recorded a success."""
    observer, outcome = observer_of("openai")
    _streamed(observer, late, READ)  # (read where the reply is read: the upstream's error)
    assert outcome.error_type == STREAM_ERROR
    observer, outcome = observer_of("openai")
    _streamed(observer, _given_up("openai") + late + b"data: [DONE]\n\n", READ)
    assert outcome.error_type == STREAM_ERROR and TRUNCATED in outcome.output_detected


@pytest.mark.interpreted  # (a smaller MAX_LINE, patched)
@pytest.mark.parametrize("end", [b"", b"\n", b"\n\n"])
@pytest.mark.parametrize("read", [7, 4096, READ])
def test_an_error_past_a_line_too_long_to_read_is_the_upstreams_error(
    monkeypatch: pytest.MonkeyPatch, end: bytes, read: int
) -> None:
    """Past a line over `MAX_LINE` (the reading stops in it), once the blank line that ends its event comes: as the
    reply's last line without it, it is none since 2026-12-05 (the SDK's decoder never dispatches that event). The long
    line is a JSON object's since 2026-12-05: `data: xxx...` is no JSON, and the openai SDK (3.63.0, its `Stream` over
    this body) raises at it for every `end`, before the error (helper sselate2)."""
    from proxy.protocols import sse

    monkeypatch.setattr(sse, "MAX_LINE", 16_384)
    observer, outcome = observer_of("openai")
    stream = b'data: {"p": "' + b"x" * 100_000 + b'"}\n\n' + ERRORS["openai"].rstrip(b"\n") + end
    _streamed(observer, stream, read)
    assert outcome.error_type == (STREAM_ERROR if end == b"\n\n" else None)


@pytest.mark.interpreted
def test_lines_holding_error_past_where_a_reply_is_read_are_looked_at_up_to_the_limit() -> None:
    """Only lines holding `error` are looked at, found in C, and `MAX_STRINGS` of them a reply: a stream of them costs
    what as many events read would, and the rest of a reply none a line."""
    from proxy.protocols import sse

    def steps(stream: bytes) -> int:
        observer, outcome = observer_of("openai")
        count = python_lines(lambda: _streamed(observer, stream, READ), sse.__file__)
        assert outcome.error_type is None  # (past them, the error is not looked at)
        return count

    given_up = steps(_given_up("openai"))  # (65,537 events read: some 2 M steps)
    decoy = b'data: {"x": "error"}\n\n'
    once = steps(_given_up("openai") + decoy * MAX_STRINGS)
    thrice = steps(_given_up("openai") + decoy * (MAX_STRINGS * 3) + ERRORS["openai"])
    assert once - given_up < 16 * MAX_STRINGS and thrice - once < 1_000  # 13 steps a decoy, for 65,536 of them
    assert steps(_given_up("openai") * 4) - given_up < 2_000  # 3 MB more: a few steps a read


# -- through the proxy, with the openai SDK


def _error_after_unread_events(setup: Any, failed: bytes) -> tuple[int, str, Any]:
    """`MAX_STRINGS` + 100 chunks no adapter reads, then the error event `failed`, through the proxy to the openai
    SDK: the chunks it gave, what it raised (an APIError's text), the call's span."""
    unknown = b'data: {"id": "c1", "object": "chat.completion.chunk", "model": "m", "choices": null}\n\n'
    many = unknown * (MAX_STRINGS + 100)
    setup.upstream.reply = Reply([many[at : at + READ] for at in range(0, len(many), READ)] + [failed + b"data: [DONE]\n\n"],
                                 content_type="text/event-stream")  # fmt: skip
    chunks, raised, span = openai_chat(setup, timeout=60, catch=openai.APIError)
    return len(chunks), str(raised) if raised is not None else "", span


def test_the_openai_sdk_raises_at_an_error_after_events_no_adapter_reads(setup_for: Any) -> None:  # noqa: F811
    """The SDK is given every chunk, then raises at the error; the call is recorded `upstream_error`."""
    failed = b'data: {"error": {"code": 502, "message": "provider failed"}}\n\n'
    got, raised, span = _error_after_unread_events(setup_for(), failed)
    assert got == MAX_STRINGS + 100 and "provider failed" in raised
    assert span.attributes.get("error.type") == "upstream_error"
    assert TRUNCATED in span.attributes["lineage.output.labels"]


def test_the_openai_sdk_raises_at_an_error_it_reads_with_a_lone_surrogate_after_events_no_adapter_reads(
    setup_for: Any,  # noqa: F811
) -> None:
    """orjson refuses the error's JSON (a lone surrogate escape), Python's `json` reads it, and the SDK raises."""
    failed = b'data: {"error": {"code": 502, "message": "provider failed \\ud800"}}\n\n'
    _, raised, span = _error_after_unread_events(setup_for(), failed)
    assert "provider failed" in raised
    assert span.attributes.get("error.type") == "upstream_error"


@pytest.mark.parametrize("unit", [b"data: x\n", b"event: x\n", b"event: x\n\n"])
def test_a_stream_of_tiny_lines_reaches_its_client_unchanged(setup_for: Any, unit: bytes) -> None:  # noqa: F811
    setup = setup_for()
    body = CHAT + unit * (1024 * 1024 // len(unit)) + CHAT + b"data: [DONE]\n\n"
    response, got = setup.call("/v1/chat/completions", "flow-tiny", Reply([body[at : at + READ] for at in range(0, len(body), READ)],
                               content_type="text/event-stream"))  # fmt: skip
    assert response.status_code == 200 and got == body
    labels, _ = setup.recorded(response, "flow-tiny")
    assert EMAIL in labels


@pytest.mark.interpreted  # (a module's function, patched)
@pytest.mark.parametrize("framing", [b"\n", b": keep-alive\n\n"], ids=["blank", "comments"])
def test_framing_with_no_line_an_empty_event_begins_with_is_not_searched_for_one(
    monkeypatch: pytest.MonkeyPatch, framing: bytes
) -> None:
    """Each blank line may end an event the openai SDK dispatches without data: 16 MB of blank lines, read in 64 KiB
    pieces, held the event loop 0.7 s before 917f8e9 and 2.1-3.0 s with it (interpreted). An event's lines are looked
    at in Python (`_sdk_lines`) only where a line that may make it so is (`_SDK_LINE`), or an event goes on past a read
    (a few a read at most); where one is, it is found as before (helper revsse; since 2026-12-05 helper sse)."""
    from proxy.protocols import sse

    looked: list[int] = []
    lines = sse.SseObserver._sdk_lines

    def counted(data: bytes, start: int, end: int, state: int) -> int:
        looked.append(end - start)
        return lines(data, start, end, state)

    monkeypatch.setattr(sse.SseObserver, "_sdk_lines", staticmethod(counted))
    observer, outcome = observer_of("openai")
    _streamed(observer, CHAT + framing * (200_000 // len(framing)) + b"data: [DONE]\n\n", READ)
    assert len(looked) <= 2 * (len(CHAT) // READ + 2) and sum(looked) <= 2 * len(CHAT)
    assert EMAIL in outcome.output_detected and outcome.error_type is None and observer.ended
    observer, outcome = observer_of("openai")
    _streamed(observer, CHAT + framing * (200_000 // len(framing)) + b"\nid: 7\n\ndata: [DONE]\n\n", READ)
    assert outcome.error_type == STREAM_ERROR

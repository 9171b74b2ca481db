"""Past where a reply is read (65,536 events no adapter reads, `_late_errors`), an event is the upstream's error as its
client's SDK reads it: an event (its `data:` lines joined, its name the last `event` line's) once a blank line ends it,
not a line of it alone. The SDKs' reading is the openai SDK's SSE decoder (the anthropic SDK's is the same code)."""

from __future__ import annotations

import tracemalloc
from typing import Any

import openai
import orjson
import pytest
from openai._streaming import SSEDecoder

from proxy.detectors import TRUNCATED
from proxy.protocols import MAX_STRINGS, STREAM_ERROR
from tests.test_scan_cost import _streamed
from tests.test_tiny_sse_lines import ERRORS, READ, _given_up, observer_of
from tests.test_unsized_replies_output import Reply, setup_for  # noqa: F401  # (a fixture)

FAILED = b'event: response.failed\ndata: {"type":"response.failed","response":{"status":"failed"}}\n\n'
NESTED = b'data: {"choices":[],"x":[\ndata: {"error": 1}\ndata: ]}\n\n'
# (kind, the reply's last events, whether the SDK raises at them)
CASES = [
    ("responses", FAILED, True),  # no `error` in it
    ("responses", b'event: response.failed\ndata: {"type":"response.failed",\ndata: "response":{}}\n\n', True),
    ("openai", NESTED, False),  # a line of a multi-line event's data
    ("openai", b'data: {"error":\ndata: {"message": "late"}}\n\n', True),  # its error in two lines
    ("openai", b'data: {"choices": [], "x": "error"}\n\n', False),
    ("anthropic", b"event: error\nevent: ping\ndata: {}\n\n", False),  # the last name wins
    ("anthropic", b"event: ping\nevent: error\ndata: {}\n\n", True),
    ("anthropic", b"event: error\nevent\n\n", False),  # a bare `event` line names none
    ("anthropic", b"event: error\nevent\ndata: {}\n\n", False),
    ("anthropic", b"event: error\nevent\nevent: error\n\n", True),
    ("anthropic", b"event: error\n: no error\ndata: x\n\n", True),  # named `error`, whatever its data
    ("anthropic", b"data: {}\n\nevent: error\n", False),  # no blank line ends it: not dispatched
    # (data whose `type` is `error`, in an event named otherwise: passed on, or skipped; helper ssenormal)
    ("anthropic", b'event: message_delta\ndata: {"type": "error", "error": {}}\n\n', False),
    ("anthropic", b'data: {"type": "error", "error": {}}\n\n', False),
    ("anthropic", b'event: error\ndata: {"type": "error"}\nevent: ping\n\n', False),
]


def sdk_raises(kind: str, stream: bytes) -> bool:
    """Whether the SDK raises at `stream`, read by its SSE decoder: at an event named `error` (the anthropic SDK, at
    no other), or one whose data is JSON that `erred` says is an error (openai's `error`, a Responses `response.failed`)."""
    observer, _ = observer_of(kind)
    for sse in SSEDecoder().iter_bytes(iter([stream])):
        if observer.typed_by_name:
            if sse.event == "error":
                return True
            continue
        try:
            data = sse.json()
        except ValueError:
            continue
        if isinstance(data, dict) and observer.erred(data):
            return True
    return False


def fed(kind: str, head: bytes, stream: bytes, read: int) -> Any:
    """`head` in reads of `READ` bytes, then `stream` in reads of `read`: the outcome."""
    observer, outcome = observer_of(kind)
    for at in range(0, len(head), READ):
        observer.chunk(head[at : at + READ])
    _streamed(observer, stream, read)
    return outcome


@pytest.mark.parametrize(("kind", "tail", "error"), CASES)
@pytest.mark.parametrize("read", [1, 2, 3, 7, 4096])
def test_an_event_past_where_a_reply_is_read_is_the_upstreams_error_as_the_sdk_reads_it(
    kind: str, tail: bytes, error: bool, read: int
) -> None:
    """Before 2026-12-04 its lines holding `error` were each read alone: a `response.failed` event without the word
    was passed as a success; a line of a multi-line event's data, an `event: error` line a later `event` line renamed
    (in a later read) or a bare `event` line cleared were recorded `upstream_error`, though the SDK raises at none.
    The same where the reply is read (a bare `event` line was dropped there as changing nothing), with line ends of
    CR LF or CR, cut anywhere into reads."""
    expected = STREAM_ERROR if error else None
    for ends in (b"\n", b"\r\n", b"\r"):
        stream = (b'data: {"x": 1}\n\n' * 3 + tail).replace(b"\n", ends)
        assert sdk_raises(kind, stream) == error
        assert fed(kind, b"", stream, read).error_type == expected  # (read)
        outcome = fed(kind, _given_up(kind), stream, read)  # (past where the reply is read)
        assert outcome.error_type == expected and TRUNCATED in outcome.output_detected, ends


@pytest.mark.parametrize("read", [1, 7, READ])
def test_the_event_the_reading_stopped_in_keeps_its_name(read: int) -> None:
    """The 65,537th event no adapter reads stops the reading in its `data:` line: the name it had so far is its name
    (an Anthropic event named `error`: the SDK raises at it), unless an `event` line after it names it otherwise."""
    head = b'data: {"x": 1}\n\n' * MAX_STRINGS
    for tail, error in {
        b"event: error\ndata: x\n\n": STREAM_ERROR,
        b"event: error\ndata: x\nevent: ping\n\n": None,
        b"event: ping\ndata: x\nevent: error\n\n": STREAM_ERROR,
        b"event: ping\ndata: x\n\nevent: error\n\n": STREAM_ERROR,
        b"event: error\ndata: x\n": None,  # (no blank line ends it)
    }.items():
        assert sdk_raises("anthropic", tail) == (error is not None)
        outcome = fed("anthropic", head, tail, read)
        assert outcome.error_type == error and TRUNCATED in outcome.output_detected, tail


def _sdk_stream(setup: Any, body: bytes, call: Any) -> tuple[int, str, Any]:
    """`body` (its first 65,536+ events ones no adapter reads) through the proxy to the openai SDK: the events it gave,
    what it raised, the call's span."""
    setup.upstream.reply = Reply([body[at : at + READ] for at in range(0, len(body), READ)],
                                 content_type="text/event-stream")  # fmt: skip
    client = openai.OpenAI(base_url=f"{setup.proxy.url}/v1", api_key="k", timeout=60, max_retries=0)
    got = 0
    raised = ""
    try:
        raw = call(client)
        try:
            for _ in raw.parse():
                got += 1
        except openai.APIError as error:
            raised = str(error)
    finally:
        client.close()
    setup.loop_thread.run(setup.proxy.process.runtime.sinks.flush())
    return got, raised, setup.otlp.by_trace(raw.headers["x-trace-id"])


def test_the_openai_sdk_reads_a_late_event_of_many_lines_whole(setup_for: Any) -> None:  # noqa: F811
    """A chunk whose data, in three lines, holds `{"error": 1}` inside it: the SDK gives it, raises at nothing, and the
    call is no `upstream_error` (it was, from the line read alone)."""
    unknown = b'data: {"id": "c1", "object": "chat.completion.chunk", "model": "m", "choices": null}\n\n'
    nested = (
        b'data: {"id": "c1", "object": "chat.completion.chunk", "model": "m", "choices": [], "x": [\n'
        + NESTED[NESTED.index(b"\n") + 1 :]
    )
    got, raised, span = _sdk_stream(
        setup_for(),
        unknown * (MAX_STRINGS + 100) + nested + b"data: [DONE]\n\n",
        lambda client: client.chat.completions.with_raw_response.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True
        ),
    )
    assert got == MAX_STRINGS + 101 and raised == ""
    assert span.attributes.get("error.type") is None and TRUNCATED in span.attributes["lineage.output.labels"]


def test_a_late_responses_failed_event_is_the_upstreams_error(setup_for: Any) -> None:  # noqa: F811
    """`response.failed` past where the reply is read, no `error` in it: the SDK gives it (the response failed), and
    the call is `upstream_error`, as it is where the reply is read (before 2026-12-04 it passed as a success)."""
    unknown = b'event: x\ndata: {"type": "x", "sequence_number": 1}\n\n'
    response = {"id": "r1", "object": "response", "created_at": 1, "model": "m", "status": "failed", "output": []}
    failed = b"event: response.failed\ndata: " + orjson.dumps(
        {"type": "response.failed", "sequence_number": 2, "response": response}
    )
    failed += b"\n\n"
    got, raised, span = _sdk_stream(
        setup_for(),
        unknown * (MAX_STRINGS + 100) + failed,
        lambda client: client.responses.with_raw_response.create(model="m", input="hi", stream=True),
    )
    assert got == MAX_STRINGS + 101 and raised == ""
    assert (
        span.attributes.get("error.type") == "upstream_error" and TRUNCATED in span.attributes["lineage.output.labels"]
    )


@pytest.mark.parametrize("read", [READ - 5, 4000])
def test_the_reading_stops_at_its_line_not_an_equal_one_before_it(read: int) -> None:
    """The 65,537th event no adapter reads, `data: x` as the events before it in the same read: the rest is looked at
    from the end of its event, not of the first of them (until 2026-12-04: there, its `event: error` was taken for
    that event's, the upstream's error, though no blank line ended it or an `event` line renamed it)."""
    head = b"data: x\n\n" * MAX_STRINGS
    for tail, error in {
        b"event: error\ndata: x\n": None,
        b"event: error\ndata: x\nevent: ping\n\n": None,
        b"event: error\ndata: x\n\n": STREAM_ERROR,
        b"event: ping\ndata: x\n\nevent: error\n\n": STREAM_ERROR,
    }.items():
        assert sdk_raises("anthropic", head + tail) == (error is not None)
        outcome = fed("anthropic", b"", head + tail, read)
        assert outcome.error_type == error and TRUNCATED in outcome.output_detected, tail


def test_an_event_never_ended_past_where_a_reply_is_read_costs_no_object_a_line() -> None:
    """16 MB of `event: error` lines past where the reply is read, no blank line ending their event: the name it has
    is the last line's, found at once (until 2026-12-04 a list of them all, an object a line, each read: 3.1 s of the
    event loop, and thrice the memory); the SDK raises at it once a blank line ends it, not before."""
    observer, outcome = observer_of("anthropic")
    head = _given_up("anthropic")
    for at in range(0, len(head), READ):
        observer.chunk(head[at : at + READ])
    names = b"event: error\n" * (16_000_000 // 13)
    tracemalloc.start()
    try:
        for at in range(0, len(names), READ):
            observer.chunk(names[at : at + READ])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # (a read's slice, the kept tail and the lines split from a read; 737 KB before; 393,428 bytes compiled)
    assert peak < 8 * READ and outcome.error_type is None
    observer.chunk(b"\n")
    assert outcome.error_type == STREAM_ERROR


@pytest.mark.parametrize("kind", ["openai", "responses", "anthropic"])
@pytest.mark.parametrize("line", [b": keep-alive\n", b"id: 1\n"])
def test_an_error_past_more_late_events_than_are_judged_is_the_upstreams_error(kind: str, line: bytes) -> None:
    """Past where the reply is read, 65,546 events each with a comment or an `id` line (read one by one, not in C),
    then the upstream's error: the SDK raises at it, and the call is `upstream_error`. From 2026-12-05 (`_LateEvents`)
    nothing was looked at past `MAX_STRINGS` events judged, and it passed as a success; it is now looked for as it was
    before (`_late_errors`, helper revsselate2)."""
    stream = (line + b'data: {"x": 1}\n\n') * (MAX_STRINGS + 10) + ERRORS[kind]
    assert sdk_raises(kind, stream)
    outcome = fed(kind, _given_up(kind), stream, READ)
    assert outcome.error_type == STREAM_ERROR and TRUNCATED in outcome.output_detected


def test_past_more_late_events_than_are_judged_an_anthropic_error_is_the_event_named_error() -> None:
    """There too (`_late_errors`), data whose `type` is `error` in an event named otherwise is none: the anthropic SDK
    passes it on, or skips it (until 2026-12-05 `upstream_error`, helper ssenormal); one named `error` is."""
    head = (b": keep-alive\n" + b'data: {"x": 1}\n\n') * (MAX_STRINGS + 10)
    for tail, error in {
        b'event: message_delta\ndata: {"type": "error", "error": {}}\n\n': None,
        b'event: error\ndata: {"type": "content_block_delta"}\nevent: ping\n\n': None,
        b'event: error\ndata: {"type": "content_block_delta"}\n\n': STREAM_ERROR,
    }.items():
        assert sdk_raises("anthropic", head + tail) == (error is not None)
        outcome = fed("anthropic", _given_up("anthropic"), head + tail, READ)
        assert outcome.error_type == error and TRUNCATED in outcome.output_detected, tail

"""An openai event named `thread.*` (an Assistants event: `thread.run.failed`, `thread.message.delta`) whose data holds
a truthy `error`: the openai SDK in legacy mode (its chat and Responses streams) parses such an event's data and yields
it without looking at its `error` (`Stream.__stream__`'s Assistants branch), where it raises at one named otherwise or
none. The record says the call failed exactly where the SDK raises, or where the proxy counts an error whatever the SDK
does (vLLM's `object` `error`, a Responses `error` event: README, `upstream_error`). Driven with the real openai SDK
through the proxy; then the observer alone, cut into reads of any size, and past where it stops reading."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import orjson
import pytest

from proxy.protocols import MAX_STRINGS, STREAM_ERROR
from tests.event_streams import openai_responses
from tests.test_scan_cost import _streamed
from tests.test_sse_events_as_the_sdk_reads_them import CHUNK, DONE, through_sdk
from tests.test_sse_late_events import fed
from tests.test_tiny_sse_lines import READ, _given_up, observer_of
from tests.test_unsized_replies_output import Reply, setup_for  # noqa: F401  # (a fixture)

ERROR = b'data: {"error": {"message": "boom", "type": "server_error"}}\n'
RUN = b"event: thread.run.failed\n"
# (an event stream's events between a chat chunk and `[DONE]`, whether the SDK raises, whether the call is recorded
# `upstream_error`)
CASES = [
    (RUN + ERROR + b"\n", False, False),
    (b"event: thread.message.delta\n" + ERROR + b"\n", False, False),
    (b"event:thread.run.failed\n" + ERROR + b"\n", False, False),  # (no space after the colon)
    (b"event: thread.\n" + ERROR + b"\n", False, False),
    (ERROR + RUN + b"\n", False, False),  # (named after its data: the last `event` line names it)
    (b"event: error\n" + RUN + ERROR + b"\n", False, False),
    (RUN + b'data: {"error":\ndata:  {"message": "boom"}}\n\n', False, False),  # (pretty-printed: read joined)
    (RUN + ERROR + b"\n" + CHUNK, False, False),
    (ERROR + b"\n", True, True),  # (named none)
    (b"event: error\n" + ERROR + b"\n", True, True),
    (b"event: thread\n" + ERROR + b"\n", True, True),
    (b"event: Thread.run\n" + ERROR + b"\n", True, True),
    (RUN + b"event: error\n" + ERROR + b"\n", True, True),  # (renamed)
    (RUN + ERROR + b"event\n\n", True, True),  # (a bare `event` line: named none)
    (RUN + ERROR + b"data: x\n\n", True, True),  # (its data `{...}\nx`: no JSON)
    (RUN + ERROR + b"\ndata: x\n\n", True, True),  # (a later event the SDK raises at)
    (RUN + ERROR + b"\n" + ERROR + b"\n", True, True),
    # (vLLM's error, no `error`: the SDK yields it, named or not; recorded all the same)
    (RUN + b'data: {"object": "error", "message": "boom"}\n\n', False, True),
    (RUN + b'data: {"object": "error", "error": {"message": "boom"}}\n\n', False, True),
]
IDS = [f"case{at}" for at in range(len(CASES))]


def cases_that(apply: Callable[[bytes], bool]) -> list[Any]:
    """The `CASES` whose events `apply` holds for, each with its id in `IDS`: a test made only of the cases it asks."""
    return [pytest.param(*case, id=name) for name, case in zip(IDS, CASES, strict=True) if apply(case[0])]


@pytest.mark.parametrize("split", [True, False], ids=["a-piece-a-line", "one-piece"])
@pytest.mark.parametrize(("events", "raises", "recorded"), CASES, ids=IDS)
def test_a_thread_event_holding_an_error_through_the_openai_sdk(
    setup_for: Any,  # noqa: F811
    events: bytes,
    raises: bool,
    recorded: bool,
    split: bool,
) -> None:
    """Before 2026-12-06 the first eight were `upstream_error`, the SDK giving every chunk and raising at nothing."""
    got, raised, span = through_sdk(setup_for(), CHUNK + events + DONE, split=split)
    assert (raised != "") == raises, raised
    assert span.attributes.get("error.type") == ("upstream_error" if recorded else None)


DELTA = b"data: " + orjson.dumps({"type": "response.output_text.delta", "item_id": "m", "output_index": 0,
                                  "content_index": 0, "delta": "hello", "sequence_number": 1}) + b"\n\n"  # fmt: skip
RESPONSE = {"id": "r", "object": "response", "created_at": 1, "model": "m", "status": "completed", "output": [],
            "parallel_tool_calls": True, "tool_choice": "auto", "tools": []}  # fmt: skip
COMPLETED = (
    b"data: " + orjson.dumps({"type": "response.completed", "sequence_number": 3, "response": RESPONSE}) + b"\n\n"
)
KEYED = b'data: {"type": "response.output_text.delta", "delta": "", "error": {"message": "boom"}}\n\n'
ERROR_EVENT = b'data: {"type": "error", "error": {"message": "boom"}}\n\n'
RESPONSES_CASES = [
    (RUN + KEYED, False, False),
    (KEYED, True, True),
    (RUN + ERROR_EVENT, False, True),  # (the API's `error` event: recorded whatever its name)
    (ERROR_EVENT, True, True),
]


@pytest.mark.parametrize(
    ("events", "raises", "recorded"), RESPONSES_CASES, ids=["thread", "none", "error-thread", "error"]
)
def test_a_thread_event_holding_an_error_through_the_openai_sdks_responses_stream(
    setup_for: Any,  # noqa: F811
    events: bytes,
    raises: bool,
    recorded: bool,
) -> None:
    """Before 2026-12-06 the first was `upstream_error`."""
    setup = setup_for()
    setup.upstream.reply = Reply([DELTA, events, COMPLETED], content_type="text/event-stream")
    given, raised, span = openai_responses(setup, timeout=30, catch=openai.APIError)
    assert (raised is not None) == raises
    if not raises:
        assert given[0].type == "response.output_text.delta" and given[-1].type == "response.completed"
    assert span.attributes.get("error.type") == ("upstream_error" if recorded else None)


@pytest.mark.parametrize(("events", "raises", "recorded"), CASES, ids=IDS)
@pytest.mark.parametrize("read", [1, 2, 3, 7, 4096])
def test_a_thread_event_holding_an_error_at_any_read_size(
    events: bytes, raises: bool, recorded: bool, read: int
) -> None:
    """The observer alone, as the test through the SDK has it, its reads cut anywhere (line ends CR LF too)."""
    for ends in (b"\n", b"\r\n"):
        observer, outcome = observer_of("openai")
        _streamed(observer, (CHUNK + events + DONE).replace(b"\n", ends), read)
        assert outcome.error_type == (STREAM_ERROR if recorded else None), ends


LONG = b'data: {"type": "ping", "p": "' + b"x" * 5000 + b'"}\n\n'  # (an event over the `MAX_LINE` the tests set)


def _judged_past_a_long_line(monkeypatch: pytest.MonkeyPatch, stream: bytes, read: int, recorded: bool) -> None:
    """The observer fed `stream` in reads of `read` bytes, `MAX_LINE` made small: a stream error where `recorded`."""
    from proxy.protocols import sse

    monkeypatch.setattr(sse, "MAX_LINE", 4096)
    observer, outcome = observer_of("openai")
    _streamed(observer, stream, read)
    assert outcome.error_type == (STREAM_ERROR if recorded else None)


@pytest.mark.interpreted  # (`MAX_LINE` made small)
@pytest.mark.parametrize(("events", "raises", "recorded"), CASES, ids=IDS)
@pytest.mark.parametrize("read", [7, 4096])
def test_a_thread_event_holding_an_error_past_where_the_reply_is_read(
    monkeypatch: pytest.MonkeyPatch, events: bytes, raises: bool, recorded: bool, read: int
) -> None:
    """Past a line over `MAX_LINE` (an event before them), the events are judged as the SDK reads them: before
    2026-12-06 the first eight were `upstream_error`."""
    _judged_past_a_long_line(monkeypatch, CHUNK + LONG + events + DONE, read, recorded)


@pytest.mark.interpreted  # (`MAX_LINE` made small)
@pytest.mark.parametrize(("events", "raises", "recorded"), cases_that(lambda events: ERROR in events))
@pytest.mark.parametrize("read", [7, 4096])
def test_a_thread_event_holding_an_error_where_the_reply_stops_being_read(
    monkeypatch: pytest.MonkeyPatch, events: bytes, raises: bool, recorded: bool, read: int
) -> None:
    """As above, the reading stopped in the event, at a comment over `MAX_LINE` after its `error` line."""
    cut = events.index(ERROR) + len(ERROR)
    stream = CHUNK + events[:cut] + b": " + b"x" * 5000 + b"\n" + events[cut:] + DONE
    _judged_past_a_long_line(monkeypatch, stream, read, recorded)


@pytest.mark.interpreted  # (`MAX_LINE`, `MAX_STRINGS` made small)
@pytest.mark.parametrize(("events", "raises", "recorded"), cases_that(lambda events: b"data: x" not in events))
@pytest.mark.parametrize("read", [4096, 65536])  # (reads of 7 bytes: the look not reached)
@pytest.mark.parametrize("filler", [b": c\n", b"id: 1\n"], ids=["comment", "id"])
def test_a_thread_event_holding_an_error_past_the_events_judged_one_by_one(
    monkeypatch: pytest.MonkeyPatch, events: bytes, raises: bool, recorded: bool, read: int, filler: bytes
) -> None:
    """Past where the reply is read, then past `MAX_STRINGS` events judged one by one (each holding a comment or an
    `id` line), the rest is looked at for the upstream's error alone (`_late_errors`): a `thread.*` event whose only
    error is its `error` was `upstream_error` there until 2026-12-06. (An event the SDK raises at as no JSON, `data:
    x`, is not looked for there.)"""
    from proxy.protocols import sse

    monkeypatch.setattr(sse, "MAX_STRINGS", 100)
    stream = CHUNK + LONG + (filler + b'data: {"a": 1}\n\n') * 101 + events + DONE
    _judged_past_a_long_line(monkeypatch, stream, read, recorded)


@pytest.mark.parametrize(
    ("events", "recorded"),
    [(CASES[0][0], False), (CASES[4][0], False), (CASES[8][0], True), (CASES[10][0], True), (CASES[17][0], True)],
    ids=["named", "named-after", "none", "thread", "vllm"],
)
def test_a_thread_event_holding_an_error_past_more_late_events_than_are_judged(events: bytes, recorded: bool) -> None:
    """As above at the real bounds: the reading stopped past `MAX_STRINGS` events no adapter reads, then
    `MAX_STRINGS` + 10 events judged one by one (an `id` line each), then the event."""
    stream = (b'id: 1\ndata: {"x": 1}\n\n') * (MAX_STRINGS + 10) + events + DONE
    outcome = fed("openai", _given_up("openai"), stream, READ)
    assert outcome.error_type == (STREAM_ERROR if recorded else None)

"""Review of the openai SDK's empty events (helper revsse, 2026-12-05): a `retry` line is a retry to the SDK's decoder
exactly where its `int()` reads the value (ASCII white space around it, and digits or white space past ASCII; not the
separators `\\x1c`-`\\x1f`, which `int()` refuses); a Responses stream, each of whose events is named, is not looked at
line by line in Python. The reference is the SDK's own decoder (`openai._streaming.SSEDecoder`); the calls go through
the proxy to the real openai SDK."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest

from proxy.protocols import STREAM_ERROR
from tests.test_scan_cost import _streamed
from tests.test_sse_empty_events_any_read import STREAMS, sdk_raises
from tests.test_sse_events_as_the_sdk_reads_them import CHUNK, DONE, through_sdk
from tests.test_tiny_sse_lines import observer_of
from tests.test_unsized_replies_output import setup_for  # noqa: F401  # (a fixture)

RETRIES = [
    (b"retry: \x1c5\n\n", False),  # (`int()` strips ASCII white space alone: no retry, nothing dispatched)
    (b"retry: 5\x1f\n\n", False),
    (b"retry: \x0b5\x0c\n\n", True),
    (b"retry: 5\xc2\xa0\n\n", True),  # (U+00A0, white space to `int()`)
    (b"retry: \xe2\x80\x835\n\n", True),  # (U+2003)
    (b"retry: \xd9\xa5\n\n", True),  # (U+0665, ARABIC-INDIC DIGIT FIVE)
    (b"retry: \xd9\xa5x\n\n", False),
    # (no UTF-8: the SDK's decode raises at the line, not its `json.loads`: the upstream's error since 2026-12-05, helper
    # sse2, `test_sse_sdk_decode_review`)
    (b"retry: 5\xff\n\n", True),
]


@pytest.mark.parametrize(("lines", "raises"), RETRIES)
def test_a_retry_is_one_where_the_sdks_int_reads_it(lines: bytes, raises: bool) -> None:
    """Before: `\\x1c`-`\\x1f` around the digits were taken for white space `int()` strips (an `upstream_error` the SDK
    never raised), and digits or white space past ASCII, which it reads, were not (one it raised at, passed)."""
    stream = CHUNK + lines + DONE
    if b"\xff" not in lines:
        assert sdk_raises(stream) is raises
    for read in (len(stream), 1, 7):
        observer, outcome = observer_of("openai")
        _streamed(observer, stream, read)
        assert (outcome.error_type == STREAM_ERROR) is raises, read


def test_a_retry_the_sdk_does_not_read_is_no_error_through_the_proxy(setup_for: Any) -> None:  # noqa: F811
    _, raised, span = through_sdk(setup_for(), CHUNK + b"retry: \x1c5\n\n" + DONE, split=False)
    assert raised == "" and span.attributes.get("error.type") is None


NAMED = [
    (b"event: response.output_text.delta\n\n", True),  # a name alone: dispatched, its data empty
    (b"event: response.output_text.delta\ndata:\n\n", True),
    (b"event: response.output_text.delta\ndata: \t\n\n", True),
    (b"event: x\ndata: [DONE]\n\n", False),
    (b"event: x\ndata: 1\n\n", False),
    (b"event: x\ndata:  \ndata: 1\n\n", False),  # (` \n1`: JSON)
    (b"event: x\nevent:\n\n", False),
]


@pytest.mark.parametrize(("lines", "raises"), NAMED)
def test_named_events_are_read_as_the_sdk_reads_them(lines: bytes, raises: bool) -> None:
    stream = CHUNK + b"event: x\n" + CHUNK + lines + CHUNK + DONE
    assert sdk_raises(stream) is raises
    for read in (len(stream), 1, 2, 7):
        observer, outcome = observer_of("openai")
        _streamed(observer, stream, read)
        assert (outcome.error_type == STREAM_ERROR) is raises, read


@pytest.mark.interpreted  # (a method, patched)
def test_a_stream_of_named_events_is_not_read_line_by_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Responses stream names each of its events (`event: response.output_text.delta` then its `data:` line): each was
    looked at in Python (`_sdk_lines`), +~315 Python instructions an event (a 34-event stream 15,197 -> 25,907); an
    `event` line right before a `data:` line with a value cannot make the SDK dispatch an event without data."""
    from proxy.protocols import sse

    looked: list[int] = []
    lines = sse.SseObserver._sdk_lines

    def counted(data: bytes, start: int, end: int, state: int) -> int:
        looked.append(end - start)
        return lines(data, start, end, state)

    monkeypatch.setattr(sse.SseObserver, "_sdk_lines", staticmethod(counted))
    delta = {"type": "response.output_text.delta", "item_id": "m_1", "output_index": 0, "content_index": 0}
    observer, outcome = observer_of("responses")
    for index in range(200):
        observer.chunk(
            b"event: response.output_text.delta\ndata: " + orjson.dumps({**delta, "delta": f" w{index}"}) + b"\n\n"
        )
    observer.finish()
    assert outcome.error_type is None and looked == []  # (before: one an event)


@pytest.mark.interpreted  # (a method, patched)
def test_an_event_whose_blank_line_comes_in_a_read_of_its_own_is_not_read_line_by_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A server that writes an event's `data:` line and its blank line apart (a read each): each event was looked at in
    Python (`_sdk_lines`, two `_sdk_events` steps), +~300 instructions an event (a 33-event chat stream 19,664 -> 29,841
    with 9a69f23, now 22,979); its data line is known in C to hold a value (`_SDK_OPEN_DATA`), and its blank line so."""
    from proxy.protocols import sse

    looked: list[int] = []
    lines = sse.SseObserver._sdk_lines

    def counted(data: bytes, start: int, end: int, state: int) -> int:
        looked.append(end - start)
        return lines(data, start, end, state)

    monkeypatch.setattr(sse.SseObserver, "_sdk_lines", staticmethod(counted))
    observer, outcome = observer_of("openai")
    for _ in range(200):
        observer.chunk(CHUNK[:-1])
        observer.chunk(b"\n")
    observer.chunk(DONE)
    observer.finish()
    assert outcome.error_type is None and observer.ended and looked == []  # (before: one an event)


@pytest.mark.parametrize(
    ("stream", "raises"), STREAMS + RETRIES + [(CHUNK + lines + DONE, raises) for lines, raises in NAMED]
)
def test_a_read_a_line_or_an_event_apart_from_its_blank_line_is_read_as_the_sdk_reads_it(
    stream: bytes, raises: bool
) -> None:
    """Each line a read, and each event's lines a read apart from its blank line (as the reads above)."""
    for pieces_ in (re.findall(rb"[^\n]*\n|[^\n]+$", stream), re.findall(rb"(?:[^\n]+\n)+|\n", stream)):
        observer, outcome = observer_of("openai")
        for piece in pieces_:
            observer.chunk(piece)
        observer.finish()
        assert (outcome.error_type == STREAM_ERROR) is raises

"""Past where the observer stops reading a stream, an `id`, `retry` or `event` line past what is kept of a line (64 KiB)
is read as the SDK's decoder reads it: an `id` holding a NUL anywhere is ignored (the openai SDK's decoder keeps no such
id, and a blank line after it dispatches nothing); a `retry` is one where `int` reads its value, white space around a
number of at most 4,300 digits (a line of spaces and `5` is, and an empty event after it is dispatched, which the SDK's
`json.loads` raises at); an `event` names the event whatever its length. Until 2026-12-06 such a line was judged by its
first 16 bytes in reads that cut it: a NUL past them was not seen, and a long `retry` line was no retry. A `retry` of
more digits than `int` reads is none on the ordinary path too (a retry until 2026-12-06). Each case is checked against
the real SDK first, and the record must be what the SDK does at every read size."""

from __future__ import annotations

import pytest

from tests.test_sse_events_as_the_sdk_reads_them import CHUNK, DONE
from tests.test_sse_late_strings_judged_whole import _record, _sdk_raises, _stream

X = b"x" * 200_000
S = b" " * 200_000
EVENT = b'data: {"type": "content_block_delta", "choices": []}\n'
# the lines after the reading stopped (the test adds a line end: a blank line after them), and whether the SDK raises
OPENAI = [
    (b"id: " + X + b"\n", True),  # (an id, then a blank line: an empty event, no JSON)
    (b"id: " + X + b"\x00\n\n" + EVENT, False),
    (b"id: " + b"x" * 12 + b"\x00" + X + b"\n\n" + EVENT, False),
    (b"id: 1\n\nid: " + X + b"\x00\n", True),  # (the id before it stays)
    (b"retry: " + S + b"5\n", True),
    (b"retry: 5" + S + b"\n", True),
    (b"retry:" + b"\t \x0b" * 70_000 + b"+5\t\n", True),
    (b"retry: " + S + b"5" * 4300 + S + b"\n", True),
    (b"retry: " + S + b"5" * 4301 + S + b"\n\n" + EVENT, False),
    (b"retry: " + b"0" * 200_000 + b"\n\n" + EVENT, False),
    (b"retry: 5" + S + b"5\n\n" + EVENT, False),
    (b"event: " + X + b"\n", True),  # (named: dispatched without data)
]
OPENAI_IDS = [
    "id",
    "id-nul-at-end",
    "id-nul-after-12",
    "id-before-stays",
    "retry-spaces-number",
    "retry-number-spaces",
    "retry-tabs-signed",
    "retry-4300-digits",
    "retry-4301-digits",
    "retry-zeros",
    "retry-two-numbers",
    "event",
]
ANTHROPIC = [
    (b"event: " + X + b"\ndata: x\n", True),  # (a name but `error` or `ping`: its data parsed)
    (b"event: ping" + S + b"\ndata: x\n", True),
    (b"event: error" + S + b"\n" + EVENT, False),
]
ANTHROPIC_IDS = ["event-then-x", "ping-spaces-then-x", "error-spaces"]


def _records(kind: str, lines: bytes) -> tuple[bool, list[str | None]]:
    stream = _stream(kind, lines)
    head = stream.index(lines)
    sizes = (len(stream), 1000, 7_919, 65_536)
    return _sdk_raises(kind, stream), [_record(kind, stream, [head, size]) for size in sizes]


@pytest.mark.parametrize(("lines", "raises"), OPENAI, ids=OPENAI_IDS)
def test_a_long_id_or_retry_line_is_read_as_the_openai_sdk_reads_it(lines: bytes, raises: bool) -> None:
    """After the reading stopped, the lines in one read, in pieces of 1,000, 7,919 and 65,536 bytes: the SDK's record."""
    sdk, records = _records("openai", lines)
    assert sdk is raises
    assert records == ["upstream_error" if raises else None] * 4


@pytest.mark.parametrize(("lines", "raises"), ANTHROPIC, ids=ANTHROPIC_IDS)
def test_a_long_event_line_names_the_event_as_the_anthropic_sdk_reads_it(lines: bytes, raises: bool) -> None:
    """A name past 64 KiB is none of those the SDK skips or raises at (`ping`, `error`): its data is parsed."""
    sdk, records = _records("anthropic", lines)
    assert sdk is raises
    assert records == ["upstream_error" if raises else None] * 4


@pytest.mark.parametrize(("digits", "raises"), [(4300, True), (4301, False)])
def test_a_retry_of_more_digits_than_int_reads_is_none(digits: int, raises: bool) -> None:
    """On the ordinary path, a `retry` line of 4,301 digits then a blank line: `int` raises at it, the SDK's decoder
    ignores it and dispatches nothing; of 4,300, an empty event, which the SDK raises at."""
    stream = CHUNK + b"retry: " + b"5" * digits + b"\n\n" + DONE
    assert _sdk_raises("openai", stream) is raises
    assert [_record("openai", stream, [size]) for size in (len(stream), 1000)] == [
        "upstream_error" if raises else None
    ] * 2

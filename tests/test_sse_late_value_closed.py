"""Past where the observer stops reading a stream, an event's data past the 64 KiB kept of it whose JSON value has ended
(its brackets all closed) and goes on in a later `data` line (`{...}` past 64 KiB, then `data: {...}`): both SDKs join
the lines by LF, and their `json.loads` raises `Extra data`, so the record is `upstream_error` at any read size; so is
data that closes more brackets than it opens. Until 2026-12-06 such data was judged by its first 64 KiB alone: a
success where both SDKs raise (/tmp/s51/revstreams8/two_values.py; helper streams9). Each case is checked against the
real SDK first, and the record must be what the SDK does at every read size."""

from __future__ import annotations

import pytest

from tests.test_scan_cost import python_lines
from tests.test_sse_big_integers import _stream
from tests.test_sse_late_strings_judged_whole import _record, _sdk_raises
from tests.test_tiny_sse_lines import observer_of

NUMBERS = b"1, " * 70_000  # (210 KB: past the 64 KiB kept of a line)
# a string holding brackets and an escaped quote, none of them the JSON's
BRACKETS = b'"a]}{[\\"]}' + b"x" * 10 + b'"'
HEAD = b'data: {"type": "content_block_delta", "choices": [], "r": ['
PRETTY = HEAD + b"\n" + b"data: 1,\n" * 40_000  # (a line each: the event's lines past 64 KiB)
# a pretty-printed array of objects, each line's brackets as many closed as open there: 9,000 lines past 64 KiB
OBJECTS = HEAD + b"\n" + b'data: {\ndata:   "a": "]}",\ndata:   "b": [1]\ndata: },\n' * 3_000
# an event's data lines (each ending in a line end), and whether the SDKs raise at it
CASES = [
    (HEAD + NUMBERS + b'1]}\ndata: {"type": "x"}\n', True),
    (HEAD + NUMBERS + b"1]}\ndata: 1\n", True),
    (HEAD + NUMBERS + b"1]}\ndata:   \ndata:\n", False),  # (white space after the value)
    (HEAD + NUMBERS + b"1]\ndata: }\n", False),
    (HEAD + NUMBERS + b"1]\ndata: }\ndata: 1\n", True),
    (HEAD + (BRACKETS + b", ") * 12_000 + b"1]}\ndata: 2\n", True),
    (HEAD + (BRACKETS + b", ") * 12_000 + b"1]\ndata: }\n", False),
    (PRETTY + b"data: 1]\ndata: }\ndata: [2]\n", True),
    (PRETTY + b"data: 1]}\ndata: \ndata: {}\n", True),
    (PRETTY + b"data: 1]\ndata: }\n", False),
    (HEAD + NUMBERS + b"1]}}\n", True),  # (more closed than opened)
    (HEAD + NUMBERS + b"1]}\ndata: ]\n", True),
    (OBJECTS + b"data: {}]\ndata: }\ndata: 1\n", True),
    (OBJECTS + b"data: {}]\ndata: }\n", False),
]
IDS = [
    "object-then-object",
    "object-then-number",
    "object-then-white-space",
    "closed-on-the-next-line",
    "closed-then-number",
    "strings-with-brackets-then-number",
    "strings-with-brackets-closed-next",
    "pretty-then-array",
    "pretty-closed-then-object",
    "pretty",
    "one-closed-too-many",
    "one-closed-too-many-next",
    "objects-then-number",
    "objects",
]


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize(("event", "raises"), CASES, ids=IDS)
def test_data_going_on_after_its_value_ended_is_judged_as_the_sdk_reads_it(
    kind: str, event: bytes, raises: bool
) -> None:
    """The event whole in a read (the reading stopping in that read), and in pieces of 1,000, 7,919 and 65,536 bytes
    after the stop: the SDK's record."""
    stream = _stream(kind, event, True)
    assert _sdk_raises(kind, stream) is raises
    head = stream.index(event)
    reads = [[len(stream)]] + [[head, size] for size in (1000, 7_919, 65_536)]
    assert [_record(kind, stream, sizes) for sizes in reads] == ["upstream_error" if raises else None] * len(reads)


@pytest.mark.interpreted
@pytest.mark.parametrize(("line", "most"), [(b"data: 1,\n", 10), (b"data: [1, 2],\n", 10)], ids=["numbers", "arrays"])
def test_lines_past_the_kept_bytes_are_counted_a_block_at_a_time(
    monkeypatch: pytest.MonkeyPatch, line: bytes, most: int
) -> None:
    """Past where the reading stops, 2,000 lines of an event past its kept bytes, in reads of ten: their brackets are
    counted together (`_closed`), in few steps a line (12.5 before 2026-12-06, 7 now), lines of arrays too, whose
    brackets close as many as are open in a line but never all those open (until review revstreams9 counted one by one,
    17 steps a line, for `_MOST_STRINGS` lines an event, then not at all)."""
    from proxy.protocols import sse

    monkeypatch.setattr(sse, "MAX_LINE", 4096)
    first = _stream("openai", HEAD + NUMBERS + b"1,\n", True).split(b"\ndata: [DONE]")[0]
    reads, last = [line * 10] * 200, b"data: 1]}\ndata: 2\n\ndata: [DONE]\n\n"
    assert _sdk_raises("openai", first + b"".join(reads) + last) is True
    observer, outcome = observer_of("openai")
    observer.chunk(first)
    assert observer._partial is None
    steps = python_lines(lambda: [observer.chunk(read) for read in reads], sse.__file__)
    events = observer._events
    assert events is not None and events.nesting is not None
    observer.chunk(last)
    observer.finish()
    assert outcome.error_type == "upstream_error"  # (counted to the end: the value closed, then `2`)
    assert steps < most * 2000

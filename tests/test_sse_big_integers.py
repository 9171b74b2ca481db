"""An integer of more digits than Python's `int` reads from text (4,300) in a streamed event's data: the SDKs'
`json.loads` raises `ValueError` at it, so the openai and Anthropic SDKs raise, and the record is `upstream_error`.
orjson refuses such a number (past a double's range) and the event was read again as a browser's `fetch().json()`
reads a whole reply (a float): until 2026-12-06 a success, on the ordinary path and past where the reading stops,
when the event came whole in a read (/tmp/s50/revstreams7/big_integer.py). Each case is checked against the real SDK
first; the record must be the SDK's at every read size."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.test_anthropic_error_by_name_alone import START
from tests.test_scan_cost import python_lines
from tests.test_sse_events_as_the_sdk_reads_them import CHUNK, DONE
from tests.test_sse_late_strings_judged_whole import STOPPED, _record, _sdk_raises
from tests.test_sse_sdk_remaining_cases import STOP
from tests.test_tiny_sse_lines import observer_of

HEAD = b'data: {"type": "content_block_delta", "choices": [], "q": '


def _stream(kind: str, event: bytes, stopped: bool, name: bytes = b"content_block_delta") -> bytes:
    """`event`'s `data` lines as an event of a stream, after the reading stopped where `stopped`."""
    if kind == "openai":
        return CHUNK + (STOPPED if stopped else b"") + event + b"\n" + DONE
    before = b"event: ping\n" + STOPPED if stopped else b""
    return START + before + b"event: " + name + b"\n" + event + b"\n" + STOP


# an event's data lines (each ending in a line end), and whether the SDKs raise at it
CASES = [
    (HEAD + b"1" * 4300 + b"}\n", False),
    (HEAD + b"1" * 4301 + b"}\n", True),
    (HEAD + b"-" + b"9" * 5000 + b"}\n", True),
    (HEAD + b"[1, " + b"1" * 4301 + b"]}\n", True),
    (HEAD + b"1" * 4301 + b".5}\n", False),  # (a float: `float` reads any digits)
    (HEAD + b'"' + b"1" * 5000 + b'"}\n', False),  # (in a string)
    (b"data: {\ndata: " + HEAD[7:] + b"1" * 4301 + b"\ndata: }\n", True),  # (pretty: read joined)
]
IDS = ["4300-digits", "4301-digits", "negative-5001", "in-array", "float", "in-string", "pretty"]


@pytest.mark.parametrize("stopped", [False, True], ids=["read", "stopped"])
@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize(("event", "raises"), CASES, ids=IDS)
def test_an_integer_past_the_digits_int_reads_is_judged_as_the_sdk_reads_it(
    kind: str, event: bytes, raises: bool, stopped: bool
) -> None:
    """Read whole, in pieces of 1,000 bytes and of 7,919, before or past where the reading stops: the SDK's record."""
    stream = _stream(kind, event, stopped)
    assert _sdk_raises(kind, stream) is raises
    records = [_record(kind, stream, [size]) for size in (len(stream), 1000, 7_919)]
    assert records == ["upstream_error" if raises else None] * 3


@pytest.mark.parametrize("name", [b"ping", b""], ids=["ping", "unnamed"])
def test_an_event_the_anthropic_sdk_skips_is_a_success_with_one(name: bytes) -> None:
    """The Anthropic SDK does not parse an event named `ping` or none: such an integer in it is no error."""
    stream = _stream("anthropic", HEAD + b"1" * 5000 + b"}\n", False, name)
    assert _sdk_raises("anthropic", stream) is False
    assert [_record("anthropic", stream, [size]) for size in (len(stream), 1000)] == [None, None]


LONG = HEAD + b"1" * 70_000 + b"}\n"  # (past the 64 KiB of a line kept past where the reading stops)


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_a_line_past_the_kept_bytes_ending_the_integer_is_judged_as_the_sdk_reads_it(kind: str) -> None:
    """Past where the reading stops, an event's line of an integer of 70,000 digits: the 64 KiB kept of it end in
    the integer, which more may make a float (read on), but once its end is read it is no JSON to the SDK's
    `json.loads`. Read whole, in pieces of 64 KiB and of 7,919 bytes: the SDK's record (until 2026-12-06 a success in
    an Anthropic stream in pieces), and of 1,000 bytes (until 2026-12-06 a success for both: each piece fewer digits than
    `int` reads)."""
    stream = _stream(kind, LONG, True)
    assert _sdk_raises(kind, stream) is True
    sizes = (len(stream), 65_536, 7_919, 1000)
    assert [_record(kind, stream, [size]) for size in sizes] == ["upstream_error"] * 4


D = b"1" * 70_000
NUMBERS = b"[" + b"1," * 40_000 + b'2], "r": '  # (80 KB of numbers: what follows is past the 64 KiB kept)
LINES = (
    b'data: {"type": "content_block_delta", "choices": [], "r": [\n'
    + b"data: 1,\n" * 10_000
    + b'data: 2],\ndata: "q": '
)
# past where the reading stops, an event's line (or lines) holding digits past the 64 KiB kept of it, and whether the
# SDKs raise at it: an integer of more digits than `int` reads raises wherever it ends; a float's digits, a string's, or
# a fraction's or an exponent's do not
PAST = [
    (HEAD + D + b"}\n", True),
    (HEAD + b"-" + D + b"}\n", True),
    (HEAD + D + b".5}\n", False),
    (HEAD + D + b"E-5}\n", False),
    (HEAD + D + b".x}\n", True),  # (a point and no digit: an integer, then no JSON)
    (HEAD + b"1." + D + b"}\n", False),
    (HEAD + b"1e-" + D + b"}\n", False),
    (HEAD + b'"' + D + b'"}\n', False),
    (HEAD + NUMBERS + b"7" * 4301 + b"}\n", True),
    (HEAD + NUMBERS + b"7" * 4300 + b"}\n", False),
    (HEAD + NUMBERS + b'"' + b"x" * 10 + b'\\"' + b"7" * 4301 + b'"}\n', False),  # (in a string, after `\"`)
    (b"data: {\ndata: " + HEAD[7:] + D + b"\ndata: }\n", True),  # (pretty: the line end ends it)
    (LINES + D + b"\ndata: }\n", True),  # (a line after 64 KiB of the event's lines, not kept)
    (LINES + b"7" * 4300 + b"\ndata: }\n", False),
]
PAST_IDS = [
    "integer",
    "negative",
    "float",
    "exponent",
    "point-then-x",
    "fraction",
    "negative-exponent",
    "in-string",
    "after-numbers",
    "4300-after-numbers",
    "in-string-after-escape",
    "pretty",
    "after-lines",
    "4300-after-lines",
]


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize(("event", "raises"), PAST, ids=PAST_IDS)
def test_digits_past_the_kept_bytes_are_judged_as_the_sdk_reads_them_at_any_read_size(
    kind: str, event: bytes, raises: bool
) -> None:
    """Past where the reading stops, digits past the 64 KiB kept of a line: a run of them cut into pieces is counted
    across the pieces, so that an integer of more digits than `int` reads is no JSON at any read size, and what follows
    the digits (a point, an exponent, a line end) is read where a piece ends before it too. The event whole in a read,
    in pieces of 1,000, 4,301, 7,919 and 65,536 bytes, and cut right after the digits: the SDK's record. Until
    2026-12-06 the integer in pieces of fewer digits than the bound, and every such line after 64 KiB of other bytes,
    was read on: a success where the SDK raises."""
    stream = _stream(kind, event, True)
    assert _sdk_raises(kind, stream) is raises
    head = stream.index(event)
    cut = head + max(found.end() for found in re.finditer(rb"[0-9]{16,}", event))  # (after the last run of digits)
    reads = [[head, size] for size in (len(stream), 1000, 4301, 7_919, 65_536)] + [[cut, 1], [cut + 1, len(stream)]]
    assert [_record(kind, stream, sizes) for sizes in reads] == ["upstream_error" if raises else None] * len(reads)


OPEN = HEAD + b"[" + b"1, " * 30_000  # (90 KB of numbers: what follows is past the 64 KiB kept)
M = b"7" * 4301
# past the kept bytes, a short piece (`piece`, read alone) then a run of 4,301 digits in the next: what the piece ends
# in says whose digits they are, a fraction's or an exponent's (`1.`, `1e-`) or an integer's (`1.5, `, `1e5, `)
SHORT = [(b"1.", False), (b"1e-", False), (b"1E", False), (b"1.5, ", True), (b"1e5, ", True), (b"-", True)]


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize(
    ("piece", "raises"), SHORT, ids=["point", "exponent-minus", "exponent", "after-float", "after-exponent", "minus"]
)
def test_digits_after_a_short_read_are_judged_by_what_it_ends_in(kind: str, piece: bytes, raises: bool) -> None:
    """Past where the reading stops, past the 64 KiB kept of a line: a read of a few bytes (`1.`) then 4,301 digits.
    The bytes before the digits say whether they are an integer's, which the SDKs' `json.loads` raises at, and are
    the short read's: the record is the SDK's with the short read alone, and in reads of 2 and 3 bytes around it. Until
    review revstreams8 a read not ending in a digit was not looked at, and the bytes of the read before it were taken
    for those before the digits: `1.` then the digits an integer (`upstream_error` where the SDK reads on), `1.5, `
    then them a fraction's (a success where the SDK raises)."""
    event = OPEN + piece + M + b"]}\n"
    stream = _stream(kind, event, True)
    assert _sdk_raises(kind, stream) is raises
    head = stream.index(event)
    at = head + len(OPEN)
    reads = [[head, at - head, len(piece), len(stream)], [head, at - head - 7, 2], [head, at - head - 7, 3]]
    assert [_record(kind, stream, sizes) for sizes in reads] == ["upstream_error" if raises else None] * len(reads)


class Counting(bytes):
    """A piece whose `count` adds the bytes it is run over to `read` (`_Past`'s quotes counted before a run)."""

    read = 0

    def count(self, sub: Any, start: Any = 0, end: Any = None) -> int:
        Counting.read += (len(self) if end is None else min(end, len(self))) - start
        return bytes.count(self, sub, start, end)


@pytest.mark.interpreted  # (a compiled `_Past` may call `bytes.count` directly: the count would see nothing)
@pytest.mark.parametrize(
    ("piece", "big"),
    [
        ((M + b".5, ") * 500 + b"1", False),  # (floats: each run a float's)
        ((b'"' + M + b'", ') * 500 + M + b", ", True),  # (in strings, then an integer's)
    ],
    ids=["floats", "strings-then-integer"],
)
def test_the_quotes_before_each_long_run_in_a_read_are_counted_once(piece: bytes, big: bool) -> None:
    """Past the kept bytes, a read of 500 runs of 4,301 digits: whether each is in a string is told from the quotes
    counted since the run before, not from the read's start at each run (until review revstreams8: a read's size times
    its runs, a 16 MiB line of such floats in reads of 4 MiB 2.5 s of the event loop, 9 ms before 2026-12-06)."""
    from proxy.protocols.sse import _Past

    past = _Past()
    Counting.read = 0
    past.feed(Counting(piece))
    past.ended()
    assert past.big is big
    assert Counting.read <= 2 * len(piece)


@pytest.mark.interpreted  # (lines of Python counted: a compiled module runs none)
@pytest.mark.parametrize("line", [b"data: ,1\n", b"data: , 12345\n"], ids=["comma", "digits"])
def test_short_lines_past_the_kept_bytes_cost_few_steps(monkeypatch: pytest.MonkeyPatch, line: bytes) -> None:
    """Past where the reading stops, an event's data past its 64 KiB kept, then 1,000 short `data` lines in reads of
    ten (each line a step or more, `_lines`): each is looked at for an integer of more digits than `int` reads in a few
    steps, its length telling there is none (until review revstreams8 some 50 steps a line, 10 before
    2026-12-06)."""
    from proxy.protocols import sse

    monkeypatch.setattr(sse, "MAX_LINE", 4096)
    first, reads, last = CHUNK + OPEN + b"1\n" + line, [line * 10] * 100, b"data: ]}\n\n" + DONE
    assert _sdk_raises("openai", first + b"".join(reads) + last) is False
    observer, outcome = observer_of("openai")
    observer.chunk(first)  # (the event's data past `MAX_LINE`: the reading stops there)
    assert observer._partial is None
    steps = python_lines(lambda: [observer.chunk(read) for read in reads], sse.__file__)
    observer.chunk(last)
    observer.finish()
    assert outcome.error_type is None
    assert steps < 15 * 1000


N = "1" * 5000
# JSON texts' first bytes that end in or past an integer of more digits than `int` reads, and whether a JSON text may
# begin so (one that does, completed so: `COMPLETIONS`)
BEGINNINGS = [
    ('{"q": ' + N, True),
    ('{"q": ' + N + ".", True),
    ('{"q": -' + N + "e+", True),
    ('{"q": [' + N + ".5, " + N, True),
    ('{"q": "' + N, True),
    ('{"q": ' + N + "}", False),
    ('{"q": ' + N + ",", False),
    ('{"q": ' + N + ".x", False),
    ('{"q": ' + N + ', "r": ' + N, False),
    ('{"q": [' + N + ", " + N + ".5", False),
]
COMPLETIONS = ["}", "5}", "1}", ".5}", ".5]}", '"}']


@pytest.mark.parametrize(("text", "begins"), BEGINNINGS, ids=[f"{i}" for i in range(len(BEGINNINGS))])
def test_an_integer_past_the_digits_int_reads_in_the_kept_bytes(text: str, begins: bool) -> None:
    """`_json_may_begin`: the integer Python's parser raised at is the number the end cuts, which may read on, or
    it ended before (an integer, whatever follows: `json.loads` raises at every text so begun). Until 2026-12-06 read
    on at both."""
    from proxy.protocols.sse import _json_may_begin

    def reads(whole: str) -> bool:
        try:
            json.loads(whole)
        except ValueError:
            return False
        return True

    assert any(reads(text + end) for end in COMPLETIONS) is begins
    assert _json_may_begin(text.encode()) is begins

"""Past where the observer stops reading a stream, an event's `data` line past what is kept of it (64 KiB) is kept as
JSON's parser reads it, its long strings' insides made short (`_Elided`): a string that closes past the kept bytes,
then what cannot follow it (`data: {` / `data: "xxx..."` / `data: }`), is no JSON to the SDK's `json.loads`, and is
recorded so at any read size. Until 2026-12-06 such a line was judged by its first bytes and its quotes alone: a success
where the SDK raises (/tmp/s49/streams6/residual_late_lines.py; helper streams7). Each case is checked against the real
SDK first, and the record must be what the SDK does at every read size and cut."""

from __future__ import annotations

import pytest

from proxy.protocols.sse import MAX_LINE
from tests.test_anthropic_error_by_name_alone import START
from tests.test_anthropic_parsed_events import anthropic_sdk_raises
from tests.test_scan_cost import _streamed
from tests.test_sse_events_as_the_sdk_reads_them import CHUNK, DONE
from tests.test_sse_sdk_leftovers import sdk_fails
from tests.test_sse_sdk_remaining_cases import STOP
from tests.test_tiny_sse_lines import observer_of

BOM = b"\xef\xbb\xbf"
X = b"x" * 200_000  # (a string's inside past what is kept of a line)
HUGE = b"x" * (MAX_LINE + 1000)  # (past `MAX_LINE`: the reading stops at it)
# (a pretty event the reading stops in, an object to both SDKs)
STOPPED = b'data: {\ndata: "type": "ping",\ndata: "p": "' + HUGE + b'"\ndata: }\n\n'


def _sdk_raises(kind: str, stream: bytes) -> bool:
    return sdk_fails([stream]) if kind == "openai" else anthropic_sdk_raises(stream, True)


def _stream(kind: str, event: bytes, first: bytes = b"") -> bytes:
    """`event`'s `data` lines as an event after the reading stopped (`first`: before the stream's first byte)."""
    if kind == "openai":
        return first + CHUNK + STOPPED + event + b"\n" + DONE
    return first + START + b"event: ping\n" + STOPPED + b"event: content_block_delta\n" + event + b"\n" + STOP


def _record(kind: str, stream: bytes, reads: list[int]) -> str | None:
    """The record of `stream` read in pieces of the sizes `reads` (the last repeated to its end)."""
    observer, outcome = observer_of(kind)
    at = 0
    for size in reads[:-1]:
        observer.chunk(stream[at : at + size])
        at += size
    if at < len(stream):
        _streamed(observer, stream[at:], reads[-1])
    observer.finish()
    return outcome.error_type


# an event's data lines (each ending in a line end), and whether the SDKs raise at it
CASES = [
    (b'data: {\ndata: "' + X + b'"\ndata: }\n', True),  # (a string where a key goes, then `}`: no `:`)
    (b'data: {"type":\ndata: "' + X + b'"\ndata: }\n', False),
    (b'data: {"type": "' + X + b'" "b"}\n', True),  # (two strings, no comma)
    (b'data: {"type": "' + X + b'"}x\n', True),
    (b'data: {"type": "' + X + b'", "b": [1, 2, {"c": null}]}\n', False),
    (b'data: {"type": "' + X + b'"\ndata: , "b": 1}\n', False),
    (b'data: {"type": "' + X + b"\\u00e9\\n" + X + b'"}\n', False),  # (escapes past the kept bytes)
    (b'data: {"type": "' + X + b"\\q" + X + b'"}\n', True),  # (a bad escape)
    (b'data: {"type": "' + X + b"\t" + X + b'"}\n', True),  # (a control character in a string)
    (b'data: {"type": "' + X + b'\ndata: "}\n', True),  # (a line end in a string)
    (b'data: {"type": "' + X + b'", "b": "' + X + b'", "c": "' + X + b'"}\n', False),
    (b'data: {"type": "' + X + b'", "b": "' + X + b'" "c"}\n', True),
]
IDS = [
    "string-for-key",
    "string-value",
    "no-comma",
    "then-x",
    "then-values",
    "comma-next-line",
    "escapes",
    "bad-escape",
    "control",
    "line-end-in-string",
    "three-strings",
    "third-no-comma",
]


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize(("event", "raises"), CASES, ids=IDS)
def test_a_long_string_closed_past_the_kept_bytes_is_judged_as_the_sdk_reads_it(
    kind: str, event: bytes, raises: bool
) -> None:
    """After the reading stopped, the event in one read, in pieces of 64 KiB, 7,919 bytes, 1 MiB: the SDK's record."""
    stream = _stream(kind, event)
    assert _sdk_raises(kind, stream) is raises
    head = stream.index(event)
    records = [_record(kind, stream, [head, size]) for size in (len(stream), 65_536, 7_919, 1 << 20)]
    assert records == ["upstream_error" if raises else None] * 4


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize(
    ("event", "raises"),
    [
        (b'data: {\ndata: "' + HUGE + b'"\ndata: }\n', True),
        (b'data: {"type":\ndata: "' + HUGE + b'"\ndata: }\n', False),
    ],
    ids=["string-for-key", "string-value"],
)
def test_the_line_the_reading_stops_at_is_judged_whole_at_any_read_size(kind: str, event: bytes, raises: bool) -> None:
    """The long line the reading stops at (past `MAX_LINE`), read in pieces of 1,000 bytes, 64 KiB, or whole (the
    reading stops in the read then, and the read is read again: `_late_reread`): the SDK's record at each."""
    stream = _stream(kind, event).replace(STOPPED, b"")
    assert _sdk_raises(kind, stream) is raises
    records = [_record(kind, stream, [size]) for size in (1000, 65_536, len(stream))]
    assert records == ["upstream_error" if raises else None] * 3


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize(
    "event",
    [
        b'data: {"choices": [\ndata: "' + HUGE + b'"]}\n',  # (the SDK reads no `{`: the line the mark begins is none)
        b'data: [\ndata: "' + HUGE + b'"]\n',
    ],
    ids=["object", "array"],
)
def test_a_byte_order_mark_then_a_long_line_is_judged_alike_however_it_is_cut(kind: str, event: bytes) -> None:
    """A stream a UTF-8 byte order mark begins, its first event's first line then a line past `MAX_LINE`: the SDKs keep
    the mark (the line it begins is a field they ignore, `\\ufeffdata`), so the event's data begins at the long line.
    The record, until 2026-12-06 a success in reads of 1,000 bytes and `upstream_error` in reads of 64 KiB (helper
    streams6's residual), is the SDK's whatever the reads' size and wherever the mark and the first line are cut."""
    if kind == "openai":
        stream = BOM + event + b"\n" + CHUNK + DONE
    else:
        stream = BOM + b"event: content_block_delta\n" + event + b"\n" + START + STOP
    raises = _sdk_raises(kind, stream)
    assert raises is (kind == "openai")  # (to the Anthropic SDK, the event is unnamed: skipped)
    cuts = [[1000], [65_536], [len(stream)], [1, 2, 65_536], [2, 1000], [3, 1 << 20], [5, 30, 7_919]]
    assert [_record(kind, stream, reads) for reads in cuts] == ["upstream_error" if raises else None] * len(cuts)

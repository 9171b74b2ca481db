"""A line that is no UTF-8 after an event whose data is no JSON, in a stream that ends before that event's blank line
(helper revsse3). The openai SDK's decoder decodes each line as it comes and raises `UnicodeDecodeError` at such a line,
whether a blank line ever dispatches the event before it or not; the observer held the event's error (`_HELD`: the SDK
never dispatches an event the body ends in), found the line's bytes when its read came after the event's line, took
the held error for one recorded already, and dropped it at the body's end: the call passed as a success. Since
2026-12-05 `data: \\x0b` is such an event too (it was no data before: `bytes.strip()` dropped the `\\x0b`)."""

from __future__ import annotations

import pytest

from proxy.protocols import STREAM_ERROR
from tests.test_scan_cost import _streamed
from tests.test_sse_events_as_the_sdk_reads_them import CHUNK
from tests.test_sse_sdk_remaining_cases import _sdk_raises
from tests.test_tiny_sse_lines import observer_of

# (a stream, whether the openai SDK raises at it)
STREAMS = [
    (CHUNK + b"data: x\n\xff\n", True),
    (CHUNK + b"data: \x0b\n: \xff\n", True),
    (CHUNK + b"data: x\n: \xc3\n", True),  # (a sequence cut at the line end)
    (CHUNK + b"data: x\n\xff", True),  # (the body ends in the line)
    (CHUNK + b"data: x\n: \xc3\xa9\n", False),  # (UTF-8; the event is never dispatched)
    (CHUNK + b"data: x\n: \xc3", True),
]


@pytest.mark.parametrize(("stream", "raises"), STREAMS)
def test_a_line_no_utf8_after_a_held_error_is_the_upstreams(stream: bytes, raises: bool) -> None:
    """Whole and cut at every byte or two: the record says what the SDK saw (cut, it passed as a success)."""
    assert _sdk_raises(stream) is raises
    for read in (len(stream), 1, 2, 7):
        observer, outcome = observer_of("openai")
        _streamed(observer, stream, read)
        assert (outcome.error_type == STREAM_ERROR) is raises, read

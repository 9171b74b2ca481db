"""Past where the observer stops reading, the read it stops in (helper revsse4): an Anthropic stream, and a bare `data`.

4d3700d made `_late_after` look for the openai SDK's stop at `[DONE]` in the rest of that read, for any stream with
`_utf8` set, the Anthropic one's too: a `data: [DONE]` event there stopped the watch, and an `error` event after it (or
a line no UTF-8 in a later read) passed as a success where the Anthropic SDK, which reads on to the body's end, raises.
The reference is `anthropic_sdk_raises` (tests/test_anthropic_parsed_events.py): the real SDK's `Stream` over the bytes
(anthropic 2.17.0 since 2026-12-05, a copy of 0.121.0's reading before)."""

from __future__ import annotations

import pytest

from proxy.protocols import STREAM_ERROR
from tests.test_anthropic_parsed_events import anthropic_sdk_raises
from tests.test_sse_events_as_the_sdk_reads_them import CHUNK
from tests.test_sse_sdk_leftovers import LONG, _split_long, sdk_fails
from tests.test_sse_sdk_remaining_cases import EVENT, STOP
from tests.test_tiny_sse_lines import observer_of

START = (
    b'event: message_start\ndata: {"type": "message_start", "message": {"id": "m", "type": "message", "role":'
    b' "assistant", "content": [], "model": "m", "stop_reason": null, "stop_sequence": null, "usage":'
    b' {"input_tokens": 1, "output_tokens": 1}}}\n\n'
)
ERROR = b'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error", "message": "o"}}\n\n'
REFUSED = b"xy\n" * 16  # (lines that are no field: the observer stops reading at the 16th, `_MOST_REFUSED`)
# (the reads of a stream, whether the SDK raises at it)
CASES = [
    ([START + EVENT + REFUSED + b"\ndata: [DONE]\n\n" + ERROR], True),
    ([START + EVENT + REFUSED + b"\ndata: [DONE]\n\n", ERROR], True),
    ([START + EVENT + REFUSED + b"\ndata: [DONE]\n\n" + EVENT, ERROR + STOP], True),
    ([START + EVENT + REFUSED + b"\ndata: [DONE]\n\n" + STOP], False),
    ([START + EVENT + REFUSED + b"\n" + ERROR], True),
]


@pytest.mark.parametrize(("reads", "raises"), CASES)
def test_no_done_to_the_anthropic_sdk_where_reading_stops(reads: list[bytes], raises: bool) -> None:
    """Before the fix the first three passed as a success."""
    assert anthropic_sdk_raises(b"".join(reads), objects=True) is raises
    observer, outcome = observer_of("anthropic")
    for read in reads:
        observer.chunk(read)
    observer.finish()
    assert observer._partial is None  # (the reading stopped)
    assert (outcome.error_type == STREAM_ERROR) is raises


def test_a_line_no_utf8_after_done_where_reading_stops() -> None:
    """The Anthropic SDK's decoder decodes each line to the body's end (it raises at `\\xff`); before the fix a
    `[DONE]` event in the read the reading stopped in stopped the decoding."""
    observer, outcome = observer_of("anthropic")
    for read in (START + EVENT + REFUSED + b"\ndata: [DONE]\n\n", b"\xff\n\n" + STOP):
        observer.chunk(read)
    observer.finish()
    assert outcome.error_type == STREAM_ERROR


# -- the openai SDK: a bare `data` line (its value empty) is one of its event's `data` lines, but the observer drops it
# before reading the lines (`_framing_dropped`): in the read the reading stopped in (`_late_after`), or before the
# line it stopped in (`_give_up`), `data` then `data: [DONE]` was taken for the end where the SDK joins `\n[DONE]` and
# raises (the reference is the installed openai SDK's decoder, `sdk_fails`)

XS = b"xy\n" * 16
BARE = [
    [CHUNK + b"data\n" + XS, b"data: [DONE]\n\n"],
    [CHUNK + b"data\n" + XS + b"data: [DO", b"NE]\n\n"],
    [CHUNK + b"data\n" + XS, b"data: [DONE]\n\n\xff\n\n"],
    [CHUNK + XS + b"data\n", b"data: [DONE]\n\n\xff\n\n"],
    _split_long([CHUNK + b"data\ndata: [DONE]\n: " + LONG + b"\n\n\xff\n\n"]),
]
BARE_NOT = [  # (each a check that holds before and after)
    [CHUNK + XS + b"\n\ndata: [DONE]\n", b"\n\xff\n\n"],
    [CHUNK + b"data\n" + XS + b"\n", b"data: [DONE]\n\n\xff\n\n"],  # (`data` alone: raises at its blank line)
    _split_long([CHUNK + b"data: [DONE]\n: " + LONG + b"\n\n\xff\n\n"]),
]


@pytest.mark.parametrize("reads", BARE + BARE_NOT)
def test_a_bare_data_line_where_reading_stops(reads: list[bytes]) -> None:
    """Before the fix the first five passed as a success."""
    observer, outcome = observer_of("openai")
    for read in reads:
        observer.chunk(read)
    observer.finish()
    assert observer._partial is None  # (the reading stopped)
    assert (outcome.error_type == STREAM_ERROR) is sdk_fails(reads)

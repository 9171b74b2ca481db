"""An integer of more digits than Python's `int` reads from text (4,300) in a streamed event's data: the SDKs'
`json.loads` raises `ValueError` at it, so the openai and Anthropic SDKs raise, and the record is `upstream_error`.
orjson refuses such a number (past a double's range) and the event was read again as a browser's `fetch().json()`
reads a whole reply (a float): until 2026-12-06 a success, on the ordinary path and past where the reading stops,
when the event came whole in a read (/tmp/s50/revstreams7/big_integer.py). Each case is checked against the real SDK
first; the record must be the SDK's at every read size."""

from __future__ import annotations

import pytest

from tests.test_anthropic_error_by_name_alone import START
from tests.test_sse_events_as_the_sdk_reads_them import CHUNK, DONE
from tests.test_sse_late_strings_judged_whole import STOPPED, _record, _sdk_raises
from tests.test_sse_sdk_remaining_cases import STOP

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

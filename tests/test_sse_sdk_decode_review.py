"""Review of what the openai SDK's stream reads (helper sse2, 2026-12-05), each recorded as the SDK has it:

- an event of two JSON objects, a `data:` line each: the SDK's decoder joins its lines by LF and its `json.loads`
  raises at the second ("Extra data"); the proxy read them as two events and recorded a success. Now `upstream_error`,
  both objects still read (their labels recorded);
- a line that is not UTF-8, even a comment: the SDK's decoder decodes each line (`raw_line.decode("utf-8")`) as it
  comes, and raises `UnicodeDecodeError` at it (not past the blank line of `[DONE]`, where its iteration stopped); the
  proxy recorded nothing wrong. Now `upstream_error`;
- past `MAX_STRINGS` events the SDK dispatches nothing at, the rest was looked at for an empty event no more, and the
  call said nothing of it: now labelled `scan:truncated` there.

The reference is the SDK's own decoder (`openai._streaming.SSEDecoder`); the calls go through the proxy to the real
openai SDK against a raw upstream."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from openai._streaming import SSEDecoder

from proxy.protocols import MAX_STRINGS, STREAM_ERROR
from tests.test_scan_cost import _streamed
from tests.test_sse_events_as_the_sdk_reads_them import CHUNK, DONE, through_sdk
from tests.test_tiny_sse_lines import observer_of
from tests.test_unsized_replies_output import EMAIL, TRUNCATED, setup_for  # noqa: F401  # (a fixture)


def sdk_raises(stream: bytes) -> bool:
    """Whether the openai SDK's chat stream raises at `stream` (`Stream.__stream__`), its decoder's
    `UnicodeDecodeError` too."""
    try:
        for sse in SSEDecoder().iter_bytes(iter([stream])):
            if sse.data.startswith("[DONE]"):
                return False
            data = json.loads(sse.data)
            if isinstance(data, dict) and data.get("error"):
                return True
    except ValueError:  # (`JSONDecodeError`, `UnicodeDecodeError`)
        return True
    return False


def _object(content: str) -> bytes:
    return orjson.dumps({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                         "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}]})  # fmt: skip


PLAIN, MAILED = _object("hello"), _object(" write to ana@example.org")
JOINED = [
    (b"data: " + PLAIN + b"\ndata: " + MAILED + b"\n\n", True),  # (`{...}\n{...}`: "Extra data")
    (b"data: " + MAILED + b"\ndata: " + PLAIN + b"\n\n", True),
    (b"data: " + MAILED + b"\n: c\nevent: x\ndata: 1\n\n", True),
    (b"data: " + MAILED + b"\ndata: [DONE]\n\n", True),  # (`{...}\n[DONE]`: no `[DONE]` to the SDK)
    (b"data: " + MAILED + b"\ndata:\ndata:  \t\ndata\n\n", False),  # (white space after it: JSON)
    (b"data: " + MAILED + b"\n\ndata: " + PLAIN + b"\n\n", False),  # (two events)
    (b"data: {\ndata: " + MAILED[1:] + b"\n\n", False),  # (pretty-printed: one JSON text)
]


@pytest.mark.parametrize(("lines", "raises"), JOINED)
def test_an_event_of_two_json_objects_is_the_upstreams_error_its_labels_kept(lines: bytes, raises: bool) -> None:
    """Before: each object was read as an event of its own, the call a success."""
    stream = CHUNK + lines + CHUNK + DONE
    assert sdk_raises(stream) is raises
    for read in (len(stream), 1, 2, 7, len(CHUNK) + 20):
        observer, outcome = observer_of("openai")
        _streamed(observer, stream, read)
        assert (outcome.error_type == STREAM_ERROR) is raises, read
        assert EMAIL in outcome.output_detected, read  # (both objects read)


def test_an_event_of_two_json_objects_ended_by_the_reply_is_no_error() -> None:
    """The SDK's decoder dispatches no event the body ends in (no blank line): nothing raised."""
    stream = CHUNK + b"data: " + PLAIN + b"\ndata: " + MAILED + b"\n"
    assert sdk_raises(stream) is False
    for read in (len(stream), 1, 7):
        observer, outcome = observer_of("openai")
        _streamed(observer, stream, read)
        assert outcome.error_type is None and EMAIL in outcome.output_detected, read


def test_an_event_of_two_json_objects_through_the_proxy(setup_for: Any) -> None:  # noqa: F811
    stream = CHUNK + b"data: " + PLAIN + b"\ndata: " + MAILED + b"\n\n" + DONE
    for split in (False, True):
        chunks, raised, span = through_sdk(setup_for(), stream, split=split)
        assert (chunks, raised) == (1, "JSONDecodeError")
        assert span.attributes.get("error.type") == STREAM_ERROR  # HEAD: None
        assert EMAIL in span.attributes["lineage.output.labels"]


LATIN_1 = b'data: {"choices": [{"index": 0, "delta": {"content": "caf\xe9"}}]}\n\n'
UNDECODABLE = [
    (CHUNK + b": \xff\n\n" + DONE, True),  # a comment
    (CHUNK + LATIN_1 + DONE, True),  # text in Latin-1
    (CHUNK + b"event: \xed\xa0\x80\n" + CHUNK + DONE, True),  # (a surrogate's bytes: no UTF-8)
    (CHUNK + b": \xc3", True),  # (the body's last line, no line end: decoded at its end)
    (CHUNK + DONE + b": \xff\n\n", False),  # (past `[DONE]`: the SDK read no further)
    (CHUNK + b"data: [DONE]\n: \xff\n\n", True),  # (before its blank line)
    (
        CHUNK + b'data: {"choices": [{"index": 0, "delta": {"content": "caf\xc3\xa9 \xf0\x9f\x98\x80"}}]}\n\n' + DONE,
        False,
    ),
]


@pytest.mark.parametrize(("stream", "raises"), UNDECODABLE)
def test_a_line_that_is_not_utf8_is_the_upstreams_error(stream: bytes, raises: bool) -> None:
    """Before: none was (the comment not read, the Latin-1 data read with U+FFFD)."""
    assert sdk_raises(stream) is raises
    for read in (len(stream), 1, 2, 7):
        observer, outcome = observer_of("openai")
        _streamed(observer, stream, read)
        assert (outcome.error_type == STREAM_ERROR) is raises, read


def test_a_line_that_is_not_utf8_through_the_proxy(setup_for: Any) -> None:  # noqa: F811
    for stream in (CHUNK + b": \xff\n\n" + DONE, CHUNK + LATIN_1 + DONE):
        chunks, raised, span = through_sdk(setup_for(), stream, split=False)
        assert (chunks, raised) == (1, "UnicodeDecodeError")
        assert span.attributes.get("error.type") == STREAM_ERROR  # HEAD: None


def test_past_the_events_looked_at_the_call_says_so() -> None:
    """`event:` names none: an event the SDK dispatches nothing at, each a Python step; past `MAX_STRINGS` of them the
    rest is not looked at (an empty event after them, which the SDK raises at, not found): labelled `scan:truncated`,
    where before nothing said so."""
    stream = CHUNK + b"event:\n\n" * (MAX_STRINGS + 1) + b"data:\n\n" + DONE
    assert sdk_raises(stream) is True
    observer, outcome = observer_of("openai")
    _streamed(observer, stream, 1 << 16)
    assert outcome.error_type is None and TRUNCATED in outcome.output_detected
    stream = CHUNK + b"event:\n\n" * MAX_STRINGS + b"data:\n\n" + DONE  # (at the bound: found, nothing unread)
    observer, outcome = observer_of("openai")
    _streamed(observer, stream, 1 << 16)
    assert outcome.error_type == STREAM_ERROR and TRUNCATED not in outcome.output_detected

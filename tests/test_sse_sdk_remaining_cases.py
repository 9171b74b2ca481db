"""Event streams read as the openai SDK reads them, the cases left (helper sse3). Its SSE decoder
(`openai._streaming.SSEDecoder`) splits lines at CR and LF alone, decodes each line as UTF-8 as it comes, joins an event's
`data` lines by LF and drops one space after the colon; `Stream.__stream__` stops at data that begins `[DONE]` and
`json.loads` every other event, whose white space is a space, a tab, CR and LF, not `\\x0b` nor `\\x0c`:
- a `data` line with no value then `data: [DONE]` is data `\\n[DONE]`: no `[DONE]`, no JSON: the SDK raises;
- `data: \\x0b`, `data: {...}\\x0b`: no JSON (`bytes.strip()` dropped the `\\x0b`); `\\x1c`, `\\x85`, `\\u2028` end no line
  in the decoder's bytes (nor in the proxy's): data that is no JSON, found before;
- a line past `MAX_LINE` (where the observer stops reading) that is no UTF-8: the SDK's decode raises at it.
Each was passed as a success. Driven with the real openai SDK through the proxy; the reference is its decoder."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.protocols import STREAM_ERROR
from proxy.protocols.sse import MAX_LINE
from tests.event_streams import openai_chat
from tests.test_scan_cost import _streamed
from tests.test_sse_empty_events_any_read import sdk_raises
from tests.test_sse_events_as_the_sdk_reads_them import CHUNK, DONE, through_sdk
from tests.test_stream_close_delimited_cut import span_of
from tests.test_tiny_sse_lines import observer_of
from tests.test_unsized_replies_output import Reply, setup_for  # noqa: F401  # (a fixture)

VALUE = CHUNK[6:-2]  # (the chunk's JSON)

# (the events after a chunk, what the SDK raises at them: "" for nothing)
CASES = [
    (b"data\ndata: [DONE]\n\n", "JSONDecodeError"),
    (b"data:\ndata: [DONE]\n\n", "JSONDecodeError"),
    (b"data: \ndata:[DONE]\n\n", "JSONDecodeError"),
    (b"data\n: c\ndata: [DONE]\n\n", "JSONDecodeError"),
    (b"data: [DONE]\ndata\n\n", ""),  # (its data begins `[DONE]`: the SDK stops)
    (b"data\ndata: " + VALUE + b"\n\n" + DONE, ""),  # (`\n{...}`: JSON)
    (b"data: \x0b\n\n" + DONE, "JSONDecodeError"),
    (b"data: \x0c\n\n" + DONE, "JSONDecodeError"),
    (b"data: " + VALUE + b"\x0b\n\n" + DONE, "JSONDecodeError"),
    (b"data:\x0c" + VALUE + b"\n\n" + DONE, "JSONDecodeError"),
    (b"data: " + VALUE + b" \t\n\n" + DONE, ""),
    (b"data: \x1c\n\n" + DONE, "JSONDecodeError"),
    (b"data: " + VALUE + "\u2028".encode() + b"\n\n" + DONE, "JSONDecodeError"),
    (b"data: \xc2\x85\n\n" + DONE, "JSONDecodeError"),
    (b"data: [DONE]\x0b\n\n", ""),
    (b"\x0b\n\n" + DONE, ""),  # (a field the SDK does not know)
]


@pytest.mark.parametrize(("events", "raised"), CASES)
def test_data_lines_are_read_as_the_openai_sdk_reads_them(setup_for: Any, events: bytes, raised: str) -> None:  # noqa: F811
    """Before 2026-12-05 `data` then `data: [DONE]` ended the stream well (the second line taken for the end), and a
    value's `\\x0b` or `\\x0c` was dropped as white space: each call passed as a success where the SDK raised."""
    stream = CHUNK + events
    assert sdk_raises(stream) is bool(raised)
    _, sdk_raised, span = through_sdk(setup_for(), stream, split=False)
    assert sdk_raised == raised
    assert span.attributes.get("error.type") == ("upstream_error" if raised else None)
    for read in (len(stream), 1, 3):
        observer, outcome = observer_of("openai")
        _streamed(observer, stream, read)
        assert (outcome.error_type == STREAM_ERROR) is bool(raised), read


LONG = b"x" * (MAX_LINE + 300_000)  # (past it by pieces of a read: the observer stops reading before its end)
# (a stream holding a line past MAX_LINE, whether the SDK raises at it: its decode of a line)
LONG_LINES = [
    (CHUNK + b": " + LONG + b"\xff\n\n" + DONE, True),
    (CHUNK + b": \xff" + LONG + b"\n\n" + DONE, True),
    (CHUNK + b": " + LONG + b"\xc3\n\n" + DONE, True),  # (a sequence cut at the line end)
    (CHUNK + b": " + LONG + b"\xc3", True),  # (at the body's end)
    (CHUNK + b": " + LONG + b"\n\n" + CHUNK + b"\xff\n\n" + DONE, True),  # (a line after it)
    (CHUNK + b"data: [DONE]\n: " + LONG + b"\xff\n\n", True),  # (before `[DONE]`'s event ended)
    (CHUNK + b": " + LONG + b"\xc3\xa9\n\n" + DONE, False),
    (CHUNK + b": " + LONG + b"\n\n" + DONE + b"\xff\n\n", False),  # (past `[DONE]`: the SDK reads no more)
    (CHUNK + b"data: [DONE]\n: " + LONG + b"\n\n\xff\n\n", False),
    (CHUNK + b": " + LONG + b"\ndata: [DONE]\n\n\xff", False),
]


def _sdk_raises(stream: bytes) -> bool:
    try:
        return sdk_raises(stream)
    except UnicodeDecodeError:
        return True


@pytest.mark.parametrize(("stream", "raises"), LONG_LINES)
def test_a_line_past_max_line_is_decoded_as_the_sdk_decodes_it(stream: bytes, raises: bool) -> None:
    """Before 2026-12-05 nothing past where the observer stops reading (a line past `MAX_LINE`) was decoded: a line
    that is no UTF-8 there passed as a success where the SDK's decode raised."""
    assert _sdk_raises(stream) is raises
    for read in (len(stream), 65_536, 65_537):
        observer, outcome = observer_of("openai")
        _streamed(observer, stream, read)
        assert (outcome.error_type == STREAM_ERROR) is raises, read


@pytest.mark.parametrize("stream", [LONG_LINES[0][0], LONG_LINES[1][0]])
def test_a_line_past_max_line_no_utf8_through_the_sdk(setup_for: Any, stream: bytes) -> None:  # noqa: F811
    """The same through the proxy to the SDK, the stream sent in pieces of 64 KiB."""
    setup = setup_for()
    pieces = [stream[at : at + 65_536] for at in range(0, len(stream), 65_536)]
    setup.upstream.reply = Reply(pieces, framing="chunked", content_type="text/event-stream")
    _, raised, span = openai_chat(setup, timeout=60, catch=Exception)
    assert type(raised).__name__ == "UnicodeDecodeError"
    assert span.attributes.get("error.type") == "upstream_error"


# -- the Anthropic SDK (not in the venv, nor in the test extra): its decoder, anthropic-sdk-python 0.121.0's
# `_streaming.SSEDecoder.iter_bytes`, splits the body into events (`_iter_chunks`), each into lines at CR and LF alone
# (`bytes.splitlines`), and decodes every line as UTF-8 (`raw_line.decode("utf-8")`), a comment too, to the body's end

EVENT = (b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0,'
         b' "delta": {"type": "text_delta", "text": "hi"}}\n\n')  # fmt: skip
STOP = b'event: message_stop\ndata: {"type": "message_stop"}\n\n'


def anthropic_lines_raise(stream: bytes) -> bool:
    """Whether the Anthropic SDK's decoder raises at `stream` decoding its lines (its `_iter_chunks`, then each chunk's
    `splitlines()` decoded as UTF-8)."""
    chunks, data = [], b""
    for line in stream.splitlines(keepends=True):
        data += line
        if data.endswith((b"\r\r", b"\n\n", b"\r\n\r\n")):
            chunks.append(data)
            data = b""
    chunks += [data] if data else []
    try:
        for chunk in chunks:
            for raw_line in chunk.splitlines():
                raw_line.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


ANTHROPIC = [
    (EVENT + b": \xff\n\n" + STOP, True),
    (EVENT + b'event: content_block_delta\ndata: {"text": "\xff"}\n\n' + STOP, True),
    (EVENT + STOP + b"\xc3", True),  # (at the body's end)
    (EVENT + b": " + LONG + b"\xff\n\n" + STOP, True),
    (EVENT + b": \xff" + LONG + b"\n\n" + STOP, True),
    (EVENT + b"data: [DONE]\n\n\xff\n\n" + STOP, True),  # (no end to it)
    (EVENT + b": \xc3\xa9\n\n" + STOP, False),
    (EVENT + b": " + LONG + b"\n\n" + STOP, False),
]


@pytest.mark.parametrize(("stream", "raises"), ANTHROPIC)
def test_an_anthropic_stream_is_decoded_as_its_sdk_decodes_it(setup_for: Any, stream: bytes, raises: bool) -> None:  # noqa: F811
    """Before 2026-12-05 an Anthropic stream's lines were not decoded: one that is no UTF-8 passed as a success where
    the SDK's decode raised."""
    assert anthropic_lines_raise(stream) is raises
    for read in (len(stream), 1, 3) if len(stream) < MAX_LINE else (len(stream), 65_536):
        observer, outcome = observer_of("anthropic")
        _streamed(observer, stream, read)
        assert (outcome.error_type == STREAM_ERROR) is raises, read
    if len(stream) < MAX_LINE:
        setup = setup_for()
        response, _ = setup.call("/v1/messages", "flow-sse3", Reply([stream], content_type="text/event-stream"))
        assert response.status_code == 200
        span = span_of(setup, response.headers["x-trace-id"])
        assert span.attributes.get("error.type") == ("upstream_error" if raises else None)

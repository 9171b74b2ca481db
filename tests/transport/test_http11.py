"""The HTTP/1.1 reply parser without a socket: bytes in, then the head, the body pieces and the end out.

`events` feeds a reply in the given pieces and lists what came out, in order: the final reply's
head (as a `HeadEvent`), each body piece as bytes, and `END` once the reply is complete.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from proxy.transport import UpstreamProtocolError
from proxy.transport.http11 import MAX_CHUNK_LINE, MAX_HEAD, ReplyParser

END = "end"


class HeadEvent(NamedTuple):
    status: int
    reason: str
    headers: CIMultiDict[str]
    content_length: int | None


Event = HeadEvent | bytes | str


def events(*pieces: bytes, method: str = "GET", eof: bool = False) -> tuple[list[Event], ReplyParser]:
    parser = ReplyParser(method)
    out: list[Event] = []
    for piece in pieces:
        had_head = parser.head is not None
        parser.feed(piece)
        if parser.head is not None and not had_head:
            out.append(HeadEvent(*parser.head))
        out.extend(parser.pieces)
        assert parser.buffered == sum(map(len, parser.pieces))
        take(parser)
        if parser.done and END not in out:
            out.append(END)
    if eof:
        parser.feed_eof()
        if parser.done and END not in out:
            out.append(END)
    return out, parser


def take(parser: ReplyParser) -> bytes:
    """What the connection does with the body pieces: takes them all."""
    data = b"".join(parser.pieces)
    parser.pieces.clear()
    parser.buffered = 0
    return data


def head(status: int, reason: str, content_length: int | None, *fields: tuple[str, str]) -> HeadEvent:
    return HeadEvent(status, reason, CIMultiDict(fields), content_length)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    cuts = sorted(set(cuts))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def joined(out: list[Event]) -> list[Event]:
    """The events with adjacent body pieces joined: what must not depend on how the bytes were split."""
    merged: list[Event] = []
    for event in out:
        if isinstance(event, bytes) and merged and isinstance(merged[-1], bytes):
            merged[-1] += event
        else:
            merged.append(event)
    return merged


# -- Content-Length


def test_a_sized_reply() -> None:
    out, parser = events(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello")
    assert out == [head(200, "OK", 5, ("Content-Length", "5"), ("Content-Type", "text/plain")), b"hello", END]
    assert parser.keep_alive


def test_body_packets_of_a_sized_reply_are_handed_on_as_they_come() -> None:
    parser = ReplyParser()
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
    first, second = b"01234", b"56789"
    parser.feed(first)
    parser.feed(second)
    assert list(parser.pieces) == [first, second]  # one piece per packet (llhttp's are copies: no `is`)
    assert parser.done and parser.buffered == 10 and take(parser) == b"0123456789" and parser.buffered == 0


def test_an_empty_sized_body_ends_with_the_head() -> None:
    out, _ = events(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert out == [head(200, "OK", 0, ("Content-Length", "0")), END]


def test_repeated_lengths_are_refused_even_when_equal() -> None:
    # llhttp refuses any repeated Content-Length (RFC 9110 §8.6 allows either); the old parser took equal ones
    with pytest.raises(UpstreamProtocolError, match="Duplicate Content-Length"):
        events(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nok")


@pytest.mark.parametrize("extra", [b"X", b"HTTP/1.1 200 OK\r\n\r\n"])
def test_bytes_after_a_complete_reply_are_dropped_and_end_keep_alive(extra: bytes) -> None:
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    for pieces in ([reply + extra], [reply, extra]):
        out, parser = events(*pieces)
        assert out == [head(200, "OK", 2, ("Content-Length", "2")), b"ok", END]
        assert not parser.keep_alive


def test_empty_lines_after_a_reply_are_skipped() -> None:
    # llhttp skips CRLFs between replies (RFC 9112 §2.2); the old parser ended keep-alive on them
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    for pieces in ([reply + b"\r\n\r\n"], [reply, b"\r\n"]):
        out, parser = events(*pieces)
        assert out == [head(200, "OK", 2, ("Content-Length", "2")), b"ok", END] and parser.keep_alive


def test_a_cut_short_sized_reply_is_not_complete_at_eof() -> None:
    out, parser = events(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this", eof=True)
    assert out == [head(200, "OK", 100, ("Content-Length", "100")), b"only this"]
    assert not parser.done


# -- chunked

CHUNKED_REPLY = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/event-stream\r\n\r\n"
    b"6;ext=1\r\ndata: \r\n"
    b'1a\r\n{"choices":[{"text":"x"}]}\r\n'
    b"0\r\nX-Trailer: dropped\r\n\r\n"
)
CHUNKED_HEAD = head(200, "OK", None, ("Transfer-Encoding", "chunked"), ("Content-Type", "text/event-stream"))
CHUNKED_HEAD_BYTES = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


def test_a_chunked_reply_is_one_piece_per_chunk_without_extensions_or_trailers() -> None:
    out, parser = events(CHUNKED_REPLY)
    assert out == [CHUNKED_HEAD, b"data: ", b'{"choices":[{"text":"x"}]}', END]
    assert parser.keep_alive


def test_a_chunked_reply_fed_one_byte_at_a_time() -> None:
    out, parser = events(*(CHUNKED_REPLY[i : i + 1] for i in range(len(CHUNKED_REPLY))))
    assert joined(out) == [CHUNKED_HEAD, b'data: {"choices":[{"text":"x"}]}', END]
    assert out[-1] == END and out.count(END) == 1 and parser.keep_alive


def test_a_chunk_split_across_packets_is_handed_on_as_it_comes() -> None:
    tail = b"56789"
    out, _ = events(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nA\r\n01234", tail, b"\r\n0\r\n\r\n")
    # (one piece per packet; llhttp hands on copies, so the old check that a lone packet is not copied is gone)
    assert out[1:] == [b"01234", b"56789", END]


@pytest.mark.parametrize(
    ("size_line", "size"),
    [(b"1a", 26), (b"1A", 26), (b"001a", 26), (b"1a;name=value", 26), (b"1a;a=1;b=2", 26)],
)
def test_chunk_sizes_are_hex_with_optional_extensions(size_line: bytes, size: int) -> None:
    body = bytes(range(97, 97 + size))
    reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + size_line + b"\r\n" + body + b"\r\n0\r\n\r\n"
    out, _ = events(reply)
    assert out[1:] == [body, END]


def test_trailer_fields_are_dropped_until_the_empty_line() -> None:
    prefix = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nA: 1\r\nB: 2\r\n"
    out, parser = events(prefix)
    assert out[1:] == [b"ok"] and not parser.done
    out, parser = events(prefix, b"\r\n")
    assert out[1:] == [b"ok", END]


@pytest.mark.parametrize("value", ["chunked", "Chunked", " chunked "])
def test_chunked_alone_frames_by_chunks(value: str) -> None:
    out, parser = events(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: " + value.encode() + b"\r\n\r\n0\r\n\r\n")
    assert out[1:] == [END] and parser.keep_alive


@pytest.mark.parametrize("value", ["gzip, chunked", "chunked, gzip", "gzip", "identity"])
def test_a_transfer_coding_other_than_chunked_alone_is_refused(value: str) -> None:
    """The body is passed on framed anew and Transfer-Encoding dropped (hop-by-hop): the client would get the coded
    bytes with nothing saying they are coded (the old parser passed `gzip, chunked` on so, and read `chunked, gzip`
    and `gzip` as ending with the connection)."""
    with pytest.raises(UpstreamProtocolError, match="Transfer-Encoding"):
        events(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: " + value.encode() + b"\r\n\r\n0\r\n\r\n")


def test_a_chunked_reply_cut_off_is_not_complete_at_eof() -> None:
    for tail in (b"", b"5", b"5\r\nhel", b"5\r\nhello\r\n", b"5\r\nhello\r\n0\r\n"):
        out, parser = events(CHUNKED_HEAD_BYTES + tail, eof=True)
        assert END not in out and not parser.done, tail


@pytest.mark.parametrize(
    "fields",
    [b"Content-Length: 100\r\nTransfer-Encoding: chunked", b"Transfer-Encoding: chunked\r\nContent-Length: 100"],
)
def test_a_content_length_beside_chunked_is_refused(fields: bytes) -> None:
    # llhttp refuses both framings at once (the old parser let chunked win): no two readings of one reply
    with pytest.raises(UpstreamProtocolError, match="can't be present with"):
        events(b"HTTP/1.1 200 OK\r\n" + fields + b"\r\n\r\n2\r\nok\r\n0\r\n\r\n")


# -- until the connection closes


def test_a_reply_without_a_length_lasts_until_the_connection_closes() -> None:
    out, parser = events(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\npart one, ", b"part two")
    assert out == [head(200, "OK", None, ("Content-Type", "text/plain")), b"part one, ", b"part two"]
    assert not parser.done and not parser.keep_alive
    parser.feed_eof()
    assert parser.done


def test_an_http11_reply_without_a_length_is_close_delimited_too() -> None:
    out, parser = events(b"HTTP/1.1 200 OK\r\n\r\nabc", eof=True)
    assert out == [head(200, "OK", None), b"abc", END]
    assert not parser.keep_alive


def test_close_delimited_packets_are_handed_on_as_they_come() -> None:
    parser = ReplyParser()
    parser.feed(b"HTTP/1.0 200 OK\r\n\r\n")
    packet = b"x" * 1000
    parser.feed(packet)
    assert list(parser.pieces) == [packet]  # llhttp's pieces are copies: no `is`


def test_eof_before_the_head_completes_nothing() -> None:
    out, parser = events(b"HTTP/1.1 200 OK\r\n", eof=True)
    assert out == [] and not parser.done


# -- no body


@pytest.mark.parametrize(
    ("method", "reply"),
    [
        ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"),  # the length a GET would get
        ("HEAD", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
        ("GET", b"HTTP/1.1 204 No Content\r\n\r\n"),
        ("DELETE", b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"),
        ("GET", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 1000\r\n\r\n"),
    ],
)
def test_replies_without_a_body_end_with_their_head(method: str, reply: bytes) -> None:
    out, parser = events(reply, method=method)
    assert len(out) == 2 and isinstance(out[0], HeadEvent) and out[1] == END
    assert out[0].content_length == 0 and parser.keep_alive


@pytest.mark.parametrize("extra", [b"hello", b"HTTP/1.1 200 OK\r\n\r\n"])
def test_bytes_after_a_head_reply_end_keep_alive(extra: bytes) -> None:
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
    for pieces in ([reply + extra], [reply, extra]):
        out, parser = events(*pieces, method="HEAD")
        assert out == [head(200, "OK", 0, ("Content-Length", "5")), END] and not parser.keep_alive


def test_interim_replies_are_skipped() -> None:
    replies = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
    )
    assert events(replies)[0] == [head(201, "Created", 2, ("Content-Length", "2")), b"ok", END]
    out, parser = events(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert out == [] and parser.head is None and not parser.done


def test_a_reason_may_be_empty_or_missing() -> None:
    assert events(b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n")[0][0] == head(200, "", 0, ("Content-Length", "0"))
    assert events(b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n")[0][0] == head(200, "", 0, ("Content-Length", "0"))


def test_header_values_are_stripped_and_keep_their_bytes() -> None:
    out, _ = events(
        b"HTTP/1.1 200 OK\r\nX-A:  spaced \t\r\nX-Utf8: caf\xc3\xa9\r\nX-Bad: \xff\r\nContent-Length: 0\r\n\r\n"
    )
    assert isinstance(out[0], HeadEvent)
    assert out[0].headers["x-a"] == "spaced" and out[0].headers["X-UTF8"] == "café"
    assert out[0].headers["X-Bad"].encode("utf-8", "surrogateescape") == b"\xff"


# -- keep-alive


@pytest.mark.parametrize(
    ("version", "connection", "keep_alive"),
    [
        (b"HTTP/1.1", None, True),
        (b"HTTP/1.1", b"close", False),
        (b"HTTP/1.1", b"Keep-Alive, Upgrade", True),
        (b"HTTP/1.1", b"keep-alive, close", False),
        (b"HTTP/1.0", None, False),
        (b"HTTP/1.0", b"keep-alive", True),
    ],
)
def test_keep_alive_from_the_version_and_the_connection_field(
    version: bytes, connection: bytes | None, keep_alive: bool
) -> None:
    field = b"Connection: " + connection + b"\r\n" if connection is not None else b""
    _, parser = events(version + b" 200 OK\r\n" + field + b"Content-Length: 2\r\n\r\nok")
    assert parser.done and parser.keep_alive is keep_alive


# -- one parser, the replies of one connection


def test_one_parser_reads_the_replies_of_a_kept_alive_connection_in_turn() -> None:
    parser = ReplyParser()
    for method, reply, body in [
        ("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", b"ok"),
        ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", b""),  # llhttp is left waiting: a new one
        ("POST", CHUNKED_REPLY, b'data: {"choices":[{"text":"x"}]}'),
        ("GET", b"HTTP/1.1 204 No Content\r\n\r\n", b""),
        ("GET", b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbye", b"bye"),
    ]:
        parser.start(method)
        parser.feed(reply)
        assert parser.head is not None and parser.done and take(parser) == body, method
    assert not parser.keep_alive


# -- however the bytes are split

REPLIES = [
    ("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world"),
    ("GET", CHUNKED_REPLY),
    ("GET", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"),
    ("GET", b"HTTP/1.0 200 OK\r\nX: y\r\n\r\nuntil the end"),
    ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"),
    ("GET", b"HTTP/1.1 204 No Content\r\n\r\n"),
    ("GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nafter"),
    ("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok\r\n"),
    ("HEAD", b"\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
    ("HEAD", b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nnot a body"),
]


@pytest.mark.parametrize(("method", "reply"), REPLIES)
def test_every_single_split_point_gives_the_same_events(method: str, reply: bytes) -> None:
    whole, parser = events(reply, method=method, eof=True)
    for cut in range(1, len(reply)):
        out, split_parser = events(reply[:cut], reply[cut:], method=method, eof=True)
        assert joined(out) == joined(whole), cut
        assert split_parser.keep_alive is parser.keep_alive


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(REPLIES), st.lists(st.integers(min_value=1, max_value=200), max_size=12))
def test_random_splits_give_the_same_events(case: tuple[str, bytes], cuts: list[int]) -> None:
    method, reply = case
    whole, parser = events(reply, method=method, eof=True)
    out, split_parser = events(*split(reply, [c for c in cuts if c < len(reply)]), method=method, eof=True)
    assert joined(out) == joined(whole)
    assert split_parser.keep_alive is parser.keep_alive


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=6), st.lists(st.integers(min_value=1, max_value=2000), max_size=10))
def test_any_chunks_however_split_come_out_as_sent(chunks: list[bytes], cuts: list[int]) -> None:
    wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    wire += b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks if c) + b"0\r\n\r\n"
    out, parser = events(*split(wire, [c for c in cuts if c < len(wire)]))
    assert b"".join(e for e in out if isinstance(e, bytes)) == b"".join(chunks)
    assert out[-1] == END and parser.keep_alive


# -- malformed replies


# llhttp's reason follows the proxy's words, e.g. "bad chunk size (llhttp: Invalid character in chunk size)"
@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP/1.x status line: b'SSH-2.0-OpenSSH' (llhttp: Expected HTTP/"),
        (b"HTTP/2 200\r\n\r\n", "not an HTTP/1.x status line: b'HTTP/2 200' (llhttp: Expected dot)"),
        (b"HTTP/2.0 200 OK\r\n\r\n", "not an HTTP/1.x status line: b'HTTP/2.0 200 OK' (HTTP/2.0)"),
        (b"HTTP/0.9 200 OK\r\n\r\n", "not an HTTP/1.x status line: b'HTTP/0.9 200 OK' (HTTP/0.9)"),
        (b"HTTP/1.1\r\n\r\n", "not an HTTP/1.x status line: b'HTTP/1.1' (llhttp: Expected space after version)"),
        (b"HTTP/1.1 abc OK\r\n\r\n", "bad status code in b'HTTP/1.1 abc OK' (llhttp: Invalid status code)"),
        (b"HTTP/1.1  200 OK\r\n\r\n", "bad status code in b'HTTP/1.1  200 OK' (llhttp: Invalid status code)"),
        (b"HTTP/1.1 999 OK\r\n\r\n", "bad status code in b'HTTP/1.1 999 OK' (not 100-599)"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", "bad Content-Length (llhttp: Invalid character in"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length (llhttp: Invalid character in"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n", "bad Content-Length (llhttp: Empty Content-Length)"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1" + b"0" * 20 + b"\r\n\r\n",
            "bad Content-Length (llhttp: Content-Length overflow)",
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "bad Content-Length (llhttp: Duplicate"),
        (b"HTTP/1.1 200 OK\r\nBad header\r\n\r\n", "malformed header line (llhttp: Invalid header token)"),
        (b"HTTP/1.1 200 OK\r\n: no name\r\n\r\n", "malformed header line (llhttp: Invalid header token)"),
        (b"HTTP/1.1 200 OK\r\nName : v\r\n\r\n", "malformed header line (llhttp: Invalid header token)"),
        (b"HTTP/1.1 200 OK\r\nA: b\r\n folded\r\n\r\n", "malformed header line (llhttp: Unexpected whitespace after"),
        (b"HTTP/1.1 200 OK\r\nA: b\x00c\r\n\r\n", "malformed header line (llhttp: Invalid header value char)"),
        (CHUNKED_HEAD_BYTES + b"zz\r\n", "bad chunk size (llhttp: Invalid character in chunk size)"),
        (CHUNKED_HEAD_BYTES + b"-1\r\n", "bad chunk size (llhttp: Invalid character in chunk size)"),
        (CHUNKED_HEAD_BYTES + b"\r\n", "bad chunk size (llhttp: Invalid character in chunk size)"),
        (CHUNKED_HEAD_BYTES + b"2;a=\x01\r\nab\r\n", "bad chunk extension (llhttp: Invalid character in chunk"),
        (
            CHUNKED_HEAD_BYTES + b"2\r\nabXY",
            "chunk data is not followed by CRLF (llhttp: Expected LF after chunk data)",
        ),
        (CHUNKED_HEAD_BYTES + b"2\r\nab2\r\n", "chunk data is not followed by CRLF (llhttp: Expected LF after chunk"),
        (CHUNKED_HEAD_BYTES + b"1" * 4097, "bad chunk size (llhttp: Chunk size overflow)"),  # past 16 hex digits
    ],
)
def test_malformed_replies_are_protocol_errors(reply: bytes, message: str) -> None:
    parser = ReplyParser()
    with pytest.raises(UpstreamProtocolError) as caught:
        parser.feed(reply)
    assert str(caught.value).startswith(message)


def test_a_bad_status_line_is_quoted_whole_when_split() -> None:
    parser = ReplyParser()
    parser.feed(b"HTTP/1.1 99")
    with pytest.raises(UpstreamProtocolError, match=r"^bad status code in b'HTTP/1.1 999 OK' \(not 100-599\)$"):
        parser.feed(b"9 OK\r\n\r\n")


def test_a_head_over_the_limit_is_an_error_only_past_it() -> None:
    parser = ReplyParser()
    start = b"HTTP/1.1 200 OK\r\nX: "
    parser.feed(start + b"a" * (MAX_HEAD - len(start)))
    assert parser.head is None  # exactly MAX_HEAD bytes and no end yet: still waiting
    with pytest.raises(UpstreamProtocolError, match=f"^reply head is over {MAX_HEAD} bytes$"):
        parser.feed(b"a")


def test_a_long_but_complete_head_is_fine() -> None:
    value = b"a" * (MAX_HEAD - 100)
    out, _ = events(b"HTTP/1.1 200 OK\r\nX: " + value + b"\r\nContent-Length: 0\r\n\r\n")
    assert isinstance(out[0], HeadEvent) and out[0].headers["X"] == value.decode()


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok", "bare LF"),
        (b"HTTP/1.1 200 OK\r\nA: b\nC: d\r\nContent-Length: 0\r\n\r\n", "bare LF"),
        (b"HTTP/1.1 200 OK\r\nA: b\rC: d\r\nContent-Length: 0\r\n\r\n", "bare CR"),
        (b"HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n", "bad status code"),
        (b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", "bad status code"),
        (b"HTTP/1.1 099 OK\r\nContent-Length: 0\r\n\r\n", "bad status code"),
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", "no upgrade was asked for"),
        (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            "no upgrade was asked for",
        ),
        (b"HTTP/1.1 199 Odd\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\n", "interim reply 199 frames a body"),
    ],
    ids=[
        "all LF",
        "LF inside a CRLF head",
        "bare CR",
        "two digits",
        "four digits",
        "below 100",
        "unrequested 101",
        "unrequested upgrade",
        "interim body",
    ],
)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_heads_the_proxy_cannot_trust_are_protocol_errors(reply: bytes, reason: str, method: str) -> None:
    """Each becomes a clear 502 instead of being passed on (hostile upstreams)."""
    with pytest.raises(UpstreamProtocolError, match=reason):
        events(reply, method=method)


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (CHUNKED_HEAD_BYTES + b"0x3\r\nabc\r\n0\r\n\r\n", "bad chunk size"),
        (CHUNKED_HEAD_BYTES + b"1_0\r\n", "bad chunk size"),
        # BWS before a chunk extension: RFC 9112 allows it, but llhttp takes it only as a "dangerous leniency"
        (CHUNKED_HEAD_BYTES + b"1a ;name=value\r\n", "bad chunk size"),
        (CHUNKED_HEAD_BYTES + b"2\nab\r\n0\r\n\r\n", "bad chunk size"),
        (CHUNKED_HEAD_BYTES + b"2\r\nab\n0\r\n\r\n", "chunk data is not followed by CRLF"),
        ("HTTP/1.1 200 OK\r\nContent-Length: ²\r\n\r\n".encode(), "bad Content-Length"),
    ],
    ids=[
        "0x chunk size",
        "underscore chunk size",
        "space before extension",
        "LF chunk size",
        "LF chunk end",
        "unicode digit length",
    ],
)
def test_loosely_written_framing_is_refused(reply: bytes, reason: str) -> None:
    with pytest.raises(UpstreamProtocolError, match=reason):
        events(reply)


@pytest.mark.parametrize(
    "pieces",
    [
        [CHUNKED_HEAD_BYTES + b"0\r\nX: ", b"a" * (MAX_CHUNK_LINE + 1)],  # an endless trailer field
        [CHUNKED_HEAD_BYTES + b"2\r\nok\r\n", b"1;ext=" + b"a" * MAX_CHUNK_LINE],  # an endless chunk extension
    ],
    ids=["trailer", "extension"],
)
def test_endless_chunk_framing_is_refused(pieces: list[bytes]) -> None:
    # llhttp sets no limit; packets that bring no body byte are counted (so the limit is checked per packet)
    with pytest.raises(UpstreamProtocolError, match=f"^chunk framing without data is over {MAX_CHUNK_LINE} bytes$"):
        events(*pieces)


def test_slow_framing_between_chunks_is_fine() -> None:
    packets = [CHUNKED_HEAD_BYTES]
    for _ in range(MAX_CHUNK_LINE):  # far more framing bytes in all than MAX_CHUNK_LINE, but data in between
        packets += [b"1\r", b"\n", b"x", b"\r\n"]
    out, _ = events(*packets, b"0\r\n\r\n")
    assert b"".join(e for e in out if isinstance(e, bytes)) == b"x" * MAX_CHUNK_LINE and out[-1] == END


@pytest.mark.parametrize(("reply", "refusal"), [
    (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n", "101 Switching Protocols, though no upgrade"),
    (b"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", "(HTTP/2.0)"),
])  # fmt: skip
def test_a_reply_is_refused_for_itself_while_another_error_is_being_handled(reply: bytes, refusal: str) -> None:
    """A callback's refusal used to be read back from llhttp's error's __context__, which Python sets to the
    exception being handled when it is raised (in the compiled build a coroutine suspended in an `except`
    block holds one): the reply was then refused as unreadable, its own reason lost."""
    from proxy.errors import UpstreamUnavailable

    parser = ReplyParser()
    try:
        raise UpstreamUnavailable("another call's upstream")
    except UpstreamUnavailable:
        with pytest.raises(UpstreamProtocolError) as refused:
            parser.feed(reply)
    assert refusal in str(refused.value), str(refused.value)

"""A reply's HTTP version, as `ReplyParser` reads it: from the status line as received when the reply's first
bytes are at hand (llhttp's `get_http_version` formats a new string each call), from llhttp otherwise. The same
replies are taken and refused whatever the reads' boundaries, after an interim reply too."""

from __future__ import annotations

import pytest

from proxy.transport.http11 import ReplyParser, UpstreamProtocolError

FINAL = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
OLD = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"
INTERIM = b"HTTP/1.1 100 Continue\r\n\r\n"
# a 2.0 reply after an interim one, a header value of which holds a status line: read in pieces that start
# at `HTTP/1.1 ...`, it must still be refused as 2.0
DISGUISED = INTERIM + b"HTTP/2.0 200 OK\r\nX-Note: sHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def parse(*reads: bytes) -> ReplyParser:
    parser = ReplyParser("GET")
    for data in reads:
        parser.feed(data)
    return parser


def splits(data: bytes) -> list[tuple[bytes, ...]]:
    return [(data,)] + [(data[:i], data[i:]) for i in range(1, len(data))]


@pytest.mark.parametrize("reply", [FINAL, OLD, INTERIM + FINAL, INTERIM + OLD, b"\r\n" + FINAL])
def test_replies_of_either_version_are_read_however_split(reply: bytes) -> None:
    for reads in splits(reply):
        parser = parse(*reads)
        assert parser.head is not None and parser.head[0] == 200 and parser.done, reads
        assert b"".join(parser.pieces) == b"ok"
        assert parser.keep_alive == (b"HTTP/1.0 200" not in reply), reads


@pytest.mark.parametrize("reply", [b"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", DISGUISED])
def test_a_reply_of_another_version_is_refused_however_split(reply: bytes) -> None:
    cut = DISGUISED.index(b"HTTP/1.1 200")
    for reads in [*splits(reply), (DISGUISED[:cut], DISGUISED[cut:])]:
        with pytest.raises(UpstreamProtocolError, match=r"HTTP/2\.0"):
            parse(*reads)


def test_a_kept_alive_connection_reads_each_reply_version_afresh() -> None:
    parser = parse(FINAL)
    assert parser.done and parser.keep_alive
    parser.start("GET")
    with pytest.raises(UpstreamProtocolError, match=r"HTTP/2\.0"):
        parser.feed(b"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n")

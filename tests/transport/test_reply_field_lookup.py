"""An upstream reply's fields read by name: what the parser's head answers (`get`, `getall`, `in`, `[]`, and the
framing it takes from Content-Length and Transfer-Encoding) is what a CIMultiDict of every field decoded answers,
whatever the names' case, their repeats, the values' bytes, and the interim replies before the final one."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from proxy.transport import UpstreamProtocolError
from proxy.transport.http11 import ReplyParser

_TCHAR = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
# names a reply's readers ask for, and random tokens; framing fields are drawn apart (`FRAMINGS`)
_COMMON = ["Content-Type", "Date", "Connection", "Location", "Server", "Set-Cookie", "Vary", "X-A", "x-b",
           "Inference-Header-Content-Length", "Keep-Alive"]  # fmt: skip
_FRAMING_NAMES = {"content-length", "transfer-encoding", "upgrade"}
TOKENS = st.sampled_from(_COMMON) | st.text(alphabet=_TCHAR, min_size=1, max_size=10).filter(
    lambda name: name.lower() not in _FRAMING_NAMES
)
# what llhttp takes in a field value: visible ASCII, SP and HTAB inside, and any byte over 0x7f (obs-text)
_VCHAR = [*range(0x21, 0x7F), *range(0x80, 0x100)]
VALUES = st.builds(
    lambda first, middle, last: bytes([first, *middle, last]) if middle is not None else bytes([first]),
    st.sampled_from(_VCHAR),
    st.none() | st.lists(st.sampled_from([0x09, 0x20, *_VCHAR]), max_size=12),
    st.sampled_from(_VCHAR),
)


@st.composite
def cased(draw: st.DrawFn, name: str) -> str:
    """`name` with each letter's case drawn."""
    flips = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    return "".join(c.swapcase() if flip else c for c, flip in zip(name, flips, strict=True))


@st.composite
def field_sets(draw: st.DrawFn) -> list[tuple[str, bytes]]:
    """Fields with repeated names in several casings."""
    names = draw(st.lists(TOKENS, min_size=0, max_size=6))
    fields = []
    for _ in range(draw(st.integers(min_value=0, max_value=10))):
        if not names:
            break
        name = draw(cased(draw(st.sampled_from(names))))
        fields.append((name, draw(VALUES)))
    return fields


def block(fields: list[tuple[str, bytes]]) -> bytes:
    return b"".join(name.encode("latin-1") + b": " + value + b"\r\n" for name, value in fields)


def decoded(raw: list[tuple[bytes, bytes]]) -> CIMultiDict[str]:
    """The fields as a CIMultiDict: every name latin-1, every value UTF-8 with surrogateescape."""
    return CIMultiDict([(n.decode("latin-1"), v.decode("utf-8", "surrogateescape")) for n, v in raw])


def parsed(data: bytes, cuts: list[int], method: str = "GET", eof: bool = False) -> ReplyParser:
    parser = ReplyParser(method)
    at = 0
    for cut in sorted({c for c in cuts if 0 < c < len(data)}):
        parser.feed(data[at:cut])
        at = cut
    parser.feed(data[at:])
    if eof:
        parser.feed_eof()
    return parser


def same_answers(fields: object, reference: CIMultiDict[str], asked: list[str]) -> None:
    """`fields` answers every name in `asked` as `reference` does."""
    for name in asked:
        assert fields.get(name) == reference.get(name), name  # type: ignore[attr-defined]
        assert fields.get(name, "absent") == reference.get(name, "absent"), name  # type: ignore[attr-defined]
        assert list(fields.getall(name, ())) == list(reference.getall(name, ())), name  # type: ignore[attr-defined]
        assert (name in fields) == (name in reference), name  # type: ignore[operator]
        if name in reference:
            assert fields[name] == reference[name]  # type: ignore[index]
            assert list(fields.getall(name)) == reference.getall(name)  # type: ignore[attr-defined]
        else:
            with pytest.raises(KeyError):
                fields[name]  # type: ignore[index]
            with pytest.raises(KeyError):
                fields.getall(name)  # type: ignore[attr-defined]


@settings(max_examples=300, deadline=None)
@given(
    field_sets(),
    st.lists(st.sampled_from([100, 102, 103]), max_size=2),
    field_sets(),
    st.lists(st.integers(min_value=1, max_value=300), max_size=6),
    st.data(),
)
def test_fields_answer_as_a_cimultidict_of_them_decoded(
    fields: list[tuple[str, bytes]], interims: list[int], interim_fields: list[tuple[str, bytes]], cuts: list[int],
    data: st.DataObject,
) -> None:  # fmt: skip
    interim = b"".join(b"HTTP/1.1 %d Interim\r\n%s\r\n" % (status, block(interim_fields)) for status in interims)
    reply = interim + b"HTTP/1.1 200 OK\r\n" + block(fields) + b"Content-Length: 2\r\n\r\nhi"
    parser = parsed(reply, cuts)
    assert parser.head is not None and parser.done
    # the final reply's fields only, as sent (llhttp checked them), values decoded only when read
    sent = [(name.encode("latin-1"), value) for name, value in fields] + [(b"Content-Length", b"2")]
    assert parser.raw_fields == sent
    reference = decoded(sent)
    headers = parser.head[2]
    assert headers == reference and len(headers) == len(reference)
    names = {name for name, _ in fields} | {name for name, _ in interim_fields} | {"Content-Length", "Absent"}
    asked = [data.draw(cased(name)) for name in sorted(names)]
    same_answers(headers, reference, asked)
    assert parser.head[3] == 2


# how a reply's body is framed: its fields, and its body as sent
FRAMINGS = [
    ([(b"Content-Length", b"5")], b"hello"),
    ([(b"content-LENGTH", b"007")], b"hellooo"),
    ([(b"Transfer-Encoding", b"chunked")], b"5\r\nhello\r\n0\r\n\r\n"),
    ([(b"Transfer-Encoding", b"gzip, CHUNKED")], b"5\r\nhello\r\n0\r\n\r\n"),
    ([(b"Transfer-Encoding", b"gzip")], b"hello"),  # until the connection closes
    ([(b"Transfer-Encoding", b"gzip"), (b"TRANSFER-ENCODING", b"chunked")], b"5\r\nhello\r\n0\r\n\r\n"),
    ([(b"Transfer-Encoding", "chun\u212aed".encode())], b"hello"),  # a KELVIN SIGN: "chunked" once lower-cased
    ([], b"hello"),  # until the connection closes
]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(FRAMINGS),
    st.sampled_from([200, 204, 304, 404]),
    st.sampled_from(["GET", "HEAD", "POST"]),
    st.booleans(),
    field_sets(),
    st.lists(st.integers(min_value=1, max_value=300), max_size=6),
)
def test_framing_is_read_from_the_fields_as_from_a_cimultidict_of_them(
    framing: tuple[list[tuple[bytes, bytes]], bytes], status: int, method: str, interim: bool,
    fields: list[tuple[str, bytes]], cuts: list[int],
) -> None:  # fmt: skip
    framed, body = framing
    if status in (204, 304) or method == "HEAD":
        body = b""
    raw = [(name.encode("latin-1"), value) for name, value in fields] + framed
    head = b"HTTP/1.1 %d X\r\n" % status + b"".join(n + b": " + v + b"\r\n" for n, v in raw) + b"\r\n"
    reply = (b"HTTP/1.1 100 Continue\r\n\r\n" if interim else b"") + head + body
    # the old reading: a CIMultiDict of every field, Content-Length and Transfer-Encoding read from it
    reference = decoded(raw)
    length = reference.get("Content-Length")
    codings = reference.getall("Transfer-Encoding", ())
    if method != "HEAD" and status not in (204, 304) and length is None and codings and codings != ["chunked"]:
        with pytest.raises(UpstreamProtocolError, match="Transfer-Encoding"):  # a coding beside chunked, or not it
            parsed(reply, cuts, method)
        return
    parser = parsed(reply, cuts, method)
    assert parser.head is not None
    if method == "HEAD" or status in (204, 304):
        expected: int | None = 0
    else:
        expected = int(length) if length is not None else None
    assert parser.head[3] == expected
    same_answers(parser.head[2], reference, ["Content-Length", "transfer-encoding", "TRANSFER-ENCODING"])
    until_close = expected is None and all(
        "chunked" not in v.lower() for v in reference.getall("Transfer-Encoding", ())
    )
    got = b"".join(parser.pieces)
    if until_close:  # complete only when the connection ends
        assert not parser.done and got == body
        parser.feed_eof()
        assert parser.done
    elif expected is None:  # taken as chunked: complete at its last chunk, never at the connection's end
        done = parser.done
        assert done == body.startswith(b"5\r\n") and (got == b"hello" or not done)
        parser.feed_eof()
        assert parser.done == done
    else:
        assert parser.done and got == body


def test_a_reply_cut_off_mid_chunk_is_never_complete_at_eof_whatever_the_coding_name_s_case() -> None:
    for coding in (b"chunked", b"CHUNKED", b"Chunked"):
        parser = parsed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: " + coding + b"\r\n\r\n5\r\nhel", [])
        assert parser.head is not None and parser.head[3] is None
        parser.feed_eof()
        assert not parser.done, coding
    for coding in (b"gzip, Chunked", "chun\u212aed".encode()):  # not chunked alone: refused at the head
        with pytest.raises(UpstreamProtocolError, match="Transfer-Encoding"):
            parsed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: " + coding + b"\r\n\r\n5\r\nhel", [])


def test_the_fields_iterate_as_a_cimultidict_of_them_does() -> None:
    parser = ReplyParser()
    parser.start("GET")
    parser.feed(b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 0\r\nx-a: 2\r\n\r\n")
    assert parser.head is not None
    fields = parser.head[2]
    assert list(fields) == list(CIMultiDict([("X-A", "1"), ("Content-Length", "0"), ("x-a", "2")]))

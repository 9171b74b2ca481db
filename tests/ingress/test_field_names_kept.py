"""Field names lower-cased once and kept by the name as sent (`wire.field_key`, `http11.lower_name`), with the
methods and reasons decoded once (`wire._method`, `http11._reason`): the same answers as made afresh for every
field, whatever the case, the length, the repeats, and however many names have filled the tables (bounded). Values
decoded strictly first (`http11.utf8_text`): the same text as UTF-8 with surrogateescape, UTF-8 or not."""

from __future__ import annotations

import asyncio
import string
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.config.model import Limits
from proxy.ingress import wire
from proxy.ingress.wire import HttpConnection, HttpServer, Request, _joined, _method, field_key
from proxy.transport import http11
from proxy.transport.http11 import ReplyParser, _reason, lower_name
from tests.harness import FakeTransport

_TCHAR = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
NAMES = st.sampled_from(["Host", "host", "HOST", "Content-Type", "content-type", "X-A", "x-a", "Connection"]) | st.text(
    alphabet=_TCHAR, min_size=1, max_size=90
)  # up to past the length a name is kept at
VALUES = st.sampled_from([b"", b"1", b"a b", b"keep-alive", b"caf\xc3\xa9", b"\xff"])


@settings(max_examples=300, deadline=None)
@given(names=st.lists(NAMES, max_size=40))
def test_a_kept_name_is_the_name_lower_cased(names: list[str]) -> None:
    for text in names * 2:  # a second time, from the tables
        name = text.encode("latin-1")
        assert lower_name(name) == name.lower()
        assert field_key(name) == name.lower().decode("latin-1")
        assert type(field_key(name)) is str and type(lower_name(name)) is bytes


def test_ever_new_names_fill_no_table_and_answer_the_same() -> None:
    for i in range(2000):
        name = b"X-Name-%d" % i
        assert lower_name(name) == b"x-name-%d" % i
        assert field_key(name) == f"x-name-{i}"
        assert len(http11._LOWER) <= 256 and len(wire._FIELD_KEYS) <= 256
    long = b"X-" + b"A" * 500
    assert lower_name(long) == long.lower() and field_key(long) == long.lower().decode()
    assert long not in http11._LOWER and long not in wire._FIELD_KEYS  # a long name is not kept


@settings(max_examples=200, deadline=None)
@given(fields=st.lists(st.tuples(NAMES, VALUES), max_size=12))
def test_a_head_s_fields_are_joined_as_before(fields: list[tuple[str, bytes]]) -> None:
    raw = [(name.encode("latin-1"), value) for name, value in fields]
    expected: dict[str, str] = {}
    for name, value in raw:
        key, text = name.lower().decode("latin-1"), value.decode("utf-8", "surrogateescape")
        expected[key] = f"{expected[key]},{text}" if key in expected else text
    joined, hosts = _joined(raw)
    assert {key: http11.utf8_text(value) for key, value in joined.items()} == expected
    assert hosts == sum(name.lower() == b"host" for name, _ in raw)


def test_methods_and_reasons_decode_as_before() -> None:
    for method in [b"GET", b"POST", b"HEAD", b"PROPFIND", b"GET"]:
        assert _method(method) == method.decode("latin-1")
    for reason in [b"OK", b"Not Found", b"", b"caf\xe9", b"R" * 200, b"OK"]:
        assert _reason(reason) == reason.decode("latin-1")
    for i in range(200):
        assert _reason(b"Reason %d" % i) == f"Reason {i}"
    assert len(http11._REASONS) <= 64


@settings(max_examples=200, deadline=None)
@given(
    fields=st.lists(st.tuples(NAMES, VALUES), max_size=10), reason=st.sampled_from([b"OK", b"Fine", b"", b"\xe9t\xe9"])
)
def test_a_reply_s_names_and_reason_are_as_received_lower_cased(fields: list[tuple[str, bytes]], reason: bytes) -> None:
    fields = [(name, value) for name, value in fields if name.lower() not in ("content-length", "transfer-encoding")]
    head = b"".join(name.encode("latin-1") + b": " + value + b"\r\n" for name, value in fields)
    parser = ReplyParser()
    parser.feed(b"HTTP/1.1 200 " + reason + b"\r\n" + head + b"Content-Length: 2\r\n\r\nhi")
    assert parser.head is not None and parser.done
    status, text, headers, length = parser.head
    assert (status, text, length) == (200, reason.decode("latin-1"), 2)
    assert headers.names == [name.lower() for name, _ in parser.raw_fields]
    assert [name for name, _ in parser.raw_fields] == [name.encode("latin-1") for name, _ in fields] + [
        b"Content-Length"
    ]


# values a field may carry (llhttp takes any byte but controls): UTF-8 (ASCII, two and four bytes a character), and
# not (a latin-1 byte, a lone continuation byte, a surrogate's three bytes, which strict UTF-8 refuses)
TEXTS = st.sampled_from(
    [b"", b"1", b"a b", b"caf\xc3\xa9", b"\xf0\x9f\x98\x80", b"\xff", b"a\xe9b", b"\x80", b"\xed\xa0\x80"]
)


def request_fields(head: bytes) -> Callable[[str], str | None]:
    """The fields of the request `head` as the connection reads them through llhttp (`Request.header`)."""
    return served([head])[0][0]


@settings(max_examples=200, deadline=None)
@given(values=st.lists(TEXTS, min_size=1, max_size=6))
def test_a_request_s_values_are_decoded_utf8_with_surrogateescape(values: list[bytes]) -> None:
    # (decoded strictly first, with the handler only when one is not UTF-8: the same text either way)
    head = b"".join(b"X-F%d: %s\r\n" % (i, value) for i, value in enumerate(values))
    header = request_fields(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n")
    for i, value in enumerate(values):
        text = header(f"x-f{i}")
        assert type(text) is str and text == value.decode("utf-8", "surrogateescape")
    assert header("host") == "x"


def test_a_request_s_value_is_decoded_when_read() -> None:
    # (the values the proxy does not read, Host and Accept-Encoding here, are not made text; Content-Length's digits
    # are read as they came; a value read is not written back: each is read once a call)
    header = request_fields(
        b"POST /v1/models HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\nX-Purpose: caf\xc3\xa9\r\n"
        b"X-Data-Labels: a\xff\r\nContent-Length: 0\r\n\r\n"
    )
    fields = getattr(header, "__self__", None)
    assert isinstance(fields, wire.RequestFields)
    sent = {"host": b"x", "accept-encoding": b"identity", "x-purpose": b"caf\xc3\xa9", "x-data-labels": b"a\xff",
            "content-length": b"0"}  # fmt: skip
    assert fields.values == sent
    assert header("x-purpose") == "caf\xe9" and header("x-data-labels") == "a\udcff" == header("x-data-labels")
    assert header("absent") is None and fields.values == sent


@settings(max_examples=100, deadline=None)
@given(values=st.lists(TEXTS, min_size=1, max_size=6))
def test_a_reply_s_values_are_decoded_utf8_with_surrogateescape(values: list[bytes]) -> None:
    parser = ReplyParser()
    head = b"".join(b"X-F%d: %s\r\n" % (i, value) for i, value in enumerate(values))
    parser.feed(b"HTTP/1.1 200 OK\r\n" + head + b"Content-Length: 0\r\n\r\n")
    assert parser.head is not None
    headers = parser.head[2]
    for i, value in enumerate(values):
        text = headers.get(f"X-F{i}")
        assert type(text) is str and text == value.decode("utf-8", "surrogateescape")


def heads_fields(heads: list[bytes]) -> list[Callable[[str], str | None]]:
    """The fields of each request of `heads`, sent one after the other on one connection (`Request.header`)."""
    return served(heads)[0]


def served(
    heads: list[bytes], lowered: list[list[bytes]] | None = None
) -> tuple[list[Callable[[str], str | None]], HttpConnection]:
    """`heads` sent one after the other on one connection, each answered: each request's fields as the connection
    reads them (`Request.header`), and the connection, closed; in `lowered`, when given, each request's names
    lower-cased by the connection as its handler reads them (`field_lower`, as `http.forward_fields` does)."""
    got: list[Callable[[str], str | None]] = []

    async def main() -> HttpConnection:
        done = asyncio.Event()
        conn = HttpServer(lambda req, conn: answer(req, conn, got, len(heads), done, lowered), Limits())()
        conn.connection_made(FakeTransport())  # type: ignore[arg-type]
        for head in heads:
            conn.data_received(head)
        await asyncio.wait_for(done.wait(), 10)
        conn.connection_lost(None)
        return conn

    return got, asyncio.run(main())


async def answer(
    req: Request,
    conn: HttpConnection,
    got: list[Callable[[str], str | None]],
    heads: int,
    done: asyncio.Event,
    lowered: list[list[bytes]] | None,
) -> None:
    got.append(req.header)
    if lowered is not None:
        lowered.append([conn.field_lower(at, name) for at, (name, _) in enumerate(req.headers)])
    await conn.body(req)
    conn.reply(req, 200, b"text/plain", b"ok")
    if len(got) == heads:
        done.set()


@settings(max_examples=150, deadline=None)
@given(heads=st.lists(st.lists(st.tuples(NAMES, VALUES), max_size=8), min_size=1, max_size=5))
def test_a_connection_s_heads_read_each_name_by_its_own_key(heads: list[list[tuple[str, bytes]]]) -> None:
    # (a name is looked up at its place in the connection's last head first, `_field_values`: heads whose names
    # change place, case and length from one request to the next read as each alone)
    heads = [[(name, value) for name, value in fields if name.lower() not in _FRAMING] for fields in heads]
    sent = [
        b"GET /v1/models HTTP/1.1\r\n"
        + b"".join(name.encode("latin-1") + b": " + value + b"\r\n" for name, value in fields)
        + b"Host: x\r\n\r\n"
        for fields in heads
    ]
    for fields, header in zip(heads, heads_fields(sent), strict=True):
        expected: dict[str, str] = {}
        for name, value in fields:
            key, text = name.lower(), value.decode("utf-8", "surrogateescape")
            expected[key] = f"{expected[key]},{text}" if key in expected else text
        for name in {name.lower() for name, _ in fields} | {"x-a", "content-type", "absent"}:
            assert header(name) == expected.get(name, "x" if name == "host" else None)


_FRAMING = ("host", "content-length", "transfer-encoding", "connection", "expect")


@settings(max_examples=150, deadline=None)
@given(heads=st.lists(st.lists(NAMES, max_size=8), min_size=1, max_size=5))
def test_a_connection_s_heads_forward_each_name_lower_cased(heads: list[list[str]]) -> None:
    # (a name's lower case for `http.forward_fields` is the connection's kept one when its last head has the same
    # name at that place, `field_lower`: the heads are pipelined, so each request's handler runs once the last head
    # is in, whose names differ from its own in place, case and length)
    sent = [[name.encode("latin-1") for name in names if name.lower() not in _FRAMING] + [b"Host"] for names in heads]
    lowered: list[list[bytes]] = []
    served(
        [b"GET /v1/models HTTP/1.1\r\n" + b"".join(name + b": 1\r\n" for name in names) + b"\r\n" for names in sent],
        lowered,
    )
    assert lowered == [[name.lower() for name in names] for names in sent]


def test_a_connection_keeps_no_long_name_nor_its_key() -> None:
    # (a name past 64 bytes is not kept at its place, `_remember`, nor are its key and lower case: the text of a name
    # up to limits.max_header_bytes long would stay with an idle connection, 30 KB for this one's)
    (fields,), conn = served([b"GET /v1/models HTTP/1.1\r\nX-" + b"A" * 30_000 + b": 1\r\nHost: x\r\n\r\n"])
    assert fields("x-" + "a" * 30_000) == "1"
    assert conn._names == [b"", b"Host"]
    assert conn._keys == ["", "host"]
    assert conn._lowers == [b"", b"host"]


def test_a_connection_keeps_the_names_of_its_head_s_first_32_places_only() -> None:
    # (a head of limits.max_headers' 100 fields kept whole would stay with an idle connection, ~23 KB; the names
    # past the 32nd are looked up in `field_key`'s table each time, and read under their own keys)
    names = [f"x-field-{n:03d}" for n in range(90)]
    head = b"".join(f"{name}: {n}\r\n".encode() for n, name in enumerate(names))
    (fields,), conn = served([b"GET /v1/models HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n"])
    assert [fields(name) for name in names] == [str(n) for n in range(90)]
    assert len(conn._names) == len(conn._keys) == len(conn._lowers) == 32
    assert conn._keys == ["host", *names[:31]]

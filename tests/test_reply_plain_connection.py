"""A reply's Connection field that says `keep-alive` or `close` alone is not read for tokens (`_plain_connection`):
the fields the client gets are those the tokens, read, would leave, for any Connection fields an upstream sends."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.ingress import http
from proxy.transport.http11 import first_places

_DESCRIBE = {b"content-encoding", b"content-type", b"inference-header-content-length"}


def _expected(raw: list[tuple[bytes, bytes]], lineage: bytes) -> bytes:
    """What `reply_fields` gives, worked out from RFC 9110 alone: every Connection field's tokens read (those
    describing the body kept), hop-by-hop fields and those only the proxy sets dropped."""
    tokens = {
        token.strip().lower() for name, value in raw if name.lower() == b"connection" for token in value.split(b",")
    }
    skip = set(http.HOP_BY_HOP | http.OWNED) | (tokens - _DESCRIBE)
    out = [
        name + b": " + value + b"\r\n"
        for name, value in raw
        if name.lower() not in skip and not name.lower().startswith(b"x-lineage-")
    ]
    return b"".join(out) + lineage


_NAMES = st.sampled_from([b"Connection", b"connection", b"CONNECTION", b"Content-Type", b"X-Foo", b"Keep-Alive",
                          b"Content-Encoding", b"x-lineage-decision", b"X-Trace-Id", b"Date"])  # fmt: skip
_VALUES = st.sampled_from([b"keep-alive", b"close", b"Keep-Alive", b"keep-alive, X-Foo", b"x-foo", b"close, Date",
                           b"content-type", b"keep-alive ", b"", b"upgrade", b"text/plain", b"timeout=5"])  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(_NAMES, _VALUES), max_size=6))
def test_a_reply_s_fields_are_those_its_connection_tokens_leave(raw: list[tuple[bytes, bytes]]) -> None:
    names = [name.lower() for name, _ in raw]
    out: list[bytes] = []
    http.reply_fields(out, raw, names, b"x-trace-id: t\r\n", None)
    assert b"".join(out) == _expected(raw, b"x-trace-id: t\r\n")


def test_a_plain_connection_field_is_read_as_its_tokens_say() -> None:
    for value in (b"keep-alive", b"close"):
        raw = [(b"Connection", value), (b"Content-Type", b"application/json"), (b"Keep-Alive", b"timeout=5")]
        out: list[bytes] = []
        http.reply_fields(out, raw, [name.lower() for name, _ in raw], b"", None)
        assert b"".join(out) == b"Content-Type: application/json\r\n"
        names = [name.lower() for name, _ in raw]
        assert http._plain_connection(raw, names, first_places(names))
    # two fields, or a token beside it: read whole
    raw = [(b"Connection", b"keep-alive"), (b"Connection", b"X-Foo"), (b"X-Foo", b"1")]
    names = [name.lower() for name, _ in raw]
    assert not http._plain_connection(raw, names, first_places(names))
    out = []
    http.reply_fields(out, raw, [name.lower() for name, _ in raw], b"", None)
    assert b"".join(out) == b""

"""The reply head the client gets: the upstream's fields less hop-by-hop ones and those only the proxy sets."""

from __future__ import annotations

from tests.ingress.test_header_blocks import reply_block


def _head(raw: list[tuple[bytes, bytes]], base: str | None = "http://10.0.0.5:8000") -> bytes:
    """As the handler calls it: the upstream's fields as received, their names lower-case (the reply parser's)."""
    return reply_block(raw, [("x-trace-id", "ab")], base)


def test_every_connection_line_names_fields_that_are_not_passed_on() -> None:
    raw = [(b"Connection", b"x-a"), (b"X-A", b"1"), (b"connection", b"keep-alive, X-B"), (b"x-b", b"2"),
           (b"X-C", b"3"), (b"X-Lineage-Decision", b"allow"), (b"X-Data-Labels", b"none"), (b"Keep-Alive", b"5")]  # fmt: skip
    head = _head(raw)
    assert head == b"X-C: 3\r\nx-trace-id: ab\r\n"


def test_a_location_on_the_upstream_is_made_a_path_and_others_pass() -> None:
    raw = [(b"Location", b"http://10.0.0.5:8000//evil.example/x"), (b"Server", b"up")]
    assert _head(raw) == b"Location: /evil.example/x\r\nServer: up\r\nx-trace-id: ab\r\n"
    elsewhere = [(b"Location", b"https://docs.example/x")]
    assert _head(elsewhere) == b"Location: https://docs.example/x\r\nx-trace-id: ab\r\n"
    assert _head(raw, base=None).startswith(b"Location: http://10.0.0.5:8000//evil.example/x\r\n")

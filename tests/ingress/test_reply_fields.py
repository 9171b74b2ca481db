"""The reply head the client gets: the upstream's fields less hop-by-hop ones and those only the proxy sets."""

from __future__ import annotations

from multidict import CIMultiDict

from proxy.ingress.http import reply_fields


def _head(raw: list[tuple[bytes, bytes]], base: str | None = "http://10.0.0.5:8000") -> bytes:
    """As the handler calls it: the upstream's fields as received, and read by name as a CIMultiDict of them answers
    (what the reply parser's `ReplyFields` answers)."""
    headers = CIMultiDict((name.decode(), value.decode()) for name, value in raw)
    return reply_fields(raw, [("x-trace-id", "ab")], base, headers.getall("Connection", ()), "Location" in headers)


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

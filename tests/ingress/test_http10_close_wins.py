"""An HTTP/1.0 request whose Connection field holds `close` beside `keep-alive` (one line or two) does not keep
its connection: RFC 9112 §9.3 reads `close` first, whatever the version. llhttp's should_keep_alive reads an HTTP/1.0
request's `keep-alive` alone, so the proxy answered `Connection: keep-alive` and held the connection open."""

from __future__ import annotations

import pytest

from tests.harness import ProxyHandle
from tests.ingress.test_wire import Replies, connect, origin, proxy, read_all

__all__ = ["origin", "proxy"]  # the fixtures, imported


@pytest.mark.parametrize("path", ["/a", "/healthz"], ids=["forwarded", "own-reply"])
@pytest.mark.parametrize(
    "fields", [b"Connection: keep-alive, close\r\n", b"Connection: Keep-Alive\r\nConnection: close\r\n"],
    ids=["one-line", "two-lines"],
)  # fmt: skip
def test_close_wins_over_keep_alive_on_http_1_0(proxy: ProxyHandle, path: str, fields: bytes) -> None:
    with connect(proxy) as sock:
        sock.sendall(b"GET %s HTTP/1.0\r\n%s\r\n" % (path.encode(), fields))
        replies = Replies(sock)
        status, reply, _ = replies.next()
        assert status == 200 and reply.get("connection") == "close"
        assert replies.buffer + read_all(sock) == b""  # and the connection closes

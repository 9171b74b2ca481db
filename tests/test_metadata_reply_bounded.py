"""What the proxy reads of an upstream's metadata reply (checkpoint discovery, readiness, a merged `/v1/models`) is
bounded: it was read whole, however large, for as long as the metadata request may take (10 s), so an upstream
answering `/v1/models` (or, for `protocol: passthrough`, `GET /`) with a body of gigabytes, or one that never
ends, had the proxy hold all of it in memory (and join it into one more copy) at every discovery round. Past
`METADATA_MAX_BYTES` the reply is cut, and the upstream's metadata counts as not answered."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.servers.threads import ConnectionThreads

METADATA_MAX_BYTES = 16 << 20  # what the proxy reads of a metadata reply at most (proxy.transport.pool)

BODY = 4 * METADATA_MAX_BYTES
PIECE = 1 << 20


class Flooding(ConnectionThreads):
    """An HTTP upstream that answers every request with a `BODY`-byte reply of white space; `sent` is the most bytes
    of one reply the peer took before it closed the connection."""

    def __init__(self, framed: bool) -> None:
        self.framed = framed  # a Content-Length, or a body delimited by the connection's close
        self.sent = 0
        self.answered = threading.Event()
        super().__init__()

    def answer(self, conn: socket.socket) -> None:
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                data = conn.recv(65536)
                if not data:
                    return
                head += data
            sent = 0
            try:
                length = b"Content-Length: %d" % BODY if self.framed else b"Connection: close"
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n%s\r\n\r\n" % length)
                piece = b" " * PIECE
                while sent < BODY:
                    conn.sendall(piece)
                    sent += PIECE
            except OSError:
                pass
            finally:
                self.sent = max(self.sent, sent)
                self.answered.set()


@pytest.fixture(params=[True, False], ids=["content-length", "until-close"])
def flooding(request: pytest.FixtureRequest) -> Iterator[Flooding]:
    upstream = Flooding(request.param)
    yield upstream
    upstream.close()


def test_a_metadata_reply_past_the_bound_is_not_read(flooding: Flooding, make_proxy: Any) -> None:
    config = f"""
listen: {{http: 127.0.0.1:0}}
upstreams: [{{name: u, url: "http://127.0.0.1:{flooding.port}", protocol: openai}}]
routes: [{{model: "*", upstream: u}}]
policy: {{anonymous: allow, default_purpose: assistant}}
lineage: {{store: null}}
"""
    proxy = make_proxy(config, wait="probed")
    assert flooding.answered.wait(10)
    assert flooding.sent < 3 * METADATA_MAX_BYTES, f"the proxy read {flooding.sent >> 20} MiB of a metadata reply"
    assert not proxy.process.book.reachable["u"]

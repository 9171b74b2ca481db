"""The README's 417 row as the proxy answers: an `Expect` listing anything but `100-continue` is refused on a
request that can carry a body; a `GET`, `HEAD` or `OPTIONS` (which carry none here: a listing, a health
check, a path no adapter reads) is answered as if it were not sent. The row said every such `Expect` got 417,
but `GET /v1/models` with `Expect: foo` gets 200."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.servers.vllm_like import SERVED, VllmLike

README = Path(__file__).resolve().parent.parent / "README.md"

CONFIG = """listen: {{http: "127.0.0.1:0"}}
upstreams: [{{name: u, url: "{url}"}}]
routes: [{{model: "*", upstream: u}}]
policy: {{anonymous: allow, default_purpose: assistant}}
lineage: {{store: null}}
"""


def _status(port: int, wire: bytes) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(wire)
        head = b""
        while b"\r\n" not in head:
            piece = sock.recv(4096)
            assert piece, head
            head += piece
    return int(head.split(b" ", 2)[1])


def test_the_readme_row_says_which_requests_an_expect_is_refused_on() -> None:
    (row,) = [line for line in README.read_text().splitlines() if line.startswith("| an `Expect` header")]
    assert "| 417 |" in row
    assert "on a request with a body" in row and re.search(r"`GET`, `HEAD` and `OPTIONS`", row), row


@pytest.mark.parametrize(("request_line", "extra", "status"), [
    (b"GET /v1/models", b"", 200),  # a listing
    (b"HEAD /v1/models", b"", 200),
    (b"GET /healthz", b"", 200),  # the proxy's own
    (b"OPTIONS /v1/chat/completions", b"", None),  # passed on: the upstream's answer, whatever it is
    (b"POST /v1/chat/completions", b"BODY", 417),
    (b"POST /v1/chat/completions", b"", 417),  # Content-Length: 0: a request that can carry one
])  # fmt: skip
def test_an_unmet_expect_is_refused_on_requests_that_can_carry_a_body(
    vllm: tuple[VllmLike, str], make_proxy: Any, request_line: bytes, extra: bytes, status: int
) -> None:
    _, url = vllm
    proxy = make_proxy(CONFIG.format(url=url))
    body = b'{"model": "%s", "messages": []}' % SERVED.encode() if extra else b""
    length = b"Content-Length: %d\r\n" % len(body) if request_line.startswith(b"POST") else b""
    wire = request_line + b" HTTP/1.1\r\nHost: x\r\nExpect: foo\r\n" + length + b"\r\n" + body
    got = _status(proxy.bound.http.port, wire)
    assert got == status if status is not None else got != 417, got

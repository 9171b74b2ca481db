"""A request body sent with a transfer coding beside `chunked` (`Transfer-Encoding: gzip, chunked`): llhttp undoes
the chunking only, and the proxy forwards a body with a Content-Length of its own and no Transfer-Encoding, so the
upstream got gzip bytes as the plain body, the coding that would have told it gone. Such a request is refused."""

from __future__ import annotations

import gzip
import socket

import orjson
import pytest

from tests.configs import ONE_UPSTREAM_STORED
from tests.ingress.test_wire import read_all
from tests.servers.vllm_like import SERVED

BODY = orjson.dumps({"model": SERVED, "messages": [{"role": "user", "content": "hello"}]})


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/pooling"], ids=["read", "passed-through"])
@pytest.mark.parametrize("codings", ["gzip, chunked", "GZIP,chunked", "x-custom, chunked"])
def test_a_transfer_coding_beside_chunked_is_refused_not_forwarded(vllm, make_proxy, path: str, codings: str) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(ONE_UPSTREAM_STORED, UPSTREAM=upstream)
    packed = gzip.compress(BODY)
    wire = (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Transfer-Encoding: %s\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
            % (path.encode(), codings.encode(), len(packed), packed))  # fmt: skip
    with socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=10) as sock:
        sock.sendall(wire)
        reply = read_all(sock)
    assert reply.startswith(b"HTTP/1.1 400 "), reply[:300]
    assert b"Transfer-Encoding" in reply and b"invalid_request" in reply
    assert [r for r in server.requests if r.method == "POST"] == []


def test_chunked_alone_in_any_case_is_read(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(ONE_UPSTREAM_STORED, UPSTREAM=upstream)
    wire = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Transfer-Encoding: Chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY))  # fmt: skip
    with socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=10) as sock:
        sock.sendall(wire)
        reply = read_all(sock)
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:300]
    assert [r.body for r in server.requests if r.method == "POST"] == [BODY]

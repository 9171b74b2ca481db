"""An HTTP/1.0 request with Transfer-Encoding has faulty framing (RFC 9112 §6.1: HTTP/1.0 has no chunked coding; the
recipient must treat it so and close the connection after it). It was read as chunked and the connection kept
alive, so a front (a balancer, a mesh proxy) that read the body otherwise — none, and the chunks as the next request —
and the proxy answered different requests on one connection."""

from __future__ import annotations

import socket

import orjson

from tests.servers.vllm_like import SERVED

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - name: vllm
    url: ${UPSTREAM}
routes:
  - model: "*"
    upstream: vllm
policy: {anonymous: allow, default_purpose: assistant}
lineage:
  store: ${STORE}
"""
BODY = orjson.dumps({"model": SERVED, "messages": [{"role": "user", "content": "hi"}]})


def reply(sock: socket.socket) -> tuple[bytes, bytes]:
    """One reply's head and body (framed by its Content-Length), read from `sock`."""
    got = b""
    while b"\r\n\r\n" not in got:
        piece = sock.recv(65536)
        assert piece, f"closed before a whole head: {got!r}"
        got += piece
    head, _, body = got.partition(b"\r\n\r\n")
    length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))[15:])
    while len(body) < length:
        piece = sock.recv(65536)
        assert piece, f"closed before a whole body: {got!r}"
        body += piece
    return head, body


def test_an_http10_request_with_transfer_encoding_is_refused_and_its_connection_closed(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    port = make_proxy(CONFIG, UPSTREAM=upstream).bound.http.port
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n" + chunked)  # fmt: skip
        head, body = reply(sock)
        assert head.startswith(b"HTTP/1.1 400 ") and b"\r\nConnection: close" in head, head
        assert b"Transfer-Encoding" in body and sock.recv(65536) == b""  # closed after it
    assert server.data_requests() == []
    # with a Content-Length it is served, and the connection kept
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY))  # fmt: skip
        head, _ = reply(sock)
    assert head.startswith(b"HTTP/1.1 200 ") and b"\r\nConnection: keep-alive" in head
    assert len(server.data_requests()) == 1

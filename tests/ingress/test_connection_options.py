"""A Connection header names the fields a proxy removes before forwarding (RFC 9110 §7.6.1: hop-by-hop). Naming one
that describes the body (`Connection: content-encoding`) had the proxy read the gzip body decompressed, decide on
what it said, and forward the compressed bytes with the field that said so removed: the upstream got other content
than the one decided on. Such a request is refused (400), nothing forwarded; one naming the proxy's own policy
headers (`x-purpose`, `x-data-labels`) is decided with them, which the upstream then does not get. Each test asserts
the bytes a raw upstream received."""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import Iterator

import orjson
import pytest

from tests.harness import LoopThread, ProxyHandle
from tests.ingress.test_wire import Replies, read_all
from tests.servers.raw_origin import proxy_in_front, request_body

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - name: origin
    url: ${UPSTREAM}
routes:
  - model: "*"
    upstream: origin
zones:
  - name: health
    labels: [health]
    allow_purposes: [care]
policy:
  anonymous: allow
  default_purpose: care
lineage:
  store: ${STORE}
"""
BODY = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hello"}]})
OIP_LENGTH = b"Inference-Header-Content-Length: %d\r\nConnection: close, inference-header-content-length\r\n" % len(
    BODY
)
CHAT = orjson.dumps({"id": "c1", "object": "chat.completion", "created": 1, "model": "m", "choices": [
    {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]})  # fmt: skip


@pytest.fixture
def origin(make_proxy, loop_thread: LoopThread) -> Iterator[tuple[ProxyHandle, list[bytes]]]:  # type: ignore[no-untyped-def]
    received: list[bytes] = []  # each POST's head and body, as the upstream got them

    async def answer(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        received.append(head + await request_body(head, reader))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(CHAT), CHAT))  # fmt: skip
        await writer.drain()
        return True

    with proxy_in_front(loop_thread, make_proxy, CONFIG, answer) as handle:
        yield handle, received


def send(proxy: ProxyHandle, wire: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=10) as sock:
        sock.sendall(wire)
        return read_all(sock)


def post(fields: bytes, body: bytes) -> bytes:
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%s"
            b"Content-Length: %d\r\n\r\n%s" % (fields, len(body), body))  # fmt: skip


@pytest.mark.parametrize(
    "fields, body",
    [
        (b"Content-Encoding: gzip\r\nConnection: close, content-encoding\r\n", gzip.compress(BODY)),
        (b"Content-Encoding: gzip\r\nConnection: Content-Encoding\r\nConnection: close\r\n", gzip.compress(BODY)),
        (b"Connection: close,content-type\r\n", BODY),
        (OIP_LENGTH, BODY),
    ],
    ids=["content-encoding", "two-lines", "content-type", "inference-header-content-length"],
)
def test_a_connection_option_naming_a_field_that_describes_the_body_is_refused(
    origin, fields: bytes, body: bytes
) -> None:  # type: ignore[no-untyped-def]
    proxy, received = origin
    reply = send(proxy, post(fields, body))
    assert reply.startswith(b"HTTP/1.1 400 "), reply[:300]
    head, _, answer = reply.partition(b"\r\n\r\n")
    error = orjson.loads(answer)["error"]
    assert error["code"] == "invalid_request" and error["param"] == "connection", error
    assert b"\r\nx-lineage-decision: deny\r\n" in head
    assert received == []


def test_a_refused_connection_option_keeps_the_connection_in_step(origin) -> None:  # type: ignore[no-untyped-def]
    """The refused request was framed whole: the request after it on the connection is served, and only it."""
    proxy, received = origin
    packed = gzip.compress(BODY)
    with socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=10) as sock:
        sock.sendall(post(b"Content-Encoding: gzip\r\nConnection: content-encoding\r\n", packed)
                     + post(b"Connection: close\r\n", BODY))  # fmt: skip
        replies = Replies(sock)
        assert replies.next("POST")[0] == 400
        assert replies.next("POST")[0] == 200
        assert read_all(sock) == b""
    assert len(received) == 1 and received[0].endswith(b"\r\n\r\n" + BODY)


def test_the_policy_headers_a_connection_option_names_are_decided_on_and_not_forwarded(origin) -> None:  # type: ignore[no-untyped-def]
    proxy, received = origin
    denied = send(proxy, post(b"X-Purpose: ads\r\nX-Data-Labels: health\r\nConnection: close, x-purpose, x-data-labels\r\n",
                              BODY))  # fmt: skip
    assert denied.startswith(b"HTTP/1.1 403 "), denied[:300]
    assert b"\r\nx-data-labels: health\r\n" in denied
    allowed = send(proxy, post(b"X-Purpose: care\r\nX-Data-Labels: health\r\nConnection: close, x-purpose, x-data-labels\r\n",
                               BODY))  # fmt: skip
    assert allowed.startswith(b"HTTP/1.1 200 "), allowed[:300]
    assert b"\r\nx-data-labels: health\r\n" in allowed
    assert len(received) == 1
    head = received[0].lower()
    assert b"x-purpose" not in head and b"x-data-labels" not in head and received[0].endswith(BODY)


def test_an_upstreams_connection_option_naming_its_content_encoding_does_not_strip_it(make_proxy, loop_thread) -> None:  # type: ignore[no-untyped-def]
    """The reply's side: an upstream's `Connection: content-encoding` had the proxy drop its Content-Encoding and pass
    the gzip body on as it came, so the client read compressed bytes as JSON (while the proxy, which decoded them,
    recorded what they held). The field goes with the body; the other fields it names are dropped."""
    packed = gzip.compress(CHAT)

    async def answer(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        await request_body(head, reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nX-Hop: 1\r\n"
                     b"Connection: content-encoding, x-hop\r\nContent-Length: %d\r\n\r\n%s" % (len(packed), packed))  # fmt: skip
        await writer.drain()
        return True

    with (
        proxy_in_front(loop_thread, make_proxy, CONFIG, answer) as proxy,
        socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=10) as sock,
    ):
        sock.sendall(post(b"Accept-Encoding: gzip\r\nConnection: close\r\n", BODY))
        status, fields, body = Replies(sock).next("POST")
    assert status == 200 and fields.get("content-encoding") == "gzip", fields
    assert "x-hop" not in fields
    assert gzip.decompress(body) == CHAT

"""TRACE asks the final recipient to answer with the request as it got it (RFC 9110 §9.3.8). The proxy forwarded it
like any passthrough call, with the upstream's `api_key` it adds as `Authorization`: an upstream that answers TRACE
(as the RFC defines it) handed that key, which no caller may see, to any caller. TRACE is refused (400, as CONNECT
is), recorded, and nothing reaches the upstream. At the socket, against a raw upstream that echoes TRACE."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import orjson
import pytest

from tests.harness import LoopThread, ProxyHandle
from tests.ingress.test_wire import Replies, read_all
from tests.servers.raw_origin import proxy_in_front

SECRET = "upstream-secret-key"
CONFIG = f"""
listen: {{http: 127.0.0.1:0}}
upstreams:
  - name: origin
    url: ${{UPSTREAM}}
    api_key: {SECRET}
routes:
  - model: "*"
    upstream: origin
policy:
  anonymous: allow
  default_purpose: assistant
  passthrough: forward
lineage:
  store: ${{STORE}}
"""


@pytest.fixture
def origin(make_proxy, loop_thread: LoopThread) -> Iterator[tuple[ProxyHandle, list[bytes]]]:  # type: ignore[no-untyped-def]
    heads: list[bytes] = []  # every request head but the proxy's discovery, as the upstream got it

    async def answer(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        heads.append(head)
        body = head if head.startswith(b"TRACE ") else b"ok"  # TRACE: the request echoed, as RFC 9110 says
        content_type = b"message/http" if head.startswith(b"TRACE ") else b"text/plain"
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s"
                     % (content_type, len(body), body))  # fmt: skip
        await writer.drain()
        return True

    with proxy_in_front(loop_thread, make_proxy, CONFIG, answer) as handle:
        yield handle, heads


def test_trace_is_refused_and_never_reaches_the_upstream(origin) -> None:  # type: ignore[no-untyped-def]
    proxy, heads = origin
    with socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=10) as sock:
        sock.sendall(b"TRACE /v1/anything HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = read_all(sock)
    assert SECRET.encode() not in reply
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ") and b"\r\nx-lineage-decision: deny\r\n" in head, reply[:300]
    error = orjson.loads(body)["error"]
    assert error["code"] == "invalid_request" and error["message"].startswith("TRACE: "), error
    assert heads == []


def test_other_passthrough_methods_still_carry_the_upstreams_key(origin) -> None:  # type: ignore[no-untyped-def]
    proxy, heads = origin
    with socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=10) as sock:
        sock.sendall(b"DELETE /v1/anything HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, _, body = Replies(sock).next("DELETE")
    assert status == 200 and body == b"ok"
    assert len(heads) == 1 and heads[0].startswith(b"DELETE /v1/anything HTTP/1.1\r\n")
    assert b"\r\nAuthorization: Bearer %s\r\n" % SECRET.encode() in heads[0]

"""A compressed request body is decompressed to be read (`Content-Encoding: gzip`), and the decompressed copy is
held while the call is: it counts against `limits.bodies_max_bytes` as a body does. Counted by its compressed
bytes alone, 16 KB that decompress to 16 MB each held a thousand times what the bound allowed (six slow calls of
them held 96 MB of a 16 MiB budget)."""

from __future__ import annotations

import gzip
import http.client
import socket
from collections.abc import Iterator

import orjson
import pytest

from tests.configs import ONE_UPSTREAM_STORED
from tests.harness import ProxyHandle
from tests.ingress.test_bodies_budget import held
from tests.record.test_store_waits import until
from tests.servers.vllm_like import SERVED, VllmLike

CONFIG = ONE_UPSTREAM_STORED + "limits: {max_body_bytes: 16777216, bodies_max_bytes: 16777216}\n"
SIZE = 10_000_000  # decompressed: one call fits the budget, two do not


def packed(prompt: str) -> bytes:
    return gzip.compress(orjson.dumps({"model": SERVED, "messages": [{"role": "user", "content": prompt}]}))


def head(body: bytes) -> bytes:
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body))  # fmt: skip


@pytest.fixture
def proxied(vllm, make_proxy) -> Iterator[tuple[VllmLike, ProxyHandle]]:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    yield server, make_proxy(CONFIG, UPSTREAM=upstream)


def test_a_decompressed_body_counts_against_the_bodies_bound_while_its_call_runs(proxied) -> None:  # type: ignore[no-untyped-def]
    server, proxy = proxied
    port = int(proxy.url.rsplit(":", 1)[1])
    slow = packed("__slow__ " + "a" * SIZE)  # the upstream never answers it
    assert len(slow) < 100_000
    with socket.create_connection(("127.0.0.1", port), timeout=30) as first:
        first.sendall(head(slow) + slow)
        until(lambda: len(server.data_requests()) == 1)
        assert held(proxy) >= SIZE  # its decompressed copy, held while the upstream works on it

        with socket.create_connection(("127.0.0.1", port), timeout=30) as second:
            second.sendall(head(slow) + slow)
            reply = http.client.HTTPResponse(second)
            reply.begin()
            assert reply.status == 503, reply.read()
            assert orjson.loads(reply.read())["error"]["code"] == "overloaded"
        assert len(server.data_requests()) == 1  # refused, never forwarded
    until(lambda: held(proxy) == 0)  # the first call's client left: what it held is given back

    small = packed("hello")
    with socket.create_connection(("127.0.0.1", port), timeout=30) as third:
        third.sendall(head(small) + small)
        reply = http.client.HTTPResponse(third)
        reply.begin()
        assert reply.status == 200, reply.read()
        reply.read()
    until(lambda: held(proxy) == 0)

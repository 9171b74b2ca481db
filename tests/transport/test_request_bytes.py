"""The bytes of a request on an upstream connection: its head and its body, joined once with the head when the body
is small and written after it when large, are the head then the body, whatever the body's size around the bound,
the method, and whether the fields come as a block or as pairs; kept-alive connections carry each in turn."""

from __future__ import annotations

import asyncio

import pytest

from proxy.transport.pool import UpstreamPool
from tests.transport.test_pool import fetch, keep_answering, serve, upstream

SIZES = [0, 7, 65535, 65536, 65537, 300_000]


@pytest.mark.parametrize("block", [True, False])
def test_the_head_then_the_body_whatever_its_size(block: bool) -> None:
    fields: list[tuple[str, str]] | bytes = (
        b"X-A: 1\r\nX-B: caf\xc3\xa9\r\n" if block else [("X-A", "1"), ("X-B", "café")]
    )

    async def main() -> tuple[list[bytes], str]:
        async with serve(keep_answering(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")) as server:
            pool = UpstreamPool()
            up = upstream(server.url)
            for size in SIZES:
                resp = await pool.request(up, "POST", "/v1/x", fields, bytes([size % 251]) * size)
                assert (resp.status, await resp.read()) == (200, b"ok")
                resp.release()
            assert await fetch(pool, up, "GET", b"") == (200, b"ok")
            await pool.close()
            assert server.connections == 1  # every request on the one kept-alive connection
            return server.requests, server.url.rsplit(":", 1)[1]

    requests, port = asyncio.run(main())
    host = b"Host: 127.0.0.1:" + port.encode() + b"\r\nX-A: 1\r\nX-B: caf\xc3\xa9\r\n"
    assert requests == [
        *(
            b"POST /v1/x HTTP/1.1\r\n" + host + b"Content-Length: %d\r\n\r\n" % size + bytes([size % 251]) * size
            for size in SIZES
        ),
        b"GET /v1/x HTTP/1.1\r\nHost: 127.0.0.1:" + port.encode() + b"\r\nContent-Type: application/json\r\n\r\n",
    ]

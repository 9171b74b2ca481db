"""The upstream request's head is joined once. The header block `forward_fields` makes is handed to the pool in pieces
(a list of bytes), which `ConnectionPool._head` joins with the request line and a small body: no ~600-byte block made a
call only to be copied again. The pieces are taken (the list emptied), and the client request's field list is let go
once read (before the upstream wait), so neither lives on to the call's end.

Performance guards: the bytes on the wire are those of the block given whole, for a small and a large body and for a
GET retried on a new connection (its head is kept, not the emptied list); through the proxy, the upstream gets the
client's fields, and the client request's tuples are gone while the upstream holds the call."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import httpx
import pytest

from proxy.ingress.wire import Request
from proxy.transport.pool import UpstreamPool
from tests.harness import LoopThread, ProxyHandle
from tests.servers.raw_origin import proxy_in_front, request_body
from tests.transport.test_pool import Script, Scripted, keep_answering, serve, upstream

BLOCK = [b"Content-Type", b": ", b"application/json", b"\r\n", b"X-Seen: ", b"yes", b"\r\n"]
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def send(pool: UpstreamPool, url: str, headers: list[bytes] | bytes, body: bytes, method: str = "POST") -> None:
    resp = await pool.request(upstream(url), method, "/v1/x", headers, body)
    try:
        assert (resp.status, await resp.read()) == (200, b"ok")
    finally:
        resp.release()


@pytest.mark.parametrize("size", [7, 70_000])  # a body joined to the head, and one sent after it
def test_pieces_put_the_same_bytes_on_the_wire_as_the_block_whole(size: int) -> None:
    body = b"x" * size

    async def main() -> list[bytes]:
        async with serve(keep_answering(OK)) as server:
            pool = UpstreamPool()
            pieces = list(BLOCK)
            await send(pool, server.url, pieces, body)
            assert pieces == []  # taken: nothing of them is kept by the caller's list
            await send(pool, server.url, b"".join(BLOCK), body)
            await pool.close()
        return server.requests

    pieced, whole = asyncio.run(main())
    assert pieced == whole
    assert pieced.endswith(
        b"\r\nContent-Type: application/json\r\nX-Seen: yes\r\nContent-Length: %d\r\n\r\n" % size + body
    )


def test_a_retried_request_in_pieces_is_sent_whole_again() -> None:
    """A GET on a connection the upstream closed meanwhile is sent again on a new one: from its head, made once."""

    def make(server: Scripted) -> Script:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
            await server.read_request(reader)
            writer.write(OK)
            await writer.drain()
            await server.read_request(reader)  # the second request on this connection: dropped unanswered

        return run

    async def main() -> Scripted:
        async with serve(make) as server:
            pool = UpstreamPool()
            await send(pool, server.url, list(BLOCK), b"", "GET")
            await send(pool, server.url, list(BLOCK), b"", "GET")  # retried once on a new connection
            assert server.connections == 2
            await pool.close()
        return server

    server = asyncio.run(main())
    assert len(server.requests) == 3 and server.requests[1] == server.requests[2] == server.requests[0]
    assert b"\r\nContent-Type: application/json\r\nX-Seen: yes\r\n\r\n" in server.requests[2]


CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - name: engine
    url: ${UPSTREAM}
routes:
  - model: "*"
    upstream: engine
policy:
  anonymous: allow
  default_purpose: assistant
lineage:
  store: ${STORE}
"""
SEEN: dict[str, object] = {}


async def answer(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    await request_body(head, reader)
    # the call waits for this reply: its client request's fields, read into the upstream's head, are let go already
    SEEN["head"] = head
    # (a request another test left alive, a call of its proxy still waiting, is none of this one's: `before`)
    before = SEEN["before"]
    assert isinstance(before, set)
    SEEN["fields"] = [
        r.headers for r in gc.get_objects() if type(r) is Request and r.method == "POST" and id(r) not in before
    ]
    reply = b'{"id":"c","object":"chat.completion","choices":[]}'
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(reply), reply)
    )
    await writer.drain()
    return True


@pytest.fixture
def proxy(make_proxy, loop_thread: LoopThread) -> Iterator[ProxyHandle]:  # type: ignore[no-untyped-def]
    with proxy_in_front(loop_thread, make_proxy, CONFIG, answer) as handle:
        yield handle


def test_the_client_fields_are_forwarded_then_let_go_before_the_upstream_wait(proxy: ProxyHandle) -> None:
    gc.collect()
    SEEN["before"] = {id(r) for r in gc.get_objects() if type(r) is Request}
    reply = httpx.post(f"{proxy.url}/v1/chat/completions", headers={"X-Custom": "kept-value"},
                       json={"model": "m", "messages": [{"role": "user", "content": "hello"}]})  # fmt: skip
    assert reply.status_code == 200
    head = SEEN["head"]
    assert isinstance(head, bytes) and b"\r\nX-Custom: kept-value\r\n" in head and b"\r\ntraceparent: 00-" in head
    assert SEEN["fields"] == [[]]  # the one call in flight, its field list empty while the upstream holds it

"""An upstream reply whose `Transfer-Encoding` names a coding beside `chunked` (`gzip, chunked`), or one alone
(`gzip`, the body then ending with the connection): the proxy drops the field (hop-by-hop) and frames the body its
own way, so the client got the coded bytes with nothing saying they are coded (its JSON unreadable), and the
record's reader read them as the reply (no digest, no labels but `scan:truncated`). Such a reply is refused as the
malformed framing it is to the proxy, a 502, as a request with one is a 400."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Iterator

import httpx
import orjson
import pytest

from tests.harness import LoopThread, proxy_before
from tests.servers.raw_origin import raw_origin, request_body

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
CHAT = orjson.dumps({"id": "c1", "object": "chat.completion", "created": 1, "model": "m", "choices": [
    {"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}]})  # fmt: skip
CODED = gzip.compress(CHAT)
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: %s\r\n\r\n"
REPLIES = {
    "gzip, chunked": HEAD % b"gzip, chunked" + b"%x\r\n%s\r\n0\r\n\r\n" % (len(CODED), CODED),
    "gzip": HEAD % b"gzip" + CODED,  # the body ends with the connection
}
WANTED: dict[str, bytes] = {}


async def answer(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    await request_body(head, reader)
    writer.write(WANTED["reply"])
    await writer.drain()
    return False  # (`gzip` alone ends its body with the connection)


@pytest.fixture
def proxy_port(make_proxy, loop_thread: LoopThread) -> Iterator[int]:  # type: ignore[no-untyped-def]
    with proxy_before(loop_thread, make_proxy, CONFIG, raw_origin(answer)) as port:
        yield port


@pytest.mark.parametrize("coding", list(REPLIES))
def test_a_reply_in_a_transfer_coding_beside_chunked_is_refused_not_passed_on_undeclared(
    proxy_port: int, coding: str
) -> None:
    WANTED["reply"] = REPLIES[coding]
    reply = httpx.post(f"http://127.0.0.1:{proxy_port}/v1/chat/completions", timeout=10,
                       json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    assert reply.content != CODED, "the client got the gzip-coded body, with no field saying it is coded"
    assert reply.status_code == 502 and reply.json()["error"]["code"] == "upstream_unavailable"
    assert "Transfer-Encoding" in reply.json()["error"]["message"]

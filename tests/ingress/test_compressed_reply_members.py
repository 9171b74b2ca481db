"""A gzip reply is a series of members (RFC 1952 2.2): a server that compresses each event of a stream as it comes
(one member an event, as a gzip writer closed and opened again between flushes writes it) sends several, and its
client reads them all (urllib3 and so `requests`, Python's `gzip`, curl). The proxy's reader stopped at the end of the
first: what came after it was never read, so an address in a later event was never scanned, and the record called the
output what the first event alone held, `pii:email` missing (`Exchange._decoded`)."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.harness import LoopThread, ProxyHandle
from tests.ingress.test_compressed_replies_read import BODY, CONFIG, _event
from tests.ingress.test_model_output_labels import stored_output_labels
from tests.servers.raw_origin import proxy_in_front, request_body

EVENTS = [_event("hello, "), _event("write to bob@example.org"), _event(None, "stop"), b"data: [DONE]\n\n"]
CODED = b"".join(gzip.compress(event) for event in EVENTS)  # one gzip member an event
CHAT = orjson.dumps({"id": "c1", "object": "chat.completion", "created": 1, "model": "m", "choices": [
    {"index": 0, "message": {"role": "assistant", "content": "write to bob@example.org"}, "finish_reason": "stop"}]})  # fmt: skip
HALF = len(CHAT) // 2
WHOLE = gzip.compress(CHAT[:HALF]) + gzip.compress(CHAT[HALF:])  # a reply read whole, in two members


async def answer(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    if orjson.loads(await request_body(head, reader)).get("stream"):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")  # fmt: skip
        for event in EVENTS:
            member = gzip.compress(event)
            writer.write(b"%x\r\n%s\r\n" % (len(member), member))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
    else:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(WHOLE), WHOLE))  # fmt: skip
    await writer.drain()
    return True


@pytest.fixture
def proxy(make_proxy: Any, loop_thread: LoopThread) -> Iterator[ProxyHandle]:
    with proxy_in_front(loop_thread, make_proxy, CONFIG, answer) as handle:
        yield handle


def test_every_gzip_member_of_a_reply_is_read(proxy: ProxyHandle, loop_thread: LoopThread, tmp_path: Path) -> None:
    url = f"{proxy.url}/v1/chat/completions"
    headers = {"x-data-labels": "streamed", "accept-encoding": "identity"}  # the coded bytes as they came
    with httpx.stream("POST", url, json={**BODY, "stream": True}, headers=headers, timeout=10) as r:
        assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"
        assert gzip.decompress(b"".join(r.iter_raw())) == b"".join(EVENTS)  # what a client reads: every member
    with httpx.stream("POST", url, json=BODY, headers={**headers, "x-data-labels": "whole"}, timeout=10) as r:
        assert r.status_code == 200 and gzip.decompress(b"".join(r.iter_raw())) == CHAT
    loop_thread.run(proxy.process.runtime.sinks.flush())
    stored = stored_output_labels(tmp_path / "lineage.db")
    assert stored["streamed"] == ["pii:email", "streamed"]  # the address in the second member
    assert stored["whole"] == ["pii:email", "whole"]

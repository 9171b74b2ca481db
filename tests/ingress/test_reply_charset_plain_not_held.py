"""A plain-text reply whose type names a charset is kept to be read in it (badffd4): kept as it passes, never held
back. A chunked `text/plain; charset=iso-8859-1` reply reaches the client a chunk at a time: the upstream sends its
second chunk only once the client has read its first."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import requests

from tests.harness import LoopThread, ProxyHandle
from tests.ingress.test_compressed_replies_read import CONFIG
from tests.servers.raw_origin import proxy_in_front, request_body

FIRST = "Grüße, first line\n".encode("latin-1")
SECOND = "second line, bob@example.org\n".encode("latin-1")
READ: dict[str, asyncio.Event] = {}


async def answer(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    await request_body(head, reader)
    read = READ["first"] = asyncio.Event()
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=iso-8859-1\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    writer.write(b"%x\r\n%s\r\n" % (len(FIRST), FIRST))
    await writer.drain()
    await read.wait()  # (the client read the first chunk: it was not held back)
    writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(SECOND), SECOND))
    await writer.drain()
    return True


@pytest.fixture
def proxy(make_proxy, loop_thread: LoopThread) -> Iterator[ProxyHandle]:  # type: ignore[no-untyped-def]
    with proxy_in_front(loop_thread, make_proxy, CONFIG, answer) as handle:
        yield handle


def test_a_plain_reply_in_a_charset_passes_a_chunk_at_a_time(proxy: ProxyHandle, loop_thread: LoopThread) -> None:
    with requests.post(f"{proxy.url}/v1/chat/completions", json={"model": "m", "messages": [
            {"role": "user", "content": "hi"}]}, stream=True, timeout=10) as reply:  # fmt: skip
        assert reply.status_code == 200
        got = b""
        chunks = reply.raw.stream(1 << 16, decode_content=False)
        while len(got) < len(FIRST):
            got += next(chunks)
        assert got == FIRST
        loop_thread.loop.call_soon_threadsafe(READ["first"].set)
        rest = b"".join(chunks)
    assert got + rest == FIRST + SECOND

"""An event stream compressed as one gzip stream flushed event by event (zlib's Z_SYNC_FLUSH, Go's `gzip.Writer.Flush`,
Node's `compression` with `res.flush()`): its last event (`data: [DONE]`) comes in one piece, the end of the gzip
stream (its last block and its 8-byte trailer, CRC and length) in the next, when the writer is closed. The proxy ends
a chunked reply's body with the piece holding the API's last event and passes nothing after it: here that dropped
the gzip trailer, so the client's body was a compressed stream cut short (Python's `gzip` raises "Compressed file
ended before the end-of-stream marker was reached"; curl and browsers report a decoding error). A coded stream's
body ends where its coding does."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import LoopThread, ProxyHandle
from tests.ingress.test_compressed_replies_read import BODY, CONFIG, _event
from tests.ingress.test_model_output_labels import stored_output_labels
from tests.servers.raw_origin import Answer, proxy_in_front, request_body

EVENTS = [_event("write to bob@example.org"), _event(None, "stop"), b"data: [DONE]\n\n"]


def _pieces() -> list[bytes]:
    """The stream as such a server writes it: each event flushed, then the writer closed."""
    coder = zlib.compressobj(wbits=31)
    pieces = [coder.compress(event) + coder.flush(zlib.Z_SYNC_FLUSH) for event in EVENTS]
    return [*pieces, coder.flush()]


def answering(closing: asyncio.Event) -> Answer:
    """`closing`: set once the client has read the last event; only then is the writer closed (its trailer sent), so
    the trailer is a piece of its own, as a server whose last event is flushed before it closes its writer sends it."""

    async def answer(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        await request_body(head, reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")  # fmt: skip
        *events, trailer = _pieces()
        for piece in events:
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
        await closing.wait()
        writer.write(b"%x\r\n%s\r\n" % (len(trailer), trailer))
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    return answer


async def _event_made() -> asyncio.Event:
    return asyncio.Event()  # on the test loop


@pytest.fixture
def closing(loop_thread: LoopThread) -> asyncio.Event:
    return loop_thread.run(_event_made())


@pytest.fixture
def proxy(make_proxy: Any, loop_thread: LoopThread, closing: asyncio.Event) -> Iterator[ProxyHandle]:
    with proxy_in_front(loop_thread, make_proxy, CONFIG, answering(closing)) as handle:
        yield handle


def test_a_compressed_stream_reaches_its_client_whole(
    proxy: ProxyHandle, loop_thread: LoopThread, closing: asyncio.Event, tmp_path: Path
) -> None:
    async def close() -> None:
        closing.set()

    url = f"{proxy.url}/v1/chat/completions"
    with httpx.stream(
        "POST", url, json={**BODY, "stream": True}, headers={"x-data-labels": "flushed"}, timeout=10
    ) as r:
        assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"
        raw, decoder, read = b"", zlib.decompressobj(31), b""
        for piece in r.iter_raw():
            raw += piece
            read += decoder.decompress(piece)
            if read.endswith(b"data: [DONE]\n\n") and not closing.is_set():
                loop_thread.run(close())  # the client has the last event: the upstream closes its writer
    assert raw == b"".join(_pieces())  # every byte the upstream sent, its gzip trailer too
    assert gzip.decompress(raw) == b"".join(EVENTS)
    loop_thread.run(proxy.process.runtime.sinks.flush())
    assert stored_output_labels(tmp_path / "lineage.db")["flushed"] == ["flushed", "pii:email"]

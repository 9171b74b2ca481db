"""An upstream that compresses its reply though the proxy asked for none (`Accept-Encoding: identity`: a buggy or
compromised server, or a gateway in front of it): its client decompresses it (httpx, the openai SDK, a browser all
do) and reads the model's output, and so must the record. The proxy read the compressed bytes as the reply, so what
the model wrote was never scanned: an address in it was recorded as `scan:truncated` alone, not `pii:email`, and the
reply had no output digest. One layer of gzip or deflate is read, as a request body's is; a coding it cannot read
(`br`, `zstd`, two layers) is not read, and said so (`scan:truncated`)."""

from __future__ import annotations

import asyncio
import gzip
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.harness import LoopThread, ProxyHandle
from tests.ingress.test_model_output_labels import stored_output_labels
from tests.servers.raw_origin import proxy_in_front, request_body

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
zones:
  - name: personal
    labels: [pii:email, scan:truncated]
    allow_purposes: [assistant]
detectors: [email]
lineage:
  store: ${STORE}
"""
OUT = "bob@example.org"
CHAT = orjson.dumps({"id": "c1", "object": "chat.completion", "created": 1, "model": "m", "choices": [
    {"index": 0, "message": {"role": "assistant", "content": f"write to {OUT}"}, "finish_reason": "stop"}]})  # fmt: skip


def _event(content: str | None, reason: str | None = None) -> bytes:
    delta = {"content": content} if content is not None else {}
    return b"data: " + orjson.dumps({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                                     "choices": [{"index": 0, "delta": delta, "finish_reason": reason}]}) + b"\n\n"  # fmt: skip


STREAM = _event("write to bob@exa") + _event("mple.org") + _event(None, "stop") + b"data: [DONE]\n\n"
CODERS = {"gzip": gzip.compress, "deflate": zlib.compress, "identity": lambda data: data}
SEEN: dict[str, Any] = {}


async def answer(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    SEEN["asked"] = head.lower()
    streamed = orjson.loads(await request_body(head, reader)).get("stream")
    coding = SEEN["coding"]
    fields = b"" if coding == "identity" else b"Content-Encoding: %s\r\n" % coding.encode()
    if streamed:  # chunked: the compressed stream in two chunks
        coded = CODERS[coding](STREAM)
        half = len(coded) // 2
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n%sTransfer-Encoding: chunked"
                     b"\r\n\r\n" % fields)  # fmt: skip
        for piece in (coded[:half], coded[half:]):
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
    else:
        coded = CODERS[coding](CHAT)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s"
                     % (fields, len(coded), coded))  # fmt: skip
    await writer.drain()
    return True


@pytest.fixture
def proxy(make_proxy, loop_thread: LoopThread) -> Iterator[ProxyHandle]:  # type: ignore[no-untyped-def]
    with proxy_in_front(loop_thread, make_proxy, CONFIG, answer) as handle:
        yield handle


BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("coding", list(CODERS))
def test_a_compressed_reply_is_recorded_as_its_client_reads_it(
    proxy: ProxyHandle, loop_thread: LoopThread, tmp_path: Path, coding: str
) -> None:
    SEEN["coding"] = coding
    url = f"{proxy.url}/v1/chat/completions"
    whole = httpx.post(url, json=BODY, timeout=10)
    assert b"accept-encoding: identity" in SEEN["asked"]  # the proxy asked for none
    assert whole.status_code == 200 and whole.content == CHAT  # (httpx undid the coding)
    assert whole.headers["x-data-labels"] == "pii:email"
    flow = f"flow-{coding}"
    with httpx.stream("POST", url, json={**BODY, "stream": True}, headers={"x-data-labels": flow}, timeout=10) as r:
        assert r.status_code == 200 and r.read() == STREAM
    loop_thread.run(proxy.process.runtime.sinks.flush())
    assert stored_output_labels(tmp_path / "lineage.db")[flow] == [flow, "pii:email"]


# a reply of 60 MiB decompressed, sent as 60 KiB of gzip: under max_body_bytes (64 MiB), the bound it was read to
BOMB = gzip.compress(b'{"id": "c1", "pad": "' + b"a" * (60 << 20) + b'"}', 9)


async def answer_bomb(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    await request_body(head, reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(BOMB), BOMB))  # fmt: skip
    await writer.drain()
    return True


def test_a_compressed_reply_is_decoded_no_further_than_a_reply_sent_as_it_is_is_kept(
    make_proxy: Any, loop_thread: LoopThread
) -> None:
    """Decoded, a reply was read up to limits.max_body_bytes (64 MiB a call, from 64 KiB of gzip) where the same reply
    sent uncompressed is kept to 16 MiB (`Detectors.keep_max`): as far as that now, the rest unread (`scan:truncated`).
    The proxy runs in this process: what it allocates while it reads the reply is traced (33 MiB, the decoded 16 and
    the 16 its reader keeps; 125 before)."""
    with proxy_in_front(loop_thread, make_proxy, CONFIG, answer_bomb) as proxy:
        tracemalloc.start()
        try:
            with httpx.stream("POST", f"{proxy.url}/v1/chat/completions", json=BODY, timeout=60) as reply:
                passed = sum(len(piece) for piece in reply.iter_raw())  # as it came: not decoded here
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert passed == len(BOMB)
    assert peak < 64 << 20, f"{peak >> 20} MiB allocated while the proxy read a reply of {len(BOMB) >> 10} KiB"

"""A reply's Content-Encoding sent as more than one field (`Content-Encoding: identity` then `Content-Encoding:
gzip`): its client reads the fields as one list (RFC 9110 section 5.3; httpx, and so the openai SDK, decode every
coding listed, `identity` and empty elements naming none) and reads the output decoded. The proxy read the first
field only (and took `identity, gzip` in one field for two layers), so it read the gzip bytes as the reply: an address
in the output was recorded as `scan:truncated` alone, not `pii:email`, and the reply had no output digest."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import LoopThread, ProxyHandle
from tests.ingress.test_compressed_replies_read import BODY, CHAT, CONFIG, STREAM
from tests.ingress.test_model_output_labels import stored_output_labels
from tests.servers.raw_origin import proxy_in_front, request_body

FIELDS = {
    "identity-then-gzip": b"Content-Encoding: identity\r\nContent-Encoding: gzip\r\n",
    "empty-then-gzip": b"Content-Encoding: \r\nContent-Encoding: gzip\r\n",
    "identity-gzip-one-field": b"Content-Encoding: identity, gzip\r\n",
}
SEEN: dict[str, Any] = {}


async def answer(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    streamed = b'"stream":true' in (await request_body(head, reader)).replace(b" ", b"")
    fields = FIELDS[SEEN["fields"]]
    coded = gzip.compress(STREAM if streamed else CHAT)
    kind = b"text/event-stream" if streamed else b"application/json"
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\n%sContent-Length: %d\r\n\r\n%s"
                 % (kind, fields, len(coded), coded))  # fmt: skip
    await writer.drain()
    return True


@pytest.fixture
def proxy(make_proxy, loop_thread: LoopThread) -> Iterator[ProxyHandle]:  # type: ignore[no-untyped-def]
    with proxy_in_front(loop_thread, make_proxy, CONFIG, answer) as handle:
        yield handle


@pytest.mark.parametrize("fields", list(FIELDS))
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_a_coding_named_in_a_second_field_is_read_as_its_client_reads_it(
    proxy: ProxyHandle, loop_thread: LoopThread, tmp_path: Path, fields: str, stream: bool
) -> None:
    SEEN["fields"] = fields
    flow = f"flow-{fields}-{'stream' if stream else 'whole'}"
    with httpx.stream("POST", f"{proxy.url}/v1/chat/completions", json={**BODY, "stream": stream},
                      headers={"x-data-labels": flow}, timeout=10) as r:  # fmt: skip
        got = r.read()
    assert r.status_code == 200 and got == (STREAM if stream else CHAT)  # httpx undid the gzip the fields list
    loop_thread.run(proxy.process.runtime.sinks.flush())
    assert stored_output_labels(tmp_path / "lineage.db")[flow] == [flow, "pii:email"]

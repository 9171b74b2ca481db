"""`timeout_s` bounds the wait for an upstream's reply head (config/example.yaml: "the wait for the response headers
and for each chunk after them"; README: an upstream slower than it is a 504). An upstream that keeps the head from
coming while sending bytes now and then (an interim 103 Early Hints every so often, or its head a byte at a time)
gets no more time for it: each piece of it once moved the wait's deadline, and the client waited for as long as the
upstream liked, never answered."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.harness import LoopThread, proxy_before
from tests.servers.raw_origin import raw_origin

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - name: engine
    url: ${UPSTREAM}
    timeout_s: 1
routes:
  - model: "*"
    upstream: engine
policy:
  anonymous: allow
  default_purpose: assistant
lineage:
  store: ${STORE}
"""
# what the upstream sends, a piece every PACE seconds (well within timeout_s), its last piece again and again for as
# long as the proxy listens
PIECES = {
    "early-hints": [b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"],
    "dribbled-head": [b"HTTP/1.1 200 OK\r\nX-Pad: ", b"a"],
}
PACE = 0.25
WAYS: dict[str, list[bytes]] = {}


async def answer(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    pieces = WAYS["pieces"]
    for i in range(100_000):
        writer.write(pieces[min(i, len(pieces) - 1)])
        await writer.drain()
        await asyncio.sleep(PACE)
    return False


@pytest.fixture
def proxy_port(make_proxy, loop_thread: LoopThread) -> Iterator[int]:  # type: ignore[no-untyped-def]
    with proxy_before(loop_thread, make_proxy, CONFIG, raw_origin(answer)) as port:
        yield port


@pytest.mark.parametrize("way", list(PIECES))
def test_an_upstream_that_holds_its_head_back_is_a_504_after_timeout_s(proxy_port: int, way: str) -> None:
    WAYS["pieces"] = PIECES[way]
    began = time.monotonic()
    try:
        reply = httpx.post(f"http://127.0.0.1:{proxy_port}/v1/chat/completions", timeout=8,
                           json={"model": "m", "messages": [{"role": "user", "content": "hello"}]})  # fmt: skip
    except httpx.ReadTimeout:
        pytest.fail(f"no reply in 8 s, though the upstream's timeout_s is 1 s ({way})")
    assert reply.status_code == 504 and reply.json()["error"]["code"] == "upstream_timeout"
    assert time.monotonic() - began < 4

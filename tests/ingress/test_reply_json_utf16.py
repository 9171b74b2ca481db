"""A JSON reply in UTF-16 or UTF-32 (`Content-Type: application/json; charset=utf-16`: a server on a platform whose
strings are UTF-16, or one set to hide its output from a UTF-8 reader): the openai SDK reads it all the same (httpx's
`Response.json()` is Python's `json.loads` of the bytes, which reads UTF-8, UTF-16 and UTF-32, told apart by their
zero bytes). The proxy read it as UTF-8, found no JSON, and recorded the output as
`scan:truncated` alone: the address the model wrote, which its client read, was not `pii:email`, and the reply had no
output digest. It is read as those clients read it."""

from __future__ import annotations

import asyncio
import codecs
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.harness import LoopThread, ProxyHandle
from tests.ingress.test_compressed_replies_read import CHAT, CONFIG, OUT
from tests.ingress.test_model_output_labels import stored_output_labels
from tests.servers.raw_origin import proxy_in_front, request_body

CODECS = {
    "utf-16-le": lambda data: data.decode().encode("utf-16-le"),
    "utf-16-bom": lambda data: data.decode().encode("utf-16"),  # (a byte order mark first)
    "utf-32-be": lambda data: data.decode().encode("utf-32-be"),
    "utf-8-bom": lambda data: codecs.BOM_UTF8 + data,  # (read before: the control)
}
SEEN: dict[str, Any] = {}


async def answer(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    await request_body(head, reader)
    body = CODECS[SEEN["codec"]](CHAT)
    charset = SEEN["codec"].rsplit("-", 1)[0].encode()
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=%s\r\nContent-Length: %d\r\n\r\n%s"
                 % (charset, len(body), body))  # fmt: skip
    await writer.drain()
    return True


@pytest.fixture
def proxy(make_proxy, loop_thread: LoopThread) -> Iterator[ProxyHandle]:  # type: ignore[no-untyped-def]
    with proxy_in_front(loop_thread, make_proxy, CONFIG, answer) as handle:
        yield handle


@pytest.mark.parametrize("codec", list(CODECS))
def test_a_json_reply_in_utf16_or_utf32_is_read_as_the_openai_sdk_reads_it(
    proxy: ProxyHandle, loop_thread: LoopThread, tmp_path: Path, codec: str
) -> None:
    SEEN["codec"] = codec
    flow = f"flow-{codec}"
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=10)
    raw = client.chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "user", "content": "hi"}], extra_headers={"x-data-labels": flow}
    )
    assert OUT in (raw.parse().choices[0].message.content or "")  # the client read the address
    assert raw.headers["x-data-labels"] == f"{flow},pii:email"
    loop_thread.run(proxy.process.runtime.sinks.flush())
    assert stored_output_labels(tmp_path / "lineage.db")[flow] == [flow, "pii:email"]

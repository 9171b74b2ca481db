"""A reply that is no JSON but text whose `Content-Type` names a `charset` (`text/plain; charset=utf-16`,
`shift_jis`): `requests`' `.text` decodes it by that charset. Read whole before it is sent (a Content-Length) it was
read in it; passed on as it arrives (chunked) it was read as an event stream alone, its UTF-8 lines no fields: the
address the client read was missed (`scan:truncated` alone). It is kept and read in its charset as a sized one is."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from proxy.config import DetectorSpec
from proxy.detectors import TRUNCATED, Detectors
from proxy.flow import Outcome
from proxy.protocols.openai import ReplyObserver
from tests.harness import LoopThread, ProxyHandle
from tests.ingress.test_compressed_replies_read import CONFIG, OUT, STREAM
from tests.ingress.test_model_output_labels import stored_output_labels
from tests.servers.raw_origin import proxy_in_front, request_body

TEXT = "表 write to " + OUT + "\n"
SEEN: dict[str, Any] = {}


async def answer(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    await request_body(head, reader)
    charset, chunked = SEEN["charset"], SEEN["chunked"]
    body = TEXT.encode(charset)
    fields = b"Content-Type: text/plain; charset=%s\r\n" % charset.encode()
    if chunked:  # in two chunks, split inside the address
        half = len(body) // 2
        framed = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in (body[:half], body[half:]))
        writer.write(b"HTTP/1.1 200 OK\r\n%sTransfer-Encoding: chunked\r\n\r\n%s0\r\n\r\n" % (fields, framed))
    else:
        writer.write(b"HTTP/1.1 200 OK\r\n%sContent-Length: %d\r\n\r\n%s" % (fields, len(body), body))
    await writer.drain()
    return True


@pytest.fixture
def proxy(make_proxy, loop_thread: LoopThread) -> Iterator[ProxyHandle]:  # type: ignore[no-untyped-def]
    with proxy_in_front(loop_thread, make_proxy, CONFIG, answer) as handle:
        yield handle


@pytest.mark.parametrize("chunked", [False, True], ids=["sized", "chunked"])
@pytest.mark.parametrize("charset", ["utf-16", "utf-16-be", "shift_jis"])
def test_a_plain_text_reply_is_read_in_its_declared_charset(
    proxy: ProxyHandle, loop_thread: LoopThread, tmp_path: Path, charset: str, chunked: bool
) -> None:
    SEEN["charset"], SEEN["chunked"] = charset, chunked
    flow = f"flow-{charset}-{'chunked' if chunked else 'sized'}"
    reply = requests.post(f"{proxy.url}/v1/chat/completions", json={"model": "m", "messages": [
        {"role": "user", "content": "hi"}]}, headers={"x-data-labels": flow}, timeout=10)  # fmt: skip
    assert reply.status_code == 200, reply.text
    assert reply.encoding == charset and reply.text == TEXT  # the client reads the address
    # (scan:truncated stays: its UTF-8 lines, no event stream's fields, are not read, as a plain UTF-8 reply's are not)
    if not chunked:  # (a reply passed on as it arrives has its head sent before its output is read)
        assert reply.headers["x-data-labels"] == f"{flow},pii:email,{TRUNCATED}"
    loop_thread.run(proxy.process.runtime.sinks.flush())
    # chunked, before: [flow, scan:truncated]
    assert stored_output_labels(tmp_path / "lineage.db")[flow] == [flow, "pii:email", TRUNCATED]


def test_an_event_stream_typed_as_text_in_a_charset_is_still_read_as_one() -> None:
    """Kept for its charset, an event stream sent as `text/plain; charset=shift_jis` is read as one at its end, as
    before: its events are the output, and one that ended before its last event is still said to be unfinished."""
    detectors = Detectors([DetectorSpec("email")])
    cut = STREAM[: STREAM.index(b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices"'
                                b':[{"index":0,"delta":{},"finish_reason":"stop"}]}')]  # fmt: skip
    for body, unfinished in ((STREAM, False), (cut, True)):
        outcome = Outcome(started_ns=1)
        observer = ReplyObserver(outcome, detectors, True)
        observer.head(200, {"content-type": "text/plain; charset=shift_jis"}.get)
        for at in range(0, len(body), 50):
            observer.chunk(body[at : at + 50])
        assert observer.unfinished() is unfinished
        observer.finish()
        assert outcome.output_detected == {"pii:email"}
        assert outcome.content == ("write to [pii:email]",)
        assert outcome.finish_reasons == (() if unfinished else ("stop",))

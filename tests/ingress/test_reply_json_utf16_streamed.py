"""A JSON reply in UTF-16 or UTF-32 passed on as it arrives (chunked, or over `limits.buffer_max_bytes`): its first
byte but white space is not `{` in big-endian (`\\x00{`), nor after a byte order mark (`\\xff\\xfe`, `\\xfe\\xff`), so
the observer took it for an event stream and recorded `scan:truncated` alone, where the same reply read whole (with a
Content-Length) is `pii:email`, as its client (`requests`, the openai SDK) reads the address. A reply streamed is now
recorded as the same reply read whole."""

from __future__ import annotations

import asyncio
import codecs
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from proxy.flow import Outcome
from proxy.protocols.openai import ReplyObserver
from tests.harness import LoopThread, ProxyHandle
from tests.ingress.test_compressed_replies_read import CHAT, CONFIG, OUT
from tests.ingress.test_model_output_labels import stored_output_labels
from tests.servers.raw_origin import proxy_in_front, request_body

ENCODINGS = ("utf-16-be", "utf-16-le", "utf-32-be", "utf-32-le")
MARKS = {"utf-16-be": codecs.BOM_UTF16_BE, "utf-16-le": codecs.BOM_UTF16_LE, "utf-32-be": codecs.BOM_UTF32_BE,
         "utf-32-le": codecs.BOM_UTF32_LE}  # fmt: skip
DETECTORS = Detectors([DetectorSpec("email")])


def encoded(encoding: str, mark: bool, space: bool = False) -> bytes:
    """`CHAT` in `encoding`, with its byte order mark first or not, and white space before the JSON or not."""
    text = (" \n" if space else "") + CHAT.decode()
    return (MARKS[encoding] if mark else b"") + text.encode(encoding)


def observed(data: bytes, content_type: str, pieces: int | None) -> Outcome:
    """The outcome of the openai observer reading `data`: whole (`pieces` None) or passed on in pieces of that size."""
    outcome = Outcome(started_ns=1)
    observer = ReplyObserver(outcome, DETECTORS, True)
    observer.head(200, {"content-type": content_type}.get)
    if pieces is None:
        observer.body(data)
    else:
        for start in range(0, len(data), pieces):
            observer.chunk(data[start : start + pieces])
    observer.finish()
    return outcome


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("mark", [False, True])
@pytest.mark.parametrize("space", [False, True])
@pytest.mark.parametrize("charset", ["; charset=%s", ""])
def test_a_reply_in_utf16_or_utf32_streamed_is_recorded_as_read_whole(
    encoding: str, mark: bool, space: bool, charset: str
) -> None:
    data = encoded(encoding, mark, space)
    content_type = "application/json" + (charset % encoding.rsplit("-", 1)[0] if charset else "")
    whole = observed(data, content_type, None)
    assert whole.output_detected == {"pii:email"}
    for pieces in (1, 3, 50, len(data)):  # (the brief's case: `chunk(data[:50]); chunk(data[50:])`, and more)
        streamed = observed(data, content_type, pieces)
        # before: {scan:truncated} in big-endian, and after a byte order mark or white space in either order
        assert streamed.output_detected == whole.output_detected, (pieces, streamed.output_detected)
        assert streamed.output_digest == whole.output_digest is not None
        assert streamed.content == whole.content


def test_an_event_stream_is_still_read_as_one() -> None:
    """The control: a reply whose first byte is neither `{` nor one JSON in UTF-16 or UTF-32 may begin with is read as
    an event stream as it comes, whatever its type says."""
    stream = (
        b'data: {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [{"index": 0,'
    )
    stream += b' "delta": {"content": "write to ' + OUT.encode() + b'"}, "finish_reason": "stop"}]}\n\ndata: [DONE]\n\n'
    outcome = observed(stream, "application/json", 7)
    assert outcome.output_detected == {"pii:email"}


SEEN: dict[str, Any] = {}


async def answer(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    await request_body(head, reader)
    body: bytes = SEEN["body"]
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=%s\r\n" % SEEN["charset"].encode())
    if SEEN["chunked"]:  # (in pieces of 50 bytes, the first holding the JSON's first bytes)
        writer.write(b"Transfer-Encoding: chunked\r\n\r\n")
        for start in range(0, len(body), 50):
            piece = body[start : start + 50]
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
    else:
        writer.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    await writer.drain()
    return True


@pytest.fixture
def proxy(make_proxy, loop_thread: LoopThread) -> Iterator[ProxyHandle]:  # type: ignore[no-untyped-def]
    with proxy_in_front(loop_thread, make_proxy, CONFIG, answer) as handle:
        yield handle


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("mark", [False, True])
def test_a_chunked_reply_in_utf16_or_utf32_is_labelled_as_one_with_a_length(
    proxy: ProxyHandle, loop_thread: LoopThread, tmp_path: Path, encoding: str, mark: bool
) -> None:
    body = encoded(encoding, mark)
    SEEN["body"], SEEN["charset"] = body, encoding.rsplit("-", 1)[0]
    flows = {}
    for chunked in (False, True):
        SEEN["chunked"] = chunked
        flow = f"flow-{encoding}-{int(mark)}-{int(chunked)}"
        reply = requests.post(f"{proxy.url}/v1/chat/completions", json={"model": "m", "messages": [
            {"role": "user", "content": "hi"}]}, headers={"x-data-labels": flow}, timeout=10)  # fmt: skip
        assert reply.status_code == 200, reply.text
        assert reply.content == body  # (passed on as it came)
        assert OUT in json.loads(reply.content)["choices"][0]["message"]["content"]  # (as the openai SDK reads it)
        if mark or encoding.endswith("le"):  # (`requests` decodes `charset=utf-16` in its machine's order without one)
            assert OUT in reply.json()["choices"][0]["message"]["content"]
        flows[chunked] = flow
    loop_thread.run(proxy.process.runtime.sinks.flush())
    stored = stored_output_labels(tmp_path / "lineage.db")
    assert stored[flows[False]] == [flows[False], "pii:email"]  # (read whole: as before)
    # before: [flow, "scan:truncated"] when chunked, in big-endian and after a byte order mark
    assert stored[flows[True]] == [flows[True], "pii:email"]

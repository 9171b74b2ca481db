"""A whole reply whose type names `charset=utf-16` (or UTF-32) without a byte-order mark is also read in the other byte
order (`charsets.readings`): that reading, as long as the reply and no JSON, was kept beside the content before the
reply's own tool calls and reasoning were, and took the scan limit's room, so on a reply of 1.2 MB (600,000
characters of content) the address in a tool call's arguments and the card number in its reasoning were not scanned:
`scan:truncated` alone, where the same reply without a charset is `pii:email` and `pii:credit_card`. They are read first
now; the reading in the other order takes what room is left (and says `scan:truncated` when that is not all of it)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from proxy.config import DetectorSpec
from proxy.detectors import TRUNCATED, Detectors
from proxy.flow import Outcome
from proxy.protocols.openai import ReplyObserver
from tests.harness import LoopThread, ProxyHandle
from tests.ingress.test_compressed_replies_read import CONFIG
from tests.ingress.test_model_output_labels import stored_output_labels
from tests.servers.raw_origin import proxy_in_front, request_body

DETECTORS = Detectors([DetectorSpec("email"), DetectorSpec("credit_card")])
MESSAGE = {"role": "assistant", "content": "x " * 300_000, "reasoning_content": "pay with 4111 1111 1111 1111",
           "tool_calls": [{"id": "t1", "type": "function", "function": {
               "name": "send", "arguments": '{"to": "bob@example.org"}'}}]}  # fmt: skip
REPLY = orjson.dumps({"id": "c1", "object": "chat.completion", "created": 1, "model": "m", "choices": [
    {"index": 0, "message": MESSAGE, "finish_reason": "tool_calls"}]}).decode()  # fmt: skip
OWN = {"pii:email", "pii:credit_card"}  # the labels of the reply's own fields


def observed(data: bytes, content_type: str, pieces: int | None) -> Outcome:
    outcome = Outcome(started_ns=1)
    observer = ReplyObserver(outcome, DETECTORS, False)
    observer.head(200, {"content-type": content_type}.get)
    if pieces is None:
        observer.body(data)
    else:
        for start in range(0, len(data), pieces):
            observer.chunk(data[start : start + pieces])
    observer.finish()
    return outcome


# (UTF-32's other order is no text, its reading cut at `MOST_REPLACED`: it passed before too)
@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
@pytest.mark.parametrize("pieces", [None, 65_536])
def test_a_reply_s_own_fields_are_read_before_its_reading_in_the_other_byte_order(
    encoding: str, pieces: int | None
) -> None:
    data = REPLY.encode(encoding)[2 if encoding == "utf-16" else 4 :]  # (no byte-order mark: both orders read)
    assert observed(data, "application/json", pieces).output_detected == OWN  # (the control: no charset)
    # before: {scan:truncated} alone
    assert observed(data, f"application/json; charset={encoding}", pieces).output_detected == OWN | {TRUNCATED}


def test_a_small_reply_s_reading_in_the_other_byte_order_is_read_whole() -> None:
    """The control (as before): the room left is the reading's, so a reply it fits in is not `scan:truncated`, and a
    value in that reading alone is found (an address in UTF-16-BE, whose little-endian reading is the JSON)."""
    hidden = "bob@example.org".encode("utf-16-be").decode("utf-16-le")
    reply = REPLY.replace("x " * 300_000, "write to " + hidden).replace("4111 1111 1111 1111", "none")
    data = reply.replace("bob@example.org", "bob").encode("utf-16-le")
    assert observed(data, "application/json; charset=utf-16", None).output_detected == {"pii:email"}
    assert observed(data, "application/json", None).output_detected == set()  # (the control: no charset)


SEEN: dict[str, Any] = {}


async def answer(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    await request_body(head, reader)
    body = REPLY.encode("utf-16-le")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-16\r\nContent-Length: %d\r\n\r\n%s"
                 % (len(body), body))  # fmt: skip
    await writer.drain()
    return True


@pytest.fixture
def proxy(make_proxy, loop_thread: LoopThread) -> Iterator[ProxyHandle]:  # type: ignore[no-untyped-def]
    config = CONFIG.replace("detectors: [email]", "detectors: [email, credit_card]").replace(
        "labels: [pii:email, scan:truncated]", "labels: [pii:email, pii:credit_card, scan:truncated]"
    )
    with proxy_in_front(loop_thread, make_proxy, config, answer) as handle:
        yield handle


def test_through_the_proxy_with_requests(proxy: ProxyHandle, loop_thread: LoopThread, tmp_path: Path) -> None:
    reply = requests.post(f"{proxy.url}/v1/chat/completions", json={"model": "m", "messages": [
        {"role": "user", "content": "hi"}]}, headers={"x-data-labels": "flow-big"}, timeout=30)  # fmt: skip
    assert reply.status_code == 200, reply.text
    assert "bob@example.org" in reply.json()["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
    loop_thread.run(proxy.process.runtime.sinks.flush())
    # before: ["flow-big", "scan:truncated"]
    assert stored_output_labels(tmp_path / "lineage.db")["flow-big"] == [
        "flow-big", "pii:credit_card", "pii:email", TRUNCATED]  # fmt: skip

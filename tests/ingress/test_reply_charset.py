"""A whole reply whose `Content-Type` names a `charset` other than UTF-8's: `requests`' `.json()` and `.text` decode it
by that charset (the openai SDK reads the bytes as UTF-8, or UTF-16 and UTF-32 by their zero bytes). The proxy read
every reply as UTF-8 alone: under `charset=utf-7` the model's `bob+AEA-example.org` is `bob@example.org` to
`requests`, and the call was recorded clean; under `charset=shift_jis` a `\\` second byte (表 is 0x95 0x5C) made the
UTF-8 reading no JSON, so the reply was passed on unread (`scan:truncated`), the address the client read not
`pii:email`; under a charset Python does not know, clean. It is read as those clients read it too, with the bounds a
KServe V1 request body in a charset has (`proxy.protocols.charsets`)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
import requests

from proxy.config import DetectorSpec
from proxy.detectors import TRUNCATED, Detectors
from proxy.flow import Outcome
from proxy.protocols.kserve import ReplyObserver
from proxy.protocols.openai import ReplyObserver as OpenAiReplyObserver
from tests.harness import LoopThread, ProxyHandle
from tests.ingress.test_compressed_replies_read import CONFIG, OUT, STREAM
from tests.ingress.test_model_output_labels import stored_output_labels
from tests.servers.otlp_receiver import OtlpReceiver
from tests.servers.raw_origin import proxy_in_front, raw_origin, request_body

# charset -> (the model's content in it, the labels the call's output gets, whether `requests` reads OUT)
CASES: dict[str, tuple[bytes, str, bool]] = {
    "utf-7": (b"write to " + OUT.replace("@", "+AEA-").encode(), "pii:email", True),  # (before: clean)
    "shift_jis": (("表 " + OUT).encode("shift_jis"), "pii:email", True),  # (before: scan:truncated alone)
    "x-unknown": (OUT.encode(), "pii:email," + TRUNCATED, True),  # (before: pii:email alone)
    # (before: pii:email,scan:truncated, from its UTF-8 reading's U+FFFD: `requests` reads it whole)
    "latin-1": (("andré " + OUT).encode("latin-1"), "pii:email", True),
    "utf-8": (("表 " + OUT).encode(), "pii:email", True),  # (the control: unchanged)
}
SEEN: dict[str, Any] = {}


def chat(content: bytes) -> bytes:
    reply = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "@@"}, "finish_reason": "stop"}]}  # fmt: skip
    return orjson.dumps(reply).replace(b"@@", content)


async def answer(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    await request_body(head, reader)
    charset = SEEN["charset"]
    if charset == "stream":  # an event stream naming UTF-7: its events are UTF-8 to SSE clients
        body = STREAM.replace(b"bob@exa", b"bob+AEA-exa")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-7\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(body), body))  # fmt: skip
        await writer.drain()
        return True
    body = chat(CASES[charset][0])
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=%s\r\nContent-Length: %d\r\n\r\n%s"
                 % (charset.encode(), len(body), body))  # fmt: skip
    await writer.drain()
    return True


@pytest.fixture
def proxy(make_proxy, loop_thread: LoopThread) -> Iterator[ProxyHandle]:  # type: ignore[no-untyped-def]
    with proxy_in_front(loop_thread, make_proxy, CONFIG, answer) as handle:
        yield handle


@pytest.mark.parametrize("charset", list(CASES))
def test_a_reply_in_a_declared_charset_is_read_as_requests_reads_it(
    proxy: ProxyHandle, loop_thread: LoopThread, tmp_path: Path, charset: str
) -> None:
    SEEN["charset"] = charset
    flow = f"flow-{charset}"
    reply = requests.post(f"{proxy.url}/v1/chat/completions", json={"model": "m", "messages": [
        {"role": "user", "content": "hi"}]}, headers={"x-data-labels": flow}, timeout=10)  # fmt: skip
    assert reply.status_code == 200, reply.text
    if charset != "x-unknown":  # (requests' decode fails for a charset Python does not know: .json() of the bytes)
        assert reply.encoding == charset
    assert (OUT in reply.json()["choices"][0]["message"]["content"]) is CASES[charset][2]  # the client read it
    labels = CASES[charset][1]
    assert reply.headers["x-data-labels"] == f"{flow},{labels}"
    loop_thread.run(proxy.process.runtime.sinks.flush())
    assert stored_output_labels(tmp_path / "lineage.db")[flow] == [flow, *labels.split(",")]


def test_an_event_stream_naming_a_charset_is_read_as_utf8_as_sse_clients_read_it(
    proxy: ProxyHandle, loop_thread: LoopThread, tmp_path: Path
) -> None:
    SEEN["charset"] = "stream"
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=10)
    stream = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], stream=True,
                                            extra_headers={"x-data-labels": "flow-stream"})  # fmt: skip
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "write to bob+AEA-example.org"  # (the SDK decodes events as UTF-8)
    loop_thread.run(proxy.process.runtime.sinks.flush())
    assert stored_output_labels(tmp_path / "lineage.db")["flow-stream"] == ["flow-stream"]


def test_a_kserve_v1_reply_in_a_declared_charset_is_read_in_it() -> None:
    """KServe V1's reply observer (a custom model's `predict` may answer its own response with a charset)."""
    detectors = Detectors([DetectorSpec("email")])

    def observed(body: bytes, content_type: str) -> Outcome:
        outcome = Outcome(started_ns=1)
        observer = ReplyObserver(outcome, detectors, True)
        observer.head(200, {"content-type": content_type}.get)
        observer.body(body)
        observer.finish()
        return outcome

    utf7 = b'{"predictions": ["' + OUT.replace("@", "+AEA-").encode() + b'"]}'
    assert observed(utf7, "application/json; charset=UTF-7").output_detected == {"pii:email"}  # before: set()
    # captured: withheld, no text as read in UTF-8 holding the address to mask (before: captured as sent)
    assert observed(utf7, "application/json; charset=UTF-7").content[0].startswith("[withheld:")
    assert observed(utf7, "application/json").output_detected == set()  # (not an address to any client)
    latin1 = '{"predictions": ["andré.' + OUT + '"]}'
    # the UTF-8 reading replaces é, requests' reading has it and the address whole: what the client reads is read
    # whole (before: scan:truncated too, from the UTF-8 reading)
    assert observed(latin1.encode("latin-1"), "application/json; charset=latin-1").output_detected == {"pii:email"}
    # an address both readings hold is masked in the captured UTF-8 reading (before: the output withheld); one that
    # stands in the charset's reading alone (`andré.bob@…`, `jörg@exämple.de`) still withholds it
    spaced = '{"predictions": ["andré ' + OUT + '"]}'
    assert observed(spaced.encode("latin-1"), "application/json; charset=latin-1").content == (
        "andr\ufffd [pii:email]",
    )
    for alone in (latin1, '{"predictions": ["' + OUT + ' to jörg@exämple.de"]}'):
        assert (
            observed(alone.encode("latin-1"), "application/json; charset=latin-1").content[0].startswith("[withheld:")
        )
    # (no charset named: the UTF-8 reading is the client's, its U+FFFD unread)
    assert observed(latin1.encode("latin-1"), "application/json").output_detected == {"pii:email", TRUNCATED}
    # (bytes that are no text in the charset named: unread still)
    assert observed(b'{"predictions": ["\xff\xfe ' + OUT.encode() + b'"]}', "application/json; charset=shift_jis"
                    ).output_detected == {"pii:email", TRUNCATED}  # fmt: skip


CAPTURING = CONFIG.replace(
    "lineage:", 'telemetry: {exporter: otlp, endpoint: "${OTLP}", capture_content: true}\nlineage:'
)
# charset -> the model's content in it: an address to `requests` (`.text`), not in the UTF-8 reading
HIDDEN: dict[str, bytes] = {
    "utf-7": b"write to " + OUT.replace("@", "+AEA-").encode(),
    # (a second address in it beside one in both readings: masked in the UTF-8 reading, the other not)
    "UTF-7": b"write to alice@example.com and " + OUT.replace("@", "+AEA-").encode(),
}


@pytest.fixture
def capturing(make_proxy, loop_thread: LoopThread, otlp: OtlpReceiver) -> Iterator[ProxyHandle]:  # type: ignore[no-untyped-def]
    async def answered(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        await request_body(head, reader)
        charset = SEEN["charset"]
        body = chat(HIDDEN[charset])
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=%s\r\nContent-Length: %d\r\n\r\n%s"
                     % (charset.encode(), len(body), body))  # fmt: skip
        await writer.drain()
        return True

    server, port = loop_thread.run(raw_origin(answered)())
    try:
        yield make_proxy(CAPTURING, UPSTREAM=f"http://127.0.0.1:{port}", OTLP=f"http://127.0.0.1:{otlp.port}")
    finally:

        async def close() -> None:
            server.close()

        loop_thread.run(close())


@pytest.mark.parametrize("charset", list(HIDDEN))
def test_an_address_only_the_charset_reading_holds_is_not_captured(
    capturing: ProxyHandle, otlp: OtlpReceiver, charset: str
) -> None:
    """With `capture_content`, the span's captured output is the UTF-8 reading, masked; an address only the reading in
    the reply's charset holds (`bob+AEA-example.org`, `bob@example.org` to `requests`) is in no text the masker reads:
    the span carried it, readable to anyone who decodes it so, where the call's labels said `pii:email` (the request
    side withholds such content). Now withheld, as a request's is."""
    SEEN["charset"] = charset
    reply = requests.post(f"{capturing.url}/v1/chat/completions", json={"model": "m", "messages": [
        {"role": "user", "content": "hi"}]}, timeout=10)  # fmt: skip
    assert reply.status_code == 200, reply.text
    assert OUT in reply.json()["choices"][0]["message"]["content"]  # (what `requests` reads)
    assert "pii:email" in reply.headers["x-data-labels"].split(","), reply.headers
    span = otlp.by_trace(reply.headers["x-trace-id"])
    messages = orjson.loads(span.attributes["gen_ai.output.messages"])
    captured = "".join(part["content"] for message in messages for part in message["parts"])
    # before: "write to bob+AEA-example.org" (and "write to [pii:email] and bob+AEA-example.org")
    assert "+AEA-" not in captured and "example" not in captured, captured
    assert captured.startswith("[withheld:"), captured


def test_a_reply_whose_charset_reading_the_scan_limit_cut_has_its_captured_output_withheld() -> None:
    """The reply's reading in its charset is read after its own fields (70125f0); where those fill the scan limit, it
    is not read, and what it holds is not known: the captured output (the UTF-8 reading, `bob+AEA-example.org`, an
    address to `requests`) is withheld, as when a value is found in it. Before: captured as sent, the output
    `scan:truncated` alone."""
    outcome = Outcome(started_ns=1)
    observer = OpenAiReplyObserver(outcome, Detectors([DetectorSpec("email")], max_chars=2000), True)
    observer.head(200, {"content-type": "application/json; charset=utf-7"}.get)
    reply = {
        "id": "c", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "write to bob+AEA-example.org",
            "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": "y" * 3000}}],
        }}],
    }  # fmt: skip
    observer.body(orjson.dumps(reply))
    observer.finish()
    assert TRUNCATED in outcome.output_detected, outcome.output_detected
    assert outcome.content is not None and outcome.content[0].startswith("[withheld:"), outcome.content

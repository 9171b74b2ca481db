"""What held in a hunt (2026-12-05) for a call that leaves no record, or a false one: each case compares what the
client got (status, bytes) with the call's span (`http.response.status_code`, `error.type`, finish reasons). None
was a defect; kept as regressions.

- a client that resets its connection (RST) before the reply's head, after it, after the first event: recorded
  `client_disconnected`, with the 200 it got once the head went out, none before, the upstream's call cancelled;
- a client that resets after an event stream's `data: [DONE]`, the upstream's last chunk not yet sent: the proxy
  ended the reply at `[DONE]` (its `0\\r\\n\\r\\n` sent), so the client had it whole, and the record says so;
- interim replies (100, 102, 103 Early Hints, two of them) before the upstream's final one: the final status, as the
  client got it; a 1xx framing a body is refused, 502 `upstream_unavailable`, recorded so;
- a reply to HEAD carrying a body anyway (sized, chunked): the client gets the head alone and its next call on the
  connection its own reply, both recorded 200;
- bytes after a sized reply (in its packet, or later on the idle connection): the next call is served by its own
  reply, not by those bytes;
- an upstream that answers (413, Connection: close) before the request's body is all sent: 413 to the client and on
  the record;
- an upstream's own `x-trace-id` and `x-lineage-*` reply fields: dropped, the client's `x-trace-id` names the
  proxy's span;
- an upstream that resets before its head (502 `upstream_unavailable`), after it, after an event, before a chunked
  JSON reply's last chunk (the client's connection cut, 200 `upstream_reset`), after `[DONE]` (the reply whole);
- two calls at once under one `traceparent`: a span each, of its own span id and labels.

The upstream is a raw asyncio server (each data reply scripted) on the proxy's loop; clients are raw sockets, httpx
and the openai SDK; the spans are the OTLP receiver's."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.harness import LoopThread, ProxyHandle
from tests.servers.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.test_unsized_replies_output import CONFIG

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]

CHAT = orjson.dumps({"id": "c1", "object": "chat.completion", "created": 1, "model": "m", "choices": [
    {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]})  # fmt: skip
CHUNK = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
         "choices": [{"index": 0, "delta": {"content": "hello"}, "finish_reason": None}]}  # fmt: skip
LAST = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}  # fmt: skip
METADATA = {
    b"/v1/models": orjson.dumps({"object": "list", "data": [{"id": "m", "object": "model", "owned_by": "vllm"}]}),
    b"/v2/models/iris": orjson.dumps({"name": "iris", "versions": ["1"], "platform": "x", "inputs": [], "outputs": []}),
}
STREAM_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def event(data: bytes) -> bytes:
    """One SSE event as one chunk."""
    piece = b"data: " + data + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(piece), piece)


def sized(status: bytes, body: bytes, fields: bytes = b"") -> bytes:
    return b"HTTP/1.1 %s\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s" % (
        status, fields, len(body), body)  # fmt: skip


class Upstream:
    """An OpenAI-compatible upstream: `GET`s are its metadata (`/v1/models` lists model `m`); any other request is answered by the next
    script of `scripts` (its head read, its body not: the script reads it, or not), which returns False when the
    connection is to close. `ended` is set when a connection the proxy closed (EOF, reset) ends."""

    def __init__(self) -> None:
        self.scripts: list[Script] = []
        self.ended = threading.Event()
        self.head = b""  # the head of the request a script answers

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                method, path, _ = head.split(b" ", 2)
                if method == b"GET":  # the proxy's metadata asks (its config's OIP upstream is this server too)
                    body = METADATA.get(path, b"{}")
                    writer.write(sized(b"200 OK", body))
                    await writer.drain()
                    continue
                self.head = head
                if not await self.scripts.pop(0)(reader, writer):
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            self.ended.set()
        finally:
            writer.close()


async def read_body(reader: asyncio.StreamReader, head: bytes) -> None:
    """Read the request's body, as its Content-Length says."""
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":", 1)[1]))


@dataclass
class Setup:
    upstream: Upstream
    proxy: ProxyHandle
    otlp: OtlpReceiver
    loop_thread: LoopThread

    def span(self, trace_id: str) -> ReceivedSpan:
        self.loop_thread.run(self.proxy.process.runtime.sinks.flush())
        return self.otlp.by_trace(trace_id)

    def spans(self, count: int) -> list[ReceivedSpan]:
        self.loop_thread.run(self.proxy.process.runtime.sinks.flush())
        return self.otlp.wait_for(lambda spans: len(spans) >= count)

    def socket(self) -> socket.socket:
        host, _, port = str(self.proxy.bound.http).rpartition(":")
        sock = socket.create_connection((host, int(port)), timeout=10)
        return sock


@pytest.fixture
def setup(loop_thread: LoopThread, make_proxy: Any, otlp: OtlpReceiver) -> Iterator[Setup]:
    upstream = Upstream()

    async def start() -> asyncio.Server:
        return await asyncio.start_server(upstream.serve, "127.0.0.1", 0)

    server = loop_thread.run(start())
    port = server.sockets[0].getsockname()[1]
    proxy = make_proxy(CONFIG, UPSTREAM=f"http://127.0.0.1:{port}", OTLP=f"http://127.0.0.1:{otlp.port}")
    yield Setup(upstream, proxy, otlp, loop_thread)
    server.close()


def status_and_error(span: ReceivedSpan) -> tuple[Any, Any]:
    return span.attributes.get("http.response.status_code"), span.attributes.get("error.type")


def reset(sock: socket.socket) -> None:
    """Close with a reset (RST), not a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def chat_request(stream: bool) -> bytes:
    body = orjson.dumps({"model": "m", "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\n"
    return head + b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    got = b""
    while marker not in got:
        data = sock.recv(65536)
        assert data, got
        got += data
    return got


def trace_of(head: bytes) -> str:
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"x-trace-id:"):
            return line.split(b":", 1)[1].strip().decode()
    raise AssertionError(head)


@pytest.mark.parametrize("stage", ["before_head", "after_head", "after_first_event"])
def test_a_client_that_resets_mid_stream_is_recorded_as_gone(setup: Setup, stage: str) -> None:
    reached = threading.Event()

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        await reader.readexactly(len(chat_request(True).split(b"\r\n\r\n", 1)[1]))
        if stage != "before_head":
            writer.write(STREAM_HEAD)
        if stage == "after_first_event":
            writer.write(event(orjson.dumps(CHUNK)))
        await writer.drain()
        reached.set()
        await reader.read()  # until the proxy cancels this call (its connection closed)
        setup.upstream.ended.set()
        return False

    setup.upstream.scripts.append(script)
    sock = setup.socket()
    sock.sendall(chat_request(True))
    assert reached.wait(10)
    got = b""
    if stage == "after_head":
        got = read_until(sock, b"\r\n\r\n")
    elif stage == "after_first_event":
        got = read_until(sock, b'"hello"')
    reset(sock)
    assert setup.upstream.ended.wait(10)  # the upstream's call cancelled with it
    (span,) = setup.spans(1)
    if got:
        assert span.trace_id == trace_of(got)
    assert status_and_error(span) == (None if stage == "before_head" else 200, "client_disconnected")


def test_a_client_that_resets_after_done_got_the_reply_whole_as_recorded(setup: Setup) -> None:
    gate = asyncio.Event()

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        await reader.readexactly(len(chat_request(True).split(b"\r\n\r\n", 1)[1]))
        writer.write(STREAM_HEAD + event(orjson.dumps(CHUNK)) + event(orjson.dumps(LAST)) + event(b"[DONE]"))
        await gate.wait()  # the last chunk (`0\r\n\r\n`) held back
        writer.write(b"0\r\n\r\n")
        return True

    setup.upstream.scripts.append(script)
    sock = setup.socket()
    sock.sendall(chat_request(True))
    got = read_until(sock, b"data: [DONE]\n\n\r\n0\r\n\r\n")  # the proxy ended the reply at [DONE]
    reset(sock)
    span = setup.span(trace_of(got))
    setup.loop_thread.loop.call_soon_threadsafe(gate.set)
    assert status_and_error(span) == (200, None)
    assert span.attributes["gen_ai.response.finish_reasons"] == ["stop"]


@pytest.mark.parametrize(
    ("interim", "final", "status", "error"),
    [
        (b"HTTP/1.1 103 Early Hints\r\nLink: </a.js>; rel=preload\r\n\r\n", sized(b"200 OK", CHAT), 200, None),
        (b"HTTP/1.1 100 Continue\r\n\r\n", sized(b"200 OK", CHAT), 200, None),
        (b"HTTP/1.1 102 Processing\r\n\r\n", sized(b"200 OK", CHAT), 200, None),
        (b"HTTP/1.1 103 Early Hints\r\n\r\n" * 2, sized(b"500 Internal Server Error", b'{"error":"x"}'), 500, "500"),
        (b"HTTP/1.1 199 Odd\r\nContent-Length: 0\r\n\r\n", sized(b"200 OK", CHAT), 502, "upstream_unavailable"),
    ],
)
def test_interim_replies_leave_the_final_status_on_the_record(
    setup: Setup, interim: bytes, final: bytes, status: int, error: str | None
) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        await reader.readexactly(len(chat_request(False).split(b"\r\n\r\n", 1)[1]))
        writer.write(interim)
        await writer.drain()
        writer.write(final)
        return True

    setup.upstream.scripts.append(script)
    reply = httpx.post(f"{setup.proxy.url}/v1/chat/completions", content=chat_request(False).split(b"\r\n\r\n", 1)[1],
                       headers={"content-type": "application/json"}, timeout=10)  # fmt: skip
    assert reply.status_code == status
    assert status_and_error(setup.span(reply.headers["x-trace-id"])) == (status, error)


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ],
)
def test_a_head_reply_with_a_body_anyway_leaves_the_next_call_its_own(setup: Setup, answer: bytes) -> None:
    async def head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer)
        return True

    async def chat(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        await reader.readexactly(len(chat_request(False).split(b"\r\n\r\n", 1)[1]))
        writer.write(sized(b"200 OK", CHAT))
        return True

    setup.upstream.scripts += [head, head, chat]
    with httpx.Client(base_url=setup.proxy.url, timeout=10) as client:  # one connection to the proxy
        # (a model's own entry: forwarded as a HEAD; the listing's HEAD is asked as its GET since 2026-12-05)
        first, second = client.head("/v1/models/m"), client.head("/v1/models/m")
        third = client.post("/v1/chat/completions", content=chat_request(False).split(b"\r\n\r\n", 1)[1],
                            headers={"content-type": "application/json"})  # fmt: skip
    assert (first.status_code, first.content, second.status_code, second.content) == (200, b"", 200, b"")
    assert third.json()["choices"][0]["message"]["content"] == "ok"
    for reply in (first, second, third):
        assert status_and_error(setup.span(reply.headers["x-trace-id"])) == (200, None)


def test_bytes_after_a_reply_are_never_the_next_call_s_reply(setup: Setup) -> None:
    later = asyncio.Event()
    stray = sized(b"418 I'm a teapot", b'{"stray":true}')

    async def in_its_packet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        await reader.readexactly(len(chat_request(False).split(b"\r\n\r\n", 1)[1]))
        writer.write(sized(b"200 OK", CHAT) + stray)
        return True

    async def on_the_idle_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        await reader.readexactly(len(chat_request(False).split(b"\r\n\r\n", 1)[1]))
        writer.write(sized(b"200 OK", CHAT))
        await later.wait()  # the call answered, its connection back in the pool
        writer.write(stray)
        await reader.read()  # the proxy closes it
        setup.upstream.ended.set()
        return False

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        await reader.readexactly(len(chat_request(False).split(b"\r\n\r\n", 1)[1]))
        writer.write(sized(b"200 OK", CHAT))
        return True

    body = chat_request(False).split(b"\r\n\r\n", 1)[1]
    headers = {"content-type": "application/json"}
    replies = []
    for first in (in_its_packet, on_the_idle_connection):
        setup.upstream.scripts += [first, answer]
        replies.append(httpx.post(f"{setup.proxy.url}/v1/chat/completions", content=body, headers=headers, timeout=10))
        if first is on_the_idle_connection:
            setup.loop_thread.loop.call_soon_threadsafe(later.set)
            assert setup.upstream.ended.wait(10)
        replies.append(httpx.post(f"{setup.proxy.url}/v1/chat/completions", content=body, headers=headers, timeout=10))
    for reply in replies:
        assert (reply.status_code, reply.content) == (200, CHAT)
        assert status_and_error(setup.span(reply.headers["x-trace-id"])) == (200, None)


def test_an_upstream_answering_before_the_body_is_all_sent_is_recorded_as_it_answered(setup: Setup) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        await reader.readexactly(1024)  # of a 4 MiB body
        writer.write(sized(b"413 Payload Too Large", b'{"error":"too large"}', b"Connection: close\r\n"))
        await writer.drain()
        while await reader.read(1 << 16):  # the rest read and dropped, so that the close sends no reset
            pass
        return False

    setup.upstream.scripts.append(script)
    body = {"model": "m", "messages": [{"role": "user", "content": "x" * (4 << 20)}]}
    reply = httpx.post(f"{setup.proxy.url}/v1/chat/completions", json=body, timeout=30)
    assert (reply.status_code, reply.json()) == (413, {"error": "too large"})
    assert status_and_error(setup.span(reply.headers["x-trace-id"])) == (413, None)


def test_an_upstream_s_own_trace_and_lineage_fields_do_not_reach_the_client(setup: Setup) -> None:
    fields = (b"x-trace-id: 0123456789abcdef0123456789abcdef\r\nX-Lineage-Decision: deny\r\n"
              b"x-data-labels: fake:label\r\nx-lineage-checkpoint: fake\r\nx-lineage-upstream: fake\r\n")  # fmt: skip

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        await read_body(reader, setup.upstream.head)
        writer.write(sized(b"200 OK", CHAT, fields))
        return True

    setup.upstream.scripts.append(script)
    client = openai.OpenAI(base_url=f"{setup.proxy.url}/v1", api_key="k", timeout=10, max_retries=0)
    try:
        raw = client.chat.completions.with_raw_response.create(model="m", messages=[{"role": "user", "content": "hi"}])
    finally:
        client.close()
    assert raw.parse().choices[0].message.content == "ok"
    headers = raw.headers
    assert [headers.get_list(name) for name in ("x-lineage-decision", "x-data-labels", "x-lineage-checkpoint")] == [
        ["allow"], [""], ["m"]]  # fmt: skip
    (trace,) = headers.get_list("x-trace-id")
    assert status_and_error(setup.span(trace)) == (200, None)


@pytest.mark.parametrize("stage", ["before_head", "after_head", "after_first_event", "after_done", "json_unended"])
def test_an_upstream_that_resets_is_recorded_as_the_client_saw_it(setup: Setup, stage: str) -> None:
    """Before its head: 502 `upstream_unavailable` to the client and on the record; after the head went out: the
    client's connection cut, 200 `upstream_reset`; after `[DONE]` the reply was whole (the proxy ended it there)."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        await read_body(reader, setup.upstream.head)
        if stage == "json_unended":  # a chunked JSON reply, whole but for its last chunk
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            writer.write(head + b"%x\r\n%s\r\n" % (len(CHAT), CHAT))
        elif stage != "before_head":
            writer.write(STREAM_HEAD)
        if stage in ("after_first_event", "after_done"):
            writer.write(event(orjson.dumps(CHUNK)))
        if stage == "after_done":
            writer.write(event(orjson.dumps(LAST)) + event(b"[DONE]"))
        await writer.drain()
        writer.transport.abort()
        return False

    setup.upstream.scripts.append(script)
    sock = setup.socket()
    sock.sendall(chat_request(stage != "json_unended"))
    ends = {"before_head": b"}}", "after_done": b"\r\n0\r\n\r\n"}  # a whole reply: the connection is kept
    got = b""
    while not (stage in ends and got.endswith(ends[stage])):
        data = sock.recv(65536)
        if not data:  # the client's connection cut
            assert stage not in ends, got
            break
        got += data
    sock.close()
    span = setup.span(trace_of(got))
    expected = {"before_head": (502, "upstream_unavailable"), "after_done": (200, None)}
    assert status_and_error(span) == expected.get(stage, (200, "upstream_reset"))
    assert got.startswith(b"HTTP/1.1 502 " if stage == "before_head" else b"HTTP/1.1 200 ")


def test_two_calls_under_one_trace_id_leave_a_span_each(setup: Setup) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        await read_body(reader, setup.upstream.head)
        writer.write(sized(b"200 OK", CHAT))
        return True

    setup.upstream.scripts += [script, script]
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    replies: list[httpx.Response] = []

    def call(labels: str) -> None:
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        headers = {"traceparent": traceparent, "x-data-labels": labels}
        replies.append(httpx.post(f"{setup.proxy.url}/v1/chat/completions", json=body, headers=headers, timeout=10))

    threads = [threading.Thread(target=call, args=(labels,)) for labels in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert [(r.status_code, r.headers["x-trace-id"]) for r in replies] == [(200, traceparent[3:35])] * 2
    spans = setup.spans(2)
    assert len(spans) == 2 and len({span.span_id for span in spans}) == 2
    assert sorted(tuple(span.attributes["lineage.input.labels"]) for span in spans) == [("a",), ("b",)]

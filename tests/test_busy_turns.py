"""Many clients at once, through the real listener, while the writes of a turn go out together at its end
(`proxy.transport.batch`: several calls in flight): every client gets its replies whole and in order, pipelined
ones too; a refused call's data never reaches the upstream; and every call leaves its record — one the upstream
saw, one refused, one whose client left mid-reply, one whose upstream died mid-reply.

The upstream holds the first request of every connection until all of them are in, so they are in flight together
and their replies are written in the same turns; it answers later ones at once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httptools
import orjson
import pytest

from proxy.record.store import SqliteStore
from tests.configs import ONE_UPSTREAM
from tests.harness import LoopThread, ProxyHandle
from tests.servers.otlp_receiver import OtlpReceiver

CONFIG = (
    ONE_UPSTREAM
    + """zones:
  - name: secret
    labels: [secret]
    allow_purposes: [research]
telemetry:
  exporter: otlp
  endpoint: ${OTLP}
lineage:
  store: ${STORE}
"""
)

PIPELINING = 4  # connections sending three requests at once: allowed, refused, allowed
WAVE = PIPELINING + 2  # first requests held together: the pipelining ones', the leaving client's, the dying upstream's
SECRET = "do not forward this"


def chat(model: str, text: str) -> bytes:
    return orjson.dumps({"id": "c1", "object": "chat.completion", "created": 1, "model": model, "choices": [
        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]})  # fmt: skip


def event(text: str) -> bytes:
    return b"data: %s\n\n" % orjson.dumps({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                                           "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]})  # fmt: skip


@dataclass
class Upstream:
    """Answers a chat call by its model: `whole-N` a JSON reply with a Content-Length, `stream-N` an event stream,
    `leave` an event stream's first event then nothing until the proxy closes the connection, `die` the same then
    the connection cut."""

    loop: asyncio.AbstractEventLoop
    seen: list[tuple[str, bytes]] = field(default_factory=list)  # (trace id of its traceparent, body)
    held: int = 0
    wave: asyncio.Event = field(default_factory=asyncio.Event)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = True
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                fields = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if line)}
                body = await reader.readexactly(int(fields.get("content-length", "0")))
                if lines[0].startswith("GET"):
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                    continue
                self.seen.append((fields["traceparent"].split("-")[1], body))
                if first and not self.wave.is_set():
                    self.held += 1
                    if self.held == WAVE:
                        self.wave.set()
                    await self.wave.wait()
                first = False
                model = orjson.loads(body)["model"]
                if model.startswith("whole"):
                    reply = chat(model, f"reply to {model}")
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                                 % (len(reply), reply))  # fmt: skip
                    continue
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                )
                for piece in [
                    event(f"reply to {model}"),
                    *([] if model in ("leave", "die") else [b"data: [DONE]\n\n"]),
                ]:
                    writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    await writer.drain()
                if model == "leave":
                    await reader.read()  # until the proxy, its client gone, closes this connection
                    return
                if model == "die":
                    writer.transport.abort()
                    return
                writer.write(b"0\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def request(model: str, *, refused: bool = False, last: bool = True) -> bytes:
    body = orjson.dumps({"model": model, "messages": [{"role": "user", "content": SECRET if refused else "hello"}]})
    fields = b"x-data-labels: secret\r\n" if refused else b"x-data-labels: public\r\n"
    fields += b"Connection: close\r\n" if last else b""
    return b"POST /v1/chat/completions HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\n%s" \
           b"Content-Length: %d\r\n\r\n%s" % (fields, len(body), body)  # fmt: skip


class Replies:
    """httptools' protocol: the replies on one connection, parsed (status, fields, body)."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.done: list[tuple[int, dict[bytes, bytes], bytes]] = []
        self._fields: dict[bytes, bytes] = {}
        self._body = b""

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        self.done.append((self.parser.get_status_code(), self._fields, self._body))
        self._fields, self._body = {}, b""


def parse(data: bytes) -> list[tuple[int, dict[bytes, bytes], bytes]]:
    replies = Replies()
    replies.parser.feed_data(data)
    return replies.done


async def pipelining(port: int, n: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request(f"whole-{n}", last=False) + request("whole-x", refused=True, last=False)
                 + request(f"stream-{n}"))  # fmt: skip
    data = await reader.read()
    writer.close()
    return data


async def one(port: int, model: str) -> bytes:
    """A call whose reply stops after its first event: the client leaves there (`leave`), or the upstream dies
    (`die`); what the client got, its head and that event."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request(model))
    got = await reader.readuntil(b"\r\n\r\n")
    got += await reader.readuntil(b"\n\n\r\n")
    if model == "leave":
        writer.transport.abort()
    else:
        got += await reader.read()  # the cut
    writer.close()
    return got


@pytest.fixture
def started(
    loop_thread: LoopThread, make_proxy: Any, otlp: OtlpReceiver, tmp_path: Path
) -> Iterator[tuple[Upstream, ProxyHandle]]:
    async def start() -> tuple[Upstream, asyncio.Server]:
        upstream = Upstream(asyncio.get_running_loop())
        return upstream, await asyncio.start_server(upstream.serve, "127.0.0.1", 0)

    upstream, server = loop_thread.run(start())
    port = server.sockets[0].getsockname()[1]
    yield upstream, make_proxy(CONFIG, UPSTREAM=f"http://127.0.0.1:{port}", OTLP=f"http://127.0.0.1:{otlp.port}")

    async def stop() -> None:
        server.close()

    loop_thread.run(stop())


def test_calls_in_flight_together_get_their_replies_whole_in_order_and_each_leaves_its_record(
    started: tuple[Upstream, ProxyHandle], otlp: OtlpReceiver, loop_thread: LoopThread, tmp_path: Path
) -> None:
    upstream, proxy = started
    port = proxy.bound.http.port

    async def clients() -> list[bytes]:
        return await asyncio.gather(*(pipelining(port, n) for n in range(PIPELINING)), one(port, "leave"),
                                    one(port, "die"))  # fmt: skip

    got = asyncio.run(asyncio.wait_for(clients(), 30))
    for n, data in enumerate(got[:PIPELINING]):
        replies = parse(data)
        assert [status for status, _, _ in replies] == [200, 403, 200]
        assert orjson.loads(replies[0][2])["choices"][0]["message"]["content"] == f"reply to whole-{n}"
        assert orjson.loads(replies[1][2])["error"]["code"] == "purpose_denied"
        assert replies[2][2] == event(f"reply to stream-{n}") + b"data: [DONE]\n\n"
    leaver, dier = got[PIPELINING:]
    assert leaver.endswith(event("reply to leave") + b"\r\n") and dier.endswith(event("reply to die") + b"\r\n")

    assert not any(SECRET.encode() in body for _, body in upstream.seen)  # a refused call's data never left
    forwarded = {trace: orjson.loads(body)["model"] for trace, body in upstream.seen}
    assert len(forwarded) == 2 * PIPELINING + 2
    refused = {parse(data)[1][1][b"x-trace-id"].decode() for data in got[:PIPELINING]}
    calls = set(forwarded) | refused
    received = otlp.wait_for(lambda spans: {s.trace_id for s in spans} >= calls)
    assert len(received) == len(calls) == 3 * PIPELINING + 2  # one a call, no more
    spans = {span.trace_id: span for span in received}
    assert all(spans[trace].attributes["lineage.decision"] == "deny" for trace in refused)
    errors = {model: spans[trace].attributes.get("error.type") for trace, model in forwarded.items()}
    assert errors.pop("leave") == "client_disconnected" and errors.pop("die") == "upstream_reset"
    assert set(errors.values()) == {None}

    loop_thread.run(proxy.process.runtime.sinks.flush())
    store = SqliteStore(tmp_path / "lineage.db", readonly=True)
    try:
        counts: dict[tuple[str, str], int] = {}
        for row in store.rows():  # an edge a model: summed by flow and decision
            key = (row.key.input_labels, row.key.decision)
            counts[key] = counts.get(key, 0) + row.count
    finally:
        store.close()
    assert counts == {("public", "allow"): 2 * PIPELINING + 2, ("secret", "deny"): PIPELINING}

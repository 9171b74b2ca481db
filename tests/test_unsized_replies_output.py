"""A reply that is not an event stream but is passed on as it arrives (chunked, until close, or over
`limits.buffer_max_bytes`) has its output read for the record as it passes: its labels in the span and on
the edge are those a reply read whole would have. The client gets each piece as it arrives, the bytes as
the upstream sent them; past the bound of what is kept (16 MiB) the output is labelled `scan:truncated`,
as is a reply cut short before its end.

The upstream is a raw asyncio server that frames its replies by hand: chunked (each piece a chunk),
until the connection closes, or with a Content-Length; a reply may wait, after its first piece, until the
test says so."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.harness import LoopThread, ProxyHandle
from tests.servers.otlp_receiver import OtlpReceiver

OUT = "bob@example.org"
EMAIL, TRUNCATED = "pii:email", "scan:truncated"
CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - name: engine
    url: ${UPSTREAM}
  - name: triton
    url: ${UPSTREAM}
    protocol: oip
routes:
  - model: iris
    upstream: triton
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
telemetry:
  exporter: otlp
  endpoint: ${OTLP}
lineage:
  store: ${STORE}
"""

CHAT = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m", "choices": [
    {"index": 0, "message": {"role": "assistant", "content": f"write to {OUT} today"}, "finish_reason": "stop"}]}  # fmt: skip
MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "stop_reason": "end_turn",
           "content": [{"type": "text", "text": f"write to {OUT} today"}], "usage": {"input_tokens": 1, "output_tokens": 1}}  # fmt: skip
RESPONSE = {"id": "resp_1", "object": "response", "model": "m", "status": "completed", "output": [
    {"type": "message", "id": "m_1", "role": "assistant", "content": [{"type": "output_text", "text": f"to {OUT}"}]}]}  # fmt: skip
INFER = {"model_name": "iris", "model_version": "1", "id": "r-1",
         "outputs": [{"name": "TEXT", "datatype": "BYTES", "shape": [1], "data": [f"write to {OUT}"]}]}  # fmt: skip
BODIES = {
    "/v1/chat/completions": {"model": "m", "messages": [{"role": "user", "content": "hello"}]},
    "/v1/messages": {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hello"}]},
    "/v1/responses": {"model": "m", "input": "hello"},
    "/v2/models/iris/infer": {"inputs": [{"name": "X", "datatype": "BYTES", "shape": [1], "data": ["hi"]}]},
}


def pieces(data: bytes, size: int) -> list[bytes]:
    """`data` in pieces of `size` bytes: an address is split across two of them."""
    return [data[at : at + size] for at in range(0, len(data), size)]


@dataclass
class Reply:
    """What the upstream answers the next data call with, and how it frames it."""

    pieces: list[bytes]
    framing: str = "chunked"  # or "close" (until the connection closes), "sized" (Content-Length)
    content_type: str = "application/json"
    fields: dict[str, str] = field(default_factory=dict)
    gate: asyncio.Event | None = None  # awaited after the first piece
    cut: bool = False  # the connection closes before the reply's end


class RawUpstream:
    """An OpenAI-compatible and OIP upstream whose data replies are scripted (`reply`); metadata is
    answered with a Content-Length."""

    def __init__(self) -> None:
        self.reply: Reply | None = None
        self.sent = 0  # pieces of data replies written

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                fields = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if line)}
                await reader.readexactly(int(fields.get("content-length", "0")))
                if method == "GET":
                    await self._metadata(writer, path)
                    continue
                reply, self.reply = self.reply, None
                assert reply is not None, f"unexpected {method} {path}"
                if not await self._data(writer, reply):
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _metadata(self, writer: asyncio.StreamWriter, path: str) -> None:
        if path == "/v1/models":
            body = orjson.dumps({"object": "list", "data": [{"id": "m", "object": "model", "owned_by": "vllm"}]})
        elif path == "/v2/models/iris":
            body = orjson.dumps({"name": "iris", "versions": ["1"], "platform": "x", "inputs": [], "outputs": []})
        else:
            body = b"{}"
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()

    async def _data(self, writer: asyncio.StreamWriter, reply: Reply) -> bool:
        """Write a data reply; False when the connection is to close after it."""
        head = [b"HTTP/1.1 200 OK", b"Content-Type: " + reply.content_type.encode()]
        head += [f"{k}: {v}".encode() for k, v in reply.fields.items()]
        if reply.framing == "chunked":
            head.append(b"Transfer-Encoding: chunked")
        elif reply.framing == "sized":
            head.append(b"Content-Length: %d" % sum(map(len, reply.pieces)))
        else:
            head.append(b"Connection: close")
        writer.write(b"\r\n".join(head) + b"\r\n\r\n")
        for index, piece in enumerate(reply.pieces):
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if reply.framing == "chunked" else piece)
            await writer.drain()
            self.sent += 1
            if index == 0 and reply.gate is not None:
                await reply.gate.wait()
        if reply.cut:
            writer.transport.abort()
            return False
        if reply.framing == "chunked":
            writer.write(b"0\r\n\r\n")
        await writer.drain()
        return reply.framing != "close"


@dataclass
class Setup:
    upstream: RawUpstream
    proxy: ProxyHandle
    otlp: OtlpReceiver
    loop_thread: LoopThread
    store: Path

    def call(self, path: str, flow: str, reply: Reply) -> tuple[httpx.Response, bytes]:
        """One call through the proxy, its reply read whole: the response and the body as it came."""
        self.upstream.reply = reply
        with httpx.stream("POST", f"{self.proxy.url}{path}", json=BODIES[path], timeout=30,
                          headers={"x-data-labels": flow}) as response:  # fmt: skip
            body = b"".join(response.iter_raw())
        return response, body

    def infer(self, headers: dict[str, str] | None = None) -> dict[str, Any]:
        """tritonclient's `infer` of one string to `iris` through the proxy: the reply as its `InferResult` reads it
        (rapidjson's `loads` of the body), raising where it raises."""
        import numpy as np
        import tritonclient.http as httpclient  # (here: most tests of this setup drive no tritonclient)

        client = httpclient.InferenceServerClient(self.proxy.url.removeprefix("http://"))
        tensor = httpclient.InferInput("X", [1], "BYTES")
        tensor.set_data_from_numpy(np.array([b"hi"], dtype=np.object_), binary_data=False)
        try:
            response: dict[str, Any] = client.infer("iris", [tensor], headers=headers).get_response()
            return response
        finally:
            client.close()

    def recorded(self, response: httpx.Response, flow: str) -> tuple[list[str], list[str]]:
        """The call's output labels as its span and its lineage edge have them."""
        # a flush first sends the span now, not when its batch is due (seconds); one after it is seen writes the edge
        self.loop_thread.run(self.proxy.process.runtime.sinks.flush())
        span = self.otlp.by_trace(response.headers["x-trace-id"])
        self.loop_thread.run(self.proxy.process.runtime.sinks.flush())
        return list(span.attributes["lineage.output.labels"]), stored_output_labels(self.store)[flow]


@pytest.fixture
def setup_for(
    loop_thread: LoopThread, make_proxy: Any, otlp: OtlpReceiver, tmp_path: Path
) -> Iterator[Callable[..., Setup]]:
    servers: list[asyncio.Server] = []

    def make(buffer_max_bytes: int | None = None) -> Setup:
        upstream = RawUpstream()

        async def start() -> asyncio.Server:
            return await asyncio.start_server(upstream.serve, "127.0.0.1", 0)

        server = loop_thread.run(start())
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        config = CONFIG + (f"limits: {{buffer_max_bytes: {buffer_max_bytes}}}\n" if buffer_max_bytes else "")
        proxy = make_proxy(config, UPSTREAM=f"http://127.0.0.1:{port}", OTLP=f"http://127.0.0.1:{otlp.port}")
        return Setup(upstream, proxy, otlp, loop_thread, tmp_path / "lineage.db")

    yield make

    async def stop(server: asyncio.Server) -> None:
        server.close()

    for server in servers:
        loop_thread.run(stop(server))


def stored_output_labels(store_path: Path) -> dict[str, list[str]]:
    """The lineage store's edges: output labels by input labels."""
    from proxy.record.store import SqliteStore, split_labels

    store = SqliteStore(store_path, readonly=True)
    try:
        return {r.key.input_labels: split_labels(r.key.output_labels) for r in store.rows()}
    finally:
        store.close()


def test_a_chunked_chat_reply_is_read_as_it_passes_and_each_chunk_goes_on_at_once(setup_for: Any) -> None:
    """The client has the reply's first chunk while the upstream still holds the second: the proxy holds
    nothing back to read it; the client gets the bytes as sent; the record has the output's labels."""
    setup = setup_for()
    gate = asyncio.Event()
    body = orjson.dumps(CHAT)
    sent = pieces(body, len(body) // 2 - 20)  # the address in the second piece
    assert OUT not in sent[0].decode()
    setup.upstream.reply = Reply(sent, gate=gate)
    path, flow = "/v1/chat/completions", "flow-chunked-chat"
    got = b""
    with httpx.stream("POST", f"{setup.proxy.url}{path}", json=BODIES[path], timeout=30,
                      headers={"x-data-labels": flow}) as response:  # fmt: skip
        assert response.status_code == 200 and "content-length" not in response.headers
        assert response.headers["x-data-labels"] == flow  # sent before the output: it cannot say what it holds
        chunks = response.iter_raw()
        while len(got) < len(sent[0]):
            got += next(chunks)
        assert got == sent[0] and setup.upstream.sent == 1  # the upstream waits: nothing more was sent
        setup.loop_thread.loop.call_soon_threadsafe(gate.set)
        got += b"".join(chunks)
    assert got == body
    assert setup.recorded(response, flow) == ([flow, EMAIL], [flow, EMAIL])


@pytest.mark.parametrize(
    ("path", "reply", "framing"),
    [
        ("/v1/messages", MESSAGE, "chunked"),
        ("/v1/responses", RESPONSE, "close"),
        ("/v1/chat/completions", CHAT, "close"),
    ],
)
def test_json_replies_without_a_length_are_read_for_the_record(
    setup_for: Any, path: str, reply: dict[str, Any], framing: str
) -> None:
    setup = setup_for()
    body = orjson.dumps(reply)
    flow = f"flow-{framing}-{path.rsplit('/', 1)[1]}"
    response, got = setup.call(path, flow, Reply(pieces(body, 7), framing=framing))
    assert response.status_code == 200 and got == body
    assert setup.recorded(response, flow) == ([flow, EMAIL], [flow, EMAIL])


def test_a_chat_reply_over_the_buffer_is_read_for_the_record(setup_for: Any) -> None:
    """With a Content-Length over `limits.buffer_max_bytes` the reply passes as it arrives, and is read."""
    setup = setup_for(buffer_max_bytes=64)
    body = orjson.dumps(CHAT)
    response, got = setup.call("/v1/chat/completions", "flow-over", Reply(pieces(body, 50), framing="sized"))
    assert response.status_code == 200 and response.headers["content-length"] == str(len(body)) and got == body
    assert response.headers["x-data-labels"] == "flow-over"
    assert setup.recorded(response, "flow-over") == (["flow-over", EMAIL], ["flow-over", EMAIL])


def test_a_chunked_oip_reply_is_read_for_the_record(setup_for: Any) -> None:
    setup = setup_for()
    body = orjson.dumps(INFER)
    response, got = setup.call("/v2/models/iris/infer", "flow-oip", Reply(pieces(body, 9)))
    assert response.status_code == 200 and got == body
    assert setup.recorded(response, "flow-oip") == (["flow-oip", EMAIL], ["flow-oip", EMAIL])


def test_a_chunked_oip_reply_with_binary_outputs_is_read_as_a_whole_one_is(setup_for: Any) -> None:
    """The binary-tensor extension: the JSON is the first `Inference-Header-Content-Length` bytes, a BYTES
    output's elements follow in binary (each a 4-byte length, then the bytes)."""
    setup = setup_for()
    element = f"write to {OUT}".encode()
    binary = struct.pack("<I", len(element)) + element
    head = orjson.dumps({"model_name": "iris", "model_version": "1", "outputs": [
        {"name": "TEXT", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": len(binary)}}]})  # fmt: skip
    reply = Reply(pieces(head + binary, 11), content_type="application/octet-stream",
                  fields={"Inference-Header-Content-Length": str(len(head))})  # fmt: skip
    response, got = setup.call("/v2/models/iris/infer", "flow-oip-binary", reply)
    assert response.status_code == 200 and got == head + binary
    assert setup.recorded(response, "flow-oip-binary") == (["flow-oip-binary", EMAIL], ["flow-oip-binary", EMAIL])


def test_a_reply_past_what_is_kept_is_labelled_unread(setup_for: Any) -> None:
    """Over 16 MiB of a chunked JSON reply is not kept to be read: it passes whole, labelled `scan:truncated`
    (the address in it is not found: it was not read). Pretty-printed, with logprobs: no line of it is long."""
    setup = setup_for()
    token = {"token": "x", "logprob": -0.5, "bytes": [120], "top_logprobs": []}
    choice = {**CHAT["choices"][0], "logprobs": {"content": [token] * 200_000}}  # type: ignore[dict-item]
    body = orjson.dumps({**CHAT, "choices": [choice]}, option=orjson.OPT_INDENT_2)
    assert len(body) > 16 << 20 and max(map(len, body.split(b"\n"))) < 100
    response, got = setup.call("/v1/chat/completions", "flow-big", Reply(pieces(body, 1 << 20)))
    assert response.status_code == 200 and got == body
    assert setup.recorded(response, "flow-big") == (["flow-big", TRUNCATED], ["flow-big", TRUNCATED])


def test_a_reply_cut_short_is_labelled_unread(setup_for: Any) -> None:
    """A JSON reply whose upstream breaks off before its end: what passed to the client was not read."""
    setup = setup_for()
    body = orjson.dumps(CHAT)
    with pytest.raises(httpx.HTTPError):
        setup.call("/v1/chat/completions", "flow-cut", Reply(pieces(body, 40)[:2], cut=True))
    setup.loop_thread.run(setup.proxy.process.runtime.sinks.flush())
    setup.otlp.wait_for(lambda spans: any("flow-cut" in s.attributes.get("lineage.input.labels", ()) for s in spans))
    span = next(s for s in setup.otlp.spans if "flow-cut" in s.attributes.get("lineage.input.labels", ()))
    assert list(span.attributes["lineage.output.labels"]) == ["flow-cut", TRUNCATED]
    assert stored_output_labels(setup.store)["flow-cut"] == ["flow-cut", TRUNCATED]


def test_an_event_stream_not_named_so_is_still_read_as_one(setup_for: Any) -> None:
    """A stream whose Content-Type does not say `text/event-stream` is known by its first bytes (a field,
    not `{`) and read event by event, as before."""
    setup = setup_for()
    events = [{"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
              for text in ("write to bob@exa", "mple.org")]  # fmt: skip
    stream = b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events) + b"data: [DONE]\n\n"
    response, got = setup.call("/v1/chat/completions", "flow-sse", Reply(pieces(b"\n" + stream, 30)))
    assert response.status_code == 200 and got == b"\n" + stream
    assert setup.recorded(response, "flow-sse") == (["flow-sse", EMAIL], ["flow-sse", EMAIL])

"""A piece of a streamed reply that cannot end it goes to the client before its observer reads it (`Exchange.may_end`):
reading it first cost every event 10-15 µs before its client had it, the first included. The piece that may end the
reply (`[DONE]`, Anthropic's `message_stop`, a Responses `response.completed`, each with its blank line; a sized body's
last byte) still goes out only once the call is recorded, wherever the upstream split it, and however JSON writes the
event's type (`\\u` escapes).

The order is watched in the proxy's process (`interpreted`: the calls patched are direct calls once compiled): the
observer's first read waits until the raw-socket client has the piece; the record (`Exchange.finish`) is matched
against the client connection's writes."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from proxy.detectors import Detectors, DetectorSpec
from proxy.exchange import Exchange
from proxy.flow import Outcome
from proxy.ingress.wire import HttpConnection
from tests.ingress.test_wire import connect
from tests.test_events_after_stream_end import anthropic, chat, sse
from tests.test_exchange import read_until
from tests.test_unsized_replies_output import BODIES, EMAIL, OUT, Reply, setup_for, stored_output_labels  # noqa: F401

DELTA = {"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "item_id": "m"}
# by path: a first event that cannot end the reply (the address in it), and the last event, which ends it
EVENTS = {
    "/v1/chat/completions": (chat(f"write to {OUT}", None), chat("", "stop") + b"data: [DONE]\n\n"),
    "/v1/messages": (
        anthropic("content_block_start", index=0, content_block={"type": "text", "text": ""})
        + anthropic("content_block_delta", index=0, delta={"type": "text_delta", "text": f"write to {OUT}"}),
        anthropic("content_block_stop", index=0) + anthropic("message_stop"),
    ),
    "/v1/responses": (
        sse({**DELTA, "delta": f"write to {OUT}"}),
        sse({"type": "response.completed", "response": {"id": "r", "model": "m", "status": "completed"}}),
    ),
}
# the last events again, their types written with JSON's escapes: no marker's bytes in them (the Anthropic one named
# otherwise too: its name is not what ends it)
ESCAPED = {
    "/v1/messages": b'event: last\ndata: {"type":"message\\u005fstop"}\n\n',
    "/v1/responses": b'data: {"type":"response.\\u0063ompleted","response":{"id":"r","status":"completed"}}\n\n',
}


def request(path: str, flow: str) -> bytes:
    body = orjson.dumps({**BODIES[path], "stream": True})
    return (f"POST {path} HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\nx-data-labels: {flow}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body  # fmt: skip


def framed(piece: bytes, framing: str) -> bytes:
    """A piece as the proxy writes it to an HTTP/1.1 client: a chunk, or as it came (sized)."""
    return b"%x\r\n%s\r\n" % (len(piece), piece) if framing == "chunked" else piece


@pytest.mark.interpreted
@pytest.mark.parametrize("framing", ["chunked", "sized"])
@pytest.mark.parametrize("path", list(EVENTS))
def test_a_first_event_that_cannot_end_the_reply_reaches_the_client_before_it_is_read(
    setup_for: Any,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    framing: str,
) -> None:
    """The observer's first read waits (at most 5 s) for the client to have that piece: read first, as before, the
    client had it only once the wait ran out."""
    setup = setup_for()
    first, last = EVENTS[path]
    client_has = threading.Event()
    waited: list[bool] = []
    chunk = Exchange.chunk

    def read_once_the_client_has_it(self: Exchange, data: bytes) -> bool:
        if not waited:
            waited.append(client_has.wait(5))
        return chunk(self, data)

    monkeypatch.setattr(Exchange, "chunk", read_once_the_client_has_it)
    flow = f"flow-early-{framing}-{path.rsplit('/', 1)[1]}"
    got = _relayed(setup, path, flow, [first, last], framing, client_has.set)
    assert got.startswith(b"HTTP/1.1 200 ") and waited == [True]
    setup.loop_thread.run(setup.proxy.process.runtime.sinks.flush())
    assert stored_output_labels(setup.store)[flow] == [flow, EMAIL]  # read all the same, after its client had it


def _relayed(setup: Any, path: str, flow: str, pieces: list[bytes], framing: str,
             client_has: Callable[[], None] = lambda: None) -> bytes:  # fmt: skip
    """One streamed call through a raw socket whose upstream sends its reply's two `pieces`, the second once the client
    has the first (`client_has` called then): what the client read."""
    gate = asyncio.Event()
    setup.upstream.reply = Reply(pieces, framing=framing, content_type="text/event-stream", gate=gate)
    sock = connect(setup.proxy)
    try:
        sock.sendall(request(path, flow))
        got = read_until(sock, pieces[0])
        client_has()
        setup.loop_thread.loop.call_soon_threadsafe(gate.set)  # the upstream sends its second piece now
        got += read_until(sock, pieces[1]) if framing == "sized" else read_until(sock, b"\r\n0\r\n\r\n")
    finally:
        sock.close()
    return got


def _writes_at_the_record(monkeypatch: pytest.MonkeyPatch) -> tuple[list[bytes], list[int]]:
    """The client connections' writes, and how many there were when each call was recorded (`finish`'s first run)."""
    writes: list[bytes] = []
    records: list[int] = []
    write, finish = HttpConnection.write, Exchange.finish

    def logged(self: HttpConnection, data: bytes) -> None:
        writes.append(data)
        write(self, data)

    def marked(self: Exchange, *args: Any, **kwargs: Any) -> Any:
        if not self.finished:
            records.append(len(writes))
        return finish(self, *args, **kwargs)

    monkeypatch.setattr(HttpConnection, "write", logged)
    monkeypatch.setattr(Exchange, "finish", marked)
    return writes, records


def _ends_after_its_record(setup: Any, path: str, pieces: list[bytes], framing: str, writes: list[bytes],
                           records: list[int]) -> None:  # fmt: skip
    """One call whose reply comes in `pieces` (the last one holding the reply's end), the next sent once the client has
    the one before: the piece that ends it is written after the call's record, the ones before it before."""
    del writes[:], records[:]
    _relayed(setup, path, "flow-split", pieces, framing)
    [at] = records
    assert writes[at] == framed(pieces[1], framing), (pieces, writes, at)  # the first write after the record
    assert b"".join(writes[:at]).endswith(framed(pieces[0], framing))


@pytest.mark.interpreted
@pytest.mark.parametrize("framing", ["chunked", "sized"])
@pytest.mark.parametrize("path", list(EVENTS))
def test_the_piece_that_ends_the_reply_goes_after_its_record_wherever_the_end_is_split(
    setup_for: Any,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    framing: str,
) -> None:
    """The last event split in two at its every byte: the second piece holds its blank line (a sized body's last byte),
    while the first may hold all of the marker, part of it or none (its carried state: a line open, an event whose
    blank line is to come)."""
    setup = setup_for()
    first, last = EVENTS[path]
    writes, records = _writes_at_the_record(monkeypatch)
    for at in range(1, len(last)):
        _ends_after_its_record(setup, path, [first + last[:at], last[at:]], framing, writes, records)


@pytest.mark.interpreted
@pytest.mark.parametrize("path", list(ESCAPED))
def test_a_last_event_whose_type_is_written_with_escapes_goes_after_its_record(
    setup_for: Any,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    path: str,
) -> None:
    setup = setup_for()
    writes, records = _writes_at_the_record(monkeypatch)
    _ends_after_its_record(setup, path, [EVENTS[path][0], ESCAPED[path]], "chunked", writes, records)


# pieces of streams of each API, ends, errors and framing, and the forms near them (no Content-Type, JSON lines, a charset
# that keeps the reply until `keep_max`, then read as an event stream from its start)
FRAGMENTS = [
    *EVENTS["/v1/chat/completions"], *EVENTS["/v1/messages"], *EVENTS["/v1/responses"], *ESCAPED.values(),
    b"data:[DONE]\n\n", b"data: [DONE]x\n\n", anthropic("message_stop").split(b"\n", 1)[1],
    b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error"}}\n\n', sse({"type": "error"}),
    sse({"type": "response.failed", "response": {"id": "r"}}), b'data: {\ndata: "type": "message_stop"\ndata: }\n\n',
    b'data: {\ndata: "type": "response.completed"\ndata: }\n\n', b": ping\n\n", b"\n", b"\r\n", b"\r", b"data\n",
    b"data: \n", b"event: ping\n", b"id: 1\n", b'{"type":"message_stop"}\n', b'{"response": "x", "done": true}\n',
    b"data: x\n\n", b'data: {"a":1}\ndata: {"b":2}\n\n',
]  # fmt: skip
TYPES = ["text/event-stream", None, "application/x-ndjson", "text/plain; charset=latin-1"]


@pytest.mark.parametrize("observer", ["openai.ReplyObserver", "openai.ResponsesObserver", "anthropic.MessagesObserver",
                                      "ollama.OllamaObserver", "tgi.TgiObserver"])  # fmt: skip
def test_a_piece_its_observer_says_cannot_end_the_reply_never_ends_it(observer: str) -> None:
    """`Observer.may_end` False, reading the piece leaves `ended` False: streams of pieces of every API's, split at
    random (seeded), under each Content-Type (review revearly: the reply kept for its charset, read as an event stream
    once past `keep_max`, holds whole events from pieces gone before, `_kept`; no test said so)."""
    module, name = observer.split(".")
    kind = getattr(__import__(f"proxy.protocols.{module}", fromlist=[name]), name)
    rnd = random.Random(observer)
    early = 0
    for _ in range(300):
        content_type = rnd.choice(TYPES)
        body = b"".join(rnd.choice(FRAGMENTS) for _ in range(rnd.randint(1, 8)))
        reader = kind(Outcome(started_ns=0), Detectors([DetectorSpec("email")], keep_max=rnd.choice([40, 300])), True)
        reader.head(200, {"content-type": content_type}.get if content_type else lambda name: None)
        at = 0
        while at < len(body) and not reader.ended:
            piece = body[at : at + rnd.choice([1, 2, 3, 7, 20, 90])]
            at += len(piece)
            ends = reader.may_end(piece)
            reader.chunk(piece)
            assert ends or not reader.ended, (content_type, body, at)
            early += not ends
    assert early > 100  # (pieces said to be unable to end it: not all read first)

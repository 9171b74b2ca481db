"""A reply whose call's flow is new waits for its record's write before it goes out (`Exchange.recorded`): one read
whole, or a stream that came whole in its first piece. Its head said whether the connection stays open as things stood
before that wait: a SIGTERM's drain begun during it found no reply gone out (nothing owed to the client) and closed the
connection after that reply, which still said keep-alive; the request pipelined behind it, whose answer the client then
awaited, was recorded as "pipelined behind the reply that closed the connection for the drain", though no reply had said
so (until 2026-12-05, helper records). The head is now made once the record is written: it says `Connection: close`, as
a reply whose head goes out after the drain began does (a stream's lineage fields still as they were before its body
was read)."""

from __future__ import annotations

import asyncio
import gc
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from proxy.transport.connection import Connection
from tests.harness import LoopThread, start_app
from tests.held import until
from tests.record.test_behind_upgrade_follow_ups import _read_all
from tests.record.test_head_cut_behind_refusal_drain import CONFIG
from tests.record.test_reply_waiting_for_record_unanswered import write_locked
from tests.servers.otlp_receiver import OtlpReceiver
from tests.test_drain_stop_records import Upstream, _ended, _event, _post, recorded_behind

STREAM = "stream"  # a chat message answered with a whole event stream, in one piece with its head; any other, JSON
UNSIZED = "unsized"  # so too, its body chunked (no Content-Length): to an HTTP/1.0 client it ends with the connection
HELD = "held"  # so too, but its head sent alone, its body once the test's gate is set


@pytest.fixture
def gate() -> asyncio.Event:
    return asyncio.Event()


@pytest.fixture
def upstream(loop_thread: LoopThread, gate: asyncio.Event) -> Iterator[str]:
    async def chat(request: web.Request) -> web.StreamResponse:
        content = (await request.json())["messages"][0]["content"]
        if content == HELD:
            held = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            held.enable_chunked_encoding()
            await held.prepare(request)
            await gate.wait()
            await held.write(_event("hi", "stop") + b"data: [DONE]\n\n")
            await held.write_eof()
            return held
        if content in (STREAM, UNSIZED):
            body = _event("hi", "stop") + b"data: [DONE]\n\n"
            reply = web.Response(body=body, headers={"Content-Type": "text/event-stream"})
            if content == UNSIZED:
                reply.enable_chunked_encoding()
            return reply
        return web.json_response({"id": "c", "object": "chat.completion", "created": 1, "model": "m", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]})  # fmt: skip

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", Upstream().models)
    runner, port = loop_thread.run(start_app(app))
    yield f"http://127.0.0.1:{port}"
    loop_thread.loop.call_soon_threadsafe(gate.set)
    loop_thread.run(runner.cleanup())


@pytest.mark.parametrize("reply", ["whole", STREAM])
def test_a_reply_waiting_for_its_record_when_the_drain_begins_says_it_closes_the_connection(
    upstream: str, otlp: OtlpReceiver, make_proxy: Any, loop_thread: LoopThread, reply: str
) -> None:
    proxy = make_proxy(CONFIG, UPSTREAM=upstream, OTLP=f"http://127.0.0.1:{otlp.port}")
    first, second = (f"{0x9D0 + n:032x}" for n in range(2))
    http, sinks = proxy.process._http, proxy.process.runtime.sinks
    with socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=10) as sock:
        # the call's flow is new: its reply waits for the store's write, which another connection's lock holds
        with write_locked(Path(proxy.process.config.lineage.store)):
            sock.sendall(_post(first, reply) + _post(second, "hi"))
            assert until(lambda: bool(sinks._awaited))  # the upstream has answered: the reply waits for the record
            conn = next(c for c in list(http.connections) if c.serving is not None)
            stopping = asyncio.run_coroutine_threadsafe(proxy.process.stop(), loop_thread.loop)
            assert until(lambda: conn.draining)  # the drain has begun while the reply waits for the record
            assert not conn.replying and not conn.cut
        stopping.result(timeout=30)
        got = _read_all(sock)
    head, _, body = got.partition(b"\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 200") and got.count(b"HTTP/1.") == 1, got
    assert b"connection: close" in head.lower(), got  # before: no such field (keep-alive), the connection then closed
    if reply == STREAM:
        assert b"text/event-stream" in head and body.endswith(b"data: [DONE]\n\n"), got
    else:
        assert orjson.loads(body)["choices"][0]["message"]["content"] == "hi", got
    spans = otlp.wait_for(lambda spans: {first, second} <= {s.trace_id for s in spans})
    ended = _ended(spans)
    assert ended[first] == ("allow", None)
    assert ended[second] == ("deny", "drain_timeout")  # the drain closed the connection with that reply, which says so
    assert "closed the connection for the drain" in otlp.by_trace(second).attributes["lineage.reason"]


def test_a_reply_ending_with_its_connection_waiting_for_its_record_when_the_drain_begins_closes_it_itself(
    upstream: str, otlp: OtlpReceiver, make_proxy: Any, loop_thread: LoopThread
) -> None:
    """An event stream with no length to an HTTP/1.0 client asking keep-alive ends with the connection whatever the
    drain does: what is pipelined behind it (a request, a head partly read) is recorded as behind that reply,
    `invalid_request`, as when the drain begins after its head went out (tests/test_drain_stop_records.py). Its head,
    made after the wait for its record (above), no longer said so before that wait: a drain begun during it was taken
    to have closed the connection, both recorded `drain_timeout` (review revrecords, on helper records' change)."""
    proxy = make_proxy(CONFIG, UPSTREAM=upstream, OTLP=f"http://127.0.0.1:{otlp.port}")
    first, second = (f"{0x9E0 + n:032x}" for n in range(2))
    http, sinks = proxy.process._http, proxy.process.runtime.sinks

    def http10(trace_id: str, content: str) -> bytes:
        return _post(trace_id, content).replace(b"HTTP/1.1\r\n", b"HTTP/1.0\r\nConnection: keep-alive\r\n", 1)

    with socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=10) as sock:
        with write_locked(Path(proxy.process.config.lineage.store)):
            sock.sendall(http10(first, UNSIZED) + http10(second, "hi") + b"POST /v1/embeddings HTTP/1.0\r\nCont")
            assert until(lambda: bool(sinks._awaited))  # the upstream has answered: the reply waits for the record
            conn = next(c for c in list(http.connections) if c.serving is not None)
            stopping = asyncio.run_coroutine_threadsafe(proxy.process.stop(), loop_thread.loop)
            assert until(lambda: conn.draining)
            assert not conn.replying and not conn.cut
        stopping.result(timeout=30)
        got = _read_all(sock)
    _behind_the_reply_ending_with_its_connection(got, otlp, first, second)


def test_a_reply_ending_with_its_connection_waiting_for_its_first_event_when_the_drain_begins_closes_it_itself(
    upstream: str, gate: asyncio.Event, otlp: OtlpReceiver, make_proxy: Any, loop_thread: LoopThread
) -> None:
    """So too when the reply's head waits for its first event (`Exchange.wants_first_chunk`: a model the upstream's
    list does not name, the checkpoint read from the reply), its upstream's head in: what is pipelined behind it is
    recorded as behind that reply, `invalid_request`, as when its head went out before the drain. Until 2026-12-05
    (helper smalls) a drain begun during that wait was taken to have closed the connection, `drain_timeout`."""
    proxy = make_proxy(CONFIG, UPSTREAM=upstream, OTLP=f"http://127.0.0.1:{otlp.port}")
    first, second = (f"{0x9F0 + n:032x}" for n in range(2))
    http = proxy.process._http

    def http10(trace_id: str, content: str, model: str = "m") -> bytes:
        body = orjson.dumps({"model": model, "stream": True, "messages": [{"role": "user", "content": content}]})
        return (b"POST /v1/chat/completions HTTP/1.0\r\nConnection: keep-alive\r\nHost: x\r\n"
                b"Content-Type: application/json\r\ntraceparent: 00-%s-00000000000000a1-01\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (trace_id.encode(), len(body), body))  # fmt: skip

    def awaiting_first_event() -> bool:  # the proxy's upstream connection: the reply's head in, its body awaited
        return any(type(c) is Connection and c.parser.head is not None and c._waiter is not None
                   for c in gc.get_objects())  # fmt: skip

    with socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=10) as sock:
        sock.sendall(http10(first, HELD, "unlisted") + http10(second, "hi") + b"POST /v1/embeddings HTTP/1.0\r\nCont")
        assert until(awaiting_first_event)
        conn = next(c for c in list(http.connections) if c.serving is not None)
        stopping = asyncio.run_coroutine_threadsafe(proxy.process.stop(), loop_thread.loop)
        assert until(lambda: conn.draining)
        assert not conn.replying and not conn.cut
        loop_thread.loop.call_soon_threadsafe(gate.set)
        stopping.result(timeout=30)
        got = _read_all(sock)
    _behind_the_reply_ending_with_its_connection(got, otlp, first, second)


def _behind_the_reply_ending_with_its_connection(got: bytes, otlp: OtlpReceiver, first: str, second: str) -> None:
    """The one reply went out framed by the connection's close, saying so; the request pipelined behind it and the
    head partly read behind that (an embeddings POST) are recorded as behind that reply, not as cut by the drain."""
    head, _, body = got.partition(b"\r\n\r\n")
    assert got.count(b"HTTP/1.") == 1 and b"connection: close" in head.lower(), got
    assert b"content-length" not in head.lower() and body.endswith(b"data: [DONE]\n\n"), got  # framed by the close
    recorded_behind(otlp, first, second, "HTTP/1.0")

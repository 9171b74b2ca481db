"""A stream's client has its body's end with the reply's last event (`data: [DONE]`, Anthropic's `message_stop`, a
Responses `response.completed`), whatever the upstream does after it. An upstream that holds its body open past
that event (a keep-alive comment it never sends, a chunked end it sends late) kept a client reading its body to the
end (the Anthropic and Responses SDKs do) waiting for the upstream's `timeout_s` (600 s by default), and the client's
connection with it. The rest of the upstream's reply is read off apart from the call: the connection is kept when the
reply ends within `timeout_s` and `READ_OFF_MAX` bytes, closed when it does not."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import openai
import pytest

from proxy.config import Upstream
from proxy.transport import pool as pool_module
from proxy.transport.pool import ConnectionPool, UpstreamPool
from tests.harness import LoopThread
from tests.test_events_after_stream_end import STREAMS
from tests.test_unsized_replies_output import BODIES, Reply, setup_for  # noqa: F401  # (a fixture)


def engine_pool(setup: Any) -> ConnectionPool:
    process = setup.proxy.process
    return process.pool.pool(next(u for u in setup.proxy.config.upstreams if u.name == "engine"))


def read_off(loop_thread: LoopThread, pool: ConnectionPool) -> None:
    """Until the replies read off past their calls' end are done with."""

    async def wait() -> None:
        if pool.reading_off:
            await asyncio.wait(list(pool.reading_off))

    loop_thread.run(wait())


@pytest.mark.parametrize("path", list(STREAMS))
def test_the_clients_body_ends_at_the_streams_end_while_the_upstream_holds_its_body_open(
    setup_for: Any,  # noqa: F811
    path: str,
) -> None:
    setup = setup_for()
    first, end, after = STREAMS[path]
    gate = asyncio.Event()  # never set while the client reads: the upstream's body stays open
    setup.upstream.reply = Reply([first, after], content_type="text/event-stream", gate=gate)
    flow = f"flow-held-{path.rsplit('/', 1)[1]}"
    with httpx.stream("POST", f"{setup.proxy.url}{path}", json=BODIES[path], timeout=10,
                      headers={"x-data-labels": flow}) as response:  # fmt: skip
        got = b"".join(response.iter_raw())  # to the body's end: it came before any timeout
    assert response.status_code == 200 and got == first and setup.upstream.sent == 1
    assert setup.recorded(response, flow) == ([flow], [flow])  # recorded, span and edge
    pool = engine_pool(setup)
    assert len(pool.reading_off) == 1  # the rest of the reply, read off apart from the call
    setup.loop_thread.loop.call_soon_threadsafe(gate.set)  # the upstream sends the rest, and its body's end
    read_off(setup.loop_thread, pool)
    assert pool.open == len(pool.idle) >= 1  # the connection went back to the pool, none was closed
    kept = pool.open
    # the next call takes that connection: its reply is its own (what the first sent after its end is gone)
    setup.upstream.reply = Reply([first], content_type="text/event-stream")
    with httpx.stream("POST", f"{setup.proxy.url}{path}", json=BODIES[path], timeout=10,
                      headers={"x-data-labels": "flow-next"}) as response:  # fmt: skip
        assert b"".join(response.iter_raw()) == first
    read_off(setup.loop_thread, pool)
    assert pool.open == kept
    assert setup.recorded(response, "flow-next") == (["flow-next"], ["flow-next"])


def test_a_responses_sdk_stream_ends_while_the_upstream_holds_its_body_open(setup_for: Any) -> None:  # noqa: F811
    """The openai SDK's Responses stream reads every event to the body's end."""
    setup = setup_for()
    first, _, after = STREAMS["/v1/responses"]
    gate = asyncio.Event()
    setup.upstream.reply = Reply([first, after], content_type="text/event-stream", gate=gate)
    client = openai.OpenAI(base_url=f"{setup.proxy.url}/v1", api_key="k", timeout=10, max_retries=0)
    try:
        events = [event.type for event in client.responses.create(model="m", input="hello", stream=True)]
    finally:
        setup.loop_thread.loop.call_soon_threadsafe(gate.set)
        client.close()
    assert events == ["response.output_text.delta", "response.completed"]


class HeldReply:
    """An upstream whose reply is a chunked event stream: the end event, then `rest` bytes of comments, then the
    chunked end once `release` is set (its body held open until then); `closed` once the proxy closes."""

    def __init__(self, rest: int) -> None:
        self.rest = rest
        self.release = asyncio.Event()
        self.closed = asyncio.Event()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        event = b"data: [DONE]\n\n"
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"%x\r\n%s\r\n" % (len(event), event))  # fmt: skip
        comment = b": " + b"x" * 65533 + b"\n"
        try:
            sent = 0
            while sent < self.rest:
                writer.write(b"%x\r\n%s\r\n" % (len(comment), comment))
                await writer.drain()
                sent += len(comment)
            eof = asyncio.ensure_future(reader.read())  # b"" once the proxy closes the connection
            released = asyncio.ensure_future(self.release.wait())
            await asyncio.wait([eof, released], return_when=asyncio.FIRST_COMPLETED)
            if released.done():
                writer.write(b"0\r\n\r\n")
                await eof
            released.cancel()
        except ConnectionError:
            pass
        finally:
            self.closed.set()
            writer.close()


async def held_call(upstream: Upstream, server: HeldReply, release: bool = False) -> ConnectionPool:
    listening = await asyncio.start_server(server.serve, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    pool = ConnectionPool(Upstream(name=upstream.name, url=f"http://127.0.0.1:{port}", timeout_s=upstream.timeout_s))
    resp = await pool.request("POST", "/v1/chat/completions", [], b"{}")
    assert resp.buffered().startswith(b"data: [DONE]")
    resp.read_off()
    assert len(pool.reading_off) == 1
    reading = list(pool.reading_off)
    if release:  # the upstream ends its reply now, after the call's end
        server.release.set()
    await asyncio.wait(reading)
    listening.close()
    return pool


def test_a_reply_that_does_not_end_within_the_upstream_timeout_loses_its_connection(loop_thread: LoopThread) -> None:
    server = HeldReply(rest=0)

    async def run() -> ConnectionPool:
        pool = await held_call(Upstream(name="held", url="http://x", timeout_s=0.2), server)
        await server.closed.wait()  # the proxy closed it: the upstream sees it at once
        return pool

    pool = loop_thread.run(run())
    assert pool.open == 0 and not pool.idle


def test_a_reply_holding_more_than_the_bound_past_its_end_loses_its_connection(loop_thread: LoopThread) -> None:
    server = HeldReply(rest=2 * pool_module.READ_OFF_MAX)

    async def run() -> ConnectionPool:
        pool = await held_call(Upstream(name="held", url="http://x", timeout_s=60), server)
        await server.closed.wait()
        return pool

    pool = loop_thread.run(run())
    assert pool.open == 0 and not pool.idle


def test_a_reply_that_ends_soon_after_its_call_keeps_its_connection(loop_thread: LoopThread) -> None:
    server = HeldReply(rest=65536)

    async def run() -> ConnectionPool:
        return await held_call(Upstream(name="held", url="http://x", timeout_s=60), server, release=True)

    pool = loop_thread.run(run())
    assert pool.open == 1 and len(pool.idle) == 1
    pool.close()


def test_shutdown_cuts_a_reply_being_read_off_and_waits_for_nothing_more(loop_thread: LoopThread) -> None:
    """A reply read off past its call's end is no one's: closing the pools (the proxy's stop) cuts it at once, its
    upstream sees the connection closed, and no reading is left running."""
    server = HeldReply(rest=0)

    async def run() -> ConnectionPool:
        listening = await asyncio.start_server(server.serve, "127.0.0.1", 0)
        port = listening.sockets[0].getsockname()[1]
        pools = UpstreamPool()
        pool = pools.pool(Upstream(name="held", url=f"http://127.0.0.1:{port}", timeout_s=600))
        resp = await pool.request("POST", "/v1/chat/completions", [], b"{}")
        resp.read_off()
        reading = list(pool.reading_off)
        assert len(reading) == 1
        await asyncio.wait_for(pools.close(), 10)  # not the read-off's 600 s
        await asyncio.wait_for(server.closed.wait(), 10)
        listening.close()
        assert all(task.done() for task in reading)
        return pool

    pool = loop_thread.run(run())
    assert pool.open == 0 and not pool.reading_off

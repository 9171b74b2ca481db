"""Bytes an upstream sends on an idle keep-alive connection (after a complete reply, before any new request).

A misbehaving upstream's late bytes must never be read as the next request's reply: the pool closes such
a connection and drops it at once, so the next request goes out on a fresh one.

Synchronisation: the upstream writes the late bytes when the test says so and says when they are written;
the proxy closing the connection is seen by the upstream as the end of its stream. No sleeps.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

import httpx
import orjson

from proxy.config import Upstream
from proxy.transport import UpstreamProtocolError
from proxy.transport.connection import Connection
from proxy.transport.pool import UpstreamPool
from tests.harness import LoopThread, ProxyHandle

LATE = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEVIL!"
WAIT_S = 10.0  # bound on every wait; each normally takes milliseconds


def reply(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


def chat(content: str) -> bytes:
    return orjson.dumps({
        "id": "c", "object": "chat.completion", "model": "m", "created": 0,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
    })  # fmt: skip


class LateUpstream:
    """Answers every request on its connection; after the first POST's reply, on `go`, writes LATE unasked.

    `written` is set once LATE is on the wire, `dropped` once the client closed that connection.
    """

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.written = asyncio.Event()
        self.dropped = asyncio.Event()
        self.posts = 0
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.url = ""

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        late = False
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    if late:
                        self.dropped.set()
                    return
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)  # fmt: skip
                await reader.readexactly(length)
                if not head.startswith(b"POST "):  # checkpoint discovery
                    writer.write(reply(b'{"object":"list","data":[{"id":"m","object":"model","root":"m"}]}'))
                    continue
                self.posts += 1
                writer.write(reply(chat(f"reply {self.posts}")))
                await writer.drain()
                if self.posts == 1:
                    await self.go.wait()
                    writer.write(LATE)
                    await writer.drain()
                    late = True
                    self.written.set()
        finally:
            writer.close()


async def wait(event: asyncio.Event, what: str) -> None:
    try:
        await asyncio.wait_for(event.wait(), WAIT_S)
    except TimeoutError:
        raise AssertionError(f"not within {WAIT_S} s: {what}") from None


def test_the_pool_closes_and_drops_an_idle_connection_the_upstream_writes_to() -> None:
    async def main() -> None:
        server = LateUpstream()
        await server.start()
        pool = UpstreamPool()
        up = Upstream(name="up", protocol="openai", url=server.url)

        async def post() -> bytes:
            resp = await pool.request(up, "POST", "/v1/chat/completions", [("Content-Type", "application/json")], b"{}")
            try:
                return await resp.read()
            finally:
                resp.release()

        try:
            assert orjson.loads(await post())["choices"][0]["message"]["content"] == "reply 1"
            idle = pool.pool(up)
            assert len(idle.idle) == 1 and idle.open == 1  # kept alive
            server.go.set()
            await wait(server.written, "the late bytes written")
            await wait(server.dropped, "the proxy closing the connection the late bytes came on")
            assert idle.idle == [] and idle.open == 0  # out of the pool, its slot freed
            assert orjson.loads(await post())["choices"][0]["message"]["content"] == "reply 2"
            assert server.connections == 2
        finally:
            await pool.close()
            await server.stop()

    asyncio.run(main())


CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - {name: late, url: "${UPSTREAM}", protocol: openai, discovery_interval_s: 3600}
routes: [{model: "*", upstream: late}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: null}
"""


def test_late_bytes_never_become_the_next_clients_reply(
    loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle]
) -> None:
    server = LateUpstream()
    loop_thread.run(server.start())
    try:
        proxy = make_proxy(CONFIG, wait="probed", UPSTREAM=server.url)
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        with httpx.Client(base_url=proxy.url, timeout=WAIT_S) as client:
            first = client.post("/v1/chat/completions", json=body)
            assert first.status_code == 200 and first.json()["choices"][0]["message"]["content"] == "reply 1"
            loop_thread.loop.call_soon_threadsafe(server.go.set)
            loop_thread.run(wait(server.written, "the late bytes written"))
            loop_thread.run(wait(server.dropped, "the proxy closing the connection the late bytes came on"))
            second = client.post("/v1/chat/completions", json=body)
        assert second.status_code == 200, second.text
        assert b"EVIL" not in second.content
        assert second.json()["choices"][0]["message"]["content"] == "reply 2"
    finally:
        loop_thread.run(server.stop())


def test_an_idle_connection_aborts_on_any_byte_and_tells_its_pool_once_gone() -> None:
    """The same at the protocol level, no socket: bytes while idle abort; its end is reported only while idle."""
    from tests.transport.test_connection import RecordingTransport

    loop = asyncio.new_event_loop()
    try:
        gone: list[Connection] = []
        conn = Connection(loop, gone.append)
        transport = RecordingTransport()
        conn.connection_made(transport)  # type: ignore[arg-type]
        conn.send("GET", b"GET / HTTP/1.1\r\n\r\n", b"")
        conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        assert conn.parser.done and conn.take() == b"ok"
        conn.idle = True  # given back to its pool
        conn.data_received(LATE)
        assert transport.calls == ["abort"] and isinstance(conn.lost, UpstreamProtocolError)
        assert conn.parser.pieces == deque() and gone == []
        conn.connection_lost(None)  # what the abort leads to
        assert gone == [conn]
        busy = Connection(loop, gone.append)  # not idle: its end is the request's business, not the pool's
        busy.connection_made(RecordingTransport())  # type: ignore[arg-type]
        busy.connection_lost(None)
        assert gone == [conn]
    finally:
        loop.close()

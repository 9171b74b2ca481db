"""The third HTTP reference hop, the "Python floor": the least a Python reverse proxy can do per call.

    python -m benchmarks.floor PORT UPSTREAM_URL [--busy-us N]

`--busy-us N`: the same hop doing a fixed amount of Python work on each request before forwarding it,
as much as takes N µs of CPU on a quiet machine (calibrated at start): a reference for what a hop
costing that much more CPU a call, and doing nothing else, gets in latency (p50, p99, time to first
byte) on this machine. Fixed work, not a loop until N µs have passed: a stall of the CPU (another
process, the hypervisor) during the work delays the reply as it delays any hop's work.

uvloop + asyncio.Protocol + httptools (llhttp), no framework. The client's bytes (head and body, with a
Content-Length or chunked body) go upstream verbatim; the reply's bytes come back verbatim as they
arrive, so a streamed (SSE, chunked) reply passes chunk by chunk. The parsers only find where each
request and reply ends: a client connection borrows one pooled keep-alive upstream connection from the
start of a request to the end of its reply (pipelined requests ride the same one), then gives it back.
Not handled, as the benchmark needs none of it: Host and hop-by-hop headers (forwarded as they are),
replies to HEAD, upgrades, and the time limits a real proxy sets.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from typing import Any, cast
from urllib.parse import urlsplit

import httptools

BUSY_ROUNDS = 0  # --busy-us, as rounds of `busy()`
BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
BAD_GATEWAY = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class Pool:
    """The idle keep-alive connections to the upstream; a new one is opened when none is idle."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[Upstream] = []

    def borrow(self, client: Client) -> Upstream:
        upstream = self.idle.pop() if self.idle else self.connect()
        upstream.client = client
        return upstream

    def connect(self) -> Upstream:
        upstream = Upstream(self)  # usable at once: what is sent before the connection is up waits in its backlog

        def opened(done: asyncio.Task[Any]) -> None:
            if not done.cancelled() and done.exception() is not None:
                upstream.unreachable()

        loop = asyncio.get_running_loop()
        loop.create_task(loop.create_connection(lambda: upstream, self.host, self.port)).add_done_callback(opened)
        return upstream


class Upstream(asyncio.Protocol):
    """One connection to the upstream: relays replies to its borrower, and sees where each one ends."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.backlog: list[bytes] = []
        self.parser = httptools.HttpResponseParser(self)
        self.client: Client | None = None  # the borrower; None when idle, or when the borrower has left
        self.pending = 0  # requests sent on this connection whose reply has not ended yet

    def send(self, data: bytes) -> None:
        if self.transport is None:
            self.backlog.append(data)
        else:
            self.transport.write(data)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio's subclasses
        self.transport.writelines(self.backlog)
        self.backlog.clear()

    def data_received(self, data: bytes) -> None:
        if self.client is not None:
            self.client.transport.write(data)  # relayed as it comes: the parser only says where the reply ends
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.close()

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            return  # an interim reply (100 Continue): the final one follows
        self.pending -= 1
        if not self.parser.should_keep_alive():
            self.close()
        elif self.client is not None:
            self.client.release()
        elif self.pending == 0:
            self.pool.idle.append(self)  # its borrower left mid-reply; the rest of the reply is now drained

    def unreachable(self) -> None:
        if self.client is not None:
            self.client.transport.write(BAD_GATEWAY)
            self.close()

    def close(self) -> None:
        """This connection cannot carry on; nor can its borrower's, which must see the reply end."""
        if self.transport is not None:
            self.transport.close()
        if self.client is not None:
            self.client.transport.close()
            self.client.upstream, self.client = None, None

    def connection_lost(self, exc: Exception | None) -> None:
        if self in self.pool.idle:
            self.pool.idle.remove(self)
        self.close()


class Client(asyncio.Protocol):
    """One client connection: its requests are parsed only to know when to borrow and give back."""

    transport: asyncio.Transport

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.parser = httptools.HttpRequestParser(self)
        self.upstream: Upstream | None = None
        self.reading = False  # between the first byte of a request and its last

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if BUSY_ROUNDS:
            busy(BUSY_ROUNDS)
        try:
            self.parser.feed_data(data)  # on_message_begin borrows the connection these bytes go to
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            self.transport.write(BAD_REQUEST)
            self.transport.close()
            return
        if self.upstream is not None:
            self.upstream.send(data)
            self.release()  # only now: these bytes may have ended a request whose reply ended first

    def on_message_begin(self) -> None:
        self.reading = True
        if self.upstream is None:
            self.upstream = self.pool.borrow(self)
        self.upstream.pending += 1

    def on_message_complete(self) -> None:
        self.reading = False

    def release(self) -> None:
        """Gives the upstream connection back once every request sent on it is complete and answered."""
        upstream = self.upstream
        if upstream is None or upstream.pending or self.reading:
            return  # more replies due on it (pipelining), or the next request is already on its way
        upstream.client, self.upstream = None, None
        self.pool.idle.append(upstream)
        if not self.parser.should_keep_alive():
            self.transport.close()

    def pause_writing(self) -> None:  # a slow client slows the upstream down, rather than filling memory
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            upstream.client = None  # it reads on to the end of the reply, then rejoins the pool
            if upstream.transport is not None:
                upstream.transport.resume_reading()
                if self.reading:  # half a request went upstream: the connection is unusable
                    upstream.transport.close()


def busy(rounds: int) -> int:
    """Python work of the kind a proxy does: small dicts, strings and lists made and dropped."""
    total = 0
    for i in range(rounds):
        name, tags = f"call-{i}", [i, i + 1]
        item = {"index": i, "name": name, "tags": tags}
        total += len(item) + len(name) + len(tags)
    return total


def rounds_for(seconds: float) -> int:
    """How many rounds of `busy()` take `seconds` of CPU: the median of a few trials of that length."""
    trial = 500
    for _ in range(3):  # trials of about `seconds` each, so the rounds match caches as a call finds them
        trial = max(1, round(trial * seconds / statistics.median(_cpu_time(trial) for _ in range(15))))
    return trial


def _cpu_time(rounds: int) -> float:
    start = time.thread_time()
    busy(rounds)
    return time.thread_time() - start


async def main(port: int, upstream: str) -> None:
    url = urlsplit(upstream)
    pool = Pool(url.hostname or "127.0.0.1", url.port or 80)
    server = await asyncio.get_running_loop().create_server(lambda: Client(pool), "127.0.0.1", port, backlog=1024)
    print("ready", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    import uvloop

    uvloop.install()
    if "--busy-us" in sys.argv:
        BUSY_ROUNDS = rounds_for(float(sys.argv[sys.argv.index("--busy-us") + 1]) / 1e6)
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))

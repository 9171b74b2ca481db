"""What one gRPC stream holds of what its other side does not read is bounded by limits.grpc_stream_window_bytes.
grpc reads ahead of the proxy into each stream's HTTP/2 receive window, which it sized from the bandwidth-delay
product it measured (BDP probing), without bound: a stream whose client read nothing held 18-66 MiB of its upstream's
replies on loopback, 517 MiB at 80 ms round trip; an upload to an upstream that read nothing held 463 MiB and growing
at 80 ms. The window is now fixed, on the upstream channels (replies) and on the listener (requests). Here the far
side is 80 ms away (a relay delaying each direction 40 ms), and four streams are flooded with 1 MiB messages that
nobody reads; a message larger than the window still passes."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import grpc.aio
import pytest

from proxy.config import Limits
from tests.harness import LoopThread
from tests.ingress.grpc_proxied import proxied
from tests.ingress.test_grpc_streams import CLIENT_OPTIONS, CONFIG, ECHO, FLOOD, MIB, SINK, Upstream
from tests.servers.otlp_receiver import OtlpReceiver

ONE_WAY_S = 0.04
STREAMS = 4
HELD_BACK_S = 5.0  # how long the flooding side must stay held back
# what may pass, in MiB: the proxy's receive window, and a margin for what is on its way and in the hands of each side
# (a message the proxy holds, one in grpc's send buffer toward the other side, that side's own window, one the client
# took to send): measured 143 MiB of replies and 152 of requests with a 32 MiB window, where before the whole flood
# passed (1,024 MiB within the 5 s)
BOUND = STREAMS * (Limits().grpc_stream_window_bytes // len(MIB) + 16)
# the test's upstream reads ahead by a fixed 64 KiB (no BDP): what a client's upload gets past the proxy is the
# proxy's window alone
UPSTREAM_OPTIONS = [
    ("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1), ("grpc.http2.bdp_probe", 0),
    ("grpc.http2.lookahead_bytes", 65_535),
]  # fmt: skip


async def _delayed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Bytes from `reader` to `writer`, each read passed on ONE_WAY_S after it came: a link of that latency."""
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def send() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                writer.close()
                return
            await asyncio.sleep(max(0.0, due - time.monotonic()))  # (the link's latency, not synchronisation)
            writer.write(data)
            await writer.drain()

    sender = asyncio.ensure_future(send())
    try:
        while True:
            data = await reader.read(1 << 20)
            queue.put_nowait((time.monotonic() + ONE_WAY_S, data))
            if not data:
                break
        await sender
    finally:
        sender.cancel()


class _Far:
    """A relay on the test loop to `port`, ONE_WAY_S each way."""

    def __init__(self, loop_thread: LoopThread, port: int) -> None:
        self._loop_thread = loop_thread
        self._links: list[asyncio.Future[Any]] = []

        async def link(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            far_reader, far_writer = await asyncio.open_connection("127.0.0.1", port)
            both = asyncio.gather(_delayed(reader, far_writer), _delayed(far_reader, writer), return_exceptions=True)
            self._links.append(both)
            await both

        async def start() -> asyncio.Server:
            return await asyncio.start_server(link, "127.0.0.1", 0)

        self._server = loop_thread.run(start())
        self.port: int = self._server.sockets[0].getsockname()[1]

    def close(self) -> None:
        async def stop() -> None:
            self._server.close()
            for one in self._links:
                one.cancel()

        self._loop_thread.run(stop())


@pytest.fixture
def far_upstream(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any
) -> Iterator[tuple[Upstream, grpc.Channel]]:
    """The proxy's upstream 80 ms away."""
    upstream = Upstream()

    async def start() -> tuple[grpc.aio.Server, int]:
        server = grpc.aio.server(options=UPSTREAM_OPTIONS)
        server.add_generic_rpc_handlers((upstream,))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, port

    server, port = loop_thread.run(start())
    relay = _Far(loop_thread, port)
    try:
        proxy = make_proxy(
            CONFIG, wait="none", UPSTREAM=f"127.0.0.1:{relay.port}", OTLP=f"http://127.0.0.1:{otlp.port}"
        )
        with grpc.insecure_channel(proxy.grpc, options=CLIENT_OPTIONS) as channel:
            yield upstream, channel
        loop_thread.run(proxy.process.stop())
    finally:
        relay.close()
        loop_thread.run(server.stop(None))


@pytest.fixture
def far_client(loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any) -> Iterator[tuple[Upstream, grpc.Channel]]:
    """The client 80 ms from the proxy."""
    upstream = Upstream()
    with proxied(loop_thread, otlp, make_proxy, CONFIG, upstream, UPSTREAM_OPTIONS) as proxy:
        relay = _Far(loop_thread, int(proxy.grpc.rsplit(":", 1)[1]))
        try:
            options = [*CLIENT_OPTIONS, ("grpc.max_send_message_length", -1)]
            with grpc.insecure_channel(f"127.0.0.1:{relay.port}", options=options) as channel:
                yield upstream, channel
        finally:
            relay.close()


def test_a_far_upstream_flooding_a_client_that_reads_nothing_is_held_back_at_the_window(
    far_upstream: tuple[Upstream, grpc.Channel],
) -> None:
    upstream, channel = far_upstream
    calls = [channel.stream_stream(FLOOD)(iter([b"go"])) for _ in range(STREAMS)]
    for call in calls:
        assert next(call) == MIB
    assert not upstream.wait("flooded", BOUND, HELD_BACK_S), f"{upstream.flooded} MiB read from the upstream"
    for call in calls:
        call.cancel()


class _Uploads:
    """Requests of 1 MiB on STREAMS streams, counted (`taken`) as grpc takes them to send: far past every window."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.taken = 0

    def stream(self) -> Iterator[bytes]:
        for _ in range(BOUND * 2):
            with self.cond:
                self.taken += 1
                self.cond.notify_all()
            yield MIB


def test_a_far_client_uploading_to_an_upstream_that_reads_nothing_is_held_back_at_the_window(
    far_client: tuple[Upstream, grpc.Channel],
) -> None:
    upstream, channel = far_client
    uploads = _Uploads()
    calls = [channel.stream_stream(SINK)(uploads.stream()) for _ in range(STREAMS)]
    assert upstream.wait("arrived", STREAMS)
    # the upstream reads nothing: what the clients could send is what the proxy and the link took
    with uploads.cond:
        past = uploads.cond.wait_for(lambda: uploads.taken > BOUND, HELD_BACK_S)
    for call in calls:
        call.cancel()
    assert not past, f"{uploads.taken} MiB taken from clients whose upstream reads nothing"


def test_a_message_larger_than_the_window_passes_both_ways(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any
) -> None:
    """A window smaller than a message does not wedge the stream: grpc widens a stream's window for the message it is
    reading. The smallest window the config takes, and a message of 4 MiB, each way."""
    upstream = Upstream()
    config = CONFIG + "limits: {grpc_stream_window_bytes: 65535}\n"
    options = [*CLIENT_OPTIONS, ("grpc.max_send_message_length", -1)]
    message = b"\1" * (4 << 20)
    with (
        proxied(loop_thread, otlp, make_proxy, config, upstream, UPSTREAM_OPTIONS) as proxy,
        grpc.insecure_channel(proxy.grpc, options=options) as channel,
    ):
        assert proxy.process.config.limits.grpc_stream_window_bytes == 65_535
        replies = channel.stream_stream(ECHO)(iter([message, message]), timeout=30)
        assert [len(reply) for reply in replies] == [len(message)] * 2

"""gRPC streams through the proxy, both ways: messages relayed one at a time in order (a reply reaches the
client before its next request is sent), a client that stops reading or sending holds the other side back
(back-pressure), a client's cancel reaches the upstream's call, and a cancelled stream leaves nothing behind
that a later call meets (in the compiled build, a coroutine suspended while handling an exception left it as
the thread's handled exception: the next passthrough call's handler ended with that stream's CancelledError)."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import grpc.aio
import pytest

from tests.harness import LoopThread
from tests.ingress.grpc_proxied import proxied
from tests.ingress.test_grpc import _request  # a small ModelInferRequest

SERVICE = "/inference.GRPCInferenceService/"
ECHO, HOLD, FLOOD, SINK = "/test.Streams/Echo", "/test.Streams/Hold", "/test.Streams/Flood", "/test.Streams/Sink"
GREET = "/test.Streams/Greet"
# what `Greet` sends as its initial metadata: its own keys (one binary), and one only the proxy may set
GREETING = (("x-upstream-greeting", "hello"), ("x-upstream-blob-bin", b"\x00\xff"), ("x-lineage-decision", "forged"))
CONFIG = """
listen: {http: 127.0.0.1:0, grpc: 127.0.0.1:0}
upstreams:
  - name: triton
    grpc: ${UPSTREAM}
    protocol: oip
    checkpoint: streams@1
routes:
  - model: "*"
    upstream: triton
policy: {anonymous: allow, default_purpose: assistant, passthrough: forward}
telemetry:
  exporter: otlp
  endpoint: ${OTLP}
lineage:
  store: ${STORE}
"""
# messages of 1 MiB the flooding upstream (or client) tries to send: far past every window and buffer. What passes
# before a side is held back is grpc's flow-control windows, which grpc sizes from the bandwidth-delay product it
# measures (BDP probing): ~5-15 MiB in each of the proxy's receive window and the client's, but a CPU under load
# delays the probes' answers and the windows grow with them, until once in ~30 runs all of 64 MiB fitted in the two
# (the proxy itself holds one message: it reads the next only once the client's write is taken)
FLOODED = 256
MIB = b"\0" * (1 << 20)
# the test's own client measures no BDP: its receive window stays what a message needs, so what the upstream
# sends past it is the proxy's window alone
CLIENT_OPTIONS = [("grpc.max_receive_message_length", -1), ("grpc.http2.bdp_probe", 0)]
HELD_BACK_S = 3.0  # how long a side that is not read from must stay held back


class Upstream(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Streams of every kind the tests need. `Echo` answers each message with itself as it comes (its trailing
    metadata says `x-upstream-end`); `Hold` and ModelStreamInfer answer the first message, then hold
    until cancelled; `Greet` sends its initial metadata (GREETING) at once, then echoes as `Echo` does, once the
    client has read it (`greeted`); `Flood` writes FLOODED messages of 1 MiB as fast as they are taken; `Sink` reads nothing.
    Every event is counted under `cond`."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.arrived = self.cancelled = self.flooded = 0
        self.greeted = asyncio.Event()  # set (on the test loop) by the client, once it read the initial metadata

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        handler = {ECHO: self._echo, HOLD: self._hold, SERVICE + "ModelStreamInfer": self._hold, FLOOD: self._flood,
                   SINK: self._sink, GREET: self._greet}.get(details.method)  # fmt: skip
        return grpc.stream_stream_rpc_method_handler(handler) if handler else None

    def _count(self, event: str) -> None:
        with self.cond:
            setattr(self, event, getattr(self, event) + 1)
            self.cond.notify_all()

    def wait(self, event: str, count: int, timeout: float = 10) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: getattr(self, event) >= count, timeout)

    async def _echo(self, requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        context.set_trailing_metadata((("x-upstream-end", "echo"),))
        async for message in requests:
            yield message

    async def _greet(self, requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        await context.send_initial_metadata(GREETING)
        await self.greeted.wait()
        async for message in requests:
            yield message

    async def _hold(self, requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        async for _ in requests:
            yield b""
            self._count("arrived")
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self._count("cancelled")
                raise

    async def _flood(self, requests: AsyncIterator[bytes], context: Any) -> None:
        for _ in range(FLOODED):
            await context.write(MIB)
            self._count("flooded")

    async def _sink(self, requests: AsyncIterator[bytes], context: Any) -> None:
        self._count("arrived")
        await asyncio.Event().wait()


@pytest.fixture
def streams(loop_thread: LoopThread, otlp: Any, make_proxy: Any) -> Iterator[tuple[Upstream, grpc.Channel]]:
    upstream = Upstream()
    unlimited = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    with (
        proxied(loop_thread, otlp, make_proxy, CONFIG, upstream, unlimited) as proxy,
        grpc.insecure_channel(proxy.grpc, options=CLIENT_OPTIONS) as channel,
    ):
        yield upstream, channel


def test_a_passthrough_stream_relays_each_message_before_the_next_is_sent(
    streams: tuple[Upstream, grpc.Channel],
) -> None:
    _, channel = streams
    replied: queue.Queue[bytes] = queue.Queue()
    sent = []

    def requests() -> Iterator[bytes]:
        for n in range(5):
            message = f"message {n}".encode()
            sent.append(message)
            yield message
            assert replied.get(timeout=10) == message  # its echo came back through the proxy before the next

    call = channel.stream_stream(ECHO)(requests(), timeout=30)
    for reply in call:
        replied.put(reply)
    assert len(sent) == 5
    trailers = dict(call.trailing_metadata())
    assert trailers["x-upstream-end"] == "echo" and trailers["x-lineage-decision"] == "allow"
    assert len(trailers["x-trace-id"]) == 32


def test_a_passthrough_call_gets_the_upstreams_initial_metadata_as_it_was_sent(
    streams: tuple[Upstream, grpc.Channel], loop_thread: LoopThread
) -> None:
    """Sent when the upstream sends it (here before any reply, which waits until the client has read it), less
    the keys only the proxy may set; the lineage stays in the trailers. Unary callers get it too."""
    upstream, channel = streams
    call = channel.stream_stream(GREET)(iter([b"a", b"b"]), timeout=10)
    initial = dict(call.initial_metadata())  # at the deadline, empty, if it never came before a reply
    loop_thread.loop.call_soon_threadsafe(upstream.greeted.set)
    assert list(call) == [b"a", b"b"]
    assert (initial.get("x-upstream-greeting"), initial.get("x-upstream-blob-bin")) == ("hello", b"\x00\xff")
    assert "x-lineage-decision" not in initial  # the upstream's own, forged: never passed on
    assert dict(call.trailing_metadata())["x-lineage-decision"] == "allow"
    reply, unary = channel.unary_unary(GREET).with_call(b"c", timeout=10)
    assert reply == b"c"
    assert dict(unary.initial_metadata()) == {"x-upstream-greeting": "hello", "x-upstream-blob-bin": b"\x00\xff"}


@pytest.mark.parametrize("method", [SERVICE + "ModelStreamInfer", HOLD])
def test_a_clients_cancel_reaches_the_upstreams_call(streams: tuple[Upstream, grpc.Channel], method: str) -> None:
    upstream, channel = streams
    call = channel.stream_stream(method)(iter([_request()]))
    next(call)
    assert upstream.wait("arrived", 1)
    call.cancel()
    assert upstream.wait("cancelled", 1), "the upstream's call ran on after its client cancelled"


def test_a_cancelled_stream_leaves_nothing_a_later_call_meets(streams: tuple[Upstream, grpc.Channel]) -> None:
    upstream, channel = streams
    for n in range(1, 3):  # an inference stream and a passthrough one, each cancelled while the proxy relays it
        call = channel.stream_stream(SERVICE + "ModelStreamInfer" if n == 1 else HOLD)(iter([_request()]))
        next(call)
        assert upstream.wait("arrived", n)
        call.cancel()
        assert upstream.wait("cancelled", n)
    echo = channel.stream_stream(ECHO)
    assert list(echo(iter([b"a", b"b"]), timeout=10)) == [b"a", b"b"]
    infer = channel.stream_stream(SERVICE + "ModelStreamInfer")(iter([_request()]), timeout=10)
    assert next(infer) == b""
    infer.cancel()


def test_a_client_that_reads_no_replies_holds_the_upstream_back(streams: tuple[Upstream, grpc.Channel]) -> None:
    """Each reply is written to the client before the next is read from the upstream: a client that stops
    reading stops the upstream (its writes wait on flow control), however much it has to send."""
    upstream, channel = streams
    call = channel.stream_stream(FLOOD)(iter([b"go"]))
    assert next(call) == MIB
    assert not upstream.wait("flooded", FLOODED, HELD_BACK_S), f"{upstream.flooded} MiB read from the upstream"
    call.cancel()


def test_an_upstream_that_reads_nothing_holds_the_client_back(streams: tuple[Upstream, grpc.Channel]) -> None:
    """Each request message is written to the upstream before the next is read from the client."""
    upstream, channel = streams
    taken = threading.Semaphore(0)

    def requests() -> Iterator[bytes]:
        for _ in range(FLOODED):
            yield MIB
            taken.release()

    call = channel.stream_stream(SINK)(requests())  # grpc takes the requests on a thread of its own
    assert upstream.wait("arrived", 1)
    assert not all(taken.acquire(timeout=HELD_BACK_S) for _ in range(FLOODED)), "every request was taken"
    call.cancel()

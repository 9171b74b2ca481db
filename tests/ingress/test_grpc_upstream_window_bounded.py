"""What the proxy's gRPC channels read of upstreams' replies ahead of its clients was bounded per call only, by
limits.grpc_stream_window_bytes (32 MiB), while the listener's calls read ahead at most limits.bodies_max_bytes /
grpc_max_calls each: upstreams flooding clients that read nothing could hold grpc_max_calls x 32 MiB (16 GiB with
the defaults). The channels' window now comes from the same budget, so what they read ahead, every call at once,
is at most bodies_max_bytes too."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from typing import Any

import grpc

from proxy.config import Limits
from proxy.transport.grpc_channels import call_window
from tests.harness import LoopThread
from tests.ingress.grpc_proxied import proxied
from tests.ingress.test_grpc_streams import CLIENT_OPTIONS, CONFIG, ECHO, FLOOD, FLOODED, MIB, Upstream
from tests.servers.otlp_receiver import OtlpReceiver

UPSTREAM_OPTIONS = [
    ("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1), ("grpc.http2.bdp_probe", 0),
    ("grpc.http2.lookahead_bytes", 65_535),
]  # fmt: skip
STREAMS = 4
WINDOW_MIB = 4  # bodies_max_bytes 20 MiB over grpc_max_calls 5 (the floods, and the echo that tells they stand still)
STILL = 3  # echo round trips in a row across which every flood stood still, each with a write waiting: held back
# what may pass, in MiB: each call's window, and the margin the 32 MiB window's test allows (a message the proxy
# holds, one in grpc's send buffer toward the client, the client's own window, one the upstream sent); with the
# 32 MiB window each stream's upstream got ~36 MiB past it
BOUND = STREAMS * (WINDOW_MIB + 16)


class Flooding(Upstream):
    """`Upstream`, its floods' writes waiting (begun, not taken by grpc: held back by the proxy's window) counted."""

    def __init__(self) -> None:
        super().__init__()
        self.writing = 0
        self.lock = threading.Lock()

    async def _flood(self, requests: AsyncIterator[bytes], context: Any) -> None:
        for _ in range(FLOODED):
            with self.lock:
                self.writing += 1
            try:
                await context.write(MIB)
            finally:
                with self.lock:
                    self.writing -= 1
            self._count("flooded")


def test_upstreams_flooding_clients_that_read_nothing_are_held_back_at_the_call_s_share_of_bodies_max_bytes(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any
) -> None:
    """Held back: what the floods sent stood still across `STILL` echo round trips in a row through the proxy to the
    same upstream (HTTP/2 takes a connection's frames in order: a window the proxy had opened before the echo reached
    the upstream first), every flood with a write waiting; and it is within `BOUND`. A proxy that let them run would
    pass `BOUND` first (with the 32 MiB window each stream's upstream got ~36 MiB past it)."""
    upstream = Flooding()
    calls_max = STREAMS + 1
    config = CONFIG + f"limits: {{grpc_max_calls: {calls_max}, bodies_max_bytes: {calls_max * WINDOW_MIB << 20}, " \
        f"max_body_bytes: {WINDOW_MIB << 20}}}\n"  # fmt: skip
    with (
        proxied(loop_thread, otlp, make_proxy, config, upstream, UPSTREAM_OPTIONS) as proxy,
        grpc.insecure_channel(proxy.grpc, options=CLIENT_OPTIONS) as channel,
    ):
        calls = [channel.stream_stream(FLOOD)(iter([b"go"])) for _ in range(STREAMS)]
        for call in calls:
            assert next(call) == MIB  # each flood has started; nobody reads further
        echo = channel.stream_stream(ECHO)
        still, before = 0, -1
        try:
            while still < STILL and upstream.flooded < BOUND:
                assert list(echo(iter([b"ping"]), timeout=30)) == [b"ping"]  # a round trip to the same upstream
                with upstream.lock:
                    now, waiting = upstream.flooded, upstream.writing
                still = still + 1 if now == before and waiting == STREAMS else 0
                before = now
        finally:
            flooded = upstream.flooded
            for call in calls:
                call.cancel()
        assert flooded < BOUND, f"{flooded} MiB read from upstreams whose clients read nothing"


def test_the_channels_window_is_the_listener_s() -> None:
    """With the defaults: 2 MiB a call, 512 calls within bodies_max_bytes (1 GiB); never above
    grpc_stream_window_bytes, never below HTTP/2's initial 65535."""
    limits = Limits()
    assert call_window(limits) == 2 << 20
    assert call_window(limits) * limits.grpc_max_calls <= limits.bodies_max_bytes
    assert call_window(Limits(grpc_max_calls=1)) == limits.grpc_stream_window_bytes
    assert call_window(Limits(grpc_max_calls=1 << 20, bodies_max_bytes=1 << 20)) == 65_535

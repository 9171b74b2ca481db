"""What the proxy's gRPC channels read of upstreams' replies ahead of its clients was bounded per call only, by
limits.grpc_stream_window_bytes (32 MiB), while the listener's calls read ahead at most limits.bodies_max_bytes /
grpc_max_calls each: upstreams flooding clients that read nothing could hold grpc_max_calls x 32 MiB (16 GiB with
the defaults). The channels' window now comes from the same budget, so what they read ahead, every call at once,
is at most bodies_max_bytes too."""

from __future__ import annotations

from typing import Any

import grpc

from proxy.config import Limits
from proxy.transport.grpc_channels import call_window
from tests.harness import LoopThread
from tests.ingress.grpc_proxied import proxied
from tests.ingress.test_grpc_streams import CLIENT_OPTIONS, CONFIG, FLOOD, MIB, Upstream
from tests.servers.otlp_receiver import OtlpReceiver

UPSTREAM_OPTIONS = [
    ("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1), ("grpc.http2.bdp_probe", 0),
    ("grpc.http2.lookahead_bytes", 65_535),
]  # fmt: skip
STREAMS = 4
HELD_BACK_S = 5.0  # how long the flooding side must stay held back
WINDOW_MIB = 4  # bodies_max_bytes 16 MiB over grpc_max_calls 4
# what may pass, in MiB: each call's window, and the margin the 32 MiB window's test allows (a message the proxy
# holds, one in grpc's send buffer toward the client, the client's own window, one the upstream sent); with the
# 32 MiB window each stream's upstream got ~36 MiB past it
BOUND = STREAMS * (WINDOW_MIB + 16)


def test_upstreams_flooding_clients_that_read_nothing_are_held_back_at_the_call_s_share_of_bodies_max_bytes(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any
) -> None:
    upstream = Upstream()
    config = CONFIG + f"limits: {{grpc_max_calls: {STREAMS}, bodies_max_bytes: {STREAMS * WINDOW_MIB << 20}, " \
        f"max_body_bytes: {WINDOW_MIB << 20}}}\n"  # fmt: skip
    with (
        proxied(loop_thread, otlp, make_proxy, config, upstream, UPSTREAM_OPTIONS) as proxy,
        grpc.insecure_channel(proxy.grpc, options=CLIENT_OPTIONS) as channel,
    ):
        calls = [channel.stream_stream(FLOOD)(iter([b"go"])) for _ in range(STREAMS)]
        for call in calls:
            assert next(call) == MIB  # each flood has started; nobody reads further
        held = upstream.wait("flooded", BOUND, HELD_BACK_S)
        flooded = upstream.flooded
        for call in calls:
            call.cancel()
        assert not held, f"{flooded} MiB read from upstreams whose clients read nothing"


def test_the_channels_window_is_the_listener_s() -> None:
    """With the defaults: 2 MiB a call, 512 calls within bodies_max_bytes (1 GiB); never above
    grpc_stream_window_bytes, never below HTTP/2's initial 65535."""
    limits = Limits()
    assert call_window(limits) == 2 << 20
    assert call_window(limits) * limits.grpc_max_calls <= limits.bodies_max_bytes
    assert call_window(Limits(grpc_max_calls=1)) == limits.grpc_stream_window_bytes
    assert call_window(Limits(grpc_max_calls=1 << 20, bodies_max_bytes=1 << 20)) == 65_535

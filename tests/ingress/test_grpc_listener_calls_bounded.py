"""What the gRPC listener reads of clients' requests ahead of the proxy was bounded per call only (each stream's
window, limits.grpc_stream_window_bytes, 32 MiB), and calls only by max_connections x max_concurrent_streams (4096 x
128): a client's streams whose upstream read nothing held ~35 MiB each, 64 of them took a `serve` process from 64 MiB
to 2.3 GiB, and more took more. Now the listener takes limits.grpc_max_calls calls at once, all its connections
together (a further one is refused RESOURCE_EXHAUSTED before any handler runs, as grpc counts a call from its start),
and each call's window is at most limits.bodies_max_bytes / grpc_max_calls: what it reads ahead, all calls together,
is at most bodies_max_bytes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from proxy.config import Limits, parse
from proxy.errors import ConfigError
from proxy.transport.grpc_channels import call_window
from tests.harness import LoopThread
from tests.ingress.grpc_proxied import proxied
from tests.ingress.test_grpc_streams import CLIENT_OPTIONS, CONFIG, MIB, SINK, Upstream
from tests.servers.otlp_receiver import OtlpReceiver

UPSTREAM_OPTIONS = [
    ("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1), ("grpc.http2.bdp_probe", 0),
    ("grpc.http2.lookahead_bytes", 65_535),
]  # fmt: skip
OPTIONS = [*CLIENT_OPTIONS, ("grpc.max_send_message_length", -1)]
STREAMS = 4
HELD_BACK_S = 5.0  # how long the uploading side must stay held back
WINDOW_MIB = 4  # bodies_max_bytes 16 MiB over grpc_max_calls 4
# what may pass, in MiB: each call's window, and the margin the 32 MiB window's test allows (a message the proxy
# holds, one in grpc's send buffer toward the upstream, the upstream's own window, one the client took to send);
# with the 32 MiB window each stream took past it
BOUND = STREAMS * (WINDOW_MIB + 16)


class _Uploads:
    """Requests of 1 MiB, counted (`taken`) as grpc takes them to send."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.taken = 0

    def stream(self) -> Iterator[bytes]:
        for _ in range(BOUND * 4):
            with self.cond:
                self.taken += 1
                self.cond.notify_all()
            yield MIB


def test_calls_past_grpc_max_calls_are_refused_whatever_their_connection(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any
) -> None:
    upstream = Upstream()
    config = CONFIG + "limits: {grpc_max_calls: 2}\n"
    uploads = _Uploads()
    with (
        proxied(loop_thread, otlp, make_proxy, config, upstream, UPSTREAM_OPTIONS) as proxy,
        grpc.insecure_channel(proxy.grpc, options=OPTIONS) as one,
        grpc.insecure_channel(proxy.grpc, options=[*OPTIONS, ("grpc.use_local_subchannel_pool", 1)]) as two,
    ):
        held = [one.stream_stream(SINK)(uploads.stream()), two.stream_stream(SINK)(uploads.stream())]
        assert upstream.wait("arrived", 2)
        for channel in (one, two):  # a third call, on either connection
            with pytest.raises(grpc.RpcError) as refused:
                list(channel.stream_stream(SINK)(iter([b"x"]), timeout=10))
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, refused.value
        assert upstream.arrived == 2
        for call in held:
            call.cancel()


def test_what_the_listener_reads_ahead_is_bounded_by_bodies_max_bytes(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any
) -> None:
    upstream = Upstream()
    config = CONFIG + f"limits: {{grpc_max_calls: {STREAMS}, bodies_max_bytes: {STREAMS * WINDOW_MIB << 20}, " \
        f"max_body_bytes: {WINDOW_MIB << 20}}}\n"  # fmt: skip
    uploads = _Uploads()
    with (
        proxied(loop_thread, otlp, make_proxy, config, upstream, UPSTREAM_OPTIONS) as proxy,
        grpc.insecure_channel(proxy.grpc, options=OPTIONS) as channel,
    ):
        assert call_window(proxy.process.config.limits) == WINDOW_MIB << 20
        calls = [channel.stream_stream(SINK)(uploads.stream()) for _ in range(STREAMS)]
        assert upstream.wait("arrived", STREAMS)
        # the upstream reads nothing: what the clients could send is what the proxy and the upstream took
        with uploads.cond:
            past = uploads.cond.wait_for(lambda: uploads.taken > BOUND, HELD_BACK_S)
        for call in calls:
            call.cancel()
        assert not past, f"{uploads.taken} MiB taken from clients whose upstream reads nothing"


def test_the_defaults_bound_the_listener_s_read_ahead() -> None:
    limits = Limits()
    assert limits.grpc_max_calls * call_window(limits) <= limits.bodies_max_bytes
    assert call_window(Limits(grpc_max_calls=1)) == limits.grpc_stream_window_bytes  # never above the window
    assert call_window(Limits(grpc_max_calls=1 << 30)) == 65_535  # nor below HTTP/2's initial one


def test_grpc_max_calls_is_a_whole_number_of_at_least_one() -> None:
    text = (
        "listen: {http: 127.0.0.1:0, grpc: 127.0.0.1:0}\nupstreams: [{name: t, grpc: 127.0.0.1:1, protocol: oip}]\n"
        "routes: [{model: m, upstream: t}]\n"
    )
    assert parse(text + "limits: {grpc_max_calls: 3}\n", source="t.yaml").limits.grpc_max_calls == 3
    with pytest.raises(ConfigError, match="grpc_max_calls"):
        parse(text + "limits: {grpc_max_calls: 0}\n", source="t.yaml")

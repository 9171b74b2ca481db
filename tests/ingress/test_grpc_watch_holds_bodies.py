"""A health watch lasts as long as its client keeps it (no deadline: a channel's client-side health checking keeps one
open a connection), and its request message is held all that time (grpc.aio's call keeps it; `GrpcIngress.watch`
counts it against `limits.bodies_max_bytes`, as a unary call's while it is served). A HealthCheckRequest names a
service, a few dozen bytes, but nothing bounded one below `limits.max_body_bytes`: a client opening watches with
service names of 64 MiB (16 of them on one connection, the default limits) held the listener's whole bodies budget
for as long as it liked, and every ModelInfer and health check was refused UNAVAILABLE (`overloaded`) meanwhile."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from tests.harness import LoopThread, ProxyHandle
from tests.ingress.grpc_proxied import proxied
from tests.ingress.test_grpc_health_checked import CHECK, CONFIG, SERVING
from tests.ingress.test_grpc_health_watched import WATCH, Watched, _made
from tests.servers.otlp_receiver import OtlpReceiver

LIMITED = CONFIG + "limits: {max_body_bytes: 1048576, bodies_max_bytes: 1048576}\n"


def _service(size: int) -> bytes:
    """A HealthCheckRequest whose service name is `size` bytes long."""
    length, n = b"", size
    while True:
        length += bytes([(n & 0x7F) | (0x80 if n > 0x7F else 0)])
        n >>= 7
        if not n:
            break
    return b"\x0a" + length + b"s" * size


@pytest.fixture
def proxy(loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any) -> Iterator[tuple[ProxyHandle, Watched]]:
    upstream = loop_thread.run(_made())
    with proxied(loop_thread, otlp, make_proxy, LIMITED, upstream) as handle:
        yield handle, upstream


def test_a_watch_cannot_hold_the_bodies_budget_while_it_is_open(proxy: tuple[ProxyHandle, Watched]) -> None:
    handle, _ = proxy
    with grpc.insecure_channel(handle.grpc) as channel:
        watch = channel.unary_stream(WATCH)(_service(1_048_500), timeout=30)
        try:
            try:
                next(watch)  # open (or refused: either way it must not hold the budget)
            except grpc.RpcError:
                pass
            try:
                reply = channel.unary_unary(CHECK)(_service(100), timeout=10)
            except grpc.RpcError as exc:
                raise AssertionError(f"{exc.code()}: {exc.details()}") from None
            assert reply == SERVING
        finally:
            watch.cancel()


def test_a_data_free_call_refused_for_its_caller_gives_its_request_back(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any
) -> None:
    """A Check or Watch refused once its request is held (an unknown key) gives its bytes back to the budget."""
    config = LIMITED.replace("anonymous: allow", "anonymous: deny")
    upstream = loop_thread.run(_made())
    with (
        proxied(loop_thread, otlp, make_proxy, config, upstream) as handle,
        grpc.insecure_channel(handle.grpc) as channel,
    ):
        for call in (channel.unary_unary(CHECK), channel.unary_stream(WATCH)):
            with pytest.raises(grpc.RpcError) as refused:
                reply = call(_service(1000), timeout=10, metadata=(("authorization", "Bearer nobody"),))
                next(iter(reply)) if not isinstance(reply, bytes) else reply
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert handle.process._grpc is not None and handle.process._grpc.held == 0

"""Past limits.grpc_max_calls, gRPC's standard health check may take HEALTH_RESERVE more calls, so that a Kubernetes
gRPC probe is answered while the listener is busy. A health Watch (a channel's client-side health checking) took
that reserve as a Check does, and a watch lasts as long as its channel: 16 of them opened while the listener was
busy held the whole reserve, and every Check (the probe) was refused RESOURCE_EXHAUSTED until they ended, so the
pod was killed as unhealthy. A watch now takes WATCH_RESERVE of the reserve at most; the rest is a Check's."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import grpc

from proxy.ingress.grpc import HEALTH_RESERVE, WATCH_RESERVE
from tests.harness import LoopThread
from tests.ingress.grpc_proxied import proxied
from tests.ingress.test_grpc_busy_health_and_refusals import OPTIONS, _held
from tests.ingress.test_grpc_health_checked import CHECK, SERVING
from tests.ingress.test_grpc_health_watched import WATCH
from tests.ingress.test_grpc_streams import CONFIG, SINK, Upstream
from tests.servers.otlp_receiver import OtlpReceiver


class _Watched(Upstream):
    """The streams' upstream (`Sink` reads nothing), answering grpc.health.v1's Check, and its Watch: SERVING at
    once, then held open until cancelled."""

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if details.method == CHECK:
            return grpc.unary_unary_rpc_method_handler(self._check)
        if details.method == WATCH:
            return grpc.unary_stream_rpc_method_handler(self._watch)
        return super().service(details)

    async def _check(self, request: bytes, context: Any) -> bytes:
        return SERVING

    async def _watch(self, request: bytes, context: Any) -> None:
        await context.write(SERVING)
        await asyncio.Event().wait()


def test_health_watches_at_the_limit_leave_a_check_its_room(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any
) -> None:
    upstream = _Watched()
    config = CONFIG + "limits: {grpc_max_calls: 2}\n"
    with (
        proxied(loop_thread, otlp, make_proxy, config, upstream, []) as proxy,
        grpc.insecure_channel(proxy.grpc, options=OPTIONS) as channel,
    ):
        done = threading.Event()
        held = [channel.stream_stream(SINK)(_held(done)) for _ in range(2)]
        assert upstream.wait("arrived", 2)  # the listener is at its limit
        watches, refused = [], []
        for _ in range(HEALTH_RESERVE):  # as many watches as the whole reserve, each open (its first status read)
            watch = channel.unary_stream(WATCH)(b"", timeout=30)
            try:
                assert next(watch) == SERVING
                watches.append(watch)
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, exc
                refused.append(exc)
        try:
            reply = channel.unary_unary(CHECK)(b"", timeout=10)
        except grpc.RpcError as exc:
            raise AssertionError(f"the probe was refused: {exc.code()}: {exc.details()}") from None
        assert reply == SERVING
        assert (len(watches), len(refused)) == (WATCH_RESERVE, HEALTH_RESERVE - WATCH_RESERVE)
        for call in [*held, *watches]:
            call.cancel()
        done.set()

"""At limits.grpc_max_calls, grpc's own limit (maximum_concurrent_rpcs) refused every further call alike,
RESOURCE_EXHAUSTED before any handler ran: gRPC's standard health check too, so a Kubernetes gRPC probe (or a load
balancer's) read a busy proxy as unhealthy exactly when it was busy, and the refusals were counted nowhere. The
proxy now counts its calls itself: past the limit a call is refused as before (its request unread), counted in
lineage_proxy_grpc_calls_refused_total, and a health check may still take HEALTH_RESERVE more calls, held at once, and no more."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from proxy.ingress.grpc import HEALTH_RESERVE
from tests.harness import LoopThread
from tests.ingress.grpc_proxied import proxied
from tests.ingress.test_grpc_health_checked import CHECK, SERVING
from tests.ingress.test_grpc_streams import CLIENT_OPTIONS, CONFIG, MIB, SINK, Upstream
from tests.servers.otlp_receiver import OtlpReceiver

OPTIONS = [*CLIENT_OPTIONS, ("grpc.max_send_message_length", -1)]


class _HealthyUpstream(Upstream):
    """The streams' upstream (`Sink` reads nothing), answering grpc.health.v1's Check too: each Check counted in
    `checking` as it comes, then answered SERVING once `answer` is set (all of them held until then)."""

    def __init__(self) -> None:
        super().__init__()
        self.checking = 0
        self.answer = asyncio.Event()  # set on the test loop (`_answer`)

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if details.method == CHECK:
            return grpc.unary_unary_rpc_method_handler(self._check)
        return super().service(details)

    async def _check(self, request: bytes, context: Any) -> bytes:
        self._count("checking")
        await self.answer.wait()
        return SERVING

    async def _answer(self) -> None:
        self.answer.set()


def _held(done: threading.Event) -> Iterator[bytes]:
    """An upload that stays open until `done` (its upstream reads nothing)."""
    yield MIB
    done.wait()  # (grpc's sending thread parks here: the call stays open)


def _refused_count(proxy: Any) -> list[str]:
    return [
        line
        for line in proxy.process.metrics_text().splitlines()
        if line.startswith("lineage_proxy_grpc_calls_refused")
    ]


def test_a_health_check_is_answered_and_a_refusal_counted_while_the_listener_is_busy(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any
) -> None:
    upstream = _HealthyUpstream()
    config = CONFIG + "limits: {grpc_max_calls: 2}\n"
    with (
        proxied(loop_thread, otlp, make_proxy, config, upstream, []) as proxy,
        grpc.insecure_channel(proxy.grpc, options=OPTIONS) as channel,
    ):
        done = threading.Event()
        held = [channel.stream_stream(SINK)(_held(done)) for _ in range(2)]
        assert upstream.wait("arrived", 2)
        with pytest.raises(grpc.RpcError) as refused:
            list(channel.stream_stream(SINK)(iter([b"x"]), timeout=10))
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, refused.value
        # busy: health checks still reach the upstream, as many at once as the reserve holds (all of them held
        # there together), and one more is refused
        checks = [channel.unary_unary(CHECK).future(b"", timeout=30) for _ in range(HEALTH_RESERVE)]
        assert upstream.wait("checking", HEALTH_RESERVE), upstream.checking
        with pytest.raises(grpc.RpcError) as past:
            channel.unary_unary(CHECK)(b"", timeout=10)
        assert past.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, past.value
        assert upstream.checking == HEALTH_RESERVE
        loop_thread.run(upstream._answer())
        assert [check.result() for check in checks] == [SERVING] * HEALTH_RESERVE
        assert _refused_count(proxy) == ["lineage_proxy_grpc_calls_refused_total 2"]
        for call in held:
            call.cancel()
        done.set()

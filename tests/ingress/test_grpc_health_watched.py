"""gRPC's standard health watch (`grpc.health.v1.Health/Watch`) carries no data, only a service's name, as its `Check`
does: it is relayed as a stream (each status the upstream sends reaches the client as it comes; the client leaving
cancels the upstream's stream) and recorded as a health call, whatever the policy. It was an opaque method to the
proxy, refused PERMISSION_DENIED (`endpoint_denied`) whenever zones are configured (`policy.passthrough: auto`, the
default): a channel doing client-side health checking (a service config's `healthCheckConfig`, which grpc's channels
watch with it) saw a healthy upstream as down through the proxy and failed every call UNAVAILABLE."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import grpc
import grpc.aio
import pytest

from proxy.logs import ACCESS
from tests.harness import LoopThread, ProxyHandle
from tests.ingress.grpc_proxied import proxied, recorded, traced
from tests.ingress.test_grpc_health_checked import CHECK, CONFIG, SERVING
from tests.servers.otlp_receiver import OtlpReceiver

WATCH = "/grpc.health.v1.Health/Watch"
NOT_SERVING = b"\x08\x02"  # HealthCheckResponse{status: NOT_SERVING}
BASE = 0x5A7C_0000


class Watched(grpc.GenericRpcHandler):  # type: ignore[misc]
    """grpc.health.v1, as grpc's own health servicer answers it: Check and Watch, one status for every service; a
    Watch is sent the status at once and again each time it changes (`set`), until its client cancels it."""

    def __init__(self) -> None:
        self.status = SERVING
        self.changed = asyncio.Event()
        self.watching = 0
        self.asked: list[bytes] = []
        self.cancelled = asyncio.Event()

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if details.method == CHECK:
            return grpc.unary_unary_rpc_method_handler(self._check)
        if details.method == WATCH:
            return grpc.unary_stream_rpc_method_handler(self._watch)
        return None

    async def _check(self, request: bytes, context: Any) -> bytes:
        return self.status

    async def _watch(self, request: bytes, context: Any) -> None:
        self.asked.append(request)
        self.watching += 1
        try:
            while True:
                sent = self.status
                await context.write(sent)
                while self.status == sent:
                    self.changed.clear()
                    await self.changed.wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        finally:
            self.watching -= 1

    async def set(self, status: bytes) -> None:
        self.status = status
        self.changed.set()


@pytest.fixture
def proxy(loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any) -> Iterator[tuple[ProxyHandle, Watched]]:
    upstream = loop_thread.run(_made())
    with proxied(loop_thread, otlp, make_proxy, CONFIG, upstream) as handle:
        yield handle, upstream


async def _made() -> Watched:
    return Watched()  # its Events on the test loop


def test_a_health_watch_is_relayed_as_a_stream_where_zones_are_configured(
    proxy: tuple[ProxyHandle, Watched],
    loop_thread: LoopThread,
    otlp: OtlpReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    handle, upstream = proxy
    caplog.set_level(logging.INFO, logger=ACCESS)
    trace_id, traceparent = traced(1, BASE)
    service = b"\x0a\x1einference.GRPCInferenceService"
    with grpc.insecure_channel(handle.grpc) as channel:
        call = channel.unary_stream(WATCH)(service, timeout=30, metadata=[("traceparent", traceparent)])
        try:
            first = next(call)
            loop_thread.run(upstream.set(NOT_SERVING))  # a change the client sees as it comes, the stream open
            second = next(call)
        except grpc.RpcError as exc:
            raise AssertionError(f"{exc.code()}: {exc.details()}") from None
        assert (first, second) == (SERVING, NOT_SERVING) and upstream.asked == [service]
        call.cancel()  # the client leaves: the upstream's watch ends with it

        async def upstream_cancelled() -> None:
            await asyncio.wait_for(upstream.cancelled.wait(), 10)

        loop_thread.run(upstream_cancelled())
    span, line = recorded(otlp, caplog, trace_id)
    assert span.attributes["rpc.method"] == "Watch" and span.attributes["gen_ai.operation.name"] == "health"
    # a health call's record (no lineage edge), ended as its client left it
    assert span.attributes["error.type"] == "client_disconnected" and line.status == grpc.StatusCode.CANCELLED.value[0]
    assert upstream.watching == 0


def test_client_side_health_checking_through_the_proxy_sees_a_serving_upstream(
    proxy: tuple[ProxyHandle, Watched],
) -> None:
    handle, upstream = proxy
    config = {"loadBalancingConfig": [{"round_robin": {}}], "healthCheckConfig": {"serviceName": ""}}
    options = [("grpc.service_config", json.dumps(config))]
    with grpc.insecure_channel(handle.grpc, options=options) as channel:
        try:
            reply = channel.unary_unary(CHECK)(b"", timeout=10)
        except grpc.RpcError as exc:
            raise AssertionError(f"{exc.code()}: {exc.details()}") from None
    assert reply == SERVING and upstream.asked == [b""]  # the channel's own watch went through


def test_a_drain_ends_a_health_watch_at_once_and_ok(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any, caplog: pytest.LogCaptureFixture
) -> None:
    upstream = loop_thread.run(_made())
    with proxied(loop_thread, otlp, make_proxy, CONFIG + "limits: {drain_timeout_s: 20}\n", upstream) as handle:
        with grpc.insecure_channel(handle.grpc) as channel:
            call = channel.unary_stream(WATCH)(b"", timeout=30)
            assert next(call) == SERVING
            started = time.monotonic()
            loop_thread.run(handle.process.stop())
            took = time.monotonic() - started
            assert took < 10, f"the drain waited {took:.1f}s on a health watch"
            assert list(call) == [] and call.code() == grpc.StatusCode.OK

        async def upstream_cancelled() -> None:
            await asyncio.wait_for(upstream.cancelled.wait(), 10)

        loop_thread.run(upstream_cancelled())
    assert not [r for r in caplog.records if "still running" in r.getMessage()]  # nothing cut

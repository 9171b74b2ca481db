"""A gRPC call's upstream is given what is left of its client's deadline, so the two end together: whichever of
grpc's timers comes first, the client's cancel of the proxy's handler or the upstream call's own DEADLINE_EXCEEDED,
the call is recorded as its client's deadline (`deadline_exceeded`), never as the upstream's `upstream_timeout`
(that upstream's `timeout_s` is 30 s, nowhere near run out). The upstream here ends each call DEADLINE_EXCEEDED
itself just before its deadline, which is the order a loaded machine gives the race at random."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import grpc.aio
import pytest

from proxy.logs import ACCESS
from tests.harness import LoopThread
from tests.ingress.grpc_proxied import proxied, recorded
from tests.ingress.test_grpc import CONFIG, SERVICE, _request, _traceparent
from tests.servers.otlp_receiver import OtlpReceiver

EARLY_S = 0.02  # how long before its deadline the upstream gives up: within the proxy's DEADLINE_SLACK_S (0.05 s)


class Expiring(grpc.GenericRpcHandler):  # type: ignore[misc]
    """An OIP upstream that ends every call DEADLINE_EXCEEDED `EARLY_S` before the deadline the proxy gave it."""

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if details.method.endswith("/ModelInfer"):
            return grpc.unary_unary_rpc_method_handler(self._infer)
        if details.method.endswith("/ModelStreamInfer"):
            return grpc.stream_stream_rpc_method_handler(self._stream)
        return None

    @staticmethod
    async def _expire(context: Any) -> None:
        remaining = context.time_remaining()
        assert remaining is not None, "the proxy forwards its client's deadline"
        # the upstream's own clock, not a synchronisation: it models an upstream giving up at its deadline
        await asyncio.sleep(max(0.0, remaining - EARLY_S))
        await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the upstream's deadline")

    async def _infer(self, request: bytes, context: Any) -> bytes:
        await self._expire(context)
        raise AssertionError("abort raises")

    async def _stream(self, requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        async for _ in requests:
            await self._expire(context)
        yield b""  # (never reached: a generator, as grpc's stream handlers are)


@pytest.fixture
def expiring(loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any) -> Iterator[Any]:
    with proxied(loop_thread, otlp, make_proxy, CONFIG, Expiring()) as proxy:
        yield proxy


def test_an_upstream_that_ends_at_the_clients_deadline_is_the_clients_deadline(
    expiring: Any, otlp: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)
    unary = [_traceparent(40 + n) for n in range(3)]
    streams = [_traceparent(50 + n) for n in range(3)]

    def call(metadata: tuple[tuple[str, str]]) -> grpc.StatusCode:
        with pytest.raises(grpc.RpcError) as caught:
            channel.unary_unary(SERVICE + "ModelInfer")(_request(), metadata=metadata, timeout=0.5)
        code: grpc.StatusCode = caught.value.code()
        return code

    def stream(metadata: tuple[tuple[str, str]]) -> grpc.StatusCode:
        with pytest.raises(grpc.RpcError) as caught:
            list(
                channel.stream_stream(SERVICE + "ModelStreamInfer")(iter([_request()]), metadata=metadata, timeout=0.5)
            )
        code: grpc.StatusCode = caught.value.code()
        return code

    with grpc.insecure_channel(expiring.grpc) as channel, ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(call, [md for _, md in unary])) + list(pool.map(stream, [md for _, md in streams]))
    assert codes == [grpc.StatusCode.DEADLINE_EXCEEDED] * 6
    for trace_id, _ in unary + streams:
        span, line = recorded(otlp, caplog, trace_id)
        status = line.status
        assert span.attributes["error.type"] == "deadline_exceeded", trace_id
        assert span.attributes["rpc.grpc.status_code"] == status == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]

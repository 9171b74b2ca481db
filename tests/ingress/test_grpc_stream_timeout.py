"""An upstream's `timeout_s` bounds a relayed gRPC stream (ModelStreamInfer) and a passthrough call as it bounds an
HTTP reply (README: the wait for the reply's head and for each chunk after it): the upstream's silence, counted from
the stream's last message either way, never the whole call. Only unary ModelInfer had it: an upstream that hung on a
stream or an opaque call (a repository load) held the call, its upstream call and the client until the client's own
deadline, if it had one (recorded `deadline_exceeded`, the client's fault), else for good."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import grpc.aio
import pytest

from proxy.logs import ACCESS
from tests.harness import LoopThread
from tests.ingress.grpc_proxied import proxied, recorded, traced
from tests.ingress.test_grpc import _request
from tests.ingress.test_grpc_streams import CONFIG, SERVICE
from tests.servers.otlp_receiver import OtlpReceiver

INFER = SERVICE + "ModelStreamInfer"
LOAD = "/test.Slow/Load"  # an opaque unary method, as Triton's RepositoryModelLoad is to the proxy
TIMEOUT_S = 1.0  # the upstream's timeout_s
PACED, GAP_S = 4, 0.3  # a paced stream's replies, each GAP_S after the last: longer in all than TIMEOUT_S
CLIENT_DEADLINE_S = 8.0
BASE = 0x7153_0000


class Silent(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Takes every call and answers none (until cancelled: `cancelled` counts them), but a ModelStreamInfer whose
    metadata says `x-pace`: PACED replies to its message, GAP_S apart, then OK once the client's messages end."""

    def __init__(self) -> None:
        self.cancelled = 0
        self.gone = asyncio.Condition()

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if details.method == INFER:
            return grpc.stream_stream_rpc_method_handler(self._infer)
        if details.method == LOAD:
            return grpc.unary_unary_rpc_method_handler(self._load)
        return None

    async def _hang(self) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            async with self.gone:
                self.cancelled += 1
                self.gone.notify_all()
            raise

    async def _infer(self, requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        paced = "x-pace" in dict(context.invocation_metadata() or ())
        async for _ in requests:
            if not paced:
                await self._hang()
            for _ in range(PACED):
                await asyncio.sleep(GAP_S)  # the upstream's pace, not a synchronisation
                yield b""

    async def _load(self, request: bytes, context: Any) -> bytes:
        await self._hang()
        return b""

    async def wait_cancelled(self, n: int) -> None:
        async with self.gone:
            await asyncio.wait_for(self.gone.wait_for(lambda: self.cancelled >= n), 10)


async def _made() -> Silent:
    return Silent()  # its Condition on the test loop


@pytest.fixture
def silent(loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any) -> Iterator[tuple[grpc.Channel, Silent]]:
    upstream = loop_thread.run(_made())
    config = CONFIG.replace("    protocol: oip\n", f"    protocol: oip\n    timeout_s: {TIMEOUT_S}\n")
    with proxied(loop_thread, otlp, make_proxy, config, upstream) as proxy, grpc.insecure_channel(proxy.grpc) as ch:
        yield ch, upstream


@pytest.mark.parametrize("method", [INFER, LOAD], ids=["stream-infer", "passthrough-unary"])
def test_an_upstream_silent_past_timeout_s_ends_the_call_upstream_timeout(
    silent: tuple[grpc.Channel, Silent],
    loop_thread: LoopThread,
    otlp: OtlpReceiver,
    caplog: pytest.LogCaptureFixture,
    method: str,
) -> None:
    channel, upstream = silent
    caplog.set_level(logging.INFO, logger=ACCESS)
    trace_id, traceparent = traced(1 if method == INFER else 2, BASE)
    metadata = [("traceparent", traceparent)]
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as raised:
        if method == INFER:
            list(channel.stream_stream(INFER)(iter([_request()]), timeout=CLIENT_DEADLINE_S, metadata=metadata))
        else:
            channel.unary_unary(LOAD)(b"load me", timeout=CLIENT_DEADLINE_S, metadata=metadata)
    took = time.monotonic() - started
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert took < CLIENT_DEADLINE_S / 2, f"the call ran {took:.1f}s: the upstream's timeout_s did not bound it"
    assert "did not answer within" in (raised.value.details() or "")  # the upstream's timeout_s, named
    loop_thread.run(upstream.wait_cancelled(1))  # the upstream's call was cancelled, not left running
    span, line = recorded(otlp, caplog, trace_id)
    assert span.attributes["error.type"] == "upstream_timeout"
    assert line.status == span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]


def test_a_stream_that_keeps_moving_outlives_timeout_s(silent: tuple[grpc.Channel, Silent]) -> None:
    channel, _ = silent
    started = time.monotonic()
    replies = list(channel.stream_stream(INFER)(iter([_request()]), timeout=30, metadata=[("x-pace", "1")]))
    assert len(replies) == PACED and time.monotonic() - started > TIMEOUT_S  # never cut while it moves

"""A unary call whose upstream sent its own initial metadata (ModelInfer, a data-free RPC) has it passed on before the
reply (`send_initial_metadata`, a round through grpc's core of its own). The call was recorded before that round, as
answered: a client that left during it (its cancel, its deadline, the drain's cut) was recorded OK, or with the
upstream's error status, though it got CANCELLED. So, when the upstream failed the call after its metadata, the status
went out after a round the client could leave in (`GrpcIngress._abort`). The round now comes before the record, as a
stream's does, and a client that leaves in it is recorded gone.

The round is one trip through grpc's core: a client's cancel lands in it by chance (a raw HTTP/2 client that resets the
stream on the upstream's headers has them only once the round is over). So here grpc's own context is wrapped: as the
handler sends the metadata, the client cancels its call, and the send waits for grpc to cancel the handler; or it fails
as grpc's batch does on a call whose client is gone before grpc has cancelled its handler (ExecuteBatchError: whichever
of the two grpc's core reports first), which is the client's leaving too, not the proxy's internal error, nor the
upstream's status."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from grpc._cython import cygrpc

from proxy.ingress.grpc import GrpcIngress
from proxy.logs import ACCESS
from tests.harness import LoopThread
from tests.ingress.grpc_proxied import proxied, recorded, traced
from tests.ingress.test_grpc import _request
from tests.ingress.test_grpc_streams import CONFIG
from tests.ingress.test_grpc_upstream_initial_metadata import INFER, READY, Greeting
from tests.servers.otlp_receiver import OtlpReceiver

# GrpcIngress's handlers replaced by patching: with the modules compiled, grpc would still call the compiled ones
pytestmark = pytest.mark.interpreted

# the test's one call, once made: cancelled by its handler's context as the metadata goes (`_Leaving`)
Call = concurrent.futures.Future[Any]


class _Leaving:
    """grpc's context for a handler, but for `send_initial_metadata`: the client cancels its call first, and the send
    waits until grpc cancels the handler for it, as a cancel that arrives during the round does; or (`how`: refused)
    fails at once, as grpc's batch does when its core has the cancel before the handler's is asked for."""

    def __init__(self, context: Any, call: Call, how: str) -> None:
        self._context, self._call, self._how = context, call, how

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    async def send_initial_metadata(self, metadata: Any) -> None:
        (await asyncio.wrap_future(self._call)).cancel()
        if self._how == "refused":  # grpc's batch failed: the call's client side is gone
            raise cygrpc.ExecuteBatchError('Failed "execute_batch": (SendInitialMetadataOperation,)')
        await asyncio.Event().wait()  # until grpc cancels the handler


@pytest.fixture(params=["cancelled", "refused"])
def how(request: pytest.FixtureRequest) -> str:
    """How the send meets the client's leaving: grpc cancels the handler, or grpc's batch fails first."""
    return str(request.param)


@pytest.fixture
def call(monkeypatch: pytest.MonkeyPatch, how: str) -> Call:
    made: Call = concurrent.futures.Future()

    def leaving(handler: Any) -> Any:
        async def handle(self: GrpcIngress, adapter: Any, target: Any, method: str, requests: Any, context: Any) -> Any:
            return await handler(self, adapter, target, method, requests, _Leaving(context, made, how))

        return handle

    monkeypatch.setattr(GrpcIngress, "unary", leaving(GrpcIngress.unary))
    monkeypatch.setattr(GrpcIngress, "data_free", leaving(GrpcIngress.data_free))
    return made


@pytest.fixture
def channel(loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any, call: Call) -> Iterator[grpc.Channel]:
    with proxied(loop_thread, otlp, make_proxy, CONFIG, Greeting()) as proxy, grpc.insecure_channel(proxy.grpc) as ch:
        yield ch


@pytest.mark.parametrize("method", [INFER, READY], ids=["infer", "ready"])
@pytest.mark.parametrize("end", ["ok", "abort"])
def test_a_client_that_leaves_while_the_upstreams_metadata_is_sent_is_recorded_gone(
    channel: grpc.Channel,
    call: Call,
    otlp: OtlpReceiver,
    caplog: pytest.LogCaptureFixture,
    method: str,
    end: str,
    how: str,
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)
    n = (1 if end == "ok" else 2) + (2 if how == "refused" else 0)
    trace_id, traceparent = traced(n, 0x1EF70000 if method == INFER else 0x1EF80000)
    request = _request() if method == INFER else b"\x0a\x04held"
    made = channel.unary_unary(method).future(request, metadata=(("x-end", end), ("traceparent", traceparent)))
    call.set_result(made)
    with pytest.raises(grpc.FutureCancelledError):
        made.result(timeout=10)
    span, line = recorded(otlp, caplog, trace_id)
    assert line.status == span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.CANCELLED.value[0], span
    assert span.attributes["error.type"] == "client_disconnected", span

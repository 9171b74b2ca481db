"""An upstream's own initial metadata reaches the client however the call ends, as README (gRPC) says of its initial
and trailing metadata ("passed on where they came, with an error status too"): on a unary call the upstream fails
(ModelInfer, a data-free RPC) and on an inference stream it ends without a reply, OK or not. The proxy passed it on
only with a reply (or on a method passed through): a client lost what the upstream sent before its status (a
server's request id, a retry hint, a load report), which it got calling the upstream directly."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import grpc.aio
import pytest

from tests.harness import LoopThread
from tests.ingress.grpc_proxied import proxied
from tests.ingress.test_grpc import _request  # a small ModelInferRequest
from tests.ingress.test_grpc_streams import CONFIG, SERVICE
from tests.servers.otlp_receiver import OtlpReceiver

INFER, STREAM, READY, OTHER = (SERVICE + "ModelInfer", SERVICE + "ModelStreamInfer", SERVICE + "ModelReady",
                               "/test.Initial/Echo")  # fmt: skip
UNARY = (INFER, READY)
# what the upstream sends as its initial metadata, first thing in every call: its own keys (one binary), and one only
# the proxy may set (never passed on)
GREETING = (("x-upstream-request-id", "r-17"), ("x-upstream-blob-bin", b"\x00\xff"), ("x-lineage-decision", "forged"))


class Greeting(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Sends GREETING at once, then ends each call: OK, or FAILED_PRECONDITION when the client's metadata says
    `x-end: abort`. A stream reads its client's messages to their end and answers none."""

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if details.method in UNARY:
            return grpc.unary_unary_rpc_method_handler(self._unary)
        if details.method in (STREAM, OTHER):
            return grpc.stream_stream_rpc_method_handler(self._stream)
        return None

    @staticmethod
    async def _end(context: Any) -> None:
        if dict(context.invocation_metadata()).get("x-end") == "abort":
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "model busy")

    async def _unary(self, request: bytes, context: Any) -> bytes:
        await context.send_initial_metadata(GREETING)
        await self._end(context)
        return b""

    async def _stream(self, requests: AsyncIterator[bytes], context: Any) -> None:
        await context.send_initial_metadata(GREETING)
        while await context.read() is not grpc.aio.EOF:
            pass
        await self._end(context)


@pytest.fixture
def channel(loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any) -> Iterator[grpc.Channel]:
    with proxied(loop_thread, otlp, make_proxy, CONFIG, Greeting()) as proxy, grpc.insecure_channel(proxy.grpc) as ch:
        yield ch


@pytest.mark.parametrize("method", [INFER, READY, STREAM, OTHER], ids=["infer", "ready", "stream-infer", "other"])
@pytest.mark.parametrize("end", ["ok", "abort"])
def test_the_upstreams_initial_metadata_reaches_the_client_however_the_call_ends(
    channel: grpc.Channel, method: str, end: str
) -> None:
    request = _request() if method in (INFER, STREAM) else b"\x0a\x04held"
    metadata = (("x-end", end),)
    try:
        if method in UNARY:
            _, call = channel.unary_unary(method).with_call(request, metadata=metadata, timeout=10)
        else:
            call = channel.stream_stream(method)(iter([request]), metadata=metadata, timeout=10)
            assert list(call) == []
    except grpc.RpcError as exc:
        call = exc
    assert call.code() == (grpc.StatusCode.OK if end == "ok" else grpc.StatusCode.FAILED_PRECONDITION)
    initial = dict(call.initial_metadata() or ())
    assert (initial.get("x-upstream-request-id"), initial.get("x-upstream-blob-bin")) == ("r-17", b"\x00\xff")
    assert initial.get("x-lineage-decision") != "forged"
    trailing = dict(call.trailing_metadata() or ())
    assert len(trailing["x-trace-id"]) == 32  # the lineage is where it was

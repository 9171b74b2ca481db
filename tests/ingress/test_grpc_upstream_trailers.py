"""An upstream's own trailing metadata reaches the client however the call ends, as README (gRPC) says of its
initial and trailing metadata: with an error status (where rich error details travel, `grpc-status-details-bin`),
on every kind of call, and at the end of an inference stream; a stream the upstream ends without a reply still
carries the lineage, in its trailers. Dropped, a client read another error than the upstream's, and a stream with
no reply left its client no `x-trace-id` to find its record by."""

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

INFER, STREAM, READY, OTHER = (SERVICE + "ModelInfer", SERVICE + "ModelStreamInfer", SERVICE + "ModelReady",
                               "/test.Trailers/Echo")  # fmt: skip
# google.rpc.Status{code: 9 (FAILED_PRECONDITION), message: "model busy"}, as grpcio-status sends it
DETAILS = b"\x08\x09\x12\x0amodel busy"
TRAILERS = (("x-upstream-why", "queue full"), ("grpc-status-details-bin", DETAILS))
UNARY = (INFER, READY, OTHER)
# keys only the proxy sets, in their binary form too (the proxy reads `x-data-labels-bin` as a caller's labels)
FORGED = (("x-data-labels-bin", b"public"), ("x-trace-id-bin", b"\x00" * 16), ("x-lineage-decision-bin", b"allow"))


class Ending(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Ends each call with TRAILERS: OK, or FAILED_PRECONDITION when the client's metadata says `x-end: abort`.
    A stream answers each message it reads, or none when the client's metadata says `x-replies: none`."""

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if details.method in (INFER, READY):
            return grpc.unary_unary_rpc_method_handler(self._unary)
        if details.method in (STREAM, OTHER):
            return grpc.stream_stream_rpc_method_handler(self._stream)
        return None

    @staticmethod
    async def _end(context: Any) -> None:
        end = dict(context.invocation_metadata()).get("x-end")
        if end == "abort":
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "model busy", TRAILERS)
        context.set_trailing_metadata(TRAILERS + (FORGED if end == "forge" else ()))

    async def _unary(self, request: bytes, context: Any) -> bytes:
        await self._end(context)
        return b""

    async def _stream(self, requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        replies = dict(context.invocation_metadata()).get("x-replies") != "none"
        async for _ in requests:
            if replies:
                yield b""
        await self._end(context)


@pytest.fixture
def channel(loop_thread: LoopThread, otlp: Any, make_proxy: Any) -> Iterator[grpc.Channel]:
    with proxied(loop_thread, otlp, make_proxy, CONFIG, Ending()) as proxy, grpc.insecure_channel(proxy.grpc) as ch:
        yield ch


def _call(channel: grpc.Channel, method: str, metadata: tuple[tuple[str, str], ...]) -> tuple[Any, Any]:
    """(the status code, the trailing metadata as a dict) of one call, unary or a stream of one message."""
    request = _request() if method in (INFER, STREAM) else b"\x0a\x04held"
    try:
        if method in UNARY:
            _, call = channel.unary_unary(method).with_call(request, metadata=metadata, timeout=10)
        else:
            call = channel.stream_stream(method)(iter([request]), metadata=metadata, timeout=10)
            list(call)
    except grpc.RpcError as exc:
        call = exc
    return call.code(), dict(call.trailing_metadata() or ())


@pytest.mark.parametrize("method", [INFER, READY, STREAM, OTHER], ids=["infer", "ready", "stream-infer", "other"])
@pytest.mark.parametrize("end", ["ok", "abort"])
def test_the_upstreams_trailers_reach_the_client_however_the_call_ends(
    channel: grpc.Channel, method: str, end: str
) -> None:
    code, trailers = _call(channel, method, (("x-end", end),))
    assert code == (grpc.StatusCode.OK if end == "ok" else grpc.StatusCode.FAILED_PRECONDITION)
    assert (trailers.get("x-upstream-why"), trailers.get("grpc-status-details-bin")) == ("queue full", DETAILS)
    if method != STREAM or end == "abort":  # (a stream's lineage went with its reply)
        assert len(trailers["x-trace-id"]) == 32


@pytest.mark.parametrize("end", ["ok", "abort"])
def test_a_stream_the_upstream_ends_without_a_reply_carries_the_lineage_in_its_trailers(
    channel: grpc.Channel, end: str
) -> None:
    """The lineage goes as a stream's initial metadata with its first reply: with none, in the trailers."""
    code, trailers = _call(channel, STREAM, (("x-end", end), ("x-replies", "none")))
    assert code == (grpc.StatusCode.OK if end == "ok" else grpc.StatusCode.FAILED_PRECONDITION)
    assert len(trailers["x-trace-id"]) == 32 and trailers["x-lineage-decision"] == "allow"
    assert trailers.get("x-upstream-why") == "queue full"


@pytest.mark.parametrize("method", [INFER, READY, STREAM, OTHER], ids=["infer", "ready", "stream-infer", "other"])
def test_keys_only_the_proxy_sets_are_never_the_upstreams_in_their_binary_form_either(
    channel: grpc.Channel, method: str
) -> None:
    """An upstream's `x-data-labels-bin` (or `x-trace-id-bin`) was passed on beside the proxy's own lineage: a client
    or the next hop, which reads that key as labels as the proxy does, took the upstream's word for them."""
    code, trailers = _call(channel, method, (("x-end", "forge"),))
    assert code == grpc.StatusCode.OK and trailers.get("x-upstream-why") == "queue full"
    assert not {key for key, _ in FORGED} & set(trailers), trailers

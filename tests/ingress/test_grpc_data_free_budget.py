"""A health or metadata call's request message is held while its upstream answers, as an inference call's is: it
counts against `limits.bodies_max_bytes` (README: the gRPC listener counts its unary requests while they are
served). It did not: a client sending ModelMetadata requests of up to `limits.max_body_bytes` each (the bytes of an
unknown field, which protobuf readers skip) to an upstream slow to answer held that much memory per call, with no
bound, past the one that refuses the same bytes sent as ModelInfer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import grpc.aio
import pytest
from tritonclient.grpc import service_pb2

from tests.harness import LoopThread, ProxyHandle
from tests.ingress.grpc_proxied import proxied
from tests.ingress.test_bodies_budget import held
from tests.ingress.test_grpc import Holding
from tests.ingress.test_grpc_bodies_budget import CONFIG
from tests.record.test_store_waits import until
from tests.servers.otlp_receiver import OtlpReceiver

METADATA = "/inference.GRPCInferenceService/ModelMetadata"


class HoldingMetadata(Holding):
    """An OIP upstream that answers the test's ModelMetadata calls (the large ones) never; the proxy's own, which
    discover its checkpoints, are refused at once."""

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if details.method.endswith("/ModelMetadata"):
            return grpc.unary_unary_rpc_method_handler(self._metadata)
        return super().service(details)

    async def _metadata(self, request: bytes, context: Any) -> bytes:
        if len(request) < 1000:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "no metadata here")
        return await self._infer(request, context)


def big() -> bytes:
    """A ModelMetadataRequest of ~1 MB: its name, and an unknown field (15, bytes) of padding."""
    name: bytes = service_pb2.ModelMetadataRequest(name="held").SerializeToString()
    padding = 1_000_000
    return (
        name
        + b"\x7a"
        + bytes([0x80 | (padding & 0x7F), 0x80 | ((padding >> 7) & 0x7F), padding >> 14])
        + b"\0" * padding
    )


@pytest.fixture
def holding(loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any) -> Iterator[tuple[Holding, ProxyHandle]]:
    upstream = HoldingMetadata()
    with proxied(loop_thread, otlp, make_proxy, CONFIG, upstream) as proxy:
        yield upstream, proxy


def test_a_metadata_request_held_counts_against_the_bound(holding: tuple[Holding, ProxyHandle]) -> None:
    upstream, proxy = holding
    request = big()
    size = len(request)
    assert service_pb2.ModelMetadataRequest.FromString(request).name == "held"
    with grpc.insecure_channel(proxy.grpc) as channel:
        metadata = channel.unary_unary(METADATA)
        first = metadata.future(request, timeout=30)
        upstream.wait_arrived(1)  # held at the upstream, its request with it
        counted = held(proxy)
        assert counted == size, f"a metadata call's request held, {counted} bytes of it counted"
        with pytest.raises(grpc.RpcError) as refused:
            metadata(request, timeout=30)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "limits.bodies_max_bytes" in (refused.value.details() or "")
        assert upstream.arrived == 1  # never forwarded
        first.cancel()
        until(lambda: held(proxy) == 0)

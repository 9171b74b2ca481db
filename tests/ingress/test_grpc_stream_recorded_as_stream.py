"""A ModelStreamInfer call is a streamed call in its record, as a streamed HTTP call is: its span says
`gen_ai.request.stream` (README: "true on a streamed call") beside the `gen_ai.response.time_to_first_chunk` and
`gen_ai.first_token` event it had, and its first reply counts in `lineage_proxy_time_to_first_chunk_seconds`
("streams"). The OIP gRPC reader made every request a unary one (`stream` False), so a stream's span said
nothing of it and the histogram never saw a gRPC stream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest

from tests.harness import LoopThread
from tests.ingress.grpc_proxied import proxied, traced
from tests.ingress.test_grpc import _request
from tests.servers.otlp_receiver import OtlpReceiver

SERVICE = "/inference.GRPCInferenceService/"
CONFIG = """
listen: {http: 127.0.0.1:0, grpc: 127.0.0.1:0}
upstreams:
  - name: triton
    grpc: ${UPSTREAM}
    protocol: oip
    checkpoint: streams@1
routes:
  - model: "*"
    upstream: triton
policy: {anonymous: allow, default_purpose: assistant}
telemetry:
  exporter: otlp
  endpoint: ${OTLP}
"""


class Echo(grpc.GenericRpcHandler):  # type: ignore[misc]
    """ModelStreamInfer answering each request with one (empty) ModelStreamInferResponse; ModelInfer with an empty
    ModelInferResponse."""

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if details.method == SERVICE + "ModelStreamInfer":
            return grpc.stream_stream_rpc_method_handler(self._stream)
        if details.method == SERVICE + "ModelInfer":
            return grpc.unary_unary_rpc_method_handler(self._unary)
        return None

    async def _stream(self, requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        async for _ in requests:
            yield b""

    async def _unary(self, request: bytes, context: Any) -> bytes:
        return b""


@pytest.fixture
def proxy(loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any) -> Iterator[Any]:
    with proxied(loop_thread, otlp, make_proxy, CONFIG, Echo()) as handle:
        yield handle


def _first_chunks(proxy: Any) -> float:
    for line in proxy.process.metrics_text().splitlines():
        if line.startswith("lineage_proxy_time_to_first_chunk_seconds_count "):
            return float(line.split()[1])
    raise AssertionError("no lineage_proxy_time_to_first_chunk_seconds_count")


def test_a_model_stream_infer_call_is_recorded_as_a_stream(proxy: Any, otlp: OtlpReceiver) -> None:
    trace_id, traceparent = traced(1, 0x57AEA40000)
    with grpc.insecure_channel(proxy.grpc) as channel:
        replies = list(channel.stream_stream(SERVICE + "ModelStreamInfer")(iter([_request()]),
                                                                            metadata=(("traceparent", traceparent),)))  # fmt: skip
    assert len(replies) == 1
    span = otlp.by_trace(trace_id)
    assert span.attributes["rpc.grpc.status_code"] == 0
    assert [name for name, _ in span.events] == ["gen_ai.first_token"]  # it had a first reply, as streams have
    assert span.attributes.get("gen_ai.request.stream") is True
    assert _first_chunks(proxy) == 1


def test_a_model_infer_call_is_not(proxy: Any, otlp: OtlpReceiver) -> None:
    trace_id, traceparent = traced(2, 0x57AEA40000)
    with grpc.insecure_channel(proxy.grpc) as channel:
        channel.unary_unary(SERVICE + "ModelInfer")(_request(), metadata=(("traceparent", traceparent),))
    span = otlp.by_trace(trace_id)
    assert "gen_ai.request.stream" not in span.attributes and not span.events
    assert _first_chunks(proxy) == 0

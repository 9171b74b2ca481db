"""A gRPC request message over `limits.max_body_bytes` is refused as the HTTP listener refuses such a body
(RESOURCE_EXHAUSTED, `request_too_large`) and recorded, whatever the method: grpc refused it itself, before any
handler ran, and no call was recorded. grpc's own receive limit is now a quarter above ours (`GrpcIngress._open`):
a message over that is still grpc's alone to refuse, at its length prefix, and reaches neither the proxy's handlers
nor the upstream."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.grpc import service_pb2
from tritonclient.utils import InferenceServerException

from proxy.logs import ACCESS
from tests.configs import ONE_GRPC_UPSTREAM
from tests.harness import LoopThread
from tests.ingress.grpc_proxied import proxied, recorded, traced
from tests.servers.otlp_receiver import OtlpReceiver

SERVICE = "/inference.GRPCInferenceService/"
LOAD = "/test.Repository/Load"  # a method no adapter reads: passed through
LIMIT = 4096
OVER = 4600  # over limits.max_body_bytes, under grpc's own limit (a quarter more)
CONFIG = (
    ONE_GRPC_UPSTREAM
    + f"""
policy: {{anonymous: allow, default_purpose: assistant, passthrough: forward}}
limits: {{max_body_bytes: {LIMIT}}}
telemetry:
  exporter: otlp
  endpoint: ${{OTLP}}
logging: {{access: true}}
lineage:
  store: ${{STORE}}
"""
)


class Upstream(grpc.GenericRpcHandler):  # type: ignore[misc]
    """An OIP upstream answering every message of every call with an empty message; `messages` counts what reached
    it."""

    def __init__(self) -> None:
        self.messages = 0
        self._lock = threading.Lock()

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if details.method in (SERVICE + "ModelInfer", SERVICE + "ServerLive"):
            return grpc.unary_unary_rpc_method_handler(self._unary)
        if details.method in (SERVICE + "ModelStreamInfer", LOAD):
            return grpc.stream_stream_rpc_method_handler(self._stream)
        return None

    def _count(self) -> None:
        with self._lock:
            self.messages += 1

    async def _unary(self, request: bytes, context: Any) -> bytes:
        self._count()
        return b""

    async def _stream(self, requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        async for _ in requests:
            self._count()
            yield b""


@pytest.fixture
def proxy(loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any) -> Iterator[tuple[Any, Upstream]]:
    upstream = Upstream()
    with proxied(loop_thread, otlp, make_proxy, CONFIG, upstream) as handle:
        yield handle, upstream


def _trace(n: int) -> tuple[str, str]:
    return traced(n, 0x70A10000)


def _request(size: int) -> bytes:
    """A ModelInferRequest for `simple` of `size` bytes (give or take a few)."""
    request = service_pb2.ModelInferRequest(model_name="simple")
    request.inputs.add(name="A", datatype="UINT8", shape=[1])
    request.raw_input_contents.append(b"\x01" * (size - 20))
    data: bytes = request.SerializeToString()
    return data


def _refused_and_recorded(
    otlp: OtlpReceiver, caplog: pytest.LogCaptureFixture, trace_id: str, decision: str = "deny"
) -> None:
    span, line = recorded(otlp, caplog, trace_id)
    assert span.attributes["error.type"] == "request_too_large"
    assert span.attributes["lineage.decision"] == decision
    assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert (line.code, line.status) == ("request_too_large", 8)


def test_a_model_infer_over_the_limit_is_refused_and_recorded(
    proxy: tuple[Any, Upstream], otlp: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    handle, upstream = proxy
    caplog.set_level(logging.INFO, logger=ACCESS)
    trace_id, traceparent = _trace(1)
    tensor = grpcclient.InferInput("A", [1, OVER // 4], "INT32")
    tensor.set_data_from_numpy(np.zeros((1, OVER // 4), dtype=np.int32))
    client = grpcclient.InferenceServerClient(handle.grpc)
    try:
        with pytest.raises(InferenceServerException) as refused:
            client.infer("simple", [tensor], headers={"traceparent": traceparent})
    finally:
        client.close()
    assert refused.value.status() == "StatusCode.RESOURCE_EXHAUSTED"
    assert "over the limit of 4096 bytes" in refused.value.message()
    _refused_and_recorded(otlp, caplog, trace_id)
    assert upstream.messages == 0


@pytest.mark.parametrize("method", ["ServerLive", "ModelStreamInfer", LOAD])
def test_a_first_message_over_the_limit_is_refused_and_recorded(
    proxy: tuple[Any, Upstream], otlp: OtlpReceiver, caplog: pytest.LogCaptureFixture, method: str
) -> None:
    handle, upstream = proxy
    caplog.set_level(logging.INFO, logger=ACCESS)
    trace_id, traceparent = _trace(2)
    metadata = (("traceparent", traceparent),)
    with grpc.insecure_channel(handle.grpc) as channel, pytest.raises(grpc.RpcError) as refused:
        if method == "ServerLive":
            channel.unary_unary(SERVICE + method)(_request(OVER), metadata=metadata, timeout=10)
        else:
            list(channel.stream_stream(method if method == LOAD else SERVICE + method)(
                iter([_request(OVER)]), metadata=metadata, timeout=10))  # fmt: skip
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # a passthrough is decided on its metadata, before its messages are read: allowed, then ended by the message
    _refused_and_recorded(otlp, caplog, trace_id, "allow" if method == LOAD else "deny")
    assert upstream.messages == 0


@pytest.mark.parametrize("method", [SERVICE + "ModelStreamInfer", LOAD])
def test_a_later_message_over_the_limit_ends_its_stream_and_is_recorded(
    proxy: tuple[Any, Upstream], otlp: OtlpReceiver, caplog: pytest.LogCaptureFixture, method: str
) -> None:
    handle, upstream = proxy
    caplog.set_level(logging.INFO, logger=ACCESS)
    trace_id, traceparent = _trace(3)
    answered = threading.Event()

    def messages() -> Iterator[bytes]:
        yield _request(100)
        answered.wait(10)
        yield _request(OVER)

    with grpc.insecure_channel(handle.grpc) as channel:
        call = channel.stream_stream(method)(messages(), metadata=(("traceparent", traceparent),), timeout=10)
        next(call)
        answered.set()
        with pytest.raises(grpc.RpcError) as refused:
            next(call)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    _refused_and_recorded(otlp, caplog, trace_id, "allow")  # the stream as forwarded, ended by the message
    assert upstream.messages == 1


@pytest.mark.parametrize("method", ["ModelInfer", "ModelStreamInfer"])
def test_a_message_over_grpcs_own_limit_reaches_neither_the_proxy_nor_the_upstream(
    proxy: tuple[Any, Upstream], method: str
) -> None:
    handle, upstream = proxy
    with grpc.insecure_channel(handle.grpc) as channel, pytest.raises(grpc.RpcError) as refused:
        if method == "ModelInfer":
            channel.unary_unary(SERVICE + method)(_request(LIMIT * 2), timeout=10)
        else:
            list(channel.stream_stream(SERVICE + method)(iter([_request(LIMIT * 2)]), timeout=10))
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "Received message larger than max" in (refused.value.details() or "")  # grpc's own refusal
    assert upstream.messages == 0

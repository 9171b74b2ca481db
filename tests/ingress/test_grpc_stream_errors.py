"""Triton answers a request of a ModelStreamInfer stream that fails with an error in band: a
ModelStreamInferResponse whose `error_message` is set, the stream going on and ending OK. The proxy relays it as it
came, and the call's record says it: `error.type` `upstream_error` in the span and the access line's code, the
status the one the client got (OK), unless something else ended the stream: then that is its type, as always.
(It was relayed and recorded as a call that went well.)"""

from __future__ import annotations

import logging
import queue
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
from tests.ingress.grpc_proxied import proxied
from tests.servers.otlp_receiver import OtlpReceiver

STREAM = "/inference.GRPCInferenceService/ModelStreamInfer"
CONFIG = (
    ONE_GRPC_UPSTREAM
    + """
policy: {anonymous: allow, default_purpose: assistant}
telemetry:
  exporter: otlp
  endpoint: ${OTLP}
logging: {access: true}
lineage:
  store: ${STORE}
"""
)
INVALID = "[request id: bad] unexpected shape for input 'A' for model 'simple'. Expected [1,16], got [1]. "


class Triton(grpc.GenericRpcHandler):  # type: ignore[misc]
    """ModelStreamInfer as Triton answers it: the request with id `bad` with an in-band error (its text Triton's),
    any other with its reply; the request with id `fail` ends the stream, INTERNAL."""

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        return grpc.stream_stream_rpc_method_handler(self._stream) if details.method == STREAM else None

    async def _stream(self, requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        async for message in requests:
            request = service_pb2.ModelInferRequest.FromString(message)
            if request.id == "fail":
                await context.abort(grpc.StatusCode.INTERNAL, "the backend failed")
            if request.id == "bad":
                reply = service_pb2.ModelStreamInferResponse(error_message=INVALID)
            else:
                reply = service_pb2.ModelStreamInferResponse(
                    infer_response=service_pb2.ModelInferResponse(model_name=request.model_name, id=request.id)
                )
            yield reply.SerializeToString()


@pytest.fixture
def proxy(loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any) -> Iterator[Any]:
    with proxied(loop_thread, otlp, make_proxy, CONFIG, Triton()) as handle:
        yield handle


def _answers(proxy: Any, trace: int, ids: list[str]) -> tuple[str, list[Any]]:
    """One stream of a request (for the model `simple`) with each of `ids`, each sent once the one before is answered; its trace id, and
    what the callback was given for each."""
    trace_id = f"{0x57E40000 + trace:032x}"
    given: queue.Queue[Any] = queue.Queue()
    tensor = grpcclient.InferInput("A", [1], "INT32")
    tensor.set_data_from_numpy(np.array([1], dtype=np.int32))
    answers = []
    client = grpcclient.InferenceServerClient(proxy.grpc)
    try:
        client.start_stream(lambda result, error: given.put(error or result),
                            headers={"traceparent": f"00-{trace_id}-00000000000000c1-01"})  # fmt: skip
        for request_id in ids:
            client.async_stream_infer("simple", [tensor], request_id=request_id)
            answers.append(given.get(timeout=10))
        client.stop_stream()
    finally:
        client.close()
    return trace_id, answers


def test_an_in_band_error_of_the_upstream_is_recorded_as_the_streams_error(
    proxy: Any, otlp: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)
    trace_id, answers = _answers(proxy, 1, ["1", "bad", "3"])
    assert not isinstance(answers[0], InferenceServerException) and not isinstance(answers[2], InferenceServerException)
    assert isinstance(answers[1], InferenceServerException) and INVALID in answers[1].message()  # relayed as it came
    span = otlp.by_trace(trace_id)
    assert span.attributes["error.type"] == "upstream_error"  # protocols.STREAM_ERROR
    assert span.attributes["rpc.grpc.status_code"] == 0  # the status the client got: the stream went on, and ended OK
    lines = [r for r in caplog.records if r.name == ACCESS and getattr(r, "trace_id", None) == trace_id]
    assert [(line.code, line.status) for line in lines] == [("upstream_error", 0)]


def test_a_stream_without_one_has_no_error(proxy: Any, otlp: OtlpReceiver) -> None:
    trace_id, answers = _answers(proxy, 2, ["1", "2"])
    assert not any(isinstance(answer, InferenceServerException) for answer in answers)
    span = otlp.by_trace(trace_id)
    assert "error.type" not in span.attributes and span.attributes["rpc.grpc.status_code"] == 0


def test_what_ends_a_stream_after_an_in_band_error_is_its_error_type(proxy: Any, otlp: OtlpReceiver) -> None:
    trace_id, answers = _answers(proxy, 3, ["bad", "fail"])
    assert isinstance(answers[1], InferenceServerException) and "the backend failed" in answers[1].message()
    span = otlp.by_trace(trace_id)
    assert span.attributes["error.type"] == "INTERNAL"  # the upstream's status, as for a stream without one
    assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INTERNAL.value[0]

"""An OIP gRPC reply the proxy cannot read to its end is said to be: its output is labelled `scan:truncated`, with
what was found in the part read before it, as an OIP REST reply that is no JSON object is. The walker stopped at
the first field it refuses and the reply was recorded as if it had no output (clean); a form the walker refuses
is not always one a client's parser refuses (`_tag`: C++ protobuf reads a five-byte tag by its low 32 bits)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf.message import DecodeError

from proxy.detectors import TRUNCATED
from proxy.flow import Outcome
from proxy.protocols.oip_grpc import ReplyObserver
from tests.configs import ONE_GRPC_UPSTREAM
from tests.harness import LoopThread
from tests.ingress.grpc_proxied import proxied
from tests.ingress.test_grpc import _request
from tests.protocols.test_oip_grpc import EMAIL, PB
from tests.servers.otlp_receiver import OtlpReceiver

PII = "pii:email"


def _reply(text: str) -> bytes:
    """A ModelInferResponse whose one BYTES output holds `text`."""
    reply = PB["ModelInferResponse"](model_name="held")
    reply.outputs.add(name="OUT", datatype="BYTES", shape=[1]).contents.bytes_contents.append(text.encode())
    data: bytes = reply.SerializeToString()
    return data


GOOD = _reply("write to ana@example.org")
# a field of wire type 7, which no parser reads, and a five-byte tag the walker refuses (C++ protobuf would read it
# as field 1, model_name)
BROKEN, OVERLONG = b"\x0f\x01", b"\x8a\x80\x80\x80\x10\x01m"


def _observed(data: bytes, stream: bool = False) -> frozenset[str]:
    outcome = Outcome(started_ns=0)
    observer = ReplyObserver(outcome, EMAIL, False)
    if stream:  # a ModelStreamInferResponse: the reply is its field 2
        observer.chunk(data)
    else:
        observer.body(data)
    observer.finish()
    return outcome.output_detected


def _stream_reply(response: bytes) -> bytes:
    data: bytes = PB["ModelStreamInferResponse"](
        infer_response=PB["ModelInferResponse"].FromString(response)
    ).SerializeToString()
    return data


def test_a_reply_read_to_its_end_is_not_labelled_unread() -> None:
    assert _observed(GOOD) == {PII}
    assert _observed(_stream_reply(GOOD), stream=True) == {PII}
    assert _observed(b"") == set()  # an empty message: nothing unread


@pytest.mark.parametrize("tail", [BROKEN, OVERLONG], ids=["wire-type-7", "overlong-tag"])
def test_a_reply_the_walker_stops_in_is_labelled_unread_with_what_it_read_before(tail: bytes) -> None:
    if tail == BROKEN:
        with pytest.raises(DecodeError):  # no client reads it either: still, what passed was not read
            PB["ModelInferResponse"].FromString(GOOD + tail)
    assert _observed(GOOD + tail) == {PII, TRUNCATED}
    assert _observed(tail + GOOD) == {TRUNCATED}
    assert _observed(_stream_reply(GOOD) + tail, stream=True) == {PII, TRUNCATED}
    # in the stream message's reply (its field 2), past the output
    inner = GOOD + tail
    assert _observed(b"\x12" + bytes([len(inner)]) + inner, stream=True) == {PII, TRUNCATED}


CONFIG = (
    ONE_GRPC_UPSTREAM
    + """
policy: {anonymous: allow, default_purpose: assistant}
detectors: [email]
telemetry:
  exporter: otlp
  endpoint: ${OTLP}
lineage:
  store: ${STORE}
"""
)


class Unreadable(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Answers ModelInfer with GOOD and a field no parser reads after it."""

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        return grpc.unary_unary_rpc_method_handler(self._infer) if details.method.endswith("/ModelInfer") else None

    async def _infer(self, request: bytes, context: Any) -> bytes:
        return GOOD + BROKEN


@pytest.fixture
def proxy(loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any) -> Iterator[Any]:
    with proxied(loop_thread, otlp, make_proxy, CONFIG, Unreadable()) as handle:
        yield handle


def test_an_unreadable_reply_is_recorded_and_answered_as_unread(proxy: Any, otlp: OtlpReceiver) -> None:
    with grpc.insecure_channel(proxy.grpc) as channel:
        reply, call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer").with_call(
            _request(), timeout=10
        )
    assert reply == GOOD + BROKEN  # passed on as it came
    trailers = dict(call.trailing_metadata())
    assert trailers["x-data-labels"] == f"{PII},{TRUNCATED}"
    span = otlp.by_trace(trailers["x-trace-id"])
    assert sorted(span.attributes["lineage.output.labels"]) == [PII, TRUNCATED]

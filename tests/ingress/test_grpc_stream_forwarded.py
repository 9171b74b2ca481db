"""gRPC streams, admitted deferred as unary calls are: what only the record and the reply need (the input's digest and
captured content, the reply's observer) is made once the request is with grpc's core (a ModelStreamInfer stream's
first message; a passthrough call's metadata), while the upstream computes. What is recorded and what the client is
told are what the call, admitted at once, recorded and said; a defect in that work ends the stream INTERNAL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import grpc.aio
import pytest
from tritonclient.grpc import service_pb2

from proxy.errors import InvalidRequest
from proxy.flow import Call, TraceContext
from proxy.protocols import text_digest
from proxy.protocols.oip_grpc import ADAPTER, MODEL_STREAM_INFER
from tests.harness import LoopThread, ProxyHandle
from tests.ingress.grpc_proxied import proxied_recording
from tests.ingress.test_grpc import _traceparent
from tests.record.test_sinks import Sink
from tests.servers.otlp_receiver import OtlpReceiver

ECHO = "/test.Streams/Echo"
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
policy: {anonymous: allow, default_purpose: assistant, passthrough: forward}
detectors: [email]
telemetry:
  exporter: otlp
  endpoint: ${OTLP}
  capture_content: true
lineage:
  store: ${STORE}
"""


def _request(text: str) -> bytes:
    request = service_pb2.ModelInferRequest(model_name="streams")
    request.inputs.add(name="PROMPT", datatype="BYTES", shape=[1]).contents.bytes_contents.append(text.encode())
    data: bytes = request.SerializeToString()
    return data


def _reply(text: str) -> bytes:
    reply = service_pb2.ModelStreamInferResponse()
    reply.infer_response.model_name = "streams"
    reply.infer_response.outputs.add(name="TEXT", datatype="BYTES", shape=[1]).contents.bytes_contents.append(
        text.encode()
    )
    data: bytes = reply.SerializeToString()
    return data


class Upstream(grpc.GenericRpcHandler):  # type: ignore[misc]
    """ModelStreamInfer answers each message with a reply naming a mail address; `Echo` echoes each message."""

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        handler = {MODEL_STREAM_INFER: self._infer, ECHO: self._echo}.get(details.method)
        return grpc.stream_stream_rpc_method_handler(handler) if handler else None

    async def _infer(self, requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        async for _ in requests:
            yield _reply("write to bob@example.com")

    async def _echo(self, requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        async for message in requests:
            yield message


@pytest.fixture
def proxy(loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any) -> Iterator[tuple[ProxyHandle, Sink]]:
    with proxied_recording(loop_thread, otlp, make_proxy, CONFIG, Upstream()) as recording:
        yield recording


FIRST, SECOND = "mail ana@example.org please", "and thanks"


def _at_once(handle: ProxyHandle, body: bytes, trace: TraceContext) -> Call:
    """The call `body` is read as with the record's fields made at once (`Pipeline.call`, recorded)."""
    target = ADAPTER.match("POST", MODEL_STREAM_INFER)
    assert target is not None
    header = {}.get
    return handle.process.ref.current.call(ADAPTER.read(target, body, header), ADAPTER.name, header, trace)


def _stream(handle: ProxyHandle, n: int) -> tuple[str, list[bytes], dict[str, Any]]:
    """A ModelStreamInfer stream of two messages; its trace id, its replies and its initial metadata."""
    trace_id, traceparent = _traceparent(n)
    with grpc.insecure_channel(handle.grpc) as channel:
        call = channel.stream_stream(MODEL_STREAM_INFER)(iter([_request(FIRST), _request(SECOND)]),
                                                         metadata=traceparent, timeout=10)  # fmt: skip
        replies = list(call)
        return trace_id, replies, dict(call.initial_metadata())


def test_a_streams_record_and_lineage_are_those_of_its_call_admitted_at_once(
    proxy: tuple[ProxyHandle, Sink],
) -> None:
    """The record's input digest and captured (masked) content are the first message's, as `Pipeline.call`
    makes them when the record's fields are made at once; the detectors' labels of input and output are in the
    record and in the lineage the client gets with the first reply."""
    handle, records = proxy
    trace_id, replies, initial = _stream(handle, 1)
    assert replies == [_reply("write to bob@example.com")] * 2
    assert initial["x-trace-id"] == trace_id and initial["x-lineage-decision"] == "allow"
    assert "pii:email" in initial["x-data-labels"].split(",")
    ((call, decision, outcome),) = records.ended
    at_once = _at_once(handle, _request(FIRST), call.trace)
    assert call.input_digest == at_once.input_digest and call.input_digest
    assert call.content == at_once.content and call.content and "ana@example.org" not in call.content[0]
    assert "pii:email" in call.detected and decision.action == "allow"
    assert outcome.status == 0 and outcome.output_detected and outcome.output_digest
    assert outcome.checkpoint == "streams@1"


def test_a_passthrough_calls_record_is_that_of_its_call_admitted_at_once(proxy: tuple[ProxyHandle, Sink]) -> None:
    handle, records = proxy
    trace_id, traceparent = _traceparent(2)
    with grpc.insecure_channel(handle.grpc) as channel:
        call = channel.stream_stream(ECHO)(iter([b"one", b"two"]), metadata=traceparent, timeout=10)
        assert list(call) == [b"one", b"two"]
        trailing = dict(call.trailing_metadata())
    assert trailing["x-trace-id"] == trace_id and trailing["x-lineage-decision"] == "allow"
    ((recorded, decision, outcome),) = records.ended
    assert recorded.opaque and recorded.input_digest == text_digest([]) and recorded.content == ()
    assert decision.action == "allow" and outcome.status == 0 and outcome.extra["rpc.method"] == ECHO


@pytest.mark.interpreted  # patches Pipeline.record_fields, which the compiled Exchange calls directly
@pytest.mark.parametrize("method", [MODEL_STREAM_INFER, ECHO])
def test_what_only_a_streams_record_needs_is_done_once_its_request_is_with_grpc(
    proxy: tuple[ProxyHandle, Sink], monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    """ModelStreamInfer: once its first message is written to the upstream's call; a passthrough call, whose
    messages are never read: once its metadata is (the call's first step, `_prepare_rpc`, has begun)."""
    from grpc.aio._call import StreamStreamCall

    from proxy.pipeline import Pipeline

    steps: list[str] = []
    prepare, write, record_fields = StreamStreamCall._prepare_rpc, StreamStreamCall._write, Pipeline.record_fields

    async def preparing(self: StreamStreamCall[Any, Any]) -> None:
        steps.append("metadata sent")
        await prepare(self)

    async def writing(self: StreamStreamCall[Any, Any], request: Any) -> None:
        await write(self, request)
        steps.append("message sent")

    def noted(self: Pipeline, *args: Any) -> None:
        steps.append("record fields")
        record_fields(self, *args)

    monkeypatch.setattr(StreamStreamCall, "_prepare_rpc", preparing)
    monkeypatch.setattr(StreamStreamCall, "_write", writing)
    monkeypatch.setattr(Pipeline, "record_fields", noted)
    handle, records = proxy
    first = _request(FIRST) if method == MODEL_STREAM_INFER else b"one"
    with grpc.insecure_channel(handle.grpc) as channel:
        call = channel.stream_stream(method)(iter([first]), metadata=_traceparent(3)[1], timeout=10)
        assert len(list(call)) == 1
    expected = ["metadata sent", "message sent", "record fields"]
    if method == ECHO:
        expected = ["metadata sent", "record fields", "message sent"]
    # the exporter's calls are unary: only this call's steps are noted
    assert steps == expected
    ((recorded, _, _),) = records.ended
    if method == MODEL_STREAM_INFER:
        assert recorded.input_digest == _at_once(handle, first, recorded.trace).input_digest
    else:
        assert recorded.input_digest == text_digest([])


@pytest.mark.interpreted  # patches the adapter's observer
@pytest.mark.parametrize(
    ("raised", "code", "error_type", "says"),
    [
        # a defect: the client gets INTERNAL saying to look at the proxy's log, never the exception's text
        (RuntimeError("a secret detail of a bug"), grpc.StatusCode.INTERNAL, "internal_error", "see its log"),
        # a refusal (ProxyError): the stream's answer and record, as a refused later message's; it was swallowed
        # with the writer, and the stream hung to its deadline
        (
            InvalidRequest("the reply cannot be read"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid_request",
            "cannot be read",
        ),
    ],
    ids=["defect", "refusal"],
)
def test_what_fails_in_a_streams_work_after_its_first_message_is_its_answer_and_record(
    proxy: tuple[ProxyHandle, Sink],
    monkeypatch: pytest.MonkeyPatch,
    raised: Exception,
    code: grpc.StatusCode,
    error_type: str,
    says: str,
) -> None:
    """Making the reply's observer raises: the upstream's call is cancelled (the stream does not wait for its
    replies), and the client's status and the record say what failed, not that the client left."""
    from proxy.protocols import oip_grpc

    def broken(*args: Any) -> Any:
        raise raised

    monkeypatch.setattr(oip_grpc.Adapter, "observer", broken)
    handle, records = proxy
    with pytest.raises(grpc.RpcError) as failed:
        _stream(handle, 4)
    assert failed.value.code() == code, failed.value.details()
    assert says in failed.value.details() and "secret" not in failed.value.details()
    ((call, decision, outcome),) = records.ended
    assert decision.action == "allow"
    assert call.input_digest == _at_once(handle, _request(FIRST), call.trace).input_digest
    assert outcome.status == code.value[0] and outcome.error_type == error_type

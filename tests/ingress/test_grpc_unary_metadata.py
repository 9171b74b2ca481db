"""A unary inference call's metadata, both ways: the upstream gets the caller's metadata (less transport keys) and the
call's `traceparent`, handed to grpc.aio as the Metadata it sends: not a list, which grpc.aio copies into a new
Metadata pair by pair on every call (`Metadata.from_tuple`, after a `typing.Sequence` check: ~5 µs a call); the client
gets the reply, the upstream's own initial and trailing metadata, and the lineage as trailers."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import grpc
import grpc.aio
import pytest

from tests.harness import LoopThread
from tests.ingress.grpc_proxied import proxied
from tests.ingress.test_grpc import CONFIG, SERVICE, _request, _traceparent
from tests.record.test_sinks import Sink
from tests.servers.otlp_receiver import OtlpReceiver

REPLY = b"\x0a\x04held"  # a ModelInferResponse naming its model


class Echoing(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Answers ModelInfer at once, keeping the metadata it got; sends initial and trailing metadata of its own."""

    def __init__(self) -> None:
        self.received: list[tuple[tuple[str, str | bytes], ...]] = []

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if details.method.endswith("/ModelInfer"):
            return grpc.unary_unary_rpc_method_handler(self._infer)
        return None

    async def _infer(self, request: bytes, context: Any) -> bytes:
        self.received.append(tuple((m.key, m.value) for m in context.invocation_metadata() or ()))
        await context.send_initial_metadata((("x-upstream-initial", "i"),))
        context.set_trailing_metadata((("x-upstream-trailing", "t"),))
        return REPLY


@pytest.fixture
def echoing(loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any) -> Iterator[tuple[Echoing, grpc.Channel]]:
    upstream = Echoing()
    with proxied(loop_thread, otlp, make_proxy, CONFIG, upstream) as proxy, grpc.insecure_channel(proxy.grpc) as ch:
        yield upstream, ch


def test_a_unary_calls_metadata_goes_to_grpc_as_its_metadata_and_both_ways_as_before(
    echoing: tuple[Echoing, grpc.Channel], monkeypatch: pytest.MonkeyPatch
) -> None:
    upstream, channel = echoing
    copied: list[tuple[tuple[str, str | bytes], ...]] = []  # what grpc.aio copied into a Metadata of its own
    from_tuple = grpc.aio.Metadata.from_tuple

    def counted(cls: type[grpc.aio.Metadata], raw: Iterable[tuple[str, str | bytes]]) -> grpc.aio.Metadata:
        copied.append(tuple(raw))
        return from_tuple(copied[-1])

    monkeypatch.setattr(grpc.aio.Metadata, "from_tuple", classmethod(counted))
    infer = channel.unary_unary(SERVICE + "ModelInfer")
    for n in range(3):
        trace_id, traceparent = _traceparent(n)
        reply, call = infer.with_call(_request(), metadata=(*traceparent, ("x-caller-note", f"n{n}")), timeout=10)
        assert reply == REPLY
        sent = dict(upstream.received[-1])
        assert sent["x-caller-note"] == f"n{n}"
        assert sent["traceparent"].split("-")[1] == trace_id  # the caller's trace, the proxy's span as the parent
        initial, trailing = dict(call.initial_metadata()), dict(call.trailing_metadata())
        assert initial.get("x-upstream-initial") == "i"
        assert trailing["x-upstream-trailing"] == "t" and trailing["x-trace-id"] == trace_id
        assert trailing["x-lineage-decision"] == "allow" and trailing["x-lineage-upstream"] == "triton"
        assert trailing["x-lineage-checkpoint"] == "held@1"
    # the upstream's metadata, read by the proxy, is grpc.aio's to copy; what the proxy sent was never copied
    assert copied and not [pairs for pairs in copied if any(key == "traceparent" for key, _ in pairs)]


@pytest.mark.interpreted  # patches Pipeline.record_fields, which the compiled Exchange calls directly
def test_what_only_the_record_needs_is_done_once_the_request_is_with_grpc(
    echoing: tuple[Echoing, grpc.Channel], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`admit(deferred=True)`: the input's digest and content and the reply's observer are made once
    grpc.aio's task has handed the request to grpc's core (its `_invoke` has begun), while the upstream computes;
    the reply's lineage says the same as before."""
    from grpc.aio._call import UnaryUnaryCall

    from proxy.pipeline import Pipeline

    request = _request()
    steps: list[str] = []
    invoke, record_fields = UnaryUnaryCall._invoke, Pipeline.record_fields

    async def sending(self: UnaryUnaryCall[Any, Any]) -> Any:
        if self._request == request:  # this call's (not the exporter's, say)
            steps.append("sent")
        return await invoke(self)

    def noted(self: Pipeline, *args: Any) -> None:
        steps.append("record fields")
        record_fields(self, *args)

    monkeypatch.setattr(UnaryUnaryCall, "_invoke", sending)
    monkeypatch.setattr(Pipeline, "record_fields", noted)
    upstream, channel = echoing
    trace_id, traceparent = _traceparent(7)
    reply, call = channel.unary_unary(SERVICE + "ModelInfer").with_call(request, metadata=traceparent, timeout=10)
    assert reply == REPLY and steps == ["sent", "record fields"]
    trailing = dict(call.trailing_metadata())
    assert trailing["x-trace-id"] == trace_id and trailing["x-lineage-checkpoint"] == "held@1"


@pytest.mark.interpreted
def test_a_defect_in_the_proxy_is_answered_internal_and_recorded_as_one(  # type: ignore[no-untyped-def]
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Something in the proxy raises while a unary call is handled (here: making the reply's observer): the client
    gets INTERNAL saying to look at the proxy's log, not UNKNOWN with the exception's text (grpc's answer to an
    unexpected exception), and the call's one record says it failed with internal_error, as over HTTP (it
    read as a call that went well)."""
    from proxy.protocols import oip_grpc

    def broken(*args: Any) -> Any:
        raise RuntimeError("a secret detail of a bug")

    monkeypatch.setattr(oip_grpc.Adapter, "observer", broken)

    upstream = Echoing()
    with proxied(loop_thread, otlp, make_proxy, CONFIG, upstream) as proxy, grpc.insecure_channel(proxy.grpc) as ch:
        records = Sink("records", durable=True, holds=False)  # recorded as the call ends
        proxy.process.runtime.sinks.swap(records.name, records)  # type: ignore[arg-type]
        with pytest.raises(grpc.RpcError) as failed:
            ch.unary_unary(SERVICE + "ModelInfer")(_request(), metadata=_traceparent(5)[1], timeout=10)
    assert failed.value.code() == grpc.StatusCode.INTERNAL, failed.value.details()
    assert "see its log" in failed.value.details() and "secret" not in failed.value.details()
    (one,) = records.ended
    call, decision, outcome = one
    assert decision.action == "allow" and call.input_digest  # decided and read before the failure
    assert outcome.status == grpc.StatusCode.INTERNAL.value[0] and outcome.error_type == "internal_error"


@pytest.mark.interpreted  # patches GrpcIngress.service and _Received, which the compiled handler calls directly
def test_the_callers_metadata_is_read_as_grpc_built_it_to_look_the_handler_up(
    echoing: tuple[Echoing, grpc.Channel], monkeypatch: pytest.MonkeyPatch
) -> None:
    """grpc.aio builds a call's metadata (a namedtuple a key, in Python) to look its handler up (`service`): the handler
    reads that very tuple (`_ARRIVED`), not one `context.invocation_metadata()` builds again, ~14,500 instructions of a
    small ModelInfer's before its request went upstream (callgrind; built twice a call until 2026-12-06). Calls in
    flight together each read their own: each reply's lineage names the trace its own metadata carried."""
    from proxy.ingress import grpc as ingress

    looked_up: list[object] = []
    read: list[object] = []
    service, received = ingress.GrpcIngress.service, ingress._Received.__init__

    def service_(self: ingress.GrpcIngress, details: grpc.HandlerCallDetails) -> Any:
        looked_up.append(details.invocation_metadata)
        return service(self, details)

    def received_(self: ingress._Received, metadata: Any) -> None:
        read.append(metadata)
        received(self, metadata)

    monkeypatch.setattr(ingress.GrpcIngress, "service", service_)
    monkeypatch.setattr(ingress._Received, "__init__", received_)
    upstream, channel = echoing
    infer = channel.unary_unary(SERVICE + "ModelInfer")
    traces = [_traceparent(n) for n in range(8)]
    calls = [infer.future(_request(), metadata=(*tp, ("x-caller-note", f"n{n}")), timeout=10)
             for n, (_, tp) in enumerate(traces)]  # fmt: skip
    for (trace_id, _), call in zip(traces, calls, strict=True):
        assert call.result() == REPLY
        assert dict(call.trailing_metadata())["x-trace-id"] == trace_id
    assert len(read) == len(traces) and len(looked_up) == len(traces)
    assert all(any(one is seen for seen in looked_up) for one in read)  # no call's metadata built a second time
    notes = sorted(dict(one)["x-caller-note"] for one in read)  # type: ignore[call-overload]
    assert notes == sorted(f"n{n}" for n in range(8))
    assert sorted(dict(sent)["x-caller-note"] for sent in upstream.received) == notes

"""A refusal's status grpc could not send: the client left (RST_STREAM, or its connection closed) after the call was
read and refused, before the status went out. grpc's abort then fails its send (ExecuteBatchError). Until 2026-12-06
that error went on to grpc, which logged it at ERROR with a traceback ("ExecuteBatchError raised in core by servicer
method") unless it had marked the call closed first (a race of its core), and the call's record, written before the
status went out, said PERMISSION_DENIED, a status its client never had (a raw HTTP/2 client that sends a denied call's
message and RST_STREAM in one write: 23 of 40 such records said PERMISSION_DENIED). The record is now held until the
status's send is done (`_Ends.close`, `FanOut.on_end`'s `until`); one grpc could not send is recorded as a refusal whose
answer never went out (`_Ends._gone`): its denial kept (decision, rule, reason, its code as error.type: counted once,
as `Exchange._unanswered` keeps it), its status CANCELLED; grpc is told a cancel, which it logs at DEBUG.

Which of grpc's ways of seeing the client leave a departure meets is a race inside grpc; here the abort's send fails
as grpc's does when the client is gone (grpc's context wrapped: `interpreted`), after turns of the loop as grpc's
batch takes (its completion comes from grpc's poller), so a record not held would have gone to the span and access
line first. The client that stays gets the status, and its record says so."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from grpc._cython import cygrpc
from tritonclient.grpc import service_pb2

from proxy.ingress.grpc import GrpcIngress
from tests.configs import ONE_GRPC_UPSTREAM
from tests.harness import LoopThread, ProxyHandle
from tests.ingress.grpc_proxied import INFER, proxied, recorded, traced
from tests.ingress.test_grpc import SERVICE, Holding, _request
from tests.servers.h2_hostile import RST_STREAM, HostileClient
from tests.servers.h2_wire import DATA, frame
from tests.servers.otlp_receiver import OtlpReceiver
from tests.test_metrics import samples

# GrpcIngress's handler replaced by patching (but in the last test): compiled, grpc would still call the compiled one
interpreted = pytest.mark.interpreted

CONFIG = (
    ONE_GRPC_UPSTREAM
    + """
zones:
  - name: health
    labels: [health]
    allow_purposes: [research]
policy: {anonymous: allow, default_purpose: assistant}
telemetry: {exporter: otlp, endpoint: "${OTLP}"}
logging: {access: true}
lineage: {store: "${STORE}"}
"""
)
DENIED = ("x-data-labels", "health")  # data of the zone `health`, for the default purpose: PERMISSION_DENIED
END_STREAM = 0x1
CANCEL = (8).to_bytes(4, "big")  # RST_STREAM's error code, as a gRPC client's cancel sends it
TURNS = 3  # turns of the loop the failed send takes (a record handed to the other sinks goes on the next)


async def _turns(n: int) -> None:
    """`n` turns of the event loop: each callback scheduled before them has run."""
    loop = asyncio.get_running_loop()
    for _ in range(n):
        turned = loop.create_future()
        loop.call_soon(turned.set_result, None)
        await turned


class _Unsent:
    """grpc's context for a handler, but for its `abort`, whose send fails as grpc's batch does for a client gone (after
    `TURNS` turns of the loop); `ended` set once grpc.aio is done with the handler (and has logged what it raised)."""

    def __init__(self, context: Any, ended: threading.Event) -> None:
        self._context = context
        context.add_done_callback(lambda _: ended.set())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    async def abort(self, code: grpc.StatusCode, details: str, trailing_metadata: Any = ()) -> None:
        await _turns(TURNS)
        raise cygrpc.ExecuteBatchError(
            'Failed "execute_batch": (SendInitialMetadataOperation, SendStatusFromServerOperation)'
        )


@pytest.fixture
def ended(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> threading.Event:
    """The handlers given `_Unsent` for their context when the test is parametrized `left`."""
    done = threading.Event()
    for name in ("unary", "stream"):
        handler = getattr(GrpcIngress, name)

        async def unsent(
            self: GrpcIngress,
            adapter: Any,
            target: Any,
            method: str,
            requests: Any,
            context: Any,
            handler: Any = handler,
        ) -> Any:
            return await handler(self, adapter, target, method, requests, _Unsent(context, done))

        if request.node.callspec.params["left"]:
            monkeypatch.setattr(GrpcIngress, name, unsent)
    return done


@pytest.fixture
def proxy(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any, ended: threading.Event
) -> Iterator[ProxyHandle]:
    with proxied(loop_thread, otlp, make_proxy, CONFIG, Holding()) as handle:
        yield handle


@interpreted
@pytest.mark.parametrize("left", [False, True], ids=["stays", "left"])
def test_a_refusal_grpc_could_not_send_is_recorded_as_its_clients_leaving_not_logged_as_an_error(
    proxy: ProxyHandle,
    otlp: OtlpReceiver,
    ended: threading.Event,
    caplog: pytest.LogCaptureFixture,
    left: bool,
) -> None:
    """Refused PERMISSION_DENIED: the client that stays has that status, and its record says so; for the one that left
    (the abort's send failed) grpc logs nothing at ERROR or above (before: "ExecuteBatchError raised in core by servicer
    method", with grpc's traceback), and its record says CANCELLED, the denial kept (before: PERMISSION_DENIED)."""
    caplog.set_level(logging.DEBUG, logger="grpc._cython.cygrpc")
    caplog.set_level(logging.INFO, logger="lineage_proxy.access")
    trace_id, parent = traced(int(left), 0x5E7D0000)
    with grpc.insecure_channel(proxy.grpc) as channel:
        call = channel.unary_unary(INFER).future(_request(), metadata=[DENIED, ("traceparent", parent)], timeout=20)
        if left:
            assert ended.wait(20)  # grpc.aio is done with the handler, what it raised logged
            call.cancel()  # (no status came: grpc sends none for a handler that raised so)
        else:
            with pytest.raises(grpc.RpcError) as refused:
                call.result()
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        span, line = recorded(otlp, caplog, trace_id)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
    status = grpc.StatusCode.CANCELLED if left else grpc.StatusCode.PERMISSION_DENIED
    assert span.attributes["lineage.decision"] == "deny"
    assert "purpose" in span.status_message and span.attributes["lineage.rule"] == "zone:health"
    assert span.attributes["error.type"] == line.code == "purpose_denied"  # the denial's code, counted once
    assert span.attributes["rpc.grpc.status_code"] == line.status == status.value[0]


class Refusing(grpc.GenericRpcHandler):  # type: ignore[misc]
    """An OIP upstream that answers each ModelInfer with the status `code`."""

    def __init__(self, code: grpc.StatusCode) -> None:
        self.code = code

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        return grpc.unary_unary_rpc_method_handler(self._infer) if details.method == INFER else None

    async def _infer(self, request: bytes, context: Any) -> bytes:
        await context.abort(self.code, "the upstream's own")
        raise AssertionError("unreachable: abort raises")


@interpreted
@pytest.mark.parametrize("left", [True], ids=["left"])
@pytest.mark.parametrize(("code", "kind"), [("INTERNAL", "INTERNAL"), ("NOT_FOUND", "client_disconnected")])
def test_an_upstreams_status_grpc_could_not_send_is_recorded_as_its_clients_leaving(
    loop_thread: LoopThread,
    otlp: OtlpReceiver,
    make_proxy: Any,
    ended: threading.Event,
    caplog: pytest.LogCaptureFixture,
    left: bool,
    code: str,
    kind: str,
) -> None:
    """An upstream's error status, passed on as a refusal's is (`_abort`), whose send fails for a client gone: nothing
    at ERROR, its record CANCELLED, and its type the upstream's error where it has one (counted then, once), else its
    client's leaving, as `Exchange._unanswered` says it; counted once either way."""
    caplog.set_level(logging.DEBUG, logger="grpc._cython.cygrpc")
    caplog.set_level(logging.INFO, logger="lineage_proxy.access")
    trace_id, parent = traced(6 + int(code == "NOT_FOUND"), 0x5E7D0000)
    with proxied(loop_thread, otlp, make_proxy, CONFIG, Refusing(getattr(grpc.StatusCode, code))) as proxy:
        with grpc.insecure_channel(proxy.grpc) as channel:
            call = channel.unary_unary(INFER).future(_request(), metadata=[("traceparent", parent)], timeout=20)
            assert ended.wait(20)
            call.cancel()
            span, line = recorded(otlp, caplog, trace_id)
        errors = {labels: n for (name, labels), n in samples(proxy.process.metrics_text()).items()
                  if name == "lineage_proxy_errors_total" and n}  # fmt: skip
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert span.attributes["lineage.decision"] == "allow"
    assert span.attributes["error.type"] == line.code == kind
    assert span.attributes["rpc.grpc.status_code"] == line.status == grpc.StatusCode.CANCELLED.value[0]
    assert errors == {(("type", kind),): 1}


def _labelled(labels: str) -> bytes:
    """`_request()` carrying `labels` (its `data_labels` parameter)."""
    message = service_pb2.ModelInferRequest.FromString(_request())
    message.parameters["data_labels"].string_param = labels
    data: bytes = message.SerializeToString()
    return data


@interpreted
@pytest.mark.parametrize("left", [False, True], ids=["stays", "left"])
def test_a_streams_denied_message_whose_status_grpc_could_not_send_is_recorded_so_with_the_stream(
    proxy: ProxyHandle,
    otlp: OtlpReceiver,
    ended: threading.Event,
    caplog: pytest.LogCaptureFixture,
    left: bool,
) -> None:
    """A ModelStreamInfer's later message adds `health` and is refused: one status answers the stream and that message,
    two records held for it (`Exchange.finish_with`). Its client gone as it goes out, both say CANCELLED, nothing at
    ERROR; its client there, both say PERMISSION_DENIED, as it got."""
    caplog.set_level(logging.DEBUG, logger="grpc._cython.cygrpc")
    trace_id, parent = traced(2 + int(left), 0x5E7D0000)
    later = threading.Event()

    def messages() -> Iterator[bytes]:
        yield _request()
        later.wait(20)
        yield _labelled("health")

    with grpc.insecure_channel(proxy.grpc) as channel:
        call = channel.stream_stream(SERVICE + "ModelStreamInfer")(
            messages(), metadata=[("traceparent", parent)], timeout=20
        )
        next(call)  # the first message's reply: the stream was allowed
        later.set()
        if left:
            assert ended.wait(20)
            call.cancel()
        else:
            with pytest.raises(grpc.RpcError) as refused:
                next(call)
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        spans = otlp.wait_for(lambda got: len([s for s in got if s.trace_id == trace_id]) == 2)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    status = (grpc.StatusCode.CANCELLED if left else grpc.StatusCode.PERMISSION_DENIED).value[0]
    got = sorted((s.attributes["lineage.decision"], s.attributes.get("error.type", ""), s.attributes["rpc.grpc.status_code"])
                 for s in spans if s.trace_id == trace_id)  # fmt: skip
    # the stream (what was forwarded) ended by its message's refusal, and that message, denied: the refusal's type kept
    assert got == [("allow", "purpose_denied", status), ("deny", "purpose_denied", status)], got


class _Slow:
    """grpc's context for a handler, but for its `abort`, whose send takes `SLOW_S` (a client slow to take it): the wall
    time it is called at noted (`called_ns`), then grpc's own abort."""

    SLOW_S = 0.2
    called_ns: list[int] = []

    def __init__(self, context: Any) -> None:
        self._context = context

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    async def abort(self, code: grpc.StatusCode, details: str, trailing_metadata: Any = ()) -> None:
        _Slow.called_ns.append(time.time_ns())
        await asyncio.sleep(self.SLOW_S)
        await self._context.abort(code, details, trailing_metadata)


@interpreted
def test_a_streams_denied_message_answered_is_not_recorded_as_unanswered_once_its_status_is_sent(
    loop_thread: LoopThread,
    otlp: OtlpReceiver,
    make_proxy: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A ModelStreamInfer's later message refused, its client there: the status answers both, and the message's record,
    held until it is sent, ends when it was refused, with the stream's. Before (review revgrpc3), the handler's end,
    between the status's send and the record's release on the loop's next turn, took it for a client that left before
    its stream's denial was answered (`Exchange._unanswered`): the record ended after the status went out (a status
    slow to send: 0.2 s later than it was refused)."""
    stream = GrpcIngress.stream

    async def slow(self: GrpcIngress, adapter: Any, target: Any, method: str, requests: Any, context: Any) -> Any:
        return await stream(self, adapter, target, method, requests, _Slow(context))

    monkeypatch.setattr(GrpcIngress, "stream", slow)
    _Slow.called_ns.clear()
    trace_id, parent = traced(4, 0x5E7D0000)
    later = threading.Event()

    def messages() -> Iterator[bytes]:
        yield _request()
        later.wait(20)
        yield _labelled("health")

    with proxied(loop_thread, otlp, make_proxy, CONFIG, Holding()) as proxy:
        with grpc.insecure_channel(proxy.grpc) as channel:
            call = channel.stream_stream(SERVICE + "ModelStreamInfer")(
                messages(), metadata=[("traceparent", parent)], timeout=20
            )
            next(call)
            later.set()
            with pytest.raises(grpc.RpcError) as refused:
                next(call)
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        spans = otlp.wait_for(lambda got: len([s for s in got if s.trace_id == trace_id]) == 2)
    denied = next(s for s in spans if s.trace_id == trace_id and s.attributes["lineage.decision"] == "deny")
    assert (denied.attributes["error.type"], denied.attributes["rpc.grpc.status_code"]) == ("purpose_denied", 7)
    [called_ns] = _Slow.called_ns
    # ended before its status's send began (a margin of a quarter of that send for the clocks: wall, monotonic)
    assert denied.end_ns < called_ns + _Slow.SLOW_S * 1e9 / 4, (denied.end_ns - called_ns) / 1e9


def test_a_refusal_whose_client_reset_the_stream_with_its_message_is_never_recorded_as_answered(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The race unwrapped, as a raw HTTP/2 client makes it (compiled too): a denied ModelInfer's message and RST_STREAM
    in one write, so grpc has the reset before the handler answers. Each call is recorded as its client's leaving:
    `client_disconnected` when grpc cancelled the handler first, else the denial with CANCELLED (before 2026-12-06, 23
    of 40 such calls were recorded PERMISSION_DENIED, a status that never went out)."""
    caplog.set_level(logging.DEBUG, logger="grpc._cython.cygrpc")
    message = _request()
    body = b"\x00" + len(message).to_bytes(4, "big") + message
    ids = []
    with proxied(loop_thread, otlp, make_proxy, CONFIG, Holding()) as proxy:
        port = int(proxy.grpc.rsplit(":", 1)[1])
        for n in range(10):
            trace_id, parent = traced(n, 0x5E7E0000)
            ids.append(trace_id)
            client = HostileClient(port)
            try:
                stream = client.open(SERVICE + "ModelInfer", ("traceparent", parent.encode()), (DENIED[0], b"health"))
                with client._send:
                    client.sock.sendall(frame(DATA, END_STREAM, stream, body) + frame(RST_STREAM, 0, stream, CANCEL))
                client.ping()  # the listener has read both
            finally:
                client.close()
        spans = [otlp.by_trace(trace_id) for trace_id in ids]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    cancelled = grpc.StatusCode.CANCELLED.value[0]
    got = {
        (s.attributes["lineage.decision"], s.attributes["error.type"], s.attributes["rpc.grpc.status_code"])
        for s in spans
    }
    assert got <= {("deny", "client_disconnected", cancelled), ("deny", "purpose_denied", cancelled)}, got

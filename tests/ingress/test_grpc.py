"""How a gRPC call that did not end by itself is recorded: the status its client got (CANCELLED, DEADLINE_EXCEEDED,
UNAVAILABLE), never gRPC's OK, and why it ended (`client_disconnected`, `deadline_exceeded`, `drain_timeout`), in the
span and the access line alike."""

from __future__ import annotations

import asyncio
import logging
import threading
import types
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import grpc
import grpc.aio
import pytest
from tritonclient.grpc import service_pb2

from proxy.errors import ProxyError
from proxy.exchange import DRAIN_CUT
from proxy.flow import Outcome
from proxy.ingress.grpc import GrpcIngress
from proxy.logs import ACCESS
from tests.configs import ONE_GRPC_UPSTREAM
from tests.harness import LoopThread
from tests.ingress.grpc_proxied import proxied, recorded, traced
from tests.servers.otlp_receiver import OtlpReceiver

SERVICE = "/inference.GRPCInferenceService/"
CONFIG = (
    ONE_GRPC_UPSTREAM
    + """
policy: {anonymous: allow, default_purpose: assistant}
telemetry:
  exporter: otlp
  endpoint: ${OTLP}
logging: {access: true}
limits: {drain_timeout_s: 0.2}
lineage:
  store: ${STORE}
"""
)


class Holding(grpc.GenericRpcHandler):  # type: ignore[misc]
    """An OIP upstream that answers a unary call never, and a stream's first message once, then holds both
    until they are cancelled; `arrived` counts the calls that reached it."""

    def __init__(self) -> None:
        self.arrived = 0
        self._cond = threading.Condition()

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if details.method.endswith("/ModelInfer"):
            return grpc.unary_unary_rpc_method_handler(self._infer)
        if details.method.endswith("/ModelStreamInfer"):
            return grpc.stream_stream_rpc_method_handler(self._stream)
        return None

    def _arrive(self) -> None:
        with self._cond:
            self.arrived += 1
            self._cond.notify_all()

    def wait_arrived(self, count: int) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: self.arrived >= count, 10), f"{self.arrived} of {count} calls arrived"

    async def _infer(self, request: bytes, context: Any) -> bytes:
        self._arrive()
        await asyncio.Event().wait()
        raise AssertionError("held until cancelled")

    async def _stream(self, requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        async for _ in requests:
            yield b""  # an empty ModelStreamInferResponse
            self._arrive()
            await asyncio.Event().wait()


@pytest.fixture
def held(loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any) -> Iterator[tuple[Holding, Any]]:
    upstream = Holding()
    with proxied(loop_thread, otlp, make_proxy, CONFIG, upstream) as proxy:
        yield upstream, proxy


def _request() -> bytes:
    request = service_pb2.ModelInferRequest(model_name="held")
    request.inputs.add(name="A", datatype="INT32", shape=[1]).contents.int_contents.append(1)
    data: bytes = request.SerializeToString()
    return data


def _traceparent(n: int) -> tuple[str, tuple[tuple[str, str]]]:
    trace_id, traceparent = traced(n, 0x5EED0000)
    return trace_id, (("traceparent", traceparent),)


def test_a_call_its_client_cancels_is_recorded_with_cancelled_not_ok(
    held: tuple[Holding, Any], otlp: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    upstream, proxy = held
    caplog.set_level(logging.INFO, logger=ACCESS)
    unary_trace, unary_md = _traceparent(1)
    stream_trace, stream_md = _traceparent(2)
    with grpc.insecure_channel(proxy.grpc) as channel:
        future = channel.unary_unary(SERVICE + "ModelInfer").future(_request(), metadata=unary_md)
        upstream.wait_arrived(1)
        future.cancel()
        stream = channel.stream_stream(SERVICE + "ModelStreamInfer")(iter([_request()]), metadata=stream_md)
        next(stream)
        upstream.wait_arrived(2)
        stream.cancel()
    for trace_id in (unary_trace, stream_trace):
        span, line = recorded(otlp, caplog, trace_id)
        status = line.status
        assert span.attributes["error.type"] == "client_disconnected"
        assert span.attributes["rpc.grpc.status_code"] == status == grpc.StatusCode.CANCELLED.value[0]


def test_streams_cut_by_their_clients_deadline_are_recorded_as_such(
    held: tuple[Holding, Any], otlp: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    """Whichever comes first, the client's cancel at its deadline or the proxy's own copy of the deadline."""
    _, proxy = held
    caplog.set_level(logging.INFO, logger=ACCESS)
    traces = [_traceparent(10 + n) for n in range(4)]

    def consume(metadata: tuple[tuple[str, str]]) -> grpc.StatusCode:
        stream = channel.stream_stream(SERVICE + "ModelStreamInfer")
        with pytest.raises(grpc.RpcError) as caught:
            list(stream(iter([_request()]), metadata=metadata, timeout=0.3))
        code: grpc.StatusCode = caught.value.code()
        return code

    with grpc.insecure_channel(proxy.grpc) as channel, ThreadPoolExecutor(len(traces)) as pool:
        codes = list(pool.map(consume, [metadata for _, metadata in traces]))
    assert codes == [grpc.StatusCode.DEADLINE_EXCEEDED] * len(traces)
    for trace_id, _ in traces:
        span, line = recorded(otlp, caplog, trace_id)
        status = line.status
        assert span.attributes["error.type"] == "deadline_exceeded"
        assert span.attributes["rpc.grpc.status_code"] == status == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]


def test_calls_the_drain_cuts_off_are_recorded_as_its_and_counted(
    held: tuple[Holding, Any], otlp: OtlpReceiver, loop_thread: LoopThread, caplog: pytest.LogCaptureFixture
) -> None:
    """Past limits.drain_timeout_s the client gets UNAVAILABLE: the record says the drain cut the call, not
    that its client left."""
    upstream, proxy = held
    caplog.set_level(logging.INFO, logger=ACCESS)
    unary_trace, unary_md = _traceparent(20)
    stream_trace, stream_md = _traceparent(21)
    with grpc.insecure_channel(proxy.grpc) as channel:
        future = channel.unary_unary(SERVICE + "ModelInfer").future(_request(), metadata=unary_md)
        stream = channel.stream_stream(SERVICE + "ModelStreamInfer")(iter([_request()]), metadata=stream_md)
        next(stream)
        upstream.wait_arrived(2)
        loop_thread.run(proxy.process.stop())
        assert future.exception(10).code() == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(grpc.RpcError) as caught:
            next(stream)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    for trace_id in (unary_trace, stream_trace):
        span, line = recorded(otlp, caplog, trace_id)
        status = line.status
        assert span.attributes["error.type"] == "drain_timeout"
        assert span.attributes["rpc.grpc.status_code"] == status == grpc.StatusCode.UNAVAILABLE.value[0]
    cut = [r.getMessage() for r in caplog.records if "gRPC call(s) still running" in r.getMessage()]
    assert cut == ["drain: 2 gRPC call(s) still running after 0.2s were cut off (limits.drain_timeout_s)"]


def test_a_drain_cut_short_ends_the_calls_at_once_recorded_as_the_drains(
    held: tuple[Holding, Any], otlp: OtlpReceiver, loop_thread: LoopThread, caplog: pytest.LogCaptureFixture
) -> None:
    """A second Ctrl-C (`ProxyProcess.hurry`) during a drain of minutes: the calls end now, as the drain's cut."""
    upstream, proxy = held
    caplog.set_level(logging.INFO, logger=ACCESS)
    process = proxy.process
    process.config = replace(process.config, limits=replace(process.config.limits, drain_timeout_s=600))
    trace_id, metadata = _traceparent(22)
    with grpc.insecure_channel(proxy.grpc) as channel:
        future = channel.unary_unary(SERVICE + "ModelInfer").future(_request(), metadata=metadata)
        upstream.wait_arrived(1)
        stopping = asyncio.run_coroutine_threadsafe(process.stop(), loop_thread.loop)
        loop_thread.loop.call_soon_threadsafe(process.hurry)
        stopping.result(20)
        assert future.exception(10).code() == grpc.StatusCode.UNAVAILABLE
    span, _ = recorded(otlp, caplog, trace_id)
    assert span.attributes["error.type"] == "drain_timeout"
    cut = [r.getMessage() for r in caplog.records if "gRPC call(s) still running" in r.getMessage()]
    assert cut == ["drain: 1 gRPC call(s) still running were cut off (cut short by a second SIGINT)"]


class _Ended:
    """The part of an Exchange `GrpcIngress._ends` drives."""

    def __init__(self) -> None:
        self.outcome = Outcome(started_ns=1)
        self.refused: _Ended | None = None
        self.errors: list[object] = []

        self.call = object()  # read: its caller is known
        self.target = types.SimpleNamespace(operation="ModelInfer")
        self.trace = types.SimpleNamespace(trace_id_hex="0af7651916cd43dd8448eb211c80319c")

    def finish(self, error: object = None, until: object = None) -> None:
        if not self.outcome.ended_ns:
            self.outcome.ended_ns = 2
            self.errors.append(error)

    async def recorded(self) -> None:
        pass

    def lineage_headers(self) -> list[tuple[str, str]]:
        return [("x-trace-id", self.trace.trace_id_hex)]


class _Context:
    def __init__(self, remaining: float | None) -> None:
        self.remaining = remaining
        self.aborted: tuple[object, ...] = ()

    def time_remaining(self) -> float | None:
        return self.remaining

    async def abort(self, code: grpc.StatusCode, details: str, trailers: tuple[tuple[str, str], ...]) -> None:
        self.aborted = (code, details, trailers)
        raise grpc.aio.AbortError()


class _WriteFailed(Exception):
    """What grpc raises from `context.write` once the client's side of the call is gone (ExecuteBatchError)."""


@pytest.mark.interpreted  # its Exchange and context are stand-ins, which the compiled module refuses by their type
@pytest.mark.parametrize(
    ("remaining", "status", "error_type"),
    [
        (0.0, grpc.StatusCode.DEADLINE_EXCEEDED, "deadline_exceeded"),
        # a stream's client cancels at its deadline a little before the proxy's copy of it runs out (as measured)
        (0.0038, grpc.StatusCode.DEADLINE_EXCEEDED, "deadline_exceeded"),
        (1.0, grpc.StatusCode.CANCELLED, "client_disconnected"),
        (None, grpc.StatusCode.CANCELLED, "client_disconnected"),
    ],
)
@pytest.mark.parametrize("how", [asyncio.CancelledError, _WriteFailed])
def test_why_a_cancelled_call_ended(
    remaining: float | None, status: grpc.StatusCode, error_type: str, how: type[BaseException]
) -> None:
    """The wire says only "cancelled" (RST_STREAM): the client's deadline is told from its leaving by the time
    left. A stream's reply grpc could not send (its write failed: `unsent`) ends the call the same way; the
    error goes on to grpc as it is."""
    ingress = GrpcIngress.__new__(GrpcIngress)
    ingress._generation, ingress._cutting, ingress._cut = 0, set(), 0
    ended = _Ended()

    async def cancelled() -> None:
        ends = ingress._ends(ended, _Context(remaining))  # type: ignore[arg-type]
        ends.unsent = how is _WriteFailed
        await ends.close(how())

    with pytest.raises(how):
        asyncio.run(cancelled())
    assert (ended.outcome.status, ended.errors) == (status.value[0], [error_type])


class _Unsendable(_Context):
    """A call the drain's cut ended as its upstream's initial metadata was to go before its error status: grpc could
    not send it (ExecuteBatchError), and cancels the handler at its next wait."""

    async def send_initial_metadata(self, metadata: object) -> None:
        raise _WriteFailed("Failed execute_batch: (SendInitialMetadataOperation,)")

    async def abort(self, code: grpc.StatusCode, details: str, trailers: tuple[tuple[str, str], ...]) -> None:
        self.aborted = (code, details, trailers)
        raise asyncio.CancelledError


class _Held(_Ended):
    held = True  # its record waits for its write (a new flow's)


@pytest.mark.interpreted  # (as above)
def test_a_call_the_cut_ends_as_the_upstreams_initial_metadata_goes_is_counted_once_and_not_answered() -> None:
    """The upstream's initial metadata that grpc could not send (the drain's cut ended the call) ends the call there:
    recorded as the drain's, counted once in the drain's log line, and answered no status (its client is gone); grpc's
    error goes on to grpc. It went on to be answered: the cut met that answer too, and counted the call again."""
    ingress = GrpcIngress.__new__(GrpcIngress)
    ingress._generation, ingress._cutting, ingress._cut = 0, {0}, 0
    ended = _Held()
    context = _Unsendable(None)
    failed = ProxyError("model busy")
    failed.initial = (("x-upstream-request-id", "r-17"),)

    async def cut() -> None:
        await ingress._ends(ended, context).close(failed)  # type: ignore[arg-type]

    raised: type[BaseException] | None = None
    try:
        asyncio.run(cut())
    except (_WriteFailed, asyncio.CancelledError) as exc:
        raised = type(exc)
    assert (ingress._cut, ended.errors, context.aborted, raised) == (1, [DRAIN_CUT], (), _WriteFailed)
    assert ended.outcome.status == grpc.StatusCode.UNAVAILABLE.value[0]


@pytest.mark.interpreted  # (as above)
def test_any_other_error_is_not_recorded_as_the_clients_leaving_but_as_an_internal_error() -> None:
    """Anything else a handler raises is a defect of the proxy's: recorded as internal_error (not as the client's
    leaving, nor as a call that went well) and answered INTERNAL with the lineage, not its text."""
    ingress = GrpcIngress.__new__(GrpcIngress)
    ingress._generation, ingress._cutting, ingress._cut = 0, set(), 0
    ended = _Ended()
    context = _Context(None)

    async def failed() -> None:
        await ingress._ends(ended, context).close(_WriteFailed("a detail"))  # type: ignore[arg-type]

    with pytest.raises(grpc.aio.AbortError):
        asyncio.run(failed())
    assert ended.outcome.status == grpc.StatusCode.INTERNAL.value[0]
    (error,) = ended.errors
    assert isinstance(error, ProxyError) and error.code == "internal_error"
    code, details, trailers = context.aborted
    assert code == grpc.StatusCode.INTERNAL and "see its log" in str(details) and "detail" not in str(details)
    assert trailers == (("x-trace-id", ended.trace.trace_id_hex),)


def test_calls_a_reload_cuts_off_on_the_old_server_are_recorded_as_the_drains(
    held: tuple[Holding, Any],
    otlp: OtlpReceiver,
    loop_thread: LoopThread,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reload that gives the gRPC listener a new server (here for limits.max_body_bytes) lets the old one's
    calls run for limits.drain_timeout_s, then cuts them: recorded as the drain's. A call on the new server that
    its client cancels meanwhile is its client's."""
    upstream, proxy = held
    caplog.set_level(logging.INFO)
    config = proxy.process.config
    for name, value in (("UPSTREAM", config.upstreams[0].grpc), ("OTLP", f"http://127.0.0.1:{otlp.port}"),
                        ("STORE", config.lineage.store)):  # fmt: skip
        monkeypatch.setenv(name, value)
    bigger = tmp_path / "bigger.yaml"
    bigger.write_text(CONFIG.replace("{drain_timeout_s: 0.2}", "{drain_timeout_s: 0.2, max_body_bytes: 100000}"))
    old_trace, old_md = _traceparent(30)
    new_trace, new_md = _traceparent(31)

    async def reload() -> bool:
        done = bool(proxy.process.reload(str(bigger)))
        await proxy.process.settled()
        return done

    with grpc.insecure_channel(proxy.grpc) as channel:
        infer = channel.unary_unary(SERVICE + "ModelInfer")
        before = infer.future(_request(), metadata=old_md)
        upstream.wait_arrived(1)
        assert loop_thread.run(reload())
        assert before.exception(10).code() == grpc.StatusCode.UNAVAILABLE  # cut when the drain's time ran out
        # then a call on the new server (the old one sent GOAWAY: a new connection). A call sent at the instant of
        # the reload may be ended by grpc itself, never reaching the proxy (README; tests/ingress/test_grpc_reload.py)
        after = infer.future(_request(), metadata=new_md)
        upstream.wait_arrived(2)
        after.cancel()
    span, line = recorded(otlp, caplog, old_trace)
    status = line.status
    assert span.attributes["error.type"] == "drain_timeout" and status == grpc.StatusCode.UNAVAILABLE.value[0]
    span, line = recorded(otlp, caplog, new_trace)
    status = line.status
    assert span.attributes["error.type"] == "client_disconnected" and status == grpc.StatusCode.CANCELLED.value[0]
    cut = [r.getMessage() for r in caplog.records if "gRPC call(s) still running" in r.getMessage()]
    assert cut == ["reload: 1 gRPC call(s) still running after 0.2s were cut off (limits.drain_timeout_s) on "
                   "connections from before the reload"]  # fmt: skip


def test_a_reload_during_the_drain_starts_no_new_server(held: tuple[Holding, Any], loop_thread: LoopThread) -> None:
    """A SIGHUP while the process drains (SIGTERM) must not open the gRPC port again."""
    import socket

    _, proxy = held
    ingress = proxy.process._grpc
    loop_thread.run(ingress.stop(0.1))
    loop_thread.run(ingress.replace(None, 1000, 0.1))
    host, port = proxy.grpc.rsplit(":", 1)
    with pytest.raises(ConnectionRefusedError), socket.create_connection((host, int(port)), timeout=5):
        pass

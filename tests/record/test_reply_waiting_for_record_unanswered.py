"""A new flow's reply waits for its first edge to be written (`Exchange.recorded`): up to the store's busy timeout
(3 s) while another process holds its write lock (an operator's `sqlite3` shell in a transaction). A client that gives
up meanwhile never gets the reply; its call was recorded before the wait as answered (the span and access line said
200, or gRPC OK, and a duration of a millisecond), though the client got a timeout. The record now says how the call
ended: the client's leaving (HTTP, no status: none went out) or its deadline (gRPC DEADLINE_EXCEEDED). A refusal's
answer waits so too; a type the call was recorded with (a denial's code, an upstream's error in band) stays, and the
call is counted once."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import openai
import pytest
from tritonclient.grpc import service_pb2

from proxy.logs import ACCESS
from tests.configs import ONE_UPSTREAM
from tests.ingress.grpc_proxied import proxied, recorded
from tests.ingress.test_grpc import CONFIG as GRPC_CONFIG
from tests.ingress.test_grpc import SERVICE, _request, _traceparent
from tests.record.test_store_waits import until
from tests.servers.otlp_receiver import OtlpReceiver
from tests.servers.vllm_like import SERVED
from tests.test_metrics import samples

HTTP_CONFIG = (
    ONE_UPSTREAM
    + """
telemetry: {exporter: otlp, endpoint: "${OTLP}"}
logging: {access: true}
lineage: {store: "${STORE}"}
"""
)
GIVES_UP_S = 0.5  # the client's timeout: well inside the store's busy timeout the reply waits for


@contextlib.contextmanager
def write_locked(path: Path) -> Iterator[None]:
    """The store's write lock held by another connection, as a `sqlite3` shell's `BEGIN IMMEDIATE` holds it."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


def gives_up(proxy: Any, client: openai.OpenAI, store: Path, labels: str, trace_id: str) -> None:
    """A chat of data labelled `labels` whose client gives up (its timeout) while the store's write lock is held, so
    its answer waits for its new flow's write; returns once the proxy has seen the client leave, the lock still held
    (released first, the write could end and the answer go out before the proxy saw the client gone)."""
    with write_locked(store):
        with pytest.raises(openai.APITimeoutError):
            client.chat.completions.create(
                model=SERVED, messages=[{"role": "user", "content": "hi"}],
                extra_headers={"x-data-labels": labels, "traceparent": f"00-{trace_id}-00000000000000a1-01"},
            )  # fmt: skip
        until(lambda: not proxy.process._http.connections)


def access_line(caplog: pytest.LogCaptureFixture, trace_id: str) -> Any:
    lines = [r for r in caplog.records if r.name == ACCESS and getattr(r, "trace_id", None) == trace_id]
    assert len(lines) == 1, lines
    return lines[0]


def stream_gives_up(
    loop_thread: Any, proxy: Any, channel: grpc.Channel, sent: Iterator[bytes], traced: tuple[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> tuple[grpc.RpcError, list[Any]]:  # fmt: skip
    """`sent` streamed (ModelStreamInfer) with the store's write lock held, its client's deadline passing while the
    answer waits for the record's write; returns the client's error and, once the proxy ended the call too and its
    sinks were flushed, the access lines of the call's trace (`traced`: its id and the metadata carrying it)."""
    trace_id, metadata = traced
    with write_locked(Path(proxy.process.config.lineage.store)):
        with pytest.raises(grpc.RpcError) as caught:
            list(channel.stream_stream(SERVICE + "ModelStreamInfer")(sent, metadata=metadata, timeout=GIVES_UP_S))
        until(lambda: proxy.process._grpc.calls == 0)  # the proxy ended it too (its own copy of the deadline)
    loop_thread.run(proxy.process.runtime.sinks.flush())
    return caught.value, [r for r in caplog.records if r.name == ACCESS and getattr(r, "trace_id", None) == trace_id]


def test_an_http_client_that_gives_up_while_its_reply_waits_for_the_record_is_recorded_as_gone(
    tmp_path: Path, vllm: Any, make_proxy: Any, otlp: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)
    _, upstream = vllm
    store = tmp_path / "lineage.db"
    proxy = make_proxy(HTTP_CONFIG, UPSTREAM=upstream, STORE=str(store), OTLP=f"http://127.0.0.1:{otlp.port}")
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="unused", timeout=GIVES_UP_S, max_retries=0)
    trace_id = f"{0x5EED7A11:032x}"
    gives_up(proxy, client, store, "fresh", trace_id)
    span = otlp.by_trace(trace_id)
    assert span.attributes["error.type"] == "client_disconnected"
    assert "http.response.status_code" not in span.attributes  # no reply went out
    assert (span.end_ns - span.start_ns) / 1e9 >= GIVES_UP_S * 0.8  # it ended when the client left, not before
    line = access_line(caplog, trace_id)
    assert (line.code, line.status) == ("client_disconnected", 0)
    assert client.chat.completions.create(model=SERVED, messages=[{"role": "user", "content": "hi"}],
                                          extra_headers={"x-data-labels": "fresh"}).choices  # fmt: skip


def test_an_http_client_that_gives_up_while_its_denial_waits_for_the_record_is_recorded_unanswered(
    tmp_path: Path, vllm: Any, make_proxy: Any, otlp: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    """A denial's answer waits for its new flow's write as a reply does: a client that gives up meanwhile never got
    its 403. Its record said 403, ended before the wait; now no status (none went out), ended when the client left,
    the denial's code kept and counted once."""
    caplog.set_level(logging.INFO, logger=ACCESS)
    _, upstream = vllm
    store = tmp_path / "lineage.db"
    config = HTTP_CONFIG + "zones:\n  - {name: health, labels: [health], allow_purposes: [research]}\n"
    proxy = make_proxy(config, UPSTREAM=upstream, STORE=str(store), OTLP=f"http://127.0.0.1:{otlp.port}")
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="unused", timeout=GIVES_UP_S, max_retries=0)
    trace_id = f"{0x5EED7A14:032x}"
    gives_up(proxy, client, store, "health", trace_id)
    span = otlp.by_trace(trace_id)
    assert span.attributes["error.type"] == "purpose_denied"
    assert "http.response.status_code" not in span.attributes  # no answer went out
    assert (span.end_ns - span.start_ns) / 1e9 >= GIVES_UP_S * 0.8  # it ended when the client left, not before
    line = access_line(caplog, trace_id)
    assert (line.decision, line.code, line.status) == ("deny", "purpose_denied", 0)
    errors = {labels: n for (name, labels), n in samples(proxy.process.metrics_text()).items()
              if name == "lineage_proxy_errors_total" and n}  # fmt: skip
    assert errors == {(("type", "purpose_denied"),): 1}


class Answering(grpc.GenericRpcHandler):  # type: ignore[misc]
    """An OIP upstream that answers every ModelInfer at once."""

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if details.method.endswith("/ModelInfer"):
            return grpc.unary_unary_rpc_method_handler(self._infer)
        return None

    @staticmethod
    async def _infer(request: bytes, context: Any) -> bytes:
        reply = service_pb2.ModelInferResponse(model_name="held")
        reply.outputs.add(name="B", datatype="INT32", shape=[1]).contents.int_contents.append(2)
        data: bytes = reply.SerializeToString()
        return data


def test_a_grpc_deadline_passing_while_its_reply_waits_for_the_record_is_recorded_as_the_deadline(
    loop_thread: Any, make_proxy: Any, otlp: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)
    with proxied(loop_thread, otlp, make_proxy, GRPC_CONFIG, Answering()) as proxy:
        store = Path(proxy.process.config.lineage.store)
        trace_id, metadata = _traceparent(0x7A11)
        with grpc.insecure_channel(proxy.grpc) as channel, write_locked(store):
            with pytest.raises(grpc.RpcError) as caught:
                channel.unary_unary(SERVICE + "ModelInfer")(_request(), metadata=metadata, timeout=GIVES_UP_S)
            until(lambda: proxy.process._grpc.calls == 0)  # the proxy ended it too (its own copy of the deadline)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        span, line = recorded(otlp, caplog, trace_id)
        assert span.attributes["error.type"] == line.code == "deadline_exceeded"
        assert span.attributes["rpc.grpc.status_code"] == line.status == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]


class ErringInBand(grpc.GenericRpcHandler):  # type: ignore[misc]
    """A ModelStreamInfer upstream that answers each request with an error in band (Triton's `error_message`), its
    stream ending OK once the client's does."""

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if details.method.endswith("/ModelStreamInfer"):
            return grpc.stream_stream_rpc_method_handler(self._stream)
        return None

    @staticmethod
    async def _stream(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        async for _ in requests:
            yield service_pb2.ModelStreamInferResponse(error_message="unexpected shape").SerializeToString()


def test_a_stream_whose_in_band_error_was_counted_is_counted_once_when_its_deadline_passes_waiting_for_the_record(
    loop_thread: Any, make_proxy: Any, otlp: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    """The stream ended with the upstream's error in band, recorded (`upstream_error`, counted) and held for the
    record's write; its deadline passing meanwhile ended it for the client: the record says so (its status, its end),
    and keeps the type it was counted with. It was counted again as `deadline_exceeded`: two errors of one call."""
    caplog.set_level(logging.INFO, logger=ACCESS)
    with proxied(loop_thread, otlp, make_proxy, GRPC_CONFIG, ErringInBand()) as proxy:
        store = Path(proxy.process.config.lineage.store)
        trace_id, metadata = _traceparent(0x7A12)
        with grpc.insecure_channel(proxy.grpc) as channel, write_locked(store):
            replies = channel.stream_stream(SERVICE + "ModelStreamInfer")(
                iter([_request()]), metadata=metadata, timeout=GIVES_UP_S
            )
            with pytest.raises(grpc.RpcError) as caught:
                assert [service_pb2.ModelStreamInferResponse.FromString(r).error_message for r in replies] == [
                    "unexpected shape"
                ]
            until(lambda: proxy.process._grpc.calls == 0)  # the proxy ended it too (its own copy of the deadline)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        span, line = recorded(otlp, caplog, trace_id)
        assert span.attributes["rpc.grpc.status_code"] == line.status == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
        assert (span.end_ns - span.start_ns) / 1e9 >= GIVES_UP_S * 0.8  # it ended as the deadline passed
        errors = {labels: n for (name, labels), n in samples(proxy.process.metrics_text()).items()
                  if name == "lineage_proxy_errors_total" and n}  # fmt: skip
        assert errors == {(("type", "upstream_error"),): 1}
        assert span.attributes["error.type"] == line.code == "upstream_error"  # the type it was counted with


class Echoing(grpc.GenericRpcHandler):  # type: ignore[misc]
    """A ModelStreamInfer upstream that answers each request with a reply."""

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if details.method.endswith("/ModelStreamInfer"):
            return grpc.stream_stream_rpc_method_handler(self._stream)
        return None

    @staticmethod
    async def _stream(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        async for _ in requests:
            reply = service_pb2.ModelStreamInferResponse(
                infer_response=service_pb2.ModelInferResponse(model_name="held")
            )
            yield reply.SerializeToString()


def test_a_streams_denied_message_whose_denial_waits_for_the_record_keeps_its_denial_when_the_deadline_passes(
    loop_thread: Any, make_proxy: Any, otlp: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    """A stream's later message adds a label its purpose may not have: denied, recorded (its code counted), the
    denial's answer waiting for its new flow's write. The client's deadline passing meanwhile ended it: the record
    says so (its status, its end) and keeps the denial's code, counted once. It was counted again as
    `client_disconnected`, and recorded so: the denial was gone from the span and the access line. The stream, ended
    by that denial and recorded with it before the wait (its record held with its message's: `Exchange.finish_with`),
    keeps it too; it was recorded after the wait, which its deadline ended, and so as `deadline_exceeded`."""
    caplog.set_level(logging.INFO, logger=ACCESS)
    config = GRPC_CONFIG + "zones:\n  - {name: health, labels: [health], allow_purposes: [research]}\n"
    with proxied(loop_thread, otlp, make_proxy, config, Echoing()) as proxy:
        labelled = service_pb2.ModelInferRequest.FromString(_request())
        labelled.parameters["data_labels"].string_param = "health"
        sent = iter([_request(), labelled.SerializeToString()])
        with grpc.insecure_channel(proxy.grpc) as channel:
            # the stream's own flow written first: only the denial's waits
            assert list(channel.stream_stream(SERVICE + "ModelStreamInfer")(iter([_request()]), timeout=10))
            caught, lines = stream_gives_up(loop_thread, proxy, channel, sent, _traceparent(0x7A13), caplog)
        assert caught.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        deadline = grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
        # the stream (its own record: it ended at the deadline, not OK) and its denied message, each with the denial's
        # code it was recorded (and counted) with
        assert sorted((line.decision, line.code, line.status) for line in lines) == [
            ("allow", "purpose_denied", deadline),
            ("deny", "purpose_denied", deadline),
        ]
        assert all(line.duration_ms >= GIVES_UP_S * 800 for line in lines)  # they ended as the deadline passed
        errors = {labels: n for (name, labels), n in samples(proxy.process.metrics_text()).items()
                  if name == "lineage_proxy_errors_total" and n}  # fmt: skip
        assert errors == {(("type", "purpose_denied"),): 2}  # each call counted once

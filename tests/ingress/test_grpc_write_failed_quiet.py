"""A reply grpc could not send (`_Ends.unsent`): grpc's core fails the send (ExecuteBatchError) when its client is gone
before grpc.aio has marked the call closed, which one of the two comes first being a race of grpc's core. The call is
recorded as its client's leaving; what its handler then raises is what grpc.aio logs: a cancel at DEBUG, but grpc's
error, raised on as it was until 2026-12-06, at ERROR with a traceback ("ExecuteBatchError raised in core by servicer
method"), unless the call had been marked closed by then (a client leaving is no error of the proxy's). Here the send
fails so while the client stays (grpc's context wrapped: `interpreted`), so the call is never marked closed first."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from grpc._cython import cygrpc

from proxy.ingress.grpc import GrpcIngress
from proxy.protocols.oip_grpc import MODEL_STREAM_INFER
from tests.harness import LoopThread, ProxyHandle
from tests.ingress.grpc_proxied import proxied_recording
from tests.ingress.test_grpc_stream_forwarded import CONFIG, Upstream, _request
from tests.record.test_sinks import Sink
from tests.record.test_store_waits import until
from tests.servers.otlp_receiver import OtlpReceiver

# GrpcIngress's handler replaced by patching: with the modules compiled, grpc would still call the compiled one
pytestmark = pytest.mark.interpreted


class _Unsendable:
    """grpc's context for a handler, but for its second `write` (a later reply), which fails as grpc's batch does for a
    client gone; `ended` set once grpc.aio is done with the handler (and has logged what it raised)."""

    def __init__(self, context: Any, ended: threading.Event) -> None:
        self._context, self._writes = context, 0
        context.add_done_callback(lambda _: ended.set())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    async def write(self, message: Any) -> None:
        self._writes += 1
        if self._writes == 2:
            raise cygrpc.ExecuteBatchError('Failed "execute_batch": (SendMessageOperation,)')
        await self._context.write(message)


@pytest.fixture
def ended(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    done = threading.Event()
    stream = GrpcIngress.stream

    async def unsendable(self: GrpcIngress, adapter: Any, target: Any, method: str, requests: Any, context: Any) -> Any:
        return await stream(self, adapter, target, method, requests, _Unsendable(context, done))

    monkeypatch.setattr(GrpcIngress, "stream", unsendable)
    return done


@pytest.fixture
def proxy(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any, ended: threading.Event
) -> Iterator[tuple[ProxyHandle, Sink]]:
    with proxied_recording(loop_thread, otlp, make_proxy, CONFIG, Upstream()) as recording:
        yield recording


def test_a_reply_grpc_could_not_send_ends_the_call_as_its_clients_leaving_not_logged_as_an_error(
    proxy: tuple[ProxyHandle, Sink], ended: threading.Event, caplog: pytest.LogCaptureFixture
) -> None:
    """The second reply's send fails: the call is recorded `client_disconnected`, CANCELLED, and grpc logs nothing at
    ERROR or above (before: "ExecuteBatchError raised in core by servicer method", with grpc's traceback)."""
    handle, records = proxy
    caplog.set_level(logging.DEBUG, logger="grpc._cython.cygrpc")
    with grpc.insecure_channel(handle.grpc) as channel:
        call = channel.stream_stream(MODEL_STREAM_INFER)(iter([_request("ask 0"), _request("ask 1")]), timeout=20)
        next(call)
        assert ended.wait(20)  # grpc.aio is done with the handler, what it raised logged
        call.cancel()  # (no status came: grpc sends none for a handler that raised so)
    until(lambda: bool(records.ended), 20)
    ((_, decision, outcome),) = records.ended
    assert decision.action == "allow" and outcome.error_type == "client_disconnected"
    assert outcome.status == grpc.StatusCode.CANCELLED.value[0]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []

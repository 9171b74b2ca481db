"""A ModelStreamInfer stream its client ends with no message is a call like any other: its caller's key is checked
(a keyless caller is refused where anonymous calls are denied, as for every call) and it is recorded, as the
data-free calls are (a span, an access line, no lineage edge). Nothing names a model, so nothing is forwarded: an
upstream answers such a stream OK with no reply, and so does the proxy. grpc.aio's `read` gives the same end for a
stream that failed before its first message (here: cut by its client's deadline): that one is recorded as what
ended it, never as answered OK. (It was answered OK unchecked and unrecorded.)"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from proxy.logs import ACCESS
from tests.configs import ONE_GRPC_UPSTREAM
from tests.conftest import KEYS, sha
from tests.harness import LoopThread
from tests.ingress.grpc_proxied import proxied, recorded, traced
from tests.servers.otlp_receiver import OtlpReceiver

STREAM = "/inference.GRPCInferenceService/ModelStreamInfer"
CONFIG = (
    ONE_GRPC_UPSTREAM
    + f"""
callers:
  - name: lab
    api_key_sha256: {sha(KEYS["ops"])}
    purposes: [assistant]
policy: {{anonymous: deny, default_purpose: assistant}}
telemetry:
  exporter: otlp
  endpoint: ${{OTLP}}
logging: {{access: true}}
lineage:
  store: ${{STORE}}
"""
)
AUTH = {"authorization": f"Bearer {KEYS['ops']}"}


class Counting(grpc.GenericRpcHandler):  # type: ignore[misc]
    """An OIP upstream whose ModelStreamInfer counts the streams that reach it and answers none."""

    def __init__(self) -> None:
        self.streams = 0
        self._lock = threading.Lock()

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        return grpc.stream_stream_rpc_method_handler(self._stream) if details.method == STREAM else None

    async def _stream(self, requests: AsyncIterator[bytes], context: Any) -> None:
        with self._lock:
            self.streams += 1
        async for _ in requests:
            pass


@pytest.fixture
def proxy(loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any) -> Iterator[tuple[Any, Counting]]:
    upstream = Counting()
    with proxied(loop_thread, otlp, make_proxy, CONFIG, upstream) as handle:
        yield handle, upstream


def _trace(n: int) -> tuple[str, str]:
    return traced(n, 0xE3F70000)


def _empty_stream(proxy: Any, headers: dict[str, str]) -> list[Any]:
    """A tritonclient stream started and stopped with no request sent; what its callback was given."""
    given: list[Any] = []
    client = grpcclient.InferenceServerClient(proxy.grpc)
    try:
        client.start_stream(lambda result, error: given.append(error or result), headers=headers)
        client.stop_stream()
    finally:
        client.close()
    return given


def test_an_empty_stream_of_a_known_caller_is_answered_ok_and_recorded(
    proxy: tuple[Any, Counting], otlp: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    handle, upstream = proxy
    caplog.set_level(logging.INFO, logger=ACCESS)
    trace_id, traceparent = _trace(1)
    assert _empty_stream(handle, {**AUTH, "traceparent": traceparent}) == []  # OK, no reply: as an upstream answers
    span, line = recorded(otlp, caplog, trace_id)
    assert span.attributes["rpc.grpc.status_code"] == 0 and line.status == 0
    assert span.attributes["lineage.caller"] == "lab"
    assert span.attributes["lineage.decision"] == "allow"
    assert "error.type" not in span.attributes
    assert "lineage.upstream" not in span.attributes  # nothing was forwarded
    assert upstream.streams == 0


def test_an_empty_stream_of_a_keyless_caller_is_refused_and_recorded(
    proxy: tuple[Any, Counting], otlp: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    handle, _ = proxy
    caplog.set_level(logging.INFO, logger=ACCESS)
    trace_id, traceparent = _trace(2)
    given = _empty_stream(handle, {"traceparent": traceparent})
    assert len(given) == 1 and isinstance(given[0], InferenceServerException), given
    assert given[0].status() == "StatusCode.UNAUTHENTICATED"
    span, line = recorded(otlp, caplog, trace_id)
    assert span.attributes["lineage.decision"] == "deny"
    assert span.attributes["error.type"] == "invalid_api_key"
    assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.UNAUTHENTICATED.value[0] == line.status


def test_a_stream_cut_before_its_first_message_is_recorded_as_what_cut_it(
    proxy: tuple[Any, Counting], otlp: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    handle, upstream = proxy
    caplog.set_level(logging.INFO, logger=ACCESS)
    trace_id, traceparent = _trace(3)
    never = threading.Event()

    def nothing() -> Iterator[bytes]:  # a client that sends no message and never ends its messages
        never.wait(30)
        yield from ()

    with grpc.insecure_channel(handle.grpc) as channel:
        call = channel.stream_stream(STREAM)(nothing(), metadata=(*AUTH.items(), ("traceparent", traceparent)),
                                             timeout=1.0)  # fmt: skip
        with pytest.raises(grpc.RpcError) as cut:
            next(call)
        never.set()
    assert cut.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    span, line = recorded(otlp, caplog, trace_id)
    assert span.attributes["error.type"] == "deadline_exceeded"
    assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.DEADLINE_EXCEEDED.value[0] == line.status
    assert upstream.streams == 0

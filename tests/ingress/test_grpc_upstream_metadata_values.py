"""An upstream's metadata value that grpc will not send (not printable ASCII, in a key that is not `-bin`: an HTTP/2
hop or a server that is not grpc's may send one, and grpc's clients take it) is left out of what the proxy passes on,
the rest of the call as it was. Passed on, grpc refused the whole reply: every call to such an upstream failed
INTERNAL "Invalid metadata" (a direct client's worked), and a unary call was recorded OK."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from tests.configs import ONE_GRPC_UPSTREAM
from tests.harness import LoopThread, ProxyHandle
from tests.ingress.test_grpc import _request  # a small ModelInferRequest
from tests.servers.h2_wire import H2Listener, grpc_reply
from tests.servers.otlp_receiver import OtlpReceiver

CONFIG = (
    ONE_GRPC_UPSTREAM
    + """
policy: {anonymous: allow, default_purpose: assistant, passthrough: forward}
telemetry:
  exporter: otlp
  endpoint: ${OTLP}
"""
)
SERVICE = "/inference.GRPCInferenceService/"
INFER, READY, STREAM, OTHER = SERVICE + "ModelInfer", SERVICE + "ModelReady", SERVICE + "ModelStreamInfer", "/x.Y/Z"
UNSENDABLE = ("h\u00e9llo".encode(), b"tab\there")  # UTF-8 and a control character: grpc sends neither


def _reply(stream: int) -> bytes:
    """An empty message (every method's reply may be one), with a sendable and two unsendable values each way."""
    initial = (("x-fine", b"ok"), *((f"x-odd-{n}", value) for n, value in enumerate(UNSENDABLE)))
    trailing = (("x-fine-t", b"ok"), *((f"x-odd-t-{n}", value) for n, value in enumerate(UNSENDABLE)))
    return grpc_reply(stream, b"", initial, trailing)


@pytest.fixture
def proxy(loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any) -> Iterator[ProxyHandle]:
    upstream = H2Listener(reply=_reply)
    try:
        handle = make_proxy(
            CONFIG, wait="none", UPSTREAM=f"127.0.0.1:{upstream.port}", OTLP=f"http://127.0.0.1:{otlp.port}"
        )
        yield handle
        loop_thread.run(handle.process.stop())
    finally:
        upstream.close()


@pytest.mark.parametrize("method", [INFER, READY, STREAM, OTHER], ids=["infer", "ready", "stream-infer", "other"])
def test_a_value_grpc_will_not_send_is_left_out_and_the_call_goes_on(
    proxy: ProxyHandle, otlp: OtlpReceiver, method: str
) -> None:
    with grpc.insecure_channel(proxy.grpc) as channel:
        if method == STREAM:
            call = channel.stream_stream(method)(iter([_request()]), timeout=10)
            assert list(call) == [b""]
        else:
            reply, call = channel.unary_unary(method).with_call(_request(), timeout=10)
            assert reply == b""
    initial, trailing = dict(call.initial_metadata()), dict(call.trailing_metadata())
    assert initial["x-fine"] == "ok" and trailing["x-fine-t"] == "ok"
    assert not [key for key in (*initial, *trailing) if key.startswith("x-odd")]
    span = otlp.by_trace({**initial, **trailing}["x-trace-id"])
    assert span.attributes["rpc.grpc.status_code"] == 0

"""A unary call (ModelInfer, a metadata or health RPC) whose client ends its messages without sending one: grpc hands
the handler EOF at once, so the arrival bound (limits.grpc_request_timeout_s) never applies, and the call was left
open, unanswered and unrecorded, until the client's deadline (without one: for good, holding its place among
limits.grpc_max_calls). It is answered INVALID_ARGUMENT at once and recorded (`invalid_request`); nothing reaches the
upstream."""

from __future__ import annotations

import logging
from typing import Any

import grpc
import pytest

from proxy.logs import ACCESS
from tests.harness import LoopThread
from tests.ingress.grpc_proxied import proxied, recorded, traced
from tests.ingress.test_grpc_too_large import CONFIG, SERVICE, Upstream
from tests.servers.otlp_receiver import OtlpReceiver


@pytest.mark.parametrize("method", ["ModelInfer", "ServerLive", "ModelMetadata"])
def test_a_unary_call_ended_without_its_request_is_answered_and_recorded(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any, caplog: pytest.LogCaptureFixture, method: str
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)
    upstream = Upstream()
    trace_id, parent = traced(0, 0x0E0F_0000)
    with (
        proxied(loop_thread, otlp, make_proxy, CONFIG, upstream) as proxy,
        grpc.insecure_channel(proxy.grpc) as channel,
    ):
        call = channel.stream_unary(SERVICE + method)  # so that the client can half-close with no message
        with pytest.raises(grpc.RpcError) as raised:
            call(iter(()), timeout=30, metadata=(("traceparent", parent),))
        error: Any = raised.value
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
        assert "no request message" in error.details()
        span, line = recorded(otlp, caplog, trace_id)
        assert span.attributes["error.type"] == "invalid_request"
        assert line.status == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert upstream.messages == 0

"""A ModelInfer whose request message is not whole when grpc fails the call (its client cancels it, its deadline
passes) had begun: its handler ran and held a place of `limits.grpc_max_calls`. It left no record at all (no span,
no access line), where a ModelStreamInfer failed so before its first message is recorded as its client's cancel, and
an HTTP request whose client leaves mid-body is recorded. It is recorded now as one refused before it was read is
(`deny`, no edge), with the status its client got. A client on raw HTTP/2 holds back its message's last byte."""

from __future__ import annotations

import logging
from typing import Any

import grpc
import pytest

from proxy.logs import ACCESS
from tests.harness import LoopThread
from tests.ingress.grpc_proxied import proxied, recorded, traced
from tests.ingress.test_grpc import CONFIG, SERVICE, Holding
from tests.servers.h2_hostile import RST_STREAM, HostileClient
from tests.servers.h2_wire import frame
from tests.servers.otlp_receiver import OtlpReceiver

CANCEL = 8  # RST_STREAM's error code, as a gRPC client's cancel sends it


@pytest.mark.parametrize(
    ("ending", "error_type", "status"),
    [("cancel", "client_disconnected", grpc.StatusCode.CANCELLED), ("deadline", "deadline_exceeded", grpc.StatusCode.DEADLINE_EXCEEDED)],
)  # fmt: skip
def test_a_unary_call_failed_before_its_request_was_whole_is_recorded(
    loop_thread: LoopThread,
    otlp: OtlpReceiver,
    make_proxy: Any,
    caplog: pytest.LogCaptureFixture,
    ending: str,
    error_type: str,
    status: grpc.StatusCode,
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)
    trace_id, parent = traced(1 if ending == "cancel" else 2, 0x1EF70000)
    upstream = Holding()
    with proxied(loop_thread, otlp, make_proxy, CONFIG, upstream) as proxy:
        hostile = HostileClient(int(proxy.grpc.rsplit(":", 1)[1]))
        try:
            deadline = (("grpc-timeout", b"300m"),) if ending == "deadline" else ()
            stream = hostile.start(SERVICE + "ModelInfer", 1000, ("traceparent", parent.encode()), *deadline)
            if ending == "cancel":
                hostile.ping()  # the listener has the call and its message's start
                with hostile._send:
                    hostile.sock.sendall(frame(RST_STREAM, 0, stream, CANCEL.to_bytes(4, "big")))
            span, line = recorded(otlp, caplog, trace_id)  # (waits for the span)
        finally:
            hostile.close()
    assert span.attributes["error.type"] == line.code == error_type
    assert span.attributes["rpc.grpc.status_code"] == line.status == status.value[0]
    assert span.attributes["lineage.decision"] == "deny"  # nothing of it was read or forwarded
    assert upstream.arrived == 0

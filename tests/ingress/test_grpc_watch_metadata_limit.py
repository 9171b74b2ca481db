"""A health watch's metadata is bounded as every other call's: one whose metadata would reach the upstream over the
8 KiB a gRPC server takes by default is refused by the proxy, every time, recorded (`request_too_large`, the message
naming grpc.max_metadata_size). `Health/Watch` (relayed as a stream, `GrpcIngress.watch`) skipped the check that
`unary`, `stream`, `data_free` (its `Check`) and `passthrough` make: its metadata went to the upstream as it came, whose
grpc refused it at random (RESOURCE_EXHAUSTED, unrecorded as the proxy's) or took it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from proxy.logs import ACCESS
from tests.harness import LoopThread, ProxyHandle
from tests.ingress.grpc_proxied import proxied, recorded, traced
from tests.ingress.test_grpc_health_checked import CONFIG
from tests.ingress.test_grpc_health_watched import WATCH, Watched, _made
from tests.ingress.test_grpc_metadata_limit import labels
from tests.servers.otlp_receiver import OtlpReceiver

BASE = 0x5A7D_0000
CALLS = 10


@pytest.fixture
def proxy(loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any) -> Iterator[tuple[ProxyHandle, Watched]]:
    upstream = loop_thread.run(_made())
    with proxied(loop_thread, otlp, make_proxy, CONFIG, upstream) as handle:
        yield handle, upstream


def test_a_health_watch_whose_metadata_is_over_an_upstreams_limit_is_refused_and_recorded(
    proxy: tuple[ProxyHandle, Watched], otlp: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    handle, upstream = proxy
    caplog.set_level(logging.INFO, logger=ACCESS)
    trace_id, traceparent = traced(1, BASE)
    codes = []
    with grpc.insecure_channel(handle.grpc) as channel:
        for i in range(CALLS):
            metadata = [("x-data-labels", labels(64))] + ([("traceparent", traceparent)] if i == 0 else [])
            call = channel.unary_stream(WATCH)(b"", timeout=10, metadata=metadata)
            try:
                next(call)
                codes.append("OK")
                call.cancel()
            except grpc.RpcError as exc:
                codes.append(exc.code().name)
                if i == 0:
                    assert "grpc.max_metadata_size" in (exc.details() or ""), exc.details()
    assert codes == ["RESOURCE_EXHAUSTED"] * CALLS
    assert upstream.asked == []  # refused by the proxy, never forwarded
    span, line = recorded(otlp, caplog, trace_id)
    assert span.attributes["error.type"] == "request_too_large"
    assert line.status == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]

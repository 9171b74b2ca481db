"""`limits.max_headers` bounds a gRPC call's metadata entries as it bounds an HTTP request's header fields. grpc bounds
metadata by its bytes alone (`limits.max_header_bytes`), so a call of a hundred and more short entries (a label per
`x-data-labels` entry, any other key) was forwarded over gRPC where the HTTP listener refused the same request 431:
the two ingresses decided the same caller's call differently. Now both refuse it, the gRPC one recorded and naming the
limit (INVALID_ARGUMENT, `invalid_request`), before the upstream hears of it."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from proxy.logs import ACCESS
from tests.harness import LoopThread, ProxyHandle
from tests.ingress.grpc_proxied import proxied, recorded, traced
from tests.ingress.test_grpc import _request
from tests.ingress.test_grpc_metadata_limit import INFER, Counting
from tests.ingress.test_grpc_streams import CONFIG
from tests.servers.otlp_receiver import OtlpReceiver

BASE = 0x3E7B_0000
LIMITED = CONFIG + "limits: {max_headers: 20}\n"


@pytest.fixture
def counted(loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any) -> Iterator[tuple[ProxyHandle, Counting]]:
    upstream = Counting()
    with proxied(loop_thread, otlp, make_proxy, LIMITED, upstream) as proxy:
        yield proxy, upstream


def test_more_metadata_entries_than_max_headers_are_refused_as_over_http(
    counted: tuple[ProxyHandle, Counting], otlp: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    proxy, upstream = counted
    caplog.set_level(logging.INFO, logger=ACCESS)
    trace_id, traceparent = traced(1, BASE)
    # 24 entries of 3 bytes each: far under any byte bound
    many = [("x-data-labels", "pii")] * 24 + [("traceparent", traceparent)]
    with grpc.insecure_channel(proxy.grpc) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            channel.unary_unary(INFER)(_request(), timeout=10, metadata=many)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value
        assert "limits.max_headers (20)" in (refused.value.details() or "")
        assert upstream.reached == 0
        span, line = recorded(otlp, caplog, trace_id)
        assert span.attributes["error.type"] == "invalid_request"
        assert line.status == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        # fewer entries than the limit: forwarded
        channel.unary_unary(INFER)(_request(), timeout=10, metadata=[("x-data-labels", "pii")] * 12)
        assert upstream.reached == 1
    # the HTTP listener refuses the same request at its head
    head = b"POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\n" + b"x-data-labels: pii\r\n" * 24 + b"\r\n"
    with socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=10) as sock:
        sock.sendall(head)
        assert sock.recv(65536).startswith(b"HTTP/1.1 431 "), "the HTTP listener took it"

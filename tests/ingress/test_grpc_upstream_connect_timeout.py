"""A gRPC upstream's `connect_timeout_s` bounds the connect to it, as an HTTP upstream's does (config/example.yaml:
`connect_timeout_s` of every upstream): a call to an upstream whose host does not answer (down, a dropped route, a
firewall dropping packets) is answered UNAVAILABLE (`upstream_unavailable`) once that time is spent. The proxy's
channel to a gRPC upstream ignored it: grpc's own connect timeout, 20 s, held every call that long, or until the
client's own deadline passed, answered then as the client's (DEADLINE_EXCEEDED) and never as the upstream being
down; a call without a deadline (a stream) waited the 20 s.

The upstream's address is a listener whose accept queue is full: the kernel drops every new connection's SYN, as a
host that does not answer does."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from tests.ingress.test_grpc import _request  # a small ModelInferRequest
from tests.ingress.test_grpc_streams import CONFIG, SERVICE
from tests.servers.otlp_receiver import OtlpReceiver

CONNECT_S = 1.0
CLIENT_S = 5.0  # the client's deadline: far past the connect timeout, far below grpc's own 20 s


@pytest.fixture
def silent() -> Iterator[int]:
    """A port whose SYNs go unanswered: a listener that accepts nothing, its queue filled."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port: int = listener.getsockname()[1]
    filling = []
    for _ in range(3):
        one = socket.socket()
        one.setblocking(False)
        one.connect_ex(("127.0.0.1", port))
        filling.append(one)
    probe = socket.socket()
    probe.settimeout(0.5)
    with pytest.raises(TimeoutError):  # the queue is full: a connect is not answered
        probe.connect(("127.0.0.1", port))
    probe.close()
    yield port
    for one in (*filling, listener):
        one.close()


@pytest.mark.parametrize("method", ["ModelInfer", "ModelStreamInfer"])
def test_a_call_to_an_upstream_that_does_not_answer_ends_after_its_connect_timeout(
    silent: int, otlp: OtlpReceiver, make_proxy: Any, method: str
) -> None:
    config = CONFIG.replace("    protocol: oip\n", f"    protocol: oip\n    connect_timeout_s: {CONNECT_S}\n")
    proxy = make_proxy(config, wait="none", UPSTREAM=f"127.0.0.1:{silent}", OTLP=f"http://127.0.0.1:{otlp.port}")
    with grpc.insecure_channel(proxy.grpc) as channel:
        started = time.monotonic()
        try:
            if method == "ModelInfer":
                channel.unary_unary(SERVICE + method)(_request(), timeout=CLIENT_S)
            else:
                list(channel.stream_stream(SERVICE + method)(iter([_request()]), timeout=CLIENT_S))
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details()
        else:
            raise AssertionError("the call went through")
        took = time.monotonic() - started
    assert code == grpc.StatusCode.UNAVAILABLE, (code, details, round(took, 2))
    assert took < CONNECT_S + 2, took

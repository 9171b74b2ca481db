"""A `tracestate` with a TAB around a list-member (W3C's optional white space: `a=b,<TAB>c=d`, `a=b<TAB>`). The span
keeps it (the OpenTelemetry SDK does), so the proxy forwarded it as it came; but grpc's client sends printable ASCII
alone, and a client not on grpc's core (raw HTTP/2, another hop) can send a TAB: the call failed as the proxy's own
internal error (INTERNAL, a traceback logged), the model never reached. Now each such TAB reaches the upstream as a
space, which means the same there. A TAB inside a member is no tracestate the span keeps: it is dropped, as before."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from tests.harness import LoopThread, ProxyHandle
from tests.ingress.grpc_proxied import proxied, recorded, traced
from tests.ingress.test_grpc_metadata_limit import INFER
from tests.ingress.test_grpc_metadata_values_unsendable import _call
from tests.ingress.test_grpc_streams import CONFIG
from tests.servers.otlp_receiver import OtlpReceiver

BASE = 0x7AB5_0000


class Seeing(grpc.GenericRpcHandler):  # type: ignore[misc]
    """ModelInfer answered empty; the `tracestate` values of each call it got, in order."""

    def __init__(self) -> None:
        self.tracestates: list[list[str]] = []

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        return grpc.unary_unary_rpc_method_handler(self._infer) if details.method == INFER else None

    async def _infer(self, request: bytes, context: Any) -> bytes:
        self.tracestates.append([v for k, v in context.invocation_metadata() if k == "tracestate"])
        return b""


@pytest.fixture
def seeing(loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any) -> Iterator[tuple[ProxyHandle, Seeing]]:
    upstream = Seeing()
    with proxied(loop_thread, otlp, make_proxy, CONFIG, upstream) as proxy:
        yield proxy, upstream


@pytest.mark.parametrize(
    ("n", "sent", "forwarded"),
    [(1, b"a=b,\tc=d", "a=b, c=d"), (2, b"a=b\t", "a=b "), (3, b"\ta=b ,\t\tc=d", " a=b ,  c=d")],
)
def test_a_tab_around_a_tracestate_member_reaches_the_upstream_as_a_space(
    n: int,
    sent: bytes,
    forwarded: str,
    seeing: tuple[ProxyHandle, Seeing],
    otlp: OtlpReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxy, upstream = seeing
    caplog.set_level(logging.INFO)
    trace_id, traceparent = traced(n, BASE)
    assert proxy.bound.grpc is not None
    trailers = _call(proxy.bound.grpc.port, ("traceparent", traceparent.encode()), ("tracestate", sent))
    assert b"grpc-status\x010" in trailers, trailers  # OK
    assert upstream.tracestates == [[forwarded]]
    span, line = recorded(otlp, caplog, trace_id)
    assert "error.type" not in span.attributes
    assert line.status == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("lineage_proxy")]


def test_a_tab_inside_a_tracestate_member_drops_it(seeing: tuple[ProxyHandle, Seeing]) -> None:
    proxy, upstream = seeing
    _, traceparent = traced(9, BASE)
    assert proxy.bound.grpc is not None
    trailers = _call(proxy.bound.grpc.port, ("traceparent", traceparent.encode()), ("tracestate", b"a=b\tc"))
    assert b"grpc-status\x010" in trailers, trailers
    assert upstream.tracestates == [[]]

"""gRPC's standard health check (`grpc.health.v1.Health/Check`) carries no data, only a service's name, as OIP's
ServerReady and ModelReady do: it is answered as they are (the caller's key checked, forwarded to the upstream,
recorded with no lineage edge), whatever the policy. It was an opaque method to the proxy, refused
PERMISSION_DENIED (`endpoint_denied`) whenever zones are configured (`policy.passthrough: auto`, the default): a
client using gRPC health checking (a load balancer's probe, a channel's client-side health checks) saw a healthy
upstream as down through the proxy and stopped sending it calls."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import grpc.aio
import pytest

from tests.harness import LoopThread, ProxyHandle
from tests.ingress.grpc_proxied import proxied
from tests.servers.otlp_receiver import OtlpReceiver

CHECK = "/grpc.health.v1.Health/Check"
SERVING = b"\x08\x01"  # HealthCheckResponse{status: SERVING}
CONFIG = """
listen: {http: 127.0.0.1:0, grpc: 127.0.0.1:0}
upstreams:
  - name: triton
    grpc: ${UPSTREAM}
    protocol: oip
    checkpoint: health@1
routes:
  - model: "*"
    upstream: triton
zones:
  - name: health-data
    labels: [health]
    allow_purposes: [assistant]
policy: {anonymous: allow, default_purpose: assistant}
telemetry:
  exporter: otlp
  endpoint: ${OTLP}
lineage:
  store: ${STORE}
"""


class Healthy(grpc.GenericRpcHandler):  # type: ignore[misc]
    """grpc.health.v1's Check: SERVING for any service; the services asked about, in `asked`."""

    def __init__(self) -> None:
        self.asked: list[bytes] = []

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        return grpc.unary_unary_rpc_method_handler(self._check) if details.method == CHECK else None

    async def _check(self, request: bytes, context: Any) -> bytes:
        self.asked.append(request)
        return SERVING


@pytest.fixture
def proxy(loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any) -> Iterator[tuple[ProxyHandle, Healthy]]:
    upstream = Healthy()
    with proxied(loop_thread, otlp, make_proxy, CONFIG, upstream) as handle:
        yield handle, upstream


@pytest.mark.parametrize("service", [b"", b"\x0a\x1einference.GRPCInferenceService"], ids=["server", "service"])
def test_a_health_check_reaches_the_upstream_where_zones_are_configured(
    proxy: tuple[ProxyHandle, Healthy], service: bytes
) -> None:
    handle, upstream = proxy
    with grpc.insecure_channel(handle.grpc) as channel:
        try:
            reply, call = channel.unary_unary(CHECK).with_call(service, timeout=10)
        except grpc.RpcError as exc:
            raise AssertionError(f"{exc.code()}: {exc.details()}") from None
    assert reply == SERVING and upstream.asked == [service]
    trailing = dict(call.trailing_metadata())
    assert len(trailing["x-trace-id"]) == 32 and "x-lineage-decision" not in trailing  # a data-free call's

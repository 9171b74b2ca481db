"""Unary gRPC requests held while they are served are bounded as the HTTP listener's bodies are
(`limits.bodies_max_bytes`): calls a slow upstream holds kept every request message (32 of 60 MiB took 1.7 GB). A
call that would pass the bound is refused UNAVAILABLE (`overloaded`), recorded, and what a call held is given back
when it ends, however it ends."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from tritonclient.grpc import service_pb2

from tests.harness import LoopThread, ProxyHandle
from tests.ingress.grpc_proxied import proxied
from tests.ingress.test_bodies_budget import held  # the metric of what is held
from tests.ingress.test_grpc import CONFIG as GRPC_CONFIG
from tests.ingress.test_grpc import Holding
from tests.record.test_store_waits import until
from tests.servers.otlp_receiver import OtlpReceiver

# the gRPC tests' config, with a bound two of its requests pass
CONFIG = GRPC_CONFIG.replace(
    "limits: {drain_timeout_s: 0.2}",
    "limits: {max_body_bytes: 1048576, bodies_max_bytes: 1572864, drain_timeout_s: 0.2}",
)
assert CONFIG != GRPC_CONFIG
INFER = "/inference.GRPCInferenceService/ModelInfer"


def big() -> bytes:
    """A ModelInferRequest of ~1 MB: 250,000 INT32 values as raw contents."""
    request = service_pb2.ModelInferRequest(model_name="held")
    request.inputs.add(name="A", datatype="INT32", shape=[250_000])
    request.raw_input_contents.append(b"\x01\x00\x00\x00" * 250_000)
    data: bytes = request.SerializeToString()
    return data


@pytest.fixture
def holding(loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any) -> Iterator[tuple[Holding, ProxyHandle]]:
    upstream = Holding()
    with proxied(loop_thread, otlp, make_proxy, CONFIG, upstream) as proxy:
        yield upstream, proxy


def test_a_request_past_the_bound_is_refused_and_what_calls_held_is_given_back(
    holding: tuple[Holding, ProxyHandle], otlp: OtlpReceiver
) -> None:
    upstream, proxy = holding
    request = big()
    with grpc.insecure_channel(proxy.grpc) as channel:
        infer = channel.unary_unary(INFER)
        first = infer.future(request, timeout=30)
        upstream.wait_arrived(1)  # held at the upstream, its request with it
        assert held(proxy) == len(request)
        with pytest.raises(grpc.RpcError) as refused:
            infer(request, timeout=30)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "limits.bodies_max_bytes" in refused.value.details()
        trailers = dict(refused.value.trailing_metadata())
        assert trailers["x-lineage-decision"] == "deny"
        span = otlp.by_trace(trailers["x-trace-id"]).attributes
        assert span["error.type"] == "overloaded"  # recorded as the refusal it is
        assert upstream.arrived == 1  # never forwarded
        assert held(proxy) == len(request)  # the refused call holds nothing
        first.cancel()
        until(lambda: held(proxy) == 0)
        second = infer.future(request, timeout=30)  # room again
        upstream.wait_arrived(2)
        second.cancel()
    until(lambda: held(proxy) == 0)

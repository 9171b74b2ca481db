"""The 8 KiB bound on a call's metadata as it reaches the upstream (`_metadata_over`) counts what the proxy adds as a
fixed 768 bytes, an upstream's key among them. An upstream's `api_key` (sent as `authorization: Bearer ...`) is any
length (a JWT is commonly 1 KiB): with one, a call the bound let through reached the upstream over 8 KiB, which a gRPC
server keeping grpc's defaults refuses at random (here one whose limit is that 8 KiB, hard, so every time), the
refusal the upstream's, not the proxy's `request_too_large`."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from proxy.logs import ACCESS
from tests.harness import LoopThread
from tests.ingress.grpc_proxied import proxied, recorded, traced
from tests.ingress.test_grpc import _request
from tests.ingress.test_grpc_metadata_limit import INFER, Counting, labels
from tests.ingress.test_grpc_streams import CONFIG
from tests.servers.otlp_receiver import OtlpReceiver

KEY = "k" * 1024  # an upstream's key, as long as a JWT commonly is
KEYED = CONFIG.replace("    protocol: oip\n", f"    protocol: oip\n    api_key: {KEY}\n")
# the upstream takes what a gRPC server takes by default, 8 KiB, as a hard limit: every call over it is refused
STRICT = [("grpc.max_metadata_size", 8192), ("grpc.absolute_max_metadata_size", 8192)]
BASE = 0x3E7B_0000


@pytest.fixture
def keyed(loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any) -> Iterator[tuple[grpc.Channel, Counting]]:
    upstream = Counting()
    with (
        proxied(loop_thread, otlp, make_proxy, KEYED, upstream, STRICT) as proxy,
        grpc.insecure_channel(proxy.grpc) as channel,
    ):
        yield channel, upstream


def test_an_upstreams_key_counts_toward_the_metadata_bound(
    keyed: tuple[grpc.Channel, Counting], otlp: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    channel, upstream = keyed
    caplog.set_level(logging.INFO, logger=ACCESS)
    assert channel.unary_unary(INFER)(_request(), timeout=10, metadata=[("x-data-labels", labels(40))]) == b""
    trace_id, traceparent = traced(1, BASE)
    metadata = [("x-data-labels", labels(56)), ("traceparent", traceparent)]  # under the bound without the key
    with pytest.raises(grpc.RpcError) as refused:
        channel.unary_unary(INFER)(_request(), timeout=10, metadata=metadata)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "grpc.max_metadata_size" in (refused.value.details() or ""), refused.value.details()  # the proxy's
    span, _ = recorded(otlp, caplog, trace_id)
    assert span.attributes["error.type"] == "request_too_large"
    assert upstream.reached == 1  # the first call alone

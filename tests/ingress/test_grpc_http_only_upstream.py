"""A gRPC call decided for an upstream that speaks HTTP only is refused by the gRPC ingress before anything is sent
(UNAVAILABLE, "speaks HTTP only"): a refusal, recorded as one (`deny`, rule `upstream:NAME`, no upstream, no
checkpoint), as a call refused for an upstream's `max_queue` is. It was recorded `allow`, with that upstream and its
checkpoint, in its span, its lineage edge and its trailers, though its data went nowhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.harness import assert_refused_after_decision, dead_port
from tests.ingress.test_grpc import _request  # a small ModelInferRequest
from tests.servers.otlp_receiver import OtlpReceiver

CONFIG = """
listen: {{http: 127.0.0.1:0, grpc: 127.0.0.1:0}}
upstreams:
  - name: vllm
    url: http://127.0.0.1:{http}
    checkpoint: chat@1
  - name: triton
    grpc: 127.0.0.1:{grpc}
    protocol: oip
routes:
  - model: "*"
    upstream: vllm
zones:
  - name: health
    labels: [health]
    allow_purposes: [assistant]
policy: {{anonymous: allow, default_purpose: assistant, passthrough: forward}}
telemetry: {{exporter: otlp, endpoint: "http://127.0.0.1:{otlp}"}}
lineage: {{store: "${{STORE}}"}}
"""
INFER, STREAM, OTHER = ("/inference.GRPCInferenceService/ModelInfer",
                        "/inference.GRPCInferenceService/ModelStreamInfer", "/test.Other/Call")  # fmt: skip


@pytest.mark.parametrize("method", [INFER, STREAM, OTHER], ids=["infer", "stream-infer", "passthrough"])
def test_a_call_for_an_http_only_upstream_is_recorded_as_refused(
    make_proxy: Any, otlp: OtlpReceiver, tmp_path: Path, method: str
) -> None:
    proxy = make_proxy(CONFIG.format(http=dead_port(), grpc=dead_port(), otlp=otlp.port), wait="none")
    metadata = (("x-data-labels", "health"),)  # a zone's: a passthrough call goes where '*' says, HTTP only here
    with grpc.insecure_channel(proxy.grpc) as channel, pytest.raises(grpc.RpcError) as refused:
        if method == STREAM:
            list(channel.stream_stream(method)(iter([_request()]), metadata=metadata, timeout=10))
        else:
            channel.unary_unary(method)(_request(), metadata=metadata, timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE and "speaks HTTP only" in refused.value.details()
    trailers = dict(refused.value.trailing_metadata())
    assert trailers["x-lineage-decision"] == "deny"  # was: allow
    assert "x-lineage-upstream" not in trailers and "x-lineage-checkpoint" not in trailers

    assert_refused_after_decision(otlp, trailers["x-trace-id"], tmp_path / "lineage.db", "upstream:vllm", "health")

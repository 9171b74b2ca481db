"""Labels and purpose a gRPC client sends as binary metadata (`x-data-labels-bin`, `x-purpose-bin`) are read as the
text keys are (their bytes as a header's): passed over, a call labelled so went to the model as unlabelled data,
for any purpose. A value that is no label is refused; sent both ways, they join (a second purpose is refused)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from tests.harness import dead_port
from tests.ingress.test_grpc import _request  # a small ModelInferRequest

CONFIG = """
listen: {{http: 127.0.0.1:0, grpc: 127.0.0.1:0}}
upstreams:
  - name: triton
    grpc: 127.0.0.1:{grpc}
    protocol: oip
    checkpoint: simple@1
routes:
  - model: "*"
    upstream: triton
zones:
  - name: health
    labels: [health]
    allow_purposes: [research]
policy: {{anonymous: allow, default_purpose: assistant}}
lineage: {{store: "${{STORE}}"}}
"""
INFER = "/inference.GRPCInferenceService/ModelInfer"


def call(proxy: Any, *metadata: tuple[str, str | bytes]) -> grpc.RpcError:
    """The call's error: the upstream is a dead port, so one the proxy lets through ends UNAVAILABLE."""
    with grpc.insecure_channel(proxy.grpc) as channel, pytest.raises(grpc.RpcError) as ended:
        channel.unary_unary(INFER)(_request(), metadata=metadata, timeout=10)
    return ended.value


@pytest.mark.parametrize(
    ("metadata", "code", "says"),
    [
        ((("x-data-labels-bin", b"health"),), grpc.StatusCode.PERMISSION_DENIED, "purpose"),  # was: forwarded
        ((("x-data-labels", "team-a"), ("x-data-labels-bin", b"Health")), grpc.StatusCode.PERMISSION_DENIED, "purpose"),
        ((("x-data-labels-bin", b"health"), ("x-purpose-bin", b"research")), grpc.StatusCode.UNAVAILABLE, ""),
        ((("x-data-labels-bin", b"\xffhealth"),), grpc.StatusCode.INVALID_ARGUMENT, "invalid label"),
        ((("x-purpose", "research"), ("x-purpose-bin", b"research")), grpc.StatusCode.INVALID_ARGUMENT, "one purpose"),
    ],
    ids=["labels", "joined", "purpose", "not-a-label", "two-purposes"],
)
def test_binary_labels_and_purpose_are_read(
    make_proxy: Any, metadata: tuple[tuple[str, str | bytes], ...], code: grpc.StatusCode, says: str
) -> None:
    proxy = make_proxy(CONFIG.format(grpc=dead_port()), wait="none")
    ended = call(proxy, *metadata)
    assert ended.code() == code, ended.details()
    assert says in ended.details()
    decision = dict(ended.trailing_metadata())["x-lineage-decision"]
    assert decision == ("allow" if code == grpc.StatusCode.UNAVAILABLE else "deny")

"""An HTTP call decided for an upstream that speaks gRPC only is refused by the HTTP ingress before anything is sent
(502, "speaks gRPC only"): a refusal, recorded as one (`deny`, rule `upstream:NAME`, no upstream, no checkpoint, no
output labels), as the gRPC ingress records a call for an upstream that speaks HTTP only. It was recorded `allow`,
with that upstream and its pinned checkpoint, in its span, its lineage edge and its reply's headers, though its data
went nowhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest

from tests.harness import assert_refused_after_decision, dead_port
from tests.servers.otlp_receiver import OtlpReceiver

CONFIG = """
listen: {{http: 127.0.0.1:0, grpc: 127.0.0.1:0}}
upstreams:
  - name: triton
    grpc: 127.0.0.1:{grpc}
    protocol: oip
    checkpoint: chat@1
routes:
  - model: "*"
    upstream: triton
policy: {{anonymous: allow, default_purpose: assistant}}
telemetry: {{exporter: otlp, endpoint: "http://127.0.0.1:{otlp}"}}
lineage: {{store: "${{STORE}}"}}
"""


def test_an_http_call_for_a_grpc_only_upstream_is_recorded_as_refused(
    make_proxy: Any, otlp: OtlpReceiver, tmp_path: Path
) -> None:
    proxy = make_proxy(CONFIG.format(grpc=dead_port(), otlp=otlp.port), wait="none")
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hello"}], extra_headers={"x-data-labels": "health"}
        )
    assert refused.value.status_code == 502 and "speaks gRPC only" in refused.value.message
    headers = refused.value.response.headers
    assert headers["x-lineage-decision"] == "deny"  # was: allow
    assert "x-lineage-upstream" not in headers and "x-lineage-checkpoint" not in headers

    assert_refused_after_decision(otlp, headers["x-trace-id"], tmp_path / "lineage.db", "upstream:triton", "health")

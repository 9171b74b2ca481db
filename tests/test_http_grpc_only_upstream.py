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

from proxy.record.store import SqliteStore
from tests.harness import dead_port
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

    span = otlp.by_trace(headers["x-trace-id"]).attributes
    assert span["lineage.decision"] == "deny" and span["error.type"] == "upstream_unavailable"
    assert span["lineage.rule"] == "upstream:triton"
    assert "lineage.upstream" not in span and "lineage.checkpoint" not in span
    assert list(span["lineage.input.labels"]) == ["health"] and not list(span.get("lineage.output.labels", []))

    store = SqliteStore(tmp_path / "lineage.db", readonly=True)  # a new flow's edge is written before its answer
    try:
        (row,) = [row for row in store.rows() if row.key.input_labels == "health"]
    finally:
        store.close()
    # was: ("allow", "", "chat@1"), output labels "health": a flow to weights the data never reached
    assert (row.key.decision, row.key.rule, row.key.checkpoint, row.key.output_labels) == (
        "deny", "upstream:triton", "", ""
    )  # fmt: skip

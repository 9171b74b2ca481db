"""The sidecar (`lineage.sidecar`) that served a call is named beside its edge in the other records too: its spans'
resource (`lineage.sidecar`: a stable deployment name, so not `service.instance.id`, which must be unique per
instance; `telemetry.resource_attributes` may set it otherwise) and its OpenLineage runs (a run facet,
`lineageProxy_sidecar`: a checkpoint's job is one job whichever deployment serves it, so not the job's namespace)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.harness import LoopThread
from tests.record.test_openlineage import chat, check_run_event, config, sink
from tests.servers.otlp_receiver import OtlpReceiver

TELEMETRY = "telemetry:\n  exporter: otlp\n  endpoint: ${OTLP}\n  protocol: grpc\n"


def test_spans_and_openlineage_runs_name_the_sidecar(
    vllm: Any, make_proxy: Any, loop_thread: LoopThread, otlp: OtlpReceiver, tmp_path: Path
) -> None:
    _, upstream = vllm
    path = tmp_path / "openlineage.jsonl"
    text = config(f'{{transport: {{type: file, log_file_path: "{path}", append: true}}}}') + "  sidecar: model-a-eu\n"
    proxy = make_proxy(text + TELEMETRY, UPSTREAM=upstream, OTLP=f"http://127.0.0.1:{otlp.port}")
    chat(proxy)
    chat(proxy)
    loop_thread.run(sink(proxy).flush())
    events = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(events) == 2  # the new flow, then its count
    for event in events:
        check_run_event(event)  # its facet's schema is in openlineage_facets.json
        assert event["run"]["facets"]["lineageProxy_sidecar"]["name"] == "model-a-eu", event["run"]["facets"]
        assert event["job"]["namespace"] == "lineage-proxy"  # the configured namespace, as before
    spans = otlp.wait_for(lambda spans: len(spans) >= 2)
    assert {span.resource.get("lineage.sidecar") for span in spans} == {"model-a-eu"}
    assert all("service.instance.id" not in span.resource for span in spans)


def test_resource_attributes_may_name_it_otherwise(make_proxy: Any, vllm: Any, otlp: OtlpReceiver) -> None:
    _, upstream = vllm
    text = (config("null") + "  sidecar: model-a-eu\n" + TELEMETRY
            + "  resource_attributes: {lineage.sidecar: eu-pool}\n")  # fmt: skip
    proxy = make_proxy(text, UPSTREAM=upstream, OTLP=f"http://127.0.0.1:{otlp.port}")
    chat(proxy)
    (span,) = otlp.wait_for(lambda spans: len(spans) >= 1)
    assert span.resource["lineage.sidecar"] == "eu-pool"

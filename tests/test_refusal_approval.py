"""A call decided to go through that the proxy then refuses itself (an upstream's `max_queue`, 503 `overloaded`) is
recorded as the refusal it is: `deny`, rule `upstream:NAME`. Its `lineage.approved` is that flow's verdict, as
`verify` gives it on the edge the call left: it kept the verdict of the flow the call was first decided as
(`allow`, approved), so the span said `lineage.approved=true` of a flow no baseline entry covers, and
`lineage_proxy_unapproved_flows_total` did not count it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from proxy.baseline import load_baseline
from proxy.record.store import SqliteStore
from proxy.verify import edge_flow
from tests.harness import LoopThread
from tests.held import one_call_held
from tests.servers.otlp_receiver import OtlpReceiver
from tests.servers.vllm_like import SERVED, VllmLike

CONFIG = """listen: {{http: "127.0.0.1:0"}}
upstreams:
  - {{name: busy, url: "{url}", max_connections: 1, max_queue: 0}}
routes: [{{model: "*", upstream: busy}}]
policy: {{anonymous: allow, default_purpose: assistant}}
telemetry: {{exporter: otlp, endpoint: "http://127.0.0.1:{otlp}"}}
lineage: {{store: "${{STORE}}", baseline: "{baseline}"}}
"""
BASELINE = """version: 1
flows:
  - caller: anonymous
    purpose: assistant
    labels: [pii]
"""


def test_a_refusal_after_the_decision_is_recorded_with_its_own_flow_s_verdict(
    vllm: tuple[VllmLike, str], make_proxy: Any, loop_thread: LoopThread, otlp: OtlpReceiver, tmp_path: Path
) -> None:
    server, url = vllm
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text(BASELINE)
    proxy = make_proxy(CONFIG.format(url=url, otlp=otlp.port, baseline=baseline))
    with one_call_held(proxy.url, server, loop_thread):  # it holds the pool's one connection
        reply = httpx.post(f"{proxy.url}/v1/chat/completions", headers={"x-data-labels": "pii"}, timeout=10,
                           json={"model": SERVED, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
        assert reply.status_code == 503 and reply.json()["error"]["code"] == "overloaded", reply.text
        span = otlp.by_trace(reply.headers["x-trace-id"]).attributes

    store = SqliteStore(tmp_path / "lineage.db", readonly=True)  # a new flow's edge is written before its answer
    try:
        (row,) = [row for row in store.rows() if row.key.input_labels == "pii"]
    finally:
        store.close()
    assert (row.key.decision, row.rule) == ("deny", "upstream:busy")
    verdict = load_baseline(baseline).explain(edge_flow(row))
    assert verdict is not None  # no entry approves a denial: `verify` lists this edge as unapproved
    assert span["lineage.decision"] == "deny" and span["lineage.rule"] == "upstream:busy"
    assert span["lineage.approved"] is False  # was: True, the verdict of the allowed flow it never made

    metrics = httpx.get(f"{proxy.url}/metrics", timeout=10).text
    counted = [line for line in metrics.splitlines() if line.startswith("lineage_proxy_unapproved_flows_total")]
    assert counted and float(counted[0].split()[-1]) == 1.0, counted


UNRECORDED = """listen: {{http: "127.0.0.1:0"}}
upstreams: [{{name: up, url: "{url}"}}]
routes: [{{model: "*", upstream: up}}]
zones:
  - {{name: recorded-data, labels: [recorded], allow_purposes: [assistant], require_record: true}}
policy: {{anonymous: allow, default_purpose: assistant}}
telemetry: {{exporter: otlp, endpoint: "http://127.0.0.1:{otlp}"}}
lineage: {{store: "${{STORE}}", baseline: "{baseline}"}}
"""
RECORDED_BASELINE = """version: 1
flows:
  - caller: anonymous
    purpose: assistant
    labels: [recorded]
"""


def test_a_call_refused_as_unrecorded_is_judged_as_the_denial_it_is(
    vllm: tuple[VllmLike, str], make_proxy: Any, otlp: OtlpReceiver, tmp_path: Path
) -> None:
    """A `require_record` zone's call refused while the store and journal both refuse writes (503
    `record_unavailable`) is judged as the denial it is (no entry approves it), not as the allowed flow the baseline
    approves: the span said `lineage.approved=true` and the unapproved flows were not counted."""
    server, url = vllm
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text(RECORDED_BASELINE)
    proxy = make_proxy(UNRECORDED.format(url=url, otlp=otlp.port, baseline=baseline))
    # what the edge aggregator answers while its store and journal both refuse writes (as in test_enforcement)
    proxy.process.runtime.recording = lambda: False
    reply = httpx.post(f"{proxy.url}/v1/chat/completions", headers={"x-data-labels": "recorded"}, timeout=10,
                       json={"model": SERVED, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    assert reply.status_code == 503 and reply.json()["error"]["code"] == "record_unavailable", reply.text
    assert server.data_requests() == []
    span = otlp.by_trace(reply.headers["x-trace-id"]).attributes
    assert span["lineage.decision"] == "deny" and span["lineage.rule"] == "zone:recorded-data", span
    assert span["lineage.approved"] is False, span  # was: True, the verdict of the allowed flow it never made

    metrics = httpx.get(f"{proxy.url}/metrics", timeout=10).text
    counted = [line for line in metrics.splitlines() if line.startswith("lineage_proxy_unapproved_flows_total")]
    assert counted and float(counted[0].split()[-1]) == 1.0, counted

"""/metrics a Prometheus can trust: summed over `--workers N` whichever worker answers the scrape, with
the histograms and counters an SRE charts (durations, overhead, upstream time, first chunk, detector
hits, reloads)."""

from __future__ import annotations

import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import KEYS, sha
from tests.harness import ServeProcess
from tests.servers.otlp_receiver import OtlpReceiver
from tests.servers.vllm_like import SERVED

CONFIG = f"""
listen:
  http: 127.0.0.1:0
  admin: 127.0.0.1:0
upstreams:
  - name: vllm
    url: ${{UPSTREAM}}
routes:
  - model: "*"
    upstream: vllm
    purposes: [assistant]
callers:
  - name: app
    api_key_sha256: {sha(KEYS["glasses"])}
detectors: [email]
lineage:
  store: ${{STORE}}
"""


def chat(base: str, purpose: str = "assistant", text: str = "hi", stream: bool = False) -> httpx.Response:
    body = {"model": SERVED, "messages": [{"role": "user", "content": text}], "stream": stream}
    headers = {"Authorization": f"Bearer {KEYS['glasses']}", "x-purpose": purpose}
    return httpx.post(f"{base}/v1/chat/completions", json=body, headers=headers, timeout=10)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, by (name, sorted labels); parsing it proves it is valid text."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_every_scrape_of_two_workers_reports_every_call(vllm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Each call and each scrape opens its own connection, so the kernel spreads them over both workers;
    a scrape answered by either must count all of them, every time."""
    _, upstream = vllm
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG)
    serve = ServeProcess(str(config), "--workers", "2",
                         env={"UPSTREAM": upstream, "STORE": str(tmp_path / "l.db"), "TMPDIR": str(tmp_path)})  # fmt: skip
    try:
        allowed, denied = 30, 10
        for _ in range(allowed):
            assert chat(serve.url).status_code == 200
        for _ in range(denied):
            assert chat(serve.url, purpose="ads").status_code == 403
        assert [p.name for p in tmp_path.glob("lineage-proxy-metrics-*")]  # the supervisor's shared directory
        admin = f"http://{serve.addresses['admin']}/metrics"
        for _ in range(20):
            scraped = samples(httpx.get(admin, timeout=5).text)
            assert scraped[("lineage_proxy_decisions_total", (("decision", "allow"),))] == allowed
            assert scraped[("lineage_proxy_decisions_total", (("decision", "deny"),))] == denied
            assert scraped[("lineage_proxy_request_duration_seconds_count", ())] == allowed + denied
            assert scraped[("lineage_proxy_upstream_duration_seconds_count", (("upstream", "vllm"),))] == allowed
            assert scraped[("lineage_proxy_errors_total", (("type", "purpose_denied"),))] == denied
            assert scraped[("lineage_proxy_in_flight", ())] == 0
    finally:
        assert serve.stop() == 0
    assert not list(tmp_path.glob("lineage-proxy-metrics-*"))  # cleaned up at exit


class HeldCollector(OtlpReceiver):
    """An OTLP collector that holds the exports it gets while `hold` is set, until `release`."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = threading.Event()
        self.holding = threading.Event()  # set when it holds one
        self._released = threading.Event()

    def Export(self, request: Any, context: Any) -> Any:
        if self.hold.is_set():
            self.holding.set()
            self._released.wait(30)
        return super().Export(request, context)

    def release(self) -> None:
        self.hold.clear()
        self._released.set()


def scraped_until(admin: str, name: str, value: float, timeout: float = 20.0, **labels: str) -> list[float]:
    """Scrape until `name` reads `value` or `timeout` passes (the workers publish a sink's counters once a
    second); every value read, in order."""
    seen: list[float] = []
    deadline = time.monotonic() + timeout
    while not seen or (seen[-1] != value and time.monotonic() < deadline):
        if seen:
            time.sleep(0.05)  # between scrapes: the next one answers whether it changed
        seen.append(samples(httpx.get(admin, timeout=5).text).get((name, tuple(sorted(labels.items()))), 0.0))
    return seen


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_reload_that_replaces_the_span_recorder_never_takes_spans_exported_back(
    vllm, tmp_path: Path, workers: str
) -> None:  # type: ignore[no-untyped-def]
    """t2_reload.py: each SIGHUP that changed a telemetry key started the new SpanRecorder's counters at 0, and
    the spans the old one exported while it stopped were counted nowhere: 3,000 spans received, 2,706 in
    lineage_proxy_spans_exported_total (4,000 and 3,798 with --workers 2). Here the one span sent before the
    reload is held by the collector until the reload is applied, so it is exported by the stopping recorder."""
    _, upstream = vllm
    collector = HeldCollector()
    port = collector.start()
    collector.hold.set()
    telemetry = f"""telemetry:
  exporter: otlp
  endpoint: http://127.0.0.1:{port}
  export_timeout_s: 20
  resource_attributes: {{deployment: R}}
"""
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG + telemetry.replace("R", "blue"))
    serve = ServeProcess(str(config), "--workers", workers,
                         env={"UPSTREAM": upstream, "STORE": str(tmp_path / "l.db"), "TMPDIR": str(tmp_path)})  # fmt: skip
    admin = f"http://{serve.addresses['admin']}/metrics"
    try:
        assert chat(serve.url).status_code == 200
        assert collector.holding.wait(10)  # its span is in flight, held
        config.write_text(CONFIG + telemetry.replace("R", "green"))
        serve.signal(signal.SIGHUP)
        reloads = scraped_until(admin, "lineage_proxy_config_reloads_total", int(workers), 10, result="ok")
        assert reloads[-1] == int(workers), reloads  # every worker has its new recorder; the old one is stopping
        collector.release()
        for _ in range(3):
            assert chat(serve.url).status_code == 200
        spans = collector.wait_for(lambda spans: len(spans) == 4)
        assert [span.resource["deployment"] for span in spans] == ["blue", "green", "green", "green"]
        seen = scraped_until(admin, "lineage_proxy_spans_exported_total", 4)
        assert seen[-1] == 4 and seen == sorted(seen), seen
    finally:
        assert serve.stop() == 0
        collector.stop()


def test_histograms_and_counters_of_one_process(make_proxy, vllm, loop_thread, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    assert chat(proxy.url).status_code == 200
    assert chat(proxy.url, text="write to ann@example.com").status_code == 200
    streamed = chat(proxy.url, stream=True)
    assert streamed.status_code == 200 and "[DONE]" in streamed.text
    assert chat(proxy.url, purpose="ads").status_code == 403
    loop_thread.run(proxy.process.runtime.sinks.flush())  # timings are recorded on the loop's next turn
    text = proxy.process.metrics_text()
    scraped = samples(text)
    assert scraped[("lineage_proxy_request_duration_seconds_count", ())] == 4
    assert scraped[("lineage_proxy_overhead_seconds_count", ())] == 4
    assert scraped[("lineage_proxy_upstream_duration_seconds_count", (("upstream", "vllm"),))] == 3
    assert scraped[("lineage_proxy_time_to_first_chunk_seconds_count", ())] == 1
    assert scraped[("lineage_proxy_detector_hits_total", (("direction", "input"), ("kind", "email")))] == 1
    assert scraped[("lineage_proxy_upstream_up", (("upstream", "vllm"),))] == 1
    assert scraped[("lineage_proxy_edges_new_total", ())] >= 1  # a sink's own counter, as before
    # the proxy's share is below the call's whole duration, the upstream's time is not counted twice
    total = scraped[("lineage_proxy_request_duration_seconds_sum", ())]
    overhead = scraped[("lineage_proxy_overhead_seconds_sum", ())]
    upstream_time = scraped[("lineage_proxy_upstream_duration_seconds_sum", (("upstream", "vllm"),))]
    assert 0 < overhead < total and abs(overhead + upstream_time - total) < 1e-3
    assert re.search(r"^lineage_proxy_decisions_total\{decision=\"allow\"\} 3$", text, re.M)  # integers stay integers
    assert "_created" not in text


def test_reloads_are_counted_by_result(make_proxy, vllm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    good = tmp_path / "good.yaml"
    good.write_text(CONFIG.replace("${UPSTREAM}", upstream).replace("${STORE}", str(tmp_path / "lineage.db")))
    bad = tmp_path / "bad.yaml"
    bad.write_text("listen: {}\n")
    assert proxy.process.reload(str(good)) and not proxy.process.reload(str(bad))
    scraped = samples(proxy.process.metrics_text())
    assert scraped[("lineage_proxy_config_reloads_total", (("result", "ok"),))] == 1
    assert scraped[("lineage_proxy_config_reloads_total", (("result", "refused"),))] == 1


def test_metrics_can_be_turned_off(make_proxy, vllm) -> None:  # type: ignore[no-untyped-def]
    """`telemetry.metrics: false`: calls are served and recorded as ever, no per-call instrument is
    touched, and /metrics says it is off instead of serving zeros."""
    _, upstream = vllm
    proxy = make_proxy(CONFIG.replace("telemetry:", "telemetry:\n  metrics: false") if "telemetry:" in CONFIG
                       else CONFIG + "telemetry: {metrics: false}\n", UPSTREAM=upstream)  # fmt: skip
    assert chat(proxy.url).status_code == 200
    off = httpx.get(f"http://{proxy.bound.admin}/metrics")
    assert off.status_code == 404 and "telemetry.metrics: false" in off.text
    assert not proxy.process.metrics.enabled
    assert "metrics" not in {sink.name for sink in proxy.process.runtime.sinks}
    from proxy.metrics import PER_CALL, _Off

    assert all(isinstance(getattr(proxy.process.metrics, attribute), _Off) for attribute, *_ in PER_CALL)


def test_one_process_instruments_expose_what_prometheus_client_would() -> None:
    """Without --workers the per-call instruments are plain numbers collected at scrape time; their
    exposition is the library's own for the same observations, bucket by bucket."""
    from prometheus_client import CollectorRegistry, Counter, Histogram
    from prometheus_client.exposition import generate_latest

    from proxy.metrics import CALL_BUCKETS, _Family

    ours, theirs = CollectorRegistry(auto_describe=False), CollectorRegistry(auto_describe=False)
    histogram = _Family("histogram", "t_seconds", "doc", ["upstream"], buckets=CALL_BUCKETS, registry=ours)
    reference = Histogram("t_seconds", "doc", ["upstream"], buckets=CALL_BUCKETS, registry=theirs)
    counter = _Family("counter", "c", "doc", ["decision"], registry=ours)
    reference_counter = Counter("c", "doc", ["decision"], registry=theirs)
    for value in (0.0001, 0.005, 0.0051, 1.0, 42.0, 999.0, 0.3):  # on a bound, between, past the last
        histogram.labels("vllm").observe(value)
        reference.labels("vllm").observe(value)
    counter.labels("allow").inc()
    counter.labels("allow").inc(2)
    reference_counter.labels("allow").inc(3)
    assert samples(generate_latest(ours).decode()) == samples(generate_latest(theirs).decode())

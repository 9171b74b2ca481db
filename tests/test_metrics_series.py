"""The per-call counters and histograms reach their series as `_Value`s and `_Buckets` whatever keeps them: the
plain numbers of one process, prometheus-client's instruments (`--workers N`), or nothing (`telemetry.metrics:
false`). The same calls counted through each read the same."""

from __future__ import annotations

import pytest
from prometheus_client.exposition import generate_latest

from proxy import metrics as metrics_module
from proxy.config import Upstream
from proxy.flow import ALLOW, DENY, Call, Decision, Outcome, TraceContext
from proxy.metrics import Metrics, Stats
from proxy.record.timings import TimingRecorder
from tests.test_metrics import samples

UPSTREAM = Upstream(name="vllm", url="http://127.0.0.1:9")
S = 1_000_000_000


def drive(metrics: Metrics) -> Stats:
    """Calls as an Exchange counts them and as the `metrics` sink records them."""
    stats, timings = Stats(metrics), TimingRecorder(metrics)
    for _ in range(3):
        stats.started()
    stats.decided(ALLOW)
    stats.decided(DENY)
    stats.failed("upstream_timeout")
    stats.failed("upstream_timeout")
    stats.unapproved()
    stats.ended()
    calls = [
        (Call("openai", "chat", "m", TraceContext(1, 1), detected=frozenset({"pii:email", "x"})),
         Decision(ALLOW, UPSTREAM), Outcome(started_ns=S, ended_ns=3 * S, forwarded_ns=S + 1000, upstream_ns=2 * S)),
        (Call("openai", "chat", "m", TraceContext(2, 2), stream=True),
         Decision(ALLOW, UPSTREAM), Outcome(started_ns=S, ended_ns=S + 7_000_000, forwarded_ns=S + 10,
                                            first_token_ns=S + 3_000_000, output_detected=frozenset({"pii:phone"}))),
        (Call("openai", "chat", "m", TraceContext(3, 3)), Decision(DENY, None), Outcome(started_ns=S, ended_ns=S + 50_000)),
    ]  # fmt: skip
    for call, decision, outcome in calls:
        timings.on_end(call, decision, outcome, frozenset())
    return stats


def test_the_same_calls_read_the_same_through_plain_numbers_and_through_prometheus_client(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    plain = Metrics()
    stats = drive(plain)
    assert stats.in_flight == 2
    # as with --workers N (the instruments prometheus-client's), without its shared files: its registry read directly
    monkeypatch.setattr(metrics_module, "_shared_dir", "unused")
    library = Metrics()
    assert library.shared is not None
    drive(library)
    read = samples(generate_latest(plain.registry).decode())
    assert read == samples(generate_latest(library.registry).decode())
    assert read[("lineage_proxy_in_flight", ())] == 2
    assert read[("lineage_proxy_errors_total", (("type", "upstream_timeout"),))] == 2
    assert read[("lineage_proxy_upstream_duration_seconds_count", (("upstream", "vllm"),))] == 2
    assert read[("lineage_proxy_detector_hits_total", (("direction", "output"), ("kind", "phone")))] == 1
    assert read[("lineage_proxy_time_to_first_chunk_seconds_bucket", (("le", "0.01"),))] == 1


@pytest.mark.parametrize("enabled", [True, False])
def test_in_flight_is_counted_with_metrics_on_or_off(enabled: bool) -> None:
    stats = drive(Metrics(enabled=enabled))
    assert stats.in_flight == 2
    stats.ended()
    stats.ended()
    assert stats.in_flight == 0

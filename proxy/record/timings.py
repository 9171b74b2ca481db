"""The `metrics` record sink: each finished call's durations and detector hits into the process's
Prometheus histograms (proxy/metrics.py).

The upstream's time runs from forwarding to the upstream's last byte; the proxy's overhead is the
call's duration minus that, so a denied call is all overhead and a slow model never shows as a slow
proxy. Per call: two to four histogram observations on children resolved once.
"""

from __future__ import annotations

from collections.abc import Iterable

from proxy.flow import Call, Decision, Outcome
from proxy.metrics import Metrics, unlabelled

_PII = "pii:"


class TimingRecorder:
    """Never blocks, never fails a call: arithmetic and in-memory (or mmap) increments only."""

    name = "metrics"
    durable = False

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._observe_total = unlabelled(metrics.request_duration).observe
        self._observe_overhead = unlabelled(metrics.overhead).observe
        self._observe_first = unlabelled(metrics.first_chunk).observe

    def start(self) -> None:
        pass

    def on_end(self, call: Call, decision: Decision, outcome: Outcome, output_labels: frozenset[str]) -> None:
        started = outcome.started_ns
        total = (outcome.ended_ns - started) / 1e9
        self._observe_total(total)
        upstream = decision.upstream
        if outcome.forwarded_ns and upstream is not None:
            spent = ((outcome.upstream_ns or outcome.ended_ns) - outcome.forwarded_ns) / 1e9
            self._metrics.upstream(upstream.name).observe(spent)
            self._observe_overhead(max(0.0, total - spent))
        else:
            self._observe_overhead(total)
        if outcome.first_token_ns and call.stream:
            self._observe_first((outcome.first_token_ns - started) / 1e9)
        if call.detected:
            self._hits(call.detected, "input")
        if outcome.output_detected:
            self._hits(outcome.output_detected, "output")

    def _hits(self, labels: frozenset[str], direction: str) -> None:
        for label in labels:
            if label.startswith(_PII):
                self._metrics.hit(label[4:], direction)

    async def flush(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def metrics(self) -> Iterable[str]:
        return ()  # its series live in the process's registry

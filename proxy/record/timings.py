"""The `metrics` record sink: each finished call's durations and detector hits into the process's
Prometheus histograms (proxy/metrics.py).

The upstream's time runs from forwarding to the upstream's last byte; the proxy's overhead is the
call's duration minus that, so a denied call is all overhead and a slow model never shows as a slow
proxy. Per call: two to four histogram observations on children resolved once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from proxy.flow import Call, Decision, Outcome
from proxy.metrics import Metrics, histogram_series

_PII: Final = "pii:"


class TimingRecorder:
    """Never blocks, never fails a call: arithmetic and in-memory (or mmap) increments only."""

    name = "metrics"
    durable = False

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        # each a `_Buckets`: its `observe` a compiled call, the duration passed unboxed
        self._total = histogram_series(metrics.request_duration)
        self._overhead = histogram_series(metrics.overhead)
        self._first = histogram_series(metrics.first_chunk)

    def start(self) -> None:
        pass

    def on_end(self, call: Call, decision: Decision, outcome: Outcome, output_labels: frozenset[str]) -> None:
        started = outcome.started_ns
        total = (outcome.ended_ns - started) / 1e9
        self._total.observe(total)
        upstream = decision.upstream
        if outcome.forwarded_ns and upstream is not None:
            spent = ((outcome.upstream_ns or outcome.ended_ns) - outcome.forwarded_ns) / 1e9
            self._metrics.upstream(upstream.name).observe(spent)
            self._overhead.observe(max(0.0, total - spent))
        else:
            self._overhead.observe(total)
        if outcome.first_token_ns and call.stream:
            self._first.observe((outcome.first_token_ns - started) / 1e9)
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

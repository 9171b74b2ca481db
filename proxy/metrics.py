"""Prometheus metrics a scrape can trust whichever worker answers it: prometheus-client instruments,
summed over `--workers N` by the library's multiprocess mode.

Why multiprocess mode rather than the supervisor aggregating: a scrape reaches one worker (the kernel
picks, SO_REUSEPORT), so either that worker can read every worker's values or it must ask the
supervisor for them over IPC on each scrape. With multiprocess mode each worker writes its values to its
own mmap file in a directory the supervisor creates (and removes at exit), and the scraped worker sums
the files: no IPC, no new failure mode, and what is counted is written before the call's reply ends,
so N calls read as exactly N on every scrape. The cost is a lock and a write to a mapped page per
increment instead of a float add (≈1 µs; see benchmarks/), only with `--workers N > 1`.

With one process the per-call instruments are plain Python numbers instead (`_Family`: an int or float
add, a scan for a histogram's bucket; every update happens on the event loop thread, so no lock),
turned into metric families when a scrape collects them: prometheus-client's locked values cost a
proxied call about 14 µs, 4-5 % of its CPU, against the 5 % budget.

Counters the record sinks keep themselves (spans exported, edges written) arrive as exposition text
(`Recorder.metrics()`); with one process they are printed as they are, with several each worker copies
their increase into shared counters at least once a second and when it answers a scrape.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Iterator
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import values as prometheus_values
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

# `_created` series double what Prometheus stores, for nothing
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
DECISIONS = ("allow", "deny", "reroute", "audit-deny")

# Seconds. LLM calls run from milliseconds (embeddings, denials) to minutes (long generations).
CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
# The proxy's own share of a call: tens of microseconds to a few milliseconds.
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
FIRST_CHUNK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# The per-call instruments: (Metrics attribute, kind, name, help, labels, histogram buckets). Built as
# prometheus-client instruments with --workers N, as `_Family`s in one process; `_Off` when metrics are off.
_P = "lineage_proxy_"
PER_CALL: tuple[tuple[str, str, str, str, tuple[str, ...], tuple[float, ...]], ...] = (
    ("decisions", "counter", _P + "decisions", "Calls decided, by decision.", ("decision",), ()),
    ("errors", "counter", _P + "errors", "Failed calls, by error type.", ("type",), ()),
    ("in_flight", "gauge", _P + "in_flight", "Calls being served now.", (), ()),
    ("unapproved", "counter", _P + "unapproved_flows",
     "Calls whose flow lineage.baseline does not approve, blocked or not.", (), ()),
    ("request_duration", "histogram", _P + "request_duration_seconds",
     "Calls as the client sees them: from the request to the reply's end.", (), CALL_BUCKETS),
    ("overhead", "histogram", _P + "overhead_seconds",
     "Time a call spent in the proxy: its duration minus the upstream's.", (), OVERHEAD_BUCKETS),
    ("upstream_duration", "histogram", _P + "upstream_duration_seconds",
     "From forwarding a call to the upstream's last byte, by upstream.", ("upstream",), CALL_BUCKETS),
    ("first_chunk", "histogram", _P + "time_to_first_chunk_seconds",
     "Streamed calls: from the request to the first content chunk.", (), FIRST_CHUNK_BUCKETS),
    ("detector_hits", "counter", _P + "detector_hits",
     "Calls in which a detector found its kind of data, by kind (email, phone, ...) and direction (input, output).",
     ("kind", "direction"), ()),
)  # fmt: skip

_shared_dir: str | None = None
# the sinks' gauges that are not summed over workers (`Metrics.publish`): the chain's newest entry is the highest any
# worker wrote or read, whichever wrote last; a failing store, database or journal is 1 while any worker's is, as the
# README says (a sum read N with `--workers N` in an outage, so an alert or a dashboard written for 1 never matched)
_GAUGE_MODES = {
    "lineage_proxy_record_chain_entries": "livemax",
    "lineage_proxy_edge_store_failing": "livemax",
    "lineage_proxy_edge_database_failing": "livemax",
    "lineage_proxy_edge_journal_failing": "livemax",
}
_INTEGRAL = re.compile(r" (-?\d+)\.0$", re.MULTILINE)


def share(directory: str) -> None:
    """Make this process (a worker) write its metric values under `directory`, to be summed with the
    other workers' at scrape time. Call before any Metrics is built in the process."""
    global _shared_dir
    os.environ[MULTIPROC_ENV] = directory
    prometheus_values.ValueClass = prometheus_values.MultiProcessValue()  # type: ignore[no-untyped-call]
    _shared_dir = directory


LOG_LINES_DROPPED = _P + "log_lines_dropped_total"
LOG_LINES_DROPPED_HELP = ("Log lines dropped because stderr took none (nothing read it) while a process held "
                          "logs.BUFFER_BYTES of lines for it, or refused their write (a full disk, "
                          "its reader gone).")  # fmt: skip
# a worker's exit, as `lineage_proxy_worker_restarts_total{reason}` names it: the signal that ended it in lower case
# (`sigkill`: the OOM killer, or `kill -9`), or `exit` (it ended itself). These are exposed from the start, at 0.
# stalled: its loop did not turn (`workers.Watchdog`); start_stalled: its start did not say it serves in time
WORKER_EXIT_REASONS = ("sigkill", "exit", "stalled", "start_stalled")


UNCLEAN_STOPS = _P + "unclean_stops_total"
UNCLEAN_STOPS_HELP = ("Earlier runs on this record (beside lineage.store, a PostgreSQL store's journal, else the "
                      "OpenLineage spool) found at start to have ended without a stop (SIGKILL, the OOM killer, a "
                      "crash, a power cut), each said in a WARNING line.")  # fmt: skip


def unclean_stops(found: int) -> tuple[str, str, str]:
    """The exposition lines of the earlier runs one process found ended without a stop (`proxy.markers`)."""
    return (f"# HELP {UNCLEAN_STOPS} {UNCLEAN_STOPS_HELP}", f"# TYPE {UNCLEAN_STOPS} counter",
            f"{UNCLEAN_STOPS} {found}")  # fmt: skip


WORKERS_STALLED = _P + "workers_stalled"
WORKERS_STALLED_HELP = ("--workers N: the other workers that serve and have not turned their event loop for 5 s, as "
                        "the worker answering found them (those /readyz names in workers_stalled).")  # fmt: skip


def workers_stalled(found: int) -> tuple[str, str, str]:
    """The exposition lines of the workers the one answering a scrape finds stalled (`server.Beats.stalled`): read
    by it as it answers, never summed over the workers (a sum of each worker's count counts a stalled worker N - 1
    times)."""
    return (f"# HELP {WORKERS_STALLED} {WORKERS_STALLED_HELP}", f"# TYPE {WORKERS_STALLED} gauge",
            f"{WORKERS_STALLED} {found}")  # fmt: skip


CONFIG_INFO = _P + "config_info"
CONFIG_INFO_HELP = ("The config each process runs (with --workers N each worker serving), by the first 12 hex digits of "
                    "the sha256 of its file's bytes as read (sha256sum's): 1.")  # fmt: skip


def config_info(runs: Iterable[tuple[str, str]]) -> list[str]:
    """The exposition lines of the config each process runs, (`process`, `digest`) as its lines name them: read by the
    process answering a scrape as it answers (with `--workers N` from every worker's slot, `server.Beats.configs`),
    never kept in a worker's series file, where a config replaced by a reload would stay beside the new one."""
    lines = [f"# HELP {CONFIG_INFO} {CONFIG_INFO_HELP}", f"# TYPE {CONFIG_INFO} gauge"]
    lines += [f'{CONFIG_INFO}{{process="{process}",digest="{digest}"}} 1' for process, digest in runs]
    return lines


def log_lines(dropped: int) -> tuple[str, str, str]:
    """The exposition lines of a process's log lines dropped (`proxy.logs.dropped`), as a sink's counters are."""
    return (f"# HELP {LOG_LINES_DROPPED} {LOG_LINES_DROPPED_HELP}", f"# TYPE {LOG_LINES_DROPPED} counter",
            f"{LOG_LINES_DROPPED} {dropped}")  # fmt: skip


def in_flight_of(pid: int, directory: str) -> int | None:
    """The calls worker `pid` had in flight as its live gauges' file holds them, read when it died (before
    `process_gone` removes that file); None when the file has no such gauge (metrics off, or it died starting)."""
    path = os.path.join(directory, f"gauge_livesum_{pid}.db")
    name = _P + "in_flight"
    try:
        values = MmapedDict.read_all_values_from_file(path)  # type: ignore[no-untyped-call]
        for key, value, _, _ in values:
            if json.loads(key)[1] == name:
                return max(0, round(float(value)))
    except (OSError, ValueError, IndexError):
        pass
    return None


class Supervisor:
    """What a `--workers N` supervisor counts itself, in the workers' shared directory (its own file there, summed
    with theirs by the worker a scrape reaches): the workers that died and were restarted, the calls they had in
    flight then (lost unrecorded), the supervisor's own log lines dropped."""

    def __init__(self, directory: str) -> None:
        share(directory)
        self.restarts = Counter(
            _P + "worker_restarts", "Workers that died unexpectedly and were restarted, by the signal that ended "
            "them (sigkill: the OOM killer, or kill -9) or exit, or stalled: killed as its loop had not turned for "
            "limits.worker_stall_s, or start_stalled: killed as its start had not said it serves within "
            "limits.worker_stall_s + 50 s (more with a PostgreSQL store).", ["reason"], registry=None)  # fmt: skip
        for reason in WORKER_EXIT_REASONS:
            self.restarts.labels(reason)
        self.calls_lost = Counter(
            _P + "worker_calls_lost", "Calls in flight in a worker when it died: lost unrecorded (no span, access "
            "line or edge), their clients' connections closed.", registry=None)  # fmt: skip
        self.log_lines_dropped = Counter(LOG_LINES_DROPPED, LOG_LINES_DROPPED_HELP, registry=None)
        self._log_lines_counted = 0
        self.unclean_stops = Counter(UNCLEAN_STOPS, UNCLEAN_STOPS_HELP, registry=None)

    def worker_died(self, reason: str, in_flight: int | None) -> None:
        self.restarts.labels(reason).inc()
        if in_flight:
            self.calls_lost.inc(in_flight)

    def log_lines(self, dropped: int) -> None:
        """The supervisor's own log lines dropped so far (`proxy.logs.dropped`): their increase counted."""
        if dropped > self._log_lines_counted:
            self.log_lines_dropped.inc(dropped - self._log_lines_counted)
            self._log_lines_counted = dropped


def process_gone(pid: int, directory: str) -> None:
    """A worker died: its live gauges (in flight, upstream up) stop counting; its counters stay summed,
    so a restart never makes a counter go backwards."""
    from prometheus_client.multiprocess import mark_process_dead

    mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


class _Value:
    """One series' value: a float, updated on the event loop thread only."""

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        self.value += amount

    def set(self, value: float) -> None:
        self.value = value


class _Buckets:
    """One histogram series: per-bucket counts (the last bucket is +Inf) and the sum."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, amount: float) -> None:
        # the first bound >= amount (`le`), bisect_left's index: compiled, a scan of unboxed floats from the
        # smallest bound, where most calls end, costs less than bisect's generic comparisons
        index = 0
        for bound in self.bounds:
            if not bound < amount:
                break
            index += 1
        self.counts[index] += 1
        self.sum += amount


class _Shared(_Value):
    """A series prometheus-client keeps (multiprocess mode), or none (`_Off`), behind `_Value`'s methods: the
    per-call code calls one compiled class whichever it is (a call on an untyped object costs a method lookup
    and its arguments boxed)."""

    def __init__(self, child: Any) -> None:
        super().__init__()
        self.child = child

    def inc(self, amount: float = 1) -> None:
        self.child.inc(amount)

    def set(self, value: float) -> None:
        self.child.set(value)


class _SharedBuckets(_Buckets):
    """A histogram series prometheus-client keeps, or none (`_Off`), behind `_Buckets.observe` (see `_Shared`)."""

    def __init__(self, child: Any) -> None:
        super().__init__(())
        self.child = child

    def observe(self, amount: float) -> None:
        self.child.observe(amount)


class _Family:
    """A counter, gauge or histogram of one process, collected at scrape time (see the module doc).
    Same names, labels and exposition as prometheus-client's instruments; `labels()` children are kept."""

    def __init__(self, kind: str, name: str, documentation: str, labelnames: Iterable[str] = (), *,
                 buckets: tuple[float, ...] = (), registry: CollectorRegistry) -> None:  # fmt: skip
        self.kind, self.name, self.documentation = kind, name, documentation
        self.labelnames = tuple(labelnames)
        self.buckets = buckets
        self._children: dict[tuple[str, ...], Any] = {}
        registry.register(self)

    def labels(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = _Buckets(self.buckets) if self.kind == "histogram" else _Value()
        return child

    def inc(self, amount: float = 1) -> None:
        self.labels().inc(amount)

    def set(self, value: float) -> None:
        self.labels().set(value)

    def observe(self, amount: float) -> None:
        self.labels().observe(amount)

    def collect(self) -> Iterator[Metric]:
        if self.kind == "histogram":
            family: Metric = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
            bounds = [*map(prometheus_client.utils.floatToGoString, self.buckets), "+Inf"]
            for values, child in self._children.items():
                cumulative, running = [], 0
                for bound, count in zip(bounds, child.counts, strict=True):
                    running += count
                    cumulative.append((bound, running))
                family.add_metric(list(values), cumulative, child.sum)  # type: ignore[attr-defined]
        else:
            make = CounterMetricFamily if self.kind == "counter" else GaugeMetricFamily
            family = make(self.name, self.documentation, labels=self.labelnames)
            for values, child in self._children.items():
                family.add_metric(list(values), child.value)
        yield family


def unlabelled(metric: Any) -> Any:
    """The one series of a metric without labels, to update without a lookup per call."""
    return metric.labels() if isinstance(metric, _Family) else metric


def series(metric: Any, *labels: str) -> _Value:
    """One series of a counter or gauge (`labels`: its label values), as a `_Value` whatever keeps it."""
    child = metric.labels(*labels) if labels else unlabelled(metric)
    return child if isinstance(child, _Value) else _Shared(child)


def histogram_series(metric: Any, *labels: str) -> _Buckets:
    """One series of a histogram (`labels`: its label values), as a `_Buckets` whatever keeps it."""
    child = metric.labels(*labels) if labels else unlabelled(metric)
    return child if isinstance(child, _Buckets) else _SharedBuckets(child)


class _Off:
    """An instrument that records nothing (`telemetry.metrics: false`)."""

    def labels(self, *_: str) -> _Off:
        return self

    def inc(self, amount: float = 1) -> None:
        pass

    def observe(self, amount: float) -> None:
        pass

    def set(self, value: float) -> None:
        pass


class Metrics:
    """One process's instruments. Per-call work is a few pre-resolved `inc`/`observe` calls; with
    `enabled=False` (`telemetry.metrics: false`) none, and /metrics is not served."""

    # the PER_CALL instruments, set in __init__ from the table
    decisions: Any
    errors: Any
    in_flight: Any
    unapproved: Any
    request_duration: Any
    overhead: Any
    upstream_duration: Any
    first_chunk: Any
    detector_hits: Any

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.shared = _shared_dir
        registry = self.registry = CollectorRegistry(auto_describe=False)
        plain = self.shared is None  # one process: the per-call instruments without locks (see the module doc)
        for attribute, kind, name, documentation, labels, buckets in PER_CALL:
            instrument: Any
            if plain:
                instrument = _Family(kind, name, documentation, labels, buckets=buckets, registry=registry)
                if not labels:
                    instrument.labels()  # an unlabelled series is exposed from the start, at zero
            elif kind == "counter":
                instrument = Counter(name, documentation, labels, registry=registry)
            elif kind == "gauge":
                instrument = Gauge(name, documentation, labels, registry=registry, multiprocess_mode="livesum")
            else:
                instrument = Histogram(name, documentation, labels, registry=registry, buckets=buckets)
            setattr(self, attribute, instrument if enabled else _Off())  # off: per-call updates record nothing
        p = "lineage_proxy_"
        self.reloads = Counter(p + "config_reloads", "Config reloads (SIGHUP) by result, per process.",
                               ["result"], registry=registry)  # fmt: skip
        self.upstream_up = Gauge(p + "upstream_up", "Whether the upstream answered its metadata.", ["upstream"],
                                 registry=registry, multiprocess_mode="livemax")  # fmt: skip
        self.upstream_incomplete = Gauge(
            p + "upstream_metadata_incomplete",
            "Whether the upstream answered its model list but not the rest of what names the weights serving its "
            "calls (llama.cpp's LoRA adapters): it is up, its calls recorded and checked with what was read before "
            "(scales set through the proxy and not read since: as not known, `+lora:?`).",
            ["upstream"], registry=registry, multiprocess_mode="livemax",
        )  # fmt: skip
        self._certificate_expiry: Any = None  # made by the first `certificate_expiry` (none without TLS, not a 0)
        self.tls_handshake_failures = Counter(
            p + "tls_handshake_failures", "TLS handshakes the HTTP listener failed, by OpenSSL's reason (timeout: "
            "not completed within limits.header_timeout_s).", ["reason"], registry=registry)  # fmt: skip
        self.grpc_calls_refused = Counter(
            p + "grpc_calls_refused", "Calls the gRPC listener refused RESOURCE_EXHAUSTED, unread and unrecorded, as "
            "it was serving limits.grpc_max_calls calls at once.", registry=registry)  # fmt: skip
        self._upstreams: dict[str, _Buckets] = {}
        self._reported_up: set[str] = set()  # the upstreams `upstream_up` has a series of (`publish`)
        self._hits: dict[tuple[str, str], _Value] = {}
        self._mirrored: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[Any, float]] = {}
        self._mirror_metrics: dict[str, Any] = {}

    # -- per call (pre-resolved children)

    def upstream(self, name: str) -> _Buckets:
        child = self._upstreams.get(name)
        if child is None:
            child = self._upstreams[name] = histogram_series(self.upstream_duration, name)
        return child

    def hit(self, kind: str, direction: str) -> None:
        key = (kind, direction)
        child = self._hits.get(key)
        if child is None:
            child = self._hits[key] = series(self.detector_hits, kind, direction)
        child.inc()

    def certificate_expiry(self, not_after: float) -> None:
        """The listeners' certificate's notAfter (Unix time), at start and after a reload: made here, at its first
        value, so a proxy without TLS has no such series (a 0 there would read as expired in 1970)."""
        if self._certificate_expiry is None:
            self._certificate_expiry = Gauge(
                "lineage_proxy_tls_certificate_expiry_timestamp_seconds", "The notAfter of the listeners' certificate "
                "(the first of listen.tls.cert), as a Unix time.", registry=self.registry, multiprocess_mode="livemin")  # fmt: skip
        self._certificate_expiry.set(not_after)

    def tls_handshake_failed(self, reason: str) -> None:
        """A TLS handshake on the HTTP listener failed (`HttpServer.handshake_failed`)."""
        self.tls_handshake_failures.labels(reason).inc()

    def grpc_busy(self) -> None:
        """A call refused by the gRPC listener past limits.grpc_max_calls (`GrpcIngress.busy`)."""
        self.grpc_calls_refused.inc()

    # -- scrape

    def publish(
        self, sink_lines: Iterable[str], upstream_up: Iterable[tuple[str, bool]],
        incomplete: Iterable[tuple[str, bool]] = (),
    ) -> None:  # fmt: skip
        """Copy what this process knows only as text or state into shared series (multiprocess mode):
        the sinks' counters by their increase, upstream reachability (and whether its metadata was read whole,
        `incomplete`: the upstreams `upstream_up` names) as gauges."""
        reported: set[str] = set()
        for name, up in upstream_up:
            self.upstream_up.labels(name).set(1 if up else 0)
            reported.add(name)
        for name, partial in incomplete:
            if name in reported:
                self.upstream_incomplete.labels(name).set(1 if partial else 0)
        if self.shared is None:
            # an upstream a reload removed is no longer reported (its last value, kept, would say it is down, or up,
            # until a restart). In multiprocess mode a worker's series stays in its file (prometheus-client cannot
            # remove one there)
            for name in self._reported_up - reported:
                self.upstream_up.remove(name)
                self.upstream_incomplete.remove(name)
            self._reported_up = reported
            return
        for family in text_string_to_metric_families("\n".join(sink_lines) + "\n"):
            for sample in family.samples:
                labels = tuple(sorted(sample.labels.items()))
                key = (sample.name, labels)
                known = self._mirrored.get(key)
                if known is None:
                    metric = self._mirror(family.name, family.documentation, family.type, [k for k, _ in labels])
                    child = metric.labels(*[v for _, v in labels]) if labels else metric
                    known = (child, 0.0)
                child, last = known
                if family.type == "counter":
                    if sample.value > last:
                        child.inc(sample.value - last)
                elif not math.isnan(sample.value):
                    child.set(sample.value)
                self._mirrored[key] = (child, sample.value)

    def _mirror(self, name: str, documentation: str, kind: str, labels: list[str]) -> Any:
        metric = self._mirror_metrics.get(name)
        if metric is None:
            if kind == "counter":
                metric = Counter(name, documentation, labels, registry=None)
            else:
                mode = _GAUGE_MODES.get(name, "livesum")
                metric = Gauge(name, documentation, labels, registry=None, multiprocess_mode=mode)  # type: ignore[arg-type]
            self._mirror_metrics[name] = metric
        return metric

    def render(
        self, sink_lines: Iterable[str], upstream_up: Iterable[tuple[str, bool]],
        incomplete: Iterable[tuple[str, bool]] = (),
    ) -> str:  # fmt: skip
        """The exposition text: this process's series, or every worker's summed in multiprocess mode.
        Whole numbers are written as integers (`..._total 3`), as /metrics always has."""
        lines = list(sink_lines)
        self.publish(lines, upstream_up, incomplete)
        if self.shared is not None:
            registry = CollectorRegistry(auto_describe=False)
            MultiProcessCollector(registry, path=self.shared)  # type: ignore[no-untyped-call]
            text = generate_latest(registry).decode()
        else:
            text = generate_latest(self.registry).decode() + "".join(line + "\n" for line in lines)
        return _INTEGRAL.sub(r" \1", text)


class Stats:
    """What the Exchange and the Pipeline count on the loop thread, through the process's instruments
    (so that a scrape of any worker sums them). `in_flight` is also read here, to drain. Each series is a
    `_Value`, whatever keeps it: its update a compiled call, not a method looked up on an untyped object."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        metrics = metrics or Metrics()
        self._decided = {action: series(metrics.decisions, action) for action in DECISIONS}
        self._errors = metrics.errors
        self._failed: dict[str, _Value] = {}
        self._in_flight_gauge = series(metrics.in_flight)
        self._unapproved = series(metrics.unapproved)
        self._in_flight = 0

    def decided(self, action: str) -> None:
        """A call recorded with `action` (`Exchange.finish`): counted as its record says, not as first decided."""
        self._decided[action].inc()

    def failed(self, error_type: str) -> None:
        child = self._failed.get(error_type)
        if child is None:
            child = self._failed[error_type] = series(self._errors, error_type)
        child.inc()

    def unapproved(self) -> None:
        """A call whose flow the approved baseline does not cover (blocked or not)."""
        self._unapproved.inc()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def started(self) -> None:
        """A call began (`Exchange.__init__`): one more in flight. A method, not a property's setter: compiled,
        a setter is called through the attribute protocol, a method directly."""
        self._in_flight += 1
        self._in_flight_gauge.inc(1)

    def ended(self) -> None:
        """A call was recorded (`Exchange.finish`): one fewer in flight."""
        self._in_flight -= 1
        self._in_flight_gauge.inc(-1)

"""The flow of one call, independent of transport: build the Call, decide, resolve the checkpoint, record.

A `Pipeline` is everything derived from one config (policy, detectors, sampling); a reload builds a new
one and swaps it in atomically. The `Runtime` holds what outlives configs: the upstream pool, the
checkpoint book, the span exporter and the edge store.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from proxy.checkpoints import RESPONSE, CheckpointBook
from proxy.config import Config, Upstream
from proxy.detectors import Detectors
from proxy.errors import DENIAL_ERRORS, InvalidRequest, ProxyError
from proxy.flow import DENY, Call, Decision, Outcome, TraceContext
from proxy.labels import check_labels, format_labels, is_label, parse_labels
from proxy.policy import Policy, decide
from proxy.protocols import Request, text_digest
from proxy.record.edges import EdgeAggregator
from proxy.record.spans import SpanRecorder, trace_context
from proxy.record.store import EdgeKey

log = logging.getLogger("lineage_proxy")


@dataclass(slots=True)
class Stats:
    """Counters for /metrics; plain ints on the loop thread, no locks."""

    decisions: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0


class Runtime:
    """The long-lived parts shared by every Pipeline a process runs."""

    def __init__(
        self,
        book: CheckpointBook,
        spans: SpanRecorder | None,
        edges: EdgeAggregator | None,
    ) -> None:
        self.book = book
        self.spans = spans
        self.edges = edges
        self.stats = Stats()


class Pipeline:
    __slots__ = ("capture", "config", "detectors", "policy", "runtime", "sample_ratio", "strips_auth")

    def __init__(self, config: Config, runtime: Runtime) -> None:
        self.config = config
        self.runtime = runtime
        self.policy = Policy.compile(config)
        self.detectors = Detectors(config.detectors, config.limits.scan_max_chars)
        self.capture = config.telemetry.capture_content
        self.sample_ratio = config.telemetry.sample_ratio if config.telemetry.exporter != "none" else 0.0
        # the proxy authenticates callers itself: their key is never passed on to an upstream
        self.strips_auth = bool(self.policy.callers_by_key)

    def trace(self, headers: Mapping[str, str]) -> TraceContext:
        return trace_context(headers.get("traceparent"), headers.get("tracestate"), self.sample_ratio)

    def key_digest(self, headers: Mapping[str, str]) -> str | None:
        auth = headers.get("authorization")
        if not auth or not self.strips_auth:
            return None  # no caller has a key: the header is the upstream's business, passed on as is
        scheme, _, key = auth.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise InvalidRequest("Authorization must be 'Bearer <key>'", param="authorization")
        return hashlib.sha256(key.encode()).hexdigest()

    def call(self, request: Request, protocol: str, headers: Mapping[str, str], trace: TraceContext) -> Call:
        """Build the Call from what the adapter read plus the headers; bad labels or purpose: 400."""
        purpose = headers.get("x-purpose")
        if purpose is not None:
            purpose = purpose.strip()
            if not is_label(purpose):
                raise InvalidRequest(f"x-purpose: invalid purpose {purpose!r}", param="x-purpose")
        labels = parse_labels(headers.get("x-data-labels"))
        if request.labels:
            labels = labels | check_labels(request.labels, source="parameters.data_labels")
            if len(labels) > 64:
                raise InvalidRequest("more than 64 labels in x-data-labels and data_labels together")
        texts = request.texts
        return Call(
            protocol=protocol,
            operation=request.operation,
            model=request.model,
            trace=trace,
            key_sha256=self.key_digest(headers),
            purpose=purpose or None,
            labels=labels,
            detected=self.detectors.scan_all(texts) if texts else frozenset(),
            input_digest=request.digest or text_digest(texts),
            params=request.params,
            stream=request.stream,
            model_version=request.version,
            content=tuple(self.detectors.mask(t) for t in texts) if self.capture and trace.sampled else (),
        )

    def decide(self, call: Call) -> Decision:
        decision = decide(call, self.policy)
        self.runtime.stats.decisions[decision.action] += 1
        return decision

    def identify_only(self, headers: Mapping[str, str]) -> None:
        """For calls that carry no data (metadata, health): only the caller's key is checked."""
        digest = self.key_digest(headers)
        if self.policy.caller(digest) is not None:
            return
        if digest is not None:
            raise DENIAL_ERRORS["invalid_api_key"]("unknown API key")
        if not self.policy.anonymous_allowed and not self.policy.audit:
            raise DENIAL_ERRORS["invalid_api_key"]("missing API key: send 'Authorization: Bearer <key>'")

    def resolve_checkpoint(self, upstream: Upstream, call: Call, outcome: Outcome) -> None:
        found = self.runtime.book.resolve(upstream, call.model, call.model_version)
        if found is not None:
            outcome.checkpoint, outcome.checkpoint_source, outcome.checkpoint_parent = (
                found.name,
                found.source,
                found.parent,
            )
        elif upstream.protocol == "openai":
            self.runtime.book.want(upstream, call.model)

    @staticmethod
    def checkpoint_from_response(outcome: Outcome) -> None:
        if outcome.checkpoint is None and outcome.response_model:
            outcome.checkpoint, outcome.checkpoint_source = outcome.response_model, RESPONSE

    def output_labels(self, decision: Decision, outcome: Outcome) -> frozenset[str]:
        if not decision.forwards:
            return frozenset()
        return decision.labels | outcome.output_detected if outcome.output_detected else decision.labels

    def finish(self, call: Call, decision: Decision, outcome: Outcome) -> concurrent.futures.Future[None] | None:
        """Record the call: a span (if sampled) and an edge (always). Returns the edge write to await
        before the response completes when the flow is new."""
        if not outcome.ended_ns:
            outcome.ended_ns = time.time_ns()
        self.checkpoint_from_response(outcome)
        runtime = self.runtime
        if outcome.error_type:
            runtime.stats.errors[outcome.error_type] += 1
        output_labels = self.output_labels(decision, outcome)
        if runtime.spans is not None:
            try:
                runtime.spans.record(call, decision, outcome, output_labels)
            except Exception:  # a malformed attribute must never fail the call
                log.exception("could not build the span of a call")
        if runtime.edges is None:
            return None
        key = EdgeKey(
            decision.caller or "anonymous",
            decision.purpose or "",
            format_labels(decision.labels),
            outcome.checkpoint or "",
            format_labels(output_labels),
            decision.action,
        )
        return runtime.edges.add(key, decision.rule)

    def denial(self, decision: Decision) -> ProxyError:
        assert decision.action == DENY and decision.code is not None
        return DENIAL_ERRORS[decision.code](decision.reason or decision.code)

"""The span of a call: OpenTelemetry GenAI attributes plus this project's `lineage.*` namespace.

The span is built once, when the call ends, as a finished ReadableSpan: no live span object, no lock
per attribute on the hot path. Ids are chosen when the call arrives (see `trace_context`) so the
upstream and the client learn the trace id before the span exists.
"""

from __future__ import annotations

import functools
import logging
import random
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from proxy import __version__
from proxy.config import Telemetry, Upstream
from proxy.flow import DENY, Call, Decision, Outcome, TraceContext
from proxy.record.export import BoundedExporter

log = logging.getLogger("lineage_proxy.spans")

_SCOPE = InstrumentationScope("lineage-proxy", __version__)
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_HEX = frozenset("0123456789abcdef")
_getrandbits = random.getrandbits


def trace_context(traceparent: str | None, tracestate: str | None, sample_ratio: float) -> TraceContext:
    """Join the caller's W3C trace if it sent a valid traceparent, else start a new one.

    Sampling is parent-based: a caller's decision is kept; new traces are sampled by trace-id ratio.
    A malformed traceparent is ignored (W3C: restart the trace), never an error.
    """
    span_id = _getrandbits(64) or 1
    if traceparent is not None and len(traceparent) == 55 and traceparent[2] == "-":
        version, trace_hex, parent_hex, flags = traceparent[:2], traceparent[3:35], traceparent[36:52], traceparent[53:]
        if (
            version != "ff"
            and traceparent[35] == "-"
            and traceparent[52] == "-"
            and set(trace_hex + parent_hex + flags) <= _HEX
            and int(trace_hex, 16)
            and int(parent_hex, 16)
        ):
            sampled = bool(int(flags, 16) & 1)
            return TraceContext(int(trace_hex, 16), span_id, int(parent_hex, 16), sampled, tracestate)
    trace_id = _getrandbits(128) or 1
    sampled = sample_ratio >= 1.0 or (trace_id & 0xFFFFFFFFFFFFFFFF) < int(sample_ratio * 2**64)
    return TraceContext(trace_id, span_id, None, sampled)


def make_exporter(telemetry: Telemetry) -> SpanExporter | None:
    """The SpanExporter for the configured backend (where spans go); None when spans are off."""
    if telemetry.exporter == "none":
        return None
    # the OTLP exporters log every failed attempt; BoundedExporter logs once per outage instead
    for name in (
        "opentelemetry.exporter.otlp.proto.grpc.exporter",
        "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    ):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    if telemetry.exporter == "console":
        return ConsoleSpanExporter(service_name=telemetry.service_name)
    timeout = telemetry.export_timeout_s
    if telemetry.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        endpoint = telemetry.endpoint or "http://127.0.0.1:4317"
        return GrpcExporter(endpoint=endpoint, insecure=endpoint.startswith("http://"), timeout=timeout)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    endpoint = (telemetry.endpoint or "http://127.0.0.1:4318").rstrip("/")
    if not endpoint.endswith("/v1/traces"):
        endpoint += "/v1/traces"
    return HttpExporter(endpoint=endpoint, timeout=timeout)


class SpanRecorder:
    """Turns (Call, Decision, Outcome) into a finished span and queues it for export."""

    def __init__(self, telemetry: Telemetry, exporter: SpanExporter) -> None:
        attributes: dict[str, Any] = {"service.name": telemetry.service_name, "service.version": __version__}
        attributes.update(dict(telemetry.resource_attributes))
        self._resource = Resource.create(attributes)
        self.queue = BoundedExporter(exporter, max_queue=telemetry.queue_size)

    def record(self, call: Call, decision: Decision, outcome: Outcome, output_labels: frozenset[str]) -> None:
        trace = call.trace
        if not trace.sampled:
            return
        self.queue.submit(self.build(call, decision, outcome, output_labels))

    def build(self, call: Call, decision: Decision, outcome: Outcome, output_labels: frozenset[str]) -> ReadableSpan:
        trace = call.trace
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": call.operation,
            "gen_ai.request.model": call.model,
            "lineage.caller": decision.caller or "anonymous",
            "lineage.decision": decision.action,
            "lineage.input.labels": sorted(decision.labels),
            "lineage.output.labels": sorted(output_labels),
            "lineage.zones": list(decision.zones),
            "lineage.protocol": call.protocol,
        }
        if decision.purpose:
            attrs["lineage.purpose"] = decision.purpose
        if decision.reason:
            attrs["lineage.reason"] = decision.reason
        if decision.rule:
            attrs["lineage.rule"] = decision.rule
        if call.input_digest:
            attrs["lineage.input.digest"] = call.input_digest
        if call.stream:
            attrs["gen_ai.request.stream"] = True
        for key, value in call.params:
            attrs[f"gen_ai.request.{key}"] = value
        upstream: Upstream | None = decision.upstream
        if upstream is not None:
            attrs["gen_ai.provider.name"] = upstream.name
            attrs["lineage.upstream"] = upstream.name
            address, port = _server(upstream)
            if address:
                attrs["server.address"] = address
                attrs["server.port"] = port
        if outcome.checkpoint:
            attrs["lineage.checkpoint"] = outcome.checkpoint
            attrs["lineage.checkpoint.source"] = outcome.checkpoint_source or "response"
        if outcome.checkpoint_parent:
            attrs["lineage.checkpoint.parent"] = outcome.checkpoint_parent
        if outcome.output_digest:
            attrs["lineage.output.digest"] = outcome.output_digest
        if outcome.response_model:
            attrs["gen_ai.response.model"] = outcome.response_model
        if outcome.response_id:
            attrs["gen_ai.response.id"] = outcome.response_id
        if outcome.finish_reasons:
            attrs["gen_ai.response.finish_reasons"] = list(outcome.finish_reasons)
        if outcome.input_tokens is not None:
            attrs["gen_ai.usage.input_tokens"] = outcome.input_tokens
        if outcome.output_tokens is not None:
            attrs["gen_ai.usage.output_tokens"] = outcome.output_tokens
        if outcome.status is not None:
            attrs["rpc.grpc.status_code" if call.protocol == "oip-grpc" else "http.response.status_code"] = (
                outcome.status
            )
        for key, value in outcome.extra.items():
            attrs[key] = value
        if call.content:
            attrs["gen_ai.input.messages"] = "\n".join(call.content)
        if outcome.content:
            attrs["gen_ai.output.messages"] = "".join(outcome.content)

        status = Status(StatusCode.UNSET)
        error_type = outcome.error_type or (decision.code if decision.action == DENY else None)
        if error_type:
            attrs["error.type"] = error_type
            status = Status(StatusCode.ERROR, decision.reason if decision.action == DENY else error_type)

        events: tuple[Event, ...] = ()
        if outcome.first_token_ns:
            ttft = (outcome.first_token_ns - outcome.started_ns) / 1e9
            attrs["gen_ai.response.time_to_first_chunk"] = ttft
            events = (
                Event("gen_ai.first_token", {"gen_ai.response.time_to_first_chunk": ttft}, outcome.first_token_ns),
            )

        state = TraceState.from_header([trace.tracestate]) if trace.tracestate else None
        context = SpanContext(trace.trace_id, trace.span_id, False, _SAMPLED, state)
        parent = (
            SpanContext(trace.trace_id, trace.parent_span_id, True, _SAMPLED, state)
            if trace.parent_span_id is not None
            else None
        )
        return ReadableSpan(
            name=f"{call.operation} {call.model}" if call.model else call.operation,
            context=context,
            parent=parent,
            resource=self._resource,
            attributes=attrs,
            events=events,
            kind=SpanKind.SERVER,
            status=status,
            start_time=outcome.started_ns,
            end_time=outcome.ended_ns or outcome.started_ns,
            instrumentation_scope=_SCOPE,
        )

    def shutdown(self) -> None:
        self.queue.shutdown()


@functools.lru_cache(maxsize=256)
def _server(upstream: Upstream) -> tuple[str | None, int | None]:
    if upstream.grpc:
        host, _, port = upstream.grpc.rpartition(":")
        return host.strip("[]"), int(port)
    if upstream.url:
        parts = urlsplit(upstream.url)
        return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    return None, None

"""The span of a call: OpenTelemetry GenAI attributes plus this project's `lineage.*` namespace.

The span is built once, when the call ends, straight into OTLP protobuf bytes (otlp.py): no live span
object, no lock per attribute, and nothing left for the export thread but framing and I/O. Ids are
chosen when the call arrives (see `trace_context`) so the upstream and the client learn the trace id
before the span exists.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import random
import re
from collections.abc import Iterable
from typing import Any, Final, cast
from urllib.parse import urlsplit

import orjson

from proxy import __version__
from proxy.config import Telemetry, Upstream
from proxy.config.loader import token_hidden
from proxy.flow import DENY, INVALID_API_KEY, NAME_MAX_CHARS, Call, Decision, Outcome, TraceContext
from proxy.labels import sorted_labels
from proxy.logs import json_line
from proxy.memo import Memo
from proxy.protocols import ADAPTERS
from proxy.record.access import shown_model
from proxy.record.export import (
    BoundedExporter,
    ConsoleSink,
    OtlpGrpcSink,
    OtlpHttpSink,
    Sink,
    SinkOptions,
    grpc_roots,
    grpc_secure,
    https_context,
)
from proxy.record.otlp import (
    SPAN_KIND_SERVER,
    STATUS_ERROR,
    STATUS_UNSET,
    CallAttribute,
    encode_flow_span,
    encode_resource,
    encode_scope,
    encode_span,
    key_values,
    span_attribute,
    span_event,
    span_head,
    span_status,
)

log = logging.getLogger("lineage_proxy.spans")

_HEX: Final = frozenset("0123456789abcdef")
_getrandbits: Final = random.getrandbits


def trace_context(traceparent: str | None, tracestate: str | None, sample_ratio: float) -> TraceContext:
    """Join the caller's W3C trace if it sent a valid traceparent, else start a new one.

    Sampling is parent-based: a caller's decision is kept; new traces are sampled by trace-id ratio.
    A malformed traceparent is ignored (W3C: restart the trace), never an error. A version after 00 is read by
    00's layout, what follows its flags after a `-` its own (W3C: "Versioning of traceparent"); 00 has no more.
    """
    span_id = _getrandbits(64) or 1
    if traceparent is not None and len(traceparent) >= 55 and traceparent[2] == "-":
        version, trace_hex, parent_hex = traceparent[:2], traceparent[3:35], traceparent[36:52]
        flags = traceparent[53:55]
        if (
            version != "ff"
            and (len(traceparent) == 55 or (version != "00" and traceparent[55] == "-"))
            and traceparent[35] == "-"
            and traceparent[52] == "-"
            and set(version + trace_hex + parent_hex + flags) <= _HEX
            and int(trace_hex, 16)
            and int(parent_hex, 16)
        ):
            sampled = bool(int(flags, 16) & 1)
            state = None if tracestate is None else kept_tracestate(tracestate)
            return TraceContext(int(trace_hex, 16), span_id, int(parent_hex, 16), sampled, state)
    trace_id = _getrandbits(128) or 1
    sampled = sample_ratio >= 1.0 or (trace_id & 0xFFFFFFFFFFFFFFFF) < int(sample_ratio * 2**64)
    return TraceContext(trace_id, span_id, None, sampled)


def kept_tracestate(tracestate: str) -> str | None:
    """A joined trace's `tracestate` (its fields joined with ','), as it came, when it is one the OpenTelemetry SDK
    keeps (`TraceState.from_header`, behind its propagator's length check): at most `TRACESTATE_MAX_CHARS`, at most
    `TRACESTATE_MAX_MEMBERS` list-members (empty ones, and white space around one, aside), each a W3C `key=value`, no
    key twice. Any other is None, dropped whole (not cut: a member cut short is another vendor's state): the span does
    not carry it, nor is it forwarded. Kept by value: a caller sends the same few again and again."""
    known = _TRACESTATES.get(tracestate)
    if known is not None:
        return tracestate if known else None
    valid = len(tracestate) <= TRACESTATE_MAX_CHARS
    if valid:
        keys: set[str] = set()
        for member in tracestate.split(","):
            member = member.strip(" \t")
            if not member:
                continue
            matched = _TRACESTATE_MEMBER.fullmatch(member)
            if matched is None or matched.group(1) in keys or len(keys) == TRACESTATE_MAX_MEMBERS:
                valid = False
                break
            keys.add(matched.group(1))
    if len(tracestate) <= 512:
        if len(_TRACESTATES) >= 256:
            _TRACESTATES.clear()
        _TRACESTATES[tracestate] = valid
    return tracestate if valid else None


TRACESTATE_MAX_CHARS: Final = 8192  # the OpenTelemetry SDK's (`_TRACECONTEXT_MAXIMUM_TRACESTATE_LENGTH`)
TRACESTATE_MAX_MEMBERS: Final = 32  # W3C Trace Context's, as the SDK holds it
# W3C's list-member, as the SDK matches it: a key (a tenant's `tenant@system` too), '=', a value of printable ASCII
# but ',' and '=' that does not end in a space
_TRACESTATE_MEMBER: Final = re.compile(
    r"([a-z][_0-9a-z\-\*\/]{0,255}|[a-z0-9][_0-9a-z\-\*\/]{0,240}@[a-z][_0-9a-z\-\*\/]{0,13})"
    r"=([\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e])"
)
_TRACESTATES: dict[str, bool] = {}  # whether each is kept (`kept_tracestate`), of those up to 512 characters


def make_sink(telemetry: Telemetry, resource: bytes, scope: bytes) -> Sink | None:
    """The sink for the configured backend (where spans go); None when spans are off."""
    if telemetry.exporter == "none":
        return None
    if telemetry.exporter == "console":
        return ConsoleSink()
    endpoint, options = _otlp_target(telemetry)
    timeout = telemetry.export_timeout_s
    if telemetry.protocol == "grpc":
        return OtlpGrpcSink(endpoint, timeout, resource, scope, options)
    return OtlpHttpSink(endpoint, timeout, resource, scope, options)


def _otlp_target(telemetry: Telemetry) -> tuple[str, SinkOptions]:
    """Where an OTLP sink sends spans, and how."""
    options = SinkOptions(
        headers=telemetry.headers,
        compression=telemetry.compression if telemetry.compression != "none" else None,
        certificate=telemetry.certificate,
        insecure=telemetry.insecure,
        exact_path=telemetry.traces_endpoint is not None,
    )
    default = "http://127.0.0.1:4317" if telemetry.protocol == "grpc" else "http://127.0.0.1:4318"
    return telemetry.traces_endpoint or telemetry.endpoint or default, options


def span_exporter_tls(telemetry: Telemetry) -> None:
    """Read the CA bundle the span exporter of `telemetry` reads as it is built, as its sink reads it (raising what
    that build raises), building nothing: no export thread, no gRPC channel (a `--workers` supervisor's reload, in a
    process that forks: `server.ReloadFiles.in_supervisor`)."""
    if telemetry.exporter != "otlp":
        return
    endpoint, options = _otlp_target(telemetry)
    if telemetry.protocol != "grpc":
        https_context(endpoint, options)
    elif grpc_secure(endpoint, options):
        grpc_roots(options)


SPANS = "spans"  # the sink's name: compiled, a class's `name` reads on its instances only


class SpanRecorder:
    """The `spans` record sink: turns (Call, Decision, Outcome) into an encoded span and queues it for
    export. Never blocks a call: a full queue drops and counts."""

    name = "spans"  # SPANS (mypyc takes a literal only as a default)
    durable = False

    def __init__(self, telemetry: Telemetry, sink: Sink | None = None, *, sidecar: str | None = None) -> None:
        # the telemetry.sdk entity's three attributes are all Required (the proxy is its own SDK: otlp.py)
        resource: dict[str, Any] = {"service.name": telemetry.service_name, "service.version": __version__,
                                    "telemetry.sdk.name": "lineage-proxy", "telemetry.sdk.language": "python",
                                    "telemetry.sdk.version": __version__}  # fmt: skip
        if sidecar is not None:
            # the deployment of a fleet (`lineage.sidecar`), the name its edges are recorded under: stable across
            # restarts and pods, so not `service.instance.id` (unique per instance); a resource attribute, encoded
            # once, never per span. `telemetry.resource_attributes` may set it otherwise
            resource["lineage.sidecar"] = sidecar
        resource.update(dict(telemetry.resource_attributes))
        self.console = telemetry.exporter == "console"
        self.resource = resource
        if sink is None:
            sink = make_sink(telemetry, encode_resource(resource), encode_scope("lineage-proxy", __version__))
        assert sink is not None, "telemetry.exporter is none: no SpanRecorder"
        # a stop waits for the exporter as long as one export may take: what is unsent by then is counted
        # and logged, not waited for
        self.queue = BoundedExporter(sink, max_queue=telemetry.queue_size, stop_timeout_s=telemetry.export_timeout_s)
        # how long its stop waits at most (then counts and says what is not exported): the fan-out waits past it
        # (`FanOut.stop_retired`), an export_timeout_s over its 20 s too
        self.stop_bound_s = telemetry.export_timeout_s
        self.counts = self.queue.counts  # a reload's new recorder counts on from these (FanOut.swap)
        # the blocks (and decisions, `_flow_block`) by flow key, at most FLOW_BLOCKS_KEPT of them and FLOW_BYTES_KEPT
        self._blocks = Memo(FLOW_BLOCKS_KEPT, FLOW_BYTES_KEPT)
        # the last block kept and its key (and decision, which keeps the upstream its key holds by id alive): a call
        # of the same flow as the last one is found by comparing keys, without hashing one (~0.2 µs a call)
        self._last_key: tuple[Any, ...] = ()
        self._last: tuple[Decision, tuple[bytes, bytes, bytes]] | None = None

    def start(self) -> None:
        pass  # the export thread starts with the queue

    def on_end(self, call: Call, decision: Decision, outcome: Outcome, output_labels: frozenset[str]) -> None:
        if call.trace.sampled and self.queue.accepting():
            self.queue.submit(self.encode(call, decision, outcome, output_labels))

    async def flush(self) -> None:
        await asyncio.to_thread(self.queue.force_flush)

    async def stop(self) -> None:
        await asyncio.to_thread(self.shutdown)

    def metrics(self) -> Iterable[str]:
        queue = self.queue
        return (
            "# HELP lineage_proxy_spans_dropped_total Spans dropped because the export queue was full.",
            "# TYPE lineage_proxy_spans_dropped_total counter",
            f"lineage_proxy_spans_dropped_total {queue.dropped}",
            "# HELP lineage_proxy_spans_export_failed_total Spans in export batches that failed.",
            "# TYPE lineage_proxy_spans_export_failed_total counter",
            f"lineage_proxy_spans_export_failed_total {queue.failed}",
            "# HELP lineage_proxy_spans_exported_total Spans the collector accepted.",
            "# TYPE lineage_proxy_spans_exported_total counter",
            f"lineage_proxy_spans_exported_total {queue.exported}",
        )

    def attributes(
        self, call: Call, decision: Decision, outcome: Outcome, output_labels: frozenset[str]
    ) -> dict[str, Any]:
        """Every attribute of the call's span: its flow's, then its own."""
        attrs = _flow_attributes(call, decision, outcome, output_labels)
        attrs.update(_call_attributes(call, outcome))
        return attrs

    def encode(self, call: Call, decision: Decision, outcome: Outcome, output_labels: frozenset[str]) -> bytes:
        trace = call.trace
        if self.console:
            attrs = self.attributes(call, decision, outcome, output_labels)
            name, status, message = _naming(call, decision, attrs)
            span = {
                "name": name, "trace_id": trace.trace_id_hex, "span_id": f"{trace.span_id:016x}",
                "parent_span_id": f"{trace.parent_span_id:016x}" if trace.parent_span_id else None,
                "kind": "SERVER", "start_ns": outcome.started_ns, "end_ns": outcome.ended_ns or outcome.started_ns,
                "status": status, "status_message": message, "attributes": attrs,
                "events": _events(outcome, attrs), "resource": self.resource,
            }  # fmt: skip
            try:
                data = orjson.dumps(span)
            except orjson.JSONEncodeError:  # a lone surrogate (a reply's JSON read past orjson): escaped, as JSON can
                return json.dumps(span, separators=(",", ":")).encode()
            # C1, the line separators and the bidi and invisible characters as JSON escapes, as JSON log lines have them
            return data if data.isascii() else json_line(data.decode()).encode()
        head, status_field, block = self._flow_block(call, decision, outcome, output_labels)
        encoded = encode_flow_span(
            trace.trace_id_bytes,
            trace.span_id_bytes,
            trace.parent_span_id,
            trace.tracestate,
            head,
            outcome.started_ns,
            outcome.ended_ns or outcome.started_ns,
            _call_parts(call, outcome, [block]),
            _first_token(outcome),
            status_field,
        )
        if len(encoded) > SPAN_MAX_BYTES:
            return self._cut(call, decision, outcome, output_labels)
        return encoded

    def _cut(self, call: Call, decision: Decision, outcome: Outcome, output_labels: frozenset[str]) -> bytes:
        """The span of a call whose values take it past SPAN_MAX_BYTES, each value cut (`_cut_value`) and the span
        marked `lineage.span.cut`: a collector takes it, as it took none of it whole."""
        trace = call.trace
        attrs = {
            key: _cut_value(value) for key, value in self.attributes(call, decision, outcome, output_labels).items()
        }
        # the captured messages cut as texts, within a value's bound together: their JSON cut short is no JSON
        if call.content:
            attrs[INPUT_MESSAGES] = _bounded_content(call.content, whole=call.content_chars)
        if outcome.content:
            attrs[OUTPUT_MESSAGES] = _bounded_content(outcome.content, outcome, whole=outcome.content_chars)
        attrs["lineage.span.cut"] = True
        name, status, message = _naming(call, decision, attrs)
        return encode_span(
            trace_id=trace.trace_id,
            span_id=trace.span_id,
            parent_span_id=trace.parent_span_id,
            trace_state=_cut_value(trace.tracestate),
            name=_cut_value(name),
            kind=SPAN_KIND_SERVER,
            start_ns=outcome.started_ns,
            end_ns=outcome.ended_ns or outcome.started_ns,
            attributes=attrs,
            events=_events(outcome, attrs),
            status_code=status,
            status_message=_cut_value(message),
        )

    def _flow_block(
        self, call: Call, decision: Decision, outcome: Outcome, output_labels: frozenset[str]
    ) -> tuple[bytes, bytes, bytes]:
        """The span's name and kind, its status and its flow's attributes, encoded (`span_head`, `span_status`,
        `key_values`): the same for every call of a flow,
        so encoded once and kept (a bounded table). The key holds every input of `_flow_attributes`;
        the upstream is keyed by identity and kept alive by the entry's own decision, so its id cannot be
        reused while the entry lives; the parameters with their values' types (`_params_key`), so `1` and
        `1.0` (and `True`), equal as keys, are not one block (an int and a double in OTLP). A call with
        unhashable `extra` is encoded afresh, and so is a flow with a long value (a parameter, a model's name: a
        block over FLOW_BLOCK_KEPT_MAX bytes), whose key and block would pin what a client sent."""
        params = _params_key(call.params)
        key = (
            decision.action, id(decision.upstream), decision.caller, decision.purpose, decision.labels,
            decision.zones, decision.code, decision.rule, decision.reason, decision.approved, call.operation,
            call.model, call.protocol, call.stream, params, output_labels, outcome.checkpoint,
            outcome.checkpoint_source, outcome.checkpoint_parent, outcome.provider, outcome.response_model,
            outcome.finish_reasons, outcome.status, outcome.error_type,
            tuple(outcome.extra.items()) if outcome.extra else (),
        )  # fmt: skip
        last = self._last
        if last is not None and key == self._last_key:  # equal keys: the entry the table holds for this one
            return last[1]
        try:
            kept = cast(tuple[Decision, tuple[bytes, bytes, bytes]] | None, self._blocks.kept.get(key))
        except TypeError:  # an `extra` value holding a list or a dict: not kept
            return self._encode_flow(call, decision, outcome, output_labels)
        if kept is not None:
            self._last_key, self._last = key, kept
            return kept[1]
        block = self._encode_flow(call, decision, outcome, output_labels)
        # every value the key holds is in the block, but a list parameter's repr: their sizes bound what it pins
        size = len(block[0]) + len(block[1]) + len(block[2]) + (len(params) if type(params) is str else 0)
        if size > FLOW_BLOCK_KEPT_MAX:
            return block
        kept = (decision, block)
        self._blocks.keep(key, kept, size)  # full: begun again
        self._last_key, self._last = key, kept
        return block

    @staticmethod
    def _encode_flow(
        call: Call, decision: Decision, outcome: Outcome, output_labels: frozenset[str]
    ) -> tuple[bytes, bytes, bytes]:
        attrs = _flow_attributes(call, decision, outcome, output_labels)
        name, status, message = _naming(call, decision, attrs)
        return span_head(name, SPAN_KIND_SERVER), span_status(status, message), key_values(9, attrs)

    def shutdown(self) -> None:
        self.queue.shutdown()


# A span's bytes at most. Its values are the caller's (a stop sequence or a model name of megabytes, the content it
# captures: each text up to `limits.scan_max_chars`), and a span over 4 MiB, a gRPC collector's limit for one request,
# was refused (RESOURCE_EXHAUSTED): the call was missing from the traces. Past this bound each string is cut to
# VALUE_CUT_CHARS characters (at most 64 KiB of UTF-8), each array to ITEMS_CUT items of as many characters between
# them: a span of every attribute cut is under 2 MiB, and a batch's first span fits in its 3 MiB (export.BATCH_BYTES).
SPAN_MAX_BYTES: Final = 1 << 20
VALUE_CUT_CHARS: Final = 16384
ITEMS_CUT: Final = 64
CUT_MARK: Final = "[cut: the span was over 1 MiB]"

# A value a caller or an upstream chose (a model's name, a stop sequence, a parameter, the captured content, the
# reply's model, id and finish reasons, an error's text) at most, in UTF-8 bytes, its cut's marker included: Jaeger's
# Badger and Cassandra stores write each tag's value into an index key and refuse a key over 65,000 bytes, losing the
# whole span ("Key with size N exceeded 65000 limit", jaegertracing/jaeger#3330). An array's items together at most
# half of it: Jaeger stores an array as its JSON, where a character may take six bytes (`\u0001`).
VALUE_MAX_BYTES: Final = 16384
ITEMS_MAX_BYTES: Final = 8192
# a string this long or shorter is within VALUE_MAX_BYTES whatever its characters (four UTF-8 bytes at most each):
# its length is all that is read
_SHORT_CHARS: Final = VALUE_MAX_BYTES // 4
_MARK_ROOM: Final = 48  # the bytes `_cut_mark` takes at most
# attributes that are the proxy's own, bounded where they are made (the labels: 256 of 128 characters at most, that
# the span keeps every one of; the zones, the config's)
_UNCUT: Final = frozenset({"lineage.input.labels", "lineage.output.labels", "lineage.zones"})


def _cut_mark(left: int) -> str:
    return f"...[{left:,} characters cut]"


def bounded(value: str, limit: int = VALUE_MAX_BYTES) -> str:
    """`value` whole when its UTF-8 is at most `limit` bytes, else its start, cut between two characters, and a
    marker saying how many characters were left out, `limit` bytes at most together."""
    if len(value) <= limit // 4:
        return value
    head = value[:limit].encode("utf-8", "replace")  # (a character is a byte at least: no more of it can fit)
    if len(value) <= limit and len(head) <= limit:
        return value
    kept = head[: max(limit - _MARK_ROOM, 0)].decode("utf-8", "ignore")  # a character cut in two is left out
    return kept + _cut_mark(len(value) - len(kept))


def bounded_items(items: tuple[Any, ...], limit: int = ITEMS_MAX_BYTES) -> tuple[Any, ...]:
    """An array's items, their strings within `limit` bytes together: at most ITEMS_CUT items, each cut
    (`bounded`) to its share, a last item saying how many more were left out."""
    chars = 0
    for item in items:
        chars += len(item) if type(item) is str else 24
    if len(items) <= ITEMS_CUT and chars <= limit // 4:
        return items
    sizes = [len(item.encode("utf-8", "replace")) if type(item) is str else 24 for item in items[: ITEMS_CUT + 1]]
    if len(items) <= ITEMS_CUT and sum(sizes) <= limit:
        return items
    kept = items[:ITEMS_CUT]
    share = (limit - _MARK_ROOM) // len(kept)
    cut = tuple(bounded(item, share) if type(item) is str else item for item in kept)
    if len(items) > len(kept):
        cut += (f"[{len(items) - len(kept):,} more items cut]",)
    return cut


def _bounded_attributes(attrs: dict[str, Any]) -> None:
    """Every string and array value of `attrs` but the proxy's own (`_UNCUT`) within its bound, in place."""
    for key, value in attrs.items():
        kind = type(value)
        if kind is str:
            if len(value) > _SHORT_CHARS:
                attrs[key] = bounded(value)
        elif (kind is tuple or kind is list) and key not in _UNCUT:
            attrs[key] = bounded_items(tuple(value))


def _content_json(texts: tuple[str, ...], outcome: Outcome | None) -> str:
    return input_messages(texts) if outcome is None else output_messages(texts, outcome)


def _bounded_content(
    texts: tuple[str, ...], outcome: Outcome | None = None, text: str | None = None, whole: int = 0
) -> str:
    """Captured texts as their JSON (`input_messages`; with the outcome, `output_messages`; `text` when made already)
    within VALUE_MAX_BYTES: the texts cut together (`_cut_texts`), not the JSON, which cut short reads as nothing.
    `whole`: the call's characters they were captured from, when not all were (`Call.content_chars`)."""
    if text is None:
        text = _content_json(texts, outcome)
    if len(text) <= _SHORT_CHARS:
        return text
    size = len(text.encode("utf-8", "replace"))
    chars = sum(len(item) for item in texts)
    while size > VALUE_MAX_BYTES:
        # the texts' characters in proportion to the bytes over, and one fewer at least each time
        chars = max(min(chars - 1, chars * (VALUE_MAX_BYTES - _MARK_ROOM) // size), 0)
        text = _content_json(_cut_texts(texts, chars, whole), outcome)
        size = len(text.encode("utf-8", "replace"))
    return text


def _cut_texts(texts: tuple[str, ...], chars: int = VALUE_CUT_CHARS, whole: int = 0) -> tuple[str, ...]:
    """Captured texts cut to `chars` characters together, the last one kept marked with the characters left out
    (its own and those of the texts after it; of a call not captured whole, its `whole` characters less those
    kept, as masked)."""
    kept: list[str] = []
    shown = 0
    for index, text in enumerate(texts):
        if len(text) > chars:
            left = len(text) - chars + sum(len(rest) for rest in texts[index + 1 :])
            kept.append(text[:chars] + _cut_mark(max(left, whole - shown - chars)))
            break
        kept.append(text)
        chars -= len(text)
        shown += len(text)
    return tuple(kept)


def _cut_value(value: Any, chars: int = VALUE_CUT_CHARS) -> Any:
    if type(value) is str:
        return value if len(value) <= chars else value[:chars] + CUT_MARK
    if type(value) is tuple or type(value) is list:
        return tuple(_cut_value(item, chars // ITEMS_CUT) for item in value[:ITEMS_CUT])
    return value


# encoded flow attributes kept (`SpanRecorder._flow_block`): cleared when either bound is reached. A block is ~1 KiB
# with every attribute; a longer one (a client's long stop sequences or model name) is encoded for each call, not kept
FLOW_BLOCKS_KEPT: Final = 4096
FLOW_BYTES_KEPT: Final = 4 << 20
FLOW_BLOCK_KEPT_MAX: Final = 4096


# a request parameter the GenAI conventions name outside `gen_ai.request.*`
_NOT_REQUEST: Final = {"embeddings.dimension.count": "gen_ai.embeddings.dimension.count"}


def _flow_attributes(call: Call, decision: Decision, outcome: Outcome, output_labels: frozenset[str]) -> dict[str, Any]:
    """The attributes every call of a flow shares: what was called, by whom, for what, decided how,
    served by what. Reads only what `SpanRecorder._flow_block` keys on."""
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": call.operation,
        "lineage.caller": decision.caller or "anonymous",
        "lineage.decision": decision.action,
        "lineage.input.labels": sorted_labels(decision.labels),
        "lineage.output.labels": sorted_labels(output_labels),
        "lineage.zones": decision.zones,
        "lineage.protocol": call.protocol,
    }
    if call.model:  # "if available": a call naming none (a listing, a health or metadata RPC) has none, not ""
        attrs["gen_ai.request.model"] = call.model
    if decision.purpose:
        attrs["lineage.purpose"] = decision.purpose
    if decision.reason:
        attrs["lineage.reason"] = decision.reason
    if decision.rule:
        attrs["lineage.rule"] = decision.rule
    if decision.approved is not None:
        attrs["lineage.approved"] = decision.approved
    if call.stream:
        attrs["gen_ai.request.stream"] = True
    for key, value in call.params:
        name = _NOT_REQUEST.get(key) or f"gen_ai.request.{key}"
        attrs[name] = tuple(value) if isinstance(value, list) else value
    upstream: Upstream | None = decision.upstream
    # the engine, never the upstream's config name; else the provider whose API the call speaks, as the GenAI
    # conventions require one ("Required", "based on the instrumentation's best knowledge"): a denied call's too
    provider = (upstream.provider if upstream is not None else None) or outcome.provider
    provider = provider or ADAPTERS[call.protocol].provider
    if provider:
        attrs["gen_ai.provider.name"] = provider
    if upstream is not None:
        attrs["lineage.upstream"] = upstream.name
        address, port = _server(upstream, call.protocol == "oip-grpc")
        if address:
            attrs["server.address"] = address
            attrs["server.port"] = port
    if outcome.checkpoint:
        attrs["lineage.checkpoint"] = outcome.checkpoint
        attrs["lineage.checkpoint.source"] = outcome.checkpoint_source or "response"
    if outcome.checkpoint_parent:
        attrs["lineage.checkpoint.parent"] = outcome.checkpoint_parent
    if outcome.response_model:
        attrs["gen_ai.response.model"] = outcome.response_model
    if outcome.finish_reasons:
        attrs["gen_ai.response.finish_reasons"] = outcome.finish_reasons
    if outcome.status is not None:
        attrs[ADAPTERS[call.protocol].status_attribute] = outcome.status
    attrs.update(outcome.extra)
    error_type = outcome.error_type or (decision.code if decision.action == DENY else None)
    if error_type:
        attrs["error.type"] = error_type
    _bounded_attributes(attrs)  # (a flow's: once for the calls of a flow whose block is kept)
    return attrs


def _call_attributes(call: Call, outcome: Outcome) -> dict[str, Any]:
    """The attributes of this call alone: digests, the reply's id, token counts, content, timing."""
    attrs: dict[str, Any] = {}
    if call.input_digest:
        attrs["lineage.input.digest"] = call.input_digest
    if outcome.output_digest:
        attrs["lineage.output.digest"] = outcome.output_digest
    if outcome.response_id:
        attrs["gen_ai.response.id"] = _bounded_id(outcome.response_id)
    if outcome.input_tokens is not None:
        attrs["gen_ai.usage.input_tokens"] = outcome.input_tokens
    if outcome.output_tokens is not None:
        attrs["gen_ai.usage.output_tokens"] = outcome.output_tokens
    if call.content:
        attrs[INPUT_MESSAGES] = _bounded_content(call.content, whole=call.content_chars)
    if outcome.content:
        attrs[OUTPUT_MESSAGES] = _bounded_content(outcome.content, outcome, whole=outcome.content_chars)
    if outcome.first_token_ns:
        attrs["gen_ai.response.time_to_first_chunk"] = (outcome.first_token_ns - outcome.started_ns) / 1e9
    client = outcome.client
    if client is not None:
        attrs["client.address"], attrs["client.port"] = client
    return attrs


# Captured content as the GenAI conventions have it: each attribute "MUST follow" their JSON schema
# (gen-ai-input-messages.json, gen-ai-output-messages.json), a JSON array of messages, each a `role` and its `parts`,
# an output message with its `finish_reason`; on a span, that array as a JSON string.
INPUT_MESSAGES: Final = "gen_ai.input.messages"
OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
# The role of the captured input: its texts are every text the model reads (system prompt, messages, tool definitions,
# documents), each masked on its own, without the request's roles, which a role of the schema's would misstate
INPUT_ROLE: Final = "unknown"


def _json(value: object) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:  # a lone surrogate (a reply's JSON read past orjson): as JSON writes it
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def input_messages(texts: tuple[str, ...]) -> str:
    """`gen_ai.input.messages`: one message, each captured text a text part of it, in the request's order."""
    return _json([{"role": INPUT_ROLE, "parts": [{"type": "text", "content": text} for text in texts]}])


def output_messages(texts: tuple[str, ...], outcome: Outcome) -> str:
    """`gen_ai.output.messages`: the model's reply as one assistant message, its finish reason the reply's first
    (`error` for a call that ended in one without any; empty when the reply gave none)."""
    reason = outcome.finish_reasons[0] if outcome.finish_reasons else "error" if outcome.error_type else ""
    parts = [{"type": "text", "content": "".join(texts)}]
    return _json([{"role": "assistant", "parts": parts, "finish_reason": reason}])


# the call's own attributes (`_call_block`), each with the heads of its short values (`CallAttribute`)
_INPUT_DIGEST: Final = CallAttribute("lineage.input.digest")
_OUTPUT_DIGEST: Final = CallAttribute("lineage.output.digest")
_RESPONSE_ID: Final = CallAttribute("gen_ai.response.id")
_INPUT_TOKENS: Final = CallAttribute("gen_ai.usage.input_tokens")
_OUTPUT_TOKENS: Final = CallAttribute("gen_ai.usage.output_tokens")
_INPUT_MESSAGES: Final = CallAttribute(INPUT_MESSAGES)
_OUTPUT_MESSAGES: Final = CallAttribute(OUTPUT_MESSAGES)


def _call_block(call: Call, outcome: Outcome, flow: bytes = b"") -> bytes:
    """`flow + key_values(9, _call_attributes(call, outcome))`, the same bytes, written without the dict: every
    value here is the call's own, so none is looked up in otlp's table of encoded values (~1 µs a call less)."""
    return b"".join(_call_parts(call, outcome, [flow]))


def _call_parts(call: Call, outcome: Outcome, parts: list[bytes]) -> list[bytes]:
    """`_call_block`'s parts, appended to `parts` (the flow's block): the span joins them with its own once, not
    the call's attributes joined first and copied again into the span."""
    if call.input_digest:
        _INPUT_DIGEST.string(parts, call.input_digest)
    if outcome.output_digest:
        _OUTPUT_DIGEST.string(parts, outcome.output_digest)
    response_id = outcome.response_id
    if response_id:  # the upstream's: a length read, but for one over _SHORT_CHARS characters (`bounded`)
        _RESPONSE_ID.string(parts, response_id if len(response_id) <= _SHORT_CHARS else bounded(response_id))
    if outcome.input_tokens is not None:
        _INPUT_TOKENS.count(parts, outcome.input_tokens)
    if outcome.output_tokens is not None:
        _OUTPUT_TOKENS.count(parts, outcome.output_tokens)
    if call.content:  # each a length read, but for one over _SHORT_CHARS characters (`_bounded_content`)
        text = input_messages(call.content)
        if len(text) > _SHORT_CHARS:
            text = _bounded_content(call.content, None, text, call.content_chars)
        _INPUT_MESSAGES.string(parts, text)
    if outcome.content:
        text = output_messages(outcome.content, outcome)
        if len(text) > _SHORT_CHARS:
            text = _bounded_content(outcome.content, outcome, text, outcome.content_chars)
        _OUTPUT_MESSAGES.string(parts, text)
    if outcome.first_token_ns:
        parts.append(span_attribute("gen_ai.response.time_to_first_chunk", _ttft(outcome)))
    client = outcome.client
    if client is not None:
        parts.append(_client_block(client))
    return parts


def _client_block(client: tuple[str, int]) -> bytes:
    """`client.address` and `client.port`, encoded; kept by the client: the same for every call of a connection."""
    block = _CLIENT_BLOCKS.get(client)
    if block is None:
        block = span_attribute("client.address", client[0]) + span_attribute("client.port", client[1])
        if len(_CLIENT_BLOCKS) >= _CLIENT_BLOCKS_MAX:  # ever new connections make it grow no further
            _CLIENT_BLOCKS.clear()
        _CLIENT_BLOCKS[client] = block
    return block


_CLIENT_BLOCKS: dict[tuple[str, int], bytes] = {}
_CLIENT_BLOCKS_MAX: Final = 1024


def _bounded_id(value: str) -> str:
    return value if len(value) <= _SHORT_CHARS else bounded(value)


def _ttft(outcome: Outcome) -> float:
    return (outcome.first_token_ns - outcome.started_ns) / 1e9


def _first_token(outcome: Outcome) -> bytes:
    """`_events` without the attributes' dict, encoded (`span_event`)."""
    if not outcome.first_token_ns:
        return b""
    return span_event(
        "gen_ai.first_token", outcome.first_token_ns, {"gen_ai.response.time_to_first_chunk": _ttft(outcome)}
    )


_NEGATIVE_ZERO: Final = "-0.0"  # a kind of its own: -0.0 == 0.0, but OTLP's double differs


def _params_key(params: tuple[tuple[str, Any], ...]) -> object:
    """A call's parameters as part of its flow's key: the parameters and their values' types, so values
    equal as keys but encoded differently (`1`, `1.0`, `True`; `0.0`, `-0.0`) are not one flow. Their repr
    did that at ~0.6 µs a call (two parameters, one a float); a list or a dict (stop sequences, a tool
    choice) is keyed by repr still, unhashable otherwise."""
    kinds: list[object] = []
    for _, value in params:
        kind: object = type(value)
        if kind is float:
            if value == 0.0 and math.copysign(1.0, value) < 0.0:
                kind = _NEGATIVE_ZERO
        elif kind is not str and kind is not int and kind is not bool:
            return repr(params)
        kinds.append(kind)
    return params, tuple(kinds)


# the codes of a call refused before it was routed (its key; no route for its model), besides one refused before its
# request was read (a malformed body: a denial of no rule, `Exchange.finish`)
_UNROUTED: Final = frozenset({INVALID_API_KEY, "model_not_found"})


def _naming(call: Call, decision: Decision, flow: dict[str, Any]) -> tuple[str, int, str]:
    """The span's name, status code and status message, from its flow's attributes. A routed call's name is the GenAI
    conventions' `{operation} {model}`, a long name as an access line shows it (`shown_model`); one refused before it
    was routed is named by its operation alone: its model is whatever the client sent (`gen_ai.request.model` has it),
    and every name a span has is an operation Jaeger lists and indexes, as many as there are names."""
    model = call.model
    if not model or (decision.action == DENY and (decision.rule is None or decision.code in _UNROUTED)):
        name = call.operation
    else:
        name = f"{call.operation} {model if len(model) <= NAME_MAX_CHARS else shown_model(model)}"
    if "error.type" not in flow:
        return name, STATUS_UNSET, ""
    message = decision.reason or "" if decision.action == DENY else str(flow["error.type"])
    return name, STATUS_ERROR, bounded(message)


def _events(outcome: Outcome, attrs: dict[str, Any]) -> tuple[tuple[str, int, dict[str, Any]], ...]:
    if not outcome.first_token_ns:
        return ()
    ttft = attrs["gen_ai.response.time_to_first_chunk"]
    return (("gen_ai.first_token", outcome.first_token_ns, {"gen_ai.response.time_to_first_chunk": ttft}),)


@functools.lru_cache(maxsize=256)
def _server(upstream: Upstream, over_grpc: bool) -> tuple[str | None, int | None]:
    """The address a call was forwarded to: an upstream with both `url` and `grpc` (one MLServer serving OIP over
    REST and gRPC) is reached over gRPC by the gRPC listener's calls, over its URL by the HTTP listener's."""
    if upstream.grpc and (over_grpc or not upstream.url):
        host, _, port = upstream.grpc.rpartition(":")
        return host.strip("[]"), int(port)
    if upstream.url:
        parts = urlsplit(upstream.url)
        # a host of one label before what may be a token's end (`token_hidden`): the token's first piece, not shown
        shown = "***" if token_hidden(upstream.url, upstream.url) != upstream.url else parts.hostname
        return shown, parts.port or (443 if parts.scheme == "https" else 80)
    return None, None

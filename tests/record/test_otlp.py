"""The hand-written OTLP encoder, decoded by opentelemetry-proto itself."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
from typing import Any

import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from proxy.record.otlp import encode_request, encode_resource, encode_scope, encode_span


def decode(*spans: bytes) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    request.ParseFromString(encode_request(encode_resource({"service.name": "svc"}), encode_scope("lp", "9"), spans))
    return request


def values(span: Span) -> dict[str, object]:
    out: dict[str, object] = {}
    for kv in span.attributes:
        kind = kv.value.WhichOneof("value")
        out[kv.key] = (
            [getattr(v, v.WhichOneof("value")) for v in kv.value.array_value.values]
            if kind == "array_value"
            else getattr(kv.value, kind)
        )
    return out


def test_every_field_round_trips() -> None:
    raw = encode_span(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C, span_id=0xB7AD6B7169203331, parent_span_id=0x00F067AA0BA902B7,
        trace_state="vendor=x", name="chat m", kind=2, start_ns=1_700_000_000_000_000_001, end_ns=1_700_000_000_500_000_000,
        attributes={"s": "é", "i": -3, "big": 2**40, "f": 0.25, "b": True, "labels": ("a", "b"), "empty": ()},
        events=[("gen_ai.first_token", 1_700_000_000_100_000_000, {"t": 0.1})], status_code=2, status_message="denied",
    )  # fmt: skip
    request = decode(raw)
    assert request.resource_spans[0].resource.attributes[0].value.string_value == "svc"
    assert request.resource_spans[0].scope_spans[0].scope.name == "lp"
    span = request.resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id.hex() == "0af7651916cd43dd8448eb211c80319c"
    assert (span.span_id.hex(), span.parent_span_id.hex()) == ("b7ad6b7169203331", "00f067aa0ba902b7")
    assert (span.trace_state, span.name, span.kind) == ("vendor=x", "chat m", Span.SPAN_KIND_SERVER)
    assert (span.start_time_unix_nano, span.end_time_unix_nano) == (
        1_700_000_000_000_000_001,
        1_700_000_000_500_000_000,
    )
    assert values(span) == {"s": "é", "i": -3, "big": 2**40, "f": 0.25, "b": True, "labels": ["a", "b"], "empty": []}
    assert span.events[0].name == "gen_ai.first_token" and span.events[0].attributes[0].value.double_value == 0.1
    assert (span.status.code, span.status.message) == (Status.STATUS_CODE_ERROR, "denied")
    assert span.flags == 0x301  # sampled, parent known to be remote


def test_cached_values_never_confuse_types() -> None:
    """True == 1 == 1.0 in Python; each must still reach the wire as its own type, cached or not."""

    def one(span_id: int, value: object) -> dict[str, object]:
        raw = encode_span(trace_id=1, span_id=span_id, parent_span_id=None, trace_state=None, name="a", kind=2,
                          start_ns=1, end_ns=2, attributes={"x": value, "y": "1"})  # fmt: skip
        return values(decode(raw).resource_spans[0].scope_spans[0].spans[0])

    for _ in range(2):  # the second pass is served from the cache
        assert one(1, 1) == {"x": 1, "y": "1"}
        assert one(2, True) == {"x": True, "y": "1"}
        assert one(3, 1.0) == {"x": 1.0, "y": "1"} and isinstance(one(3, 1.0)["x"], float)
        assert one(4, ("1",)) == {"x": ["1"], "y": "1"}
        # equal as keys, and of one type, but not one encoding: the double's sign, an array's items' types
        assert one(5, 0.0) == {"x": 0.0, "y": "1"} and math.copysign(1.0, one(5, -0.0)["x"]) == -1.0  # type: ignore[arg-type]
        assert math.copysign(1.0, one(5, 0.0)["x"]) == 1.0  # type: ignore[arg-type]
        assert [type(one(6, array)["x"][1]) for array in (("a", 1), ("a", 1.0), ("a", True))] == [int, float, bool]  # type: ignore[index]
    root = decode(encode_span(trace_id=1, span_id=2, parent_span_id=None, trace_state=None, name="a", kind=2,
                              start_ns=1, end_ns=2, attributes={})).resource_spans[0].scope_spans[0].spans[0]  # fmt: skip
    assert root.parent_span_id == b"" and root.flags == 0x101


def test_long_values_use_multi_byte_lengths() -> None:
    text = "é" * 70_000  # 140,000 bytes: a three-byte length varint
    raw = encode_span(trace_id=1, span_id=1, parent_span_id=None, trace_state=None, name="a" * 200, kind=2,
                      start_ns=1, end_ns=2, attributes={"gen_ai.input.messages": text})  # fmt: skip
    span = decode(raw).resource_spans[0].scope_spans[0].spans[0]
    assert span.name == "a" * 200 and values(span) == {"gen_ai.input.messages": text}


def test_console_exporter_prints_json_spans(tmp_path) -> None:  # type: ignore[no-untyped-def]
    script = """
import asyncio, time
from proxy.config import parse
from proxy.flow import Call, Decision, Outcome, TraceContext
from proxy.record.spans import SpanRecorder
config = parse('listen: {http: "127.0.0.1:0"}\\nupstreams: [{name: u, url: "http://h:1"}]\\nroutes: [{model: "*", upstream: u}]\\ntelemetry: {exporter: console}', env={})
recorder = SpanRecorder(config.telemetry)
call = Call("openai", "chat", "m", TraceContext(5, 6))
recorder.on_end(call, Decision("allow", config.upstreams[0], "app", "assistant", frozenset({"l"})), Outcome(started_ns=1, ended_ns=2), frozenset({"l"}))
recorder.shutdown()
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    span = orjson.loads(out.strip().splitlines()[-1])
    assert span["name"] == "chat m" and span["trace_id"] == f"{5:032x}"
    assert span["attributes"]["lineage.output.labels"] == ["l"] and span["attributes"]["server.port"] == 1


def test_a_batch_of_many_spans_decodes_whole_and_in_order() -> None:
    """Lengths of one, two and three varint bytes (a span of 100 bytes, of 1,000; a batch over 16 KiB)."""
    spans = [
        encode_span(trace_id=i + 1, span_id=i + 1, parent_span_id=None, trace_state=None, name="n" * (i % 3 * 450),
                    kind=2, start_ns=1, end_ns=2, attributes={"i": i})
        for i in range(60)
    ]  # fmt: skip
    request = decode(*spans)
    assert len(request.resource_spans) == 1
    resource_spans = request.resource_spans[0]
    assert resource_spans.resource.attributes[0].value.string_value == "svc"
    assert resource_spans.scope_spans[0].scope.name == "lp" and resource_spans.scope_spans[0].scope.version == "9"
    decoded = resource_spans.scope_spans[0].spans
    assert [values(span)["i"] for span in decoded] == list(range(60))
    assert [len(span.name) for span in decoded] == [i % 3 * 450 for i in range(60)]
    assert sum(map(len, spans)) > 16384


class _HeldKV:
    """`_held(otlp._KV_CACHE)` (tests/record/test_spans.py), the same number, at the cost of what the tables got since
    it was last asked, not of walking them whole each time: the tables only grow or are cleared together
    (`otlp._keep`), and what they hold is immutable, so what they hold is what it was plus what is new (each object
    counted once), plus the tables' own sizes. A table found shorter, or first keyed by another object, was cleared:
    counted again from nothing."""

    def __init__(self, cache: dict[type, dict[Any, bytes]]) -> None:
        self.cache = cache
        self._clear()

    def _clear(self) -> None:
        self.seen: set[int] = set()
        self.objects = 0
        self.lengths = dict.fromkeys(self.cache, 0)
        self.firsts: dict[type, object] = {}  # the first key of each table, held: its id is never another's

    def held(self) -> int:
        from tests.record.test_spans import _held_from

        cache = self.cache
        for kind, table in cache.items():
            if len(table) < self.lengths[kind] or (self.lengths[kind] and next(iter(table)) is not self.firsts[kind]):
                self._clear()
                break
        for kind, table in cache.items():
            if len(table) > self.lengths[kind]:
                new = list(itertools.islice(table.items(), self.lengths[kind], None))
                if self.lengths[kind] == 0:
                    self.firsts[kind] = new[0][0]
                self.objects += _held_from([part for entry in new for part in entry], self.seen)
                self.lengths[kind] = len(table)
        return self.objects + sys.getsizeof(cache) + sum(sys.getsizeof(table) for table in cache.values())


def test_many_distinct_values_just_short_enough_to_keep_pin_at_most_a_mebibyte() -> None:
    """A client sending a distinct value each call, each as long as a kept value may be (a model's name of
    ~220 bytes, stop sequences), or distinct numbers: the tables of encoded values kept 16,384 of each type
    (~10 MiB for strings alone); what they hold together now stays under 1 MiB, every span still encodes its
    values, and a value that repeats is still kept."""
    from proxy.record import otlp

    held = _HeldKV(otlp._KV_CACHE)
    key = "gen_ai.request.model"
    size = max(n for n in range(otlp.KV_KEPT_MAX) if len(otlp._key_value(key, "x" * n)) <= otlp.KV_KEPT_MAX)
    for n in range(6000):
        text = f"{n:08d}" + "x" * (size - 8)
        value = (text, (text[:-4],), n, n + 0.5)[n % 4]
        raw = encode_span(trace_id=1, span_id=n + 1, parent_span_id=None, trace_state=None, name="a", kind=2,
                          start_ns=1, end_ns=2, attributes={key: value, "lineage.caller": "glasses-app"})  # fmt: skip
        if n % 499 == 0:
            span = decode(raw).resource_spans[0].scope_spans[0].spans[0]
            expected = list(value) if isinstance(value, tuple) else value
            assert values(span) == {key: expected, "lineage.caller": "glasses-app"}
        if n % 2:
            assert held.held() < 1 << 20, n
    assert (key, n + 0.5) in otlp._KV_CACHE[float]  # the last one: kept, as values that fit are
    assert ("lineage.caller", "glasses-app") in otlp._KV_CACHE[str]  # a repeated one: kept again after a clear


def test_distinct_arrays_of_short_strings_pin_at_most_a_mebibyte_too() -> None:
    """Stop sequences: an array of 22 short strings encodes to ~170 bytes but holds 22 string objects; counted
    by its encoding alone, distinct arrays pinned ~2.9 MB under the 1 MiB budget."""
    from proxy.record import otlp

    held = _HeldKV(otlp._KV_CACHE)
    key = "gen_ai.request.stop_sequences"
    for n in range(4000):
        value = tuple(orjson.loads(orjson.dumps([f"{n:x}"[-4:] + chr(97 + j % 26) for j in range(22)])))
        raw = encode_span(trace_id=1, span_id=n + 1, parent_span_id=None, trace_state=None, name="a", kind=2,
                          start_ns=1, end_ns=2, attributes={key: value})  # fmt: skip
        if n % 997 == 0:
            assert values(decode(raw).resource_spans[0].scope_spans[0].spans[0]) == {key: list(value)}
        assert held.held() < 1 << 20, n


def test_an_int_past_64_bits_is_written_as_protobuf_writes_an_int64() -> None:
    """An int attribute protobuf's int64 holds is written as protobuf writes it, a negative in two's complement;
    one it cannot hold as a double (a varint of 11 bytes or more is no protobuf a receiver can read, and its low 64
    bits another number: 2**63 read back as -2**63)."""
    for value in (1 << 64, (1 << 70) + 5, -(1 << 65), (1 << 64) - 1, 1 << 63, (1 << 63) - 1, -(1 << 63), -1):
        raw = encode_span(trace_id=1, span_id=1, parent_span_id=None, trace_state=None, name="a", kind=2,
                          start_ns=1, end_ns=2, attributes={"x.n": value, "x.m": [value]})  # fmt: skip
        got = values(decode(raw).resource_spans[0].scope_spans[0].spans[0])
        expected = value if -(1 << 63) <= value < 1 << 63 else float(value)
        assert got == {"x.n": expected, "x.m": [expected]}, value
        assert type(got["x.n"]) is type(expected), value


def _varint_before(value: int) -> bytes:
    """`otlp.varint` as it was before its two-byte shortcut: the reference its output is compared with."""
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def test_varints_and_int_attributes_are_the_bytes_they_were() -> None:
    """The shortcuts (a two-byte varint from one int's bytes; a span's own int attribute written in one join)
    write what the general path writes, at every varint length's edges and on values drawn at random, and what
    protobuf writes for the same Span: an int's attribute is decoded and serialised again byte for byte."""
    import random

    from proxy.record import otlp

    rng = random.Random(12)
    edges = [0, 1, 0x7F, 0x80, 0x81, 0x3FFF, 0x4000, 0x4001, 0x1FFFFF, 0x200000, 2**63 - 1, 2**64 - 1]
    numbers = edges + [rng.randrange(0, 2 ** rng.randrange(1, 65)) for _ in range(3000)]
    for n in numbers:
        assert otlp.varint(n) == _varint_before(n), n
    for n in numbers + [-1, -0x80, -(2**63)] + [-rng.randrange(1, 2**40) for _ in range(200)]:
        if n > 2**63 - 1:
            continue  # an int attribute is an int64
        key = ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "k" * 130)[n % 3]
        written = otlp.span_attribute(key, n)
        assert written == otlp._ATTRIBUTE + otlp._key_value(key, n) == key_values_alone(key, n), n
        span = encode_span(trace_id=1, span_id=2, parent_span_id=None, trace_state=None, name="a", kind=2,
                           start_ns=1, end_ns=2, attributes={}, encoded_attributes=written)  # fmt: skip
        assert Span.FromString(span).SerializeToString() == span, n
        assert values(Span.FromString(span)) == {key: n}


def key_values_alone(key: str, value: object) -> bytes:
    from proxy.record import otlp

    otlp._KV_CACHE[int].pop((key, value), None)  # written, not read from the table
    return otlp.key_values(9, {key: value})


def test_a_call_attribute_writes_what_span_attribute_writes_for_every_length_and_count() -> None:
    """`CallAttribute` keeps each short value length's head: its bytes are `span_attribute`'s for strings of every
    length (one-byte characters, multi-byte ones, empty, past the kept lengths) and for every token count up to
    where varints grow past two bytes, and for what is not an int (a bool, a float) too, the heads made in any
    order."""
    from proxy.record.otlp import HEADS_KEPT_BELOW, CallAttribute, span_attribute

    def written(attribute: CallAttribute, value: object) -> bytes:
        parts = [b"before"]  # appended to what a span has already
        if type(value) is str:
            attribute.string(parts, value)
        else:
            attribute.count(parts, value)
        assert parts[0] == b"before"
        return b"".join(parts[1:])

    text, count = CallAttribute("lineage.input.digest"), CallAttribute("gen_ai.usage.input_tokens")
    for size in (*range(HEADS_KEPT_BELOW + 40), 5, 0, 1000):
        for value in ("a" * size, "é" * size, "x" * size + "\u2028"):
            assert written(text, value) == span_attribute("lineage.input.digest", value), (size, value[:3])
    for value in (*range(0, 0x4100), 0x80, 5, 2**40, -1):
        assert written(count, value) == span_attribute("gen_ai.usage.input_tokens", value), value
    for other in (True, False, 1.5):
        assert written(count, other) == span_attribute("gen_ai.usage.input_tokens", other)
        value = Span.FromString(written(count, other)).attributes[0].value  # a Span of that one attribute
        kind = "bool_value" if type(other) is bool else "double_value"
        assert value.WhichOneof("value") == kind and getattr(value, kind) == other
    both = CallAttribute("gen_ai.response.id")  # one attribute written both ways: a head of each kind
    for value in ("ab", 5, "c", 300, "de"):
        assert written(both, value) == span_attribute("gen_ai.response.id", value), value


def test_a_lone_surrogate_in_a_reply_s_strings_is_written_as_valid_utf8_both_ways() -> None:
    """A reply's JSON read past orjson (a lone surrogate escape) gives strings no UTF-8 encoder writes: an OTLP
    string (which a collector refuses whole when it is not UTF-8) has `?` in its place; a console span escapes it."""
    from proxy.config import parse
    from proxy.flow import Call, Decision, Outcome, TraceContext
    from proxy.record.spans import SpanRecorder

    head = 'listen: {http: "127.0.0.1:0"}\nupstreams: [{name: u, url: "http://h:1"}]\nroutes: [{model: "*", upstream: u}]\n'
    for exporter in ("console", "otlp"):
        config = parse(head + f"telemetry: {{exporter: {exporter}}}", env={})
        recorder = SpanRecorder(config.telemetry)
        try:
            outcome = Outcome(started_ns=1, ended_ns=2)
            outcome.response_model, outcome.response_id = "m\ud800", "c1\udfff"
            decision = Decision("allow", config.upstreams[0], "app", "assistant", frozenset({"l"}))
            data = recorder.encode(Call("openai", "chat", "m", TraceContext(5, 6)), decision, outcome, frozenset())
        finally:
            recorder.shutdown()
        if exporter == "console":
            attributes = json.loads(data)["attributes"]  # (orjson refuses the escape as it refused the reply)
            assert attributes["gen_ai.response.model"] == "m\ud800" and attributes["gen_ai.response.id"] == "c1\udfff"
        else:
            span = Span.FromString(data)  # (protobuf checks that every string field is UTF-8)
            assert values(span)["gen_ai.response.model"] == "m?" and values(span)["gen_ai.response.id"] == "c1?"

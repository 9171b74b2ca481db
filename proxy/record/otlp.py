"""OTLP/protobuf encoding of spans, written straight to wire bytes.

Why not the SDK's encoder: on the reference machine it costs ~240 µs per span (and building
opentelemetry-proto message objects ~140 µs), more than the whole proxy hop. Encoding the few
message types we emit by hand costs a few microseconds. Field numbers follow opentelemetry-proto
(trace/v1/trace.proto, common/v1/common.proto, resource/v1/resource.proto,
collector/trace/v1/trace_service.proto); the tests decode our bytes with opentelemetry-proto itself.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

# constants are `Final`: compiled, each is then a C static, not looked up in the module's dict at every use
_FIXED64: Final = struct.Struct("<Q")
_DOUBLE: Final = struct.Struct("<d")
_TIMES: Final = struct.Struct("<BQBQ")  # Span.start_time_unix_nano 7 and end 8, each with its tag

# Span
SPAN_KIND_SERVER: Final = 2
STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2


_SMALL: Final = tuple(bytes((i,)) for i in range(0x80))


def varint(value: int) -> bytes:
    if value < 0x80:
        return _SMALL[value]
    if value < 0x4000:  # two bytes (token counts, most lengths): one int's bytes, not a bytearray grown twice
        return ((value >> 7) << 8 | 0x80 | value & 0x7F).to_bytes(2, "little")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _ld(field: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    size = len(payload)
    return _TAG_LD[field] + (_SMALL[size] if size < 0x80 else varint(size)) + payload


def _str(field: int, text: str) -> bytes:
    return _ld(field, text.encode("utf-8", "replace"))


# Encoded KeyValues by (key, value), one table per value type (True == 1 == 1.0 must not share an
# entry). Most span attributes repeat from call to call (operation, model, caller, purpose, labels,
# checkpoint, decision, upstream, status, request parameters), so encoding them once pays; values that
# are unique per call are never cached, nor long ones (a client's stop sequences: an encoded KeyValue over
# KV_KEPT_MAX bytes). The tables are cleared together when what they hold would pass KV_BYTES_KEPT (a client
# sending a distinct value of ~220 bytes each call: 16,384 entries a table pinned ~10 MiB each); each entry
# counts as its encoding twice (the value is as long) and KV_ENTRY_BYTES (the objects and the table's slot).
_KV_CACHE: Final[dict[type, dict[tuple[str, Any], bytes]]] = {str: {}, tuple: {}, int: {}, float: {}}
_KV_CACHE_MAX: Final = 16384  # attribute names kept (`_KEYS`)
KV_KEPT_MAX: Final = 256
KV_BYTES_KEPT: Final = 1 << 20
KV_ENTRY_BYTES: Final = 192
KV_ITEM_BYTES: Final = 64  # each string of an array value (a str object's header and the tuple's slot)
_U64: Final = 0xFFFFFFFFFFFFFFFF
_I64_MAX: Final = 0x7FFFFFFFFFFFFFFF
_I64_MIN: Final = -0x8000000000000000


class _Kept:
    """The bytes `_KV_CACHE`'s tables hold, as `_keep` counts them."""

    def __init__(self) -> None:
        self.bytes = 0


_KV_KEPT: Final = _Kept()
UNIQUE: Final = frozenset(
    {
        "lineage.input.digest", "lineage.output.digest", "gen_ai.response.id", "gen_ai.input.messages",
        "gen_ai.output.messages", "gen_ai.response.time_to_first_chunk",
    }
)  # fmt: skip


def _any_value(value: Any) -> bytes:
    """common.v1.AnyValue: string 1, bool 2, int 3, double 4, array 5 (ArrayValue.values 1)."""
    if isinstance(value, str):
        return _str(1, value)
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        if _I64_MIN <= value <= _I64_MAX:  # int64 as protobuf writes it: a negative in two's complement, 64 bits
            return b"\x18" + varint(value if value >= 0 else value & _U64)
        # past int64 (a caller's `seed` of 2**63, which orjson reads as an int): a double, as a larger JSON integer is
        # read, never its low 64 bits (2**63 read back as -2**63). One past a double's range, as its digits
        try:
            return b"\x21" + _DOUBLE.pack(float(value))
        except OverflowError:
            return _str(1, str(value))
    if isinstance(value, float):
        return b"\x21" + _DOUBLE.pack(value)
    if isinstance(value, list | tuple):
        return _ld(5, b"".join(_ld(1, _any_value(item)) for item in value))
    return _str(1, str(value))


def key_values(field: int, attributes: Mapping[str, Any]) -> bytes:
    """Repeated common.v1.KeyValue (key 1, value 2) as field `field` of the enclosing message."""
    out = []
    caches = _KV_CACHE
    for item in attributes.items():
        cache = caches.get(type(item[1])) if item[0] not in UNIQUE else None
        encoded = cache.get(item) if cache is not None else None
        if encoded is None:
            encoded = _key_value(*item)
            if cache is not None and len(encoded) <= KV_KEPT_MAX and _keyed_exactly(item[1]):
                _keep(cache, item, encoded)
        out.append(encoded)
    tag = _TAG_LD[field]
    return tag + tag.join(out) if out else b""


def _keep(cache: dict[tuple[str, Any], bytes], item: tuple[str, Any], encoded: bytes) -> None:
    """Keeps one encoded KeyValue, first clearing every table when it would pass KV_BYTES_KEPT."""
    kept = _KV_KEPT
    size = 2 * len(encoded) + KV_ENTRY_BYTES
    value = item[1]
    if type(value) is tuple:  # an array's strings are objects of their own, each with its header and slot
        size += KV_ITEM_BYTES * len(value)
    if kept.bytes + size > KV_BYTES_KEPT:
        for table in _KV_CACHE.values():
            table.clear()
        kept.bytes = 0
    cache[item] = encoded
    kept.bytes += size


def _keyed_exactly(value: Any) -> bool:
    """Whether every value equal to this one of its type encodes as it does: not a float zero (0.0 == -0.0,
    whose doubles differ), nor an array holding anything but strings (("a", 1) == ("a", 1.0) == ("a", True))."""
    if type(value) is float:
        return value != 0.0
    if type(value) is tuple:
        return all(type(item) is str for item in value)
    return True


_KEYS: Final[dict[str, bytes]] = {}  # attribute names, encoded as KeyValue.key (a fixed vocabulary, and bounded)


def _key_value(key: str, value: Any) -> bytes:
    """One KeyValue's body, length first (the tag is the caller's)."""
    name = _KEYS.get(key)
    if name is None:
        name = _str(1, key)
        if len(_KEYS) < _KV_CACHE_MAX:
            _KEYS[key] = name
    if type(value) is str:  # most values (digests, ids): AnyValue.string_value inline
        raw = value.encode("utf-8", "replace")
        size = len(raw)
        any_value = b"\x0a" + (_SMALL[size] if size < 0x80 else varint(size)) + raw
    else:
        any_value = _any_value(value)
    size = len(any_value)
    body = name + b"\x12" + (_SMALL[size] if size < 0x80 else varint(size)) + any_value
    size = len(body)
    return (_SMALL[size] if size < 0x80 else varint(size)) + body


_TAG_LD: Final = {field: varint(field << 3 | 2) for field in range(1, 16)}
_ATTRIBUTE: Final = _TAG_LD[9]


def span_attribute(key: str, value: Any) -> bytes:
    """One attribute of a span (Span.attributes, field 9): what `key_values(9, {key: value})` writes, for a
    value unique to its call (nothing cached); a string's in one join, not a copy per enclosing length."""
    name = _KEYS.get(key)
    if name is None:
        name = _str(1, key)
        if len(_KEYS) < _KV_CACHE_MAX:
            _KEYS[key] = name
    if type(value) is int and 0 <= value < 0x4000:  # a token count: AnyValue.int_value, 1 or 2 bytes
        raw = _SMALL[value] if value < 0x80 else ((value >> 7) << 8 | 0x80 | value & 0x7F).to_bytes(2, "little")
        size = len(name) + 3 + len(raw)  # KeyValue: key, value's tag and size, AnyValue's tag and varint
        return b"".join((_ATTRIBUTE, _SMALL[size] if size < 0x80 else varint(size), name, b"\x12",
                         _SMALL[1 + len(raw)], b"\x18", raw))  # fmt: skip
    if type(value) is not str:
        return _ATTRIBUTE + _key_value(key, value)
    raw = value.encode("utf-8", "replace")
    size = len(raw)
    raw_size = _SMALL[size] if size < 0x80 else varint(size)
    size += 1 + len(raw_size)  # AnyValue
    any_size = _SMALL[size] if size < 0x80 else varint(size)
    size += len(name) + 1 + len(any_size)  # KeyValue
    return b"".join((_ATTRIBUTE, _SMALL[size] if size < 0x80 else varint(size), name, b"\x12", any_size, b"\x0a",
                     raw_size, raw))  # fmt: skip


HEADS_KEPT_BELOW: Final = 0x80  # `CallAttribute`: the values' encoded lengths whose heads are kept


class CallAttribute:
    """A span attribute whose value is the call's own (a digest, the reply's id, a token count), written as
    `span_attribute` writes it from a head kept by the value's encoded length: all before the value's bytes (the
    field's tag and size, the key, the value's tags and sizes) depends on that length alone. A short value's head
    and bytes are appended to the span's parts as two: the span's one join copies them, where their concatenation
    was a bytes object made a value only to be copied again. At most HEADS_KEPT_BELOW heads an attribute."""

    def __init__(self, key: str) -> None:
        self.key = key
        self._heads: dict[int, bytes] = {}  # a string's, by its encoded length
        self._count_heads: dict[int, bytes] = {}  # an int's, by its varint's length (another tag: not a string's)

    def string(self, parts: list[bytes], value: str) -> None:
        """Appends to `parts` the attribute of a string value."""
        raw = value.encode("utf-8", "replace")
        size = len(raw)
        if size >= HEADS_KEPT_BELOW:
            parts.append(span_attribute(self.key, value))
            return
        head = self._heads.get(size)
        if head is None:
            written = span_attribute(self.key, "\0" * size)  # a value of that length: its head is the same
            head = self._heads[size] = written[: len(written) - size]
        parts.append(head)
        parts.append(raw)

    def count(self, parts: list[bytes], value: object) -> None:
        """Appends to `parts` the attribute of an int, as AnyValue.int_value: a token count, 1 or 2 bytes of varint
        (the head by that length). Any other value (a bool: `object`, so compiled it is not made an int) as
        `span_attribute` writes it."""
        if type(value) is not int or not 0 <= value < 0x4000:
            parts.append(span_attribute(self.key, value))
            return
        raw = _SMALL[value] if value < 0x80 else ((value >> 7) << 8 | 0x80 | value & 0x7F).to_bytes(2, "little")
        size = len(raw)
        head = self._count_heads.get(size)
        if head is None:
            written = span_attribute(self.key, 0 if size == 1 else 0x80)
            head = self._count_heads[size] = written[: len(written) - size]
        parts.append(head)
        parts.append(raw)


# Span.flags (fixed32): the trace flags (sampled) and whether the parent's context is known and remote
_FLAGS: Final = {
    remote: b"\x85\x01" + struct.pack("<I", 0x100 | (0x200 if remote else 0) | 1) for remote in (False, True)
}


def encode_span(
    *,
    trace_id: int,
    span_id: int,
    parent_span_id: int | None,
    trace_state: str | None,
    name: str,
    kind: int,
    start_ns: int,
    end_ns: int,
    attributes: Mapping[str, Any],
    encoded_attributes: bytes = b"",
    events: Sequence[tuple[str, int, Mapping[str, Any]]] = (),
    status_code: int = STATUS_UNSET,
    status_message: str = "",
) -> bytes:
    """trace.v1.Span: trace_id 1, span_id 2, trace_state 3, parent_span_id 4, name 5, kind 6,
    start 7 (fixed64), end 8 (fixed64), attributes 9, events 11, status 15, flags 16 (fixed32).
    `encoded_attributes`: more attributes, already encoded as repeated field 9 (`key_values(9, ...)`)."""
    parts = [
        b"\x0a\x10" + trace_id.to_bytes(16, "big"),  # _ld(1, ...) of 16 bytes
        b"\x12\x08" + span_id.to_bytes(8, "big"),  # _ld(2, ...) of 8 bytes
    ]
    if trace_state:
        parts.append(_str(3, trace_state))
    if parent_span_id is not None:
        parts.append(b"\x22\x08" + parent_span_id.to_bytes(8, "big"))  # _ld(4, ...) of 8 bytes
    parts += [
        span_head(name, kind),
        _TIMES.pack(0x39, start_ns, 0x41, end_ns),  # start (fixed64) and end, tags and all
        encoded_attributes,
    ]
    if attributes:
        parts.append(key_values(9, attributes))
    for event_name, time_ns, event_attributes in events:
        parts.append(span_event(event_name, time_ns, event_attributes))
    parts += (span_status(status_code, status_message), _FLAGS[parent_span_id is not None])
    return b"".join(parts)


def span_head(name: str, kind: int) -> bytes:
    """Span.name 5 and kind 6, as `encode_span` writes them."""
    return _str(5, name) + b"\x30" + varint(kind)


def span_status(status_code: int, status_message: str = "") -> bytes:
    """Span.status 15 (Status: message 2, code 3) as `encode_span` writes it: nothing for STATUS_UNSET."""
    if not status_code:
        return b""
    return _ld(15, (_str(2, status_message) if status_message else b"") + b"\x18" + varint(status_code))


def span_event(name: str, time_ns: int, attributes: Mapping[str, Any]) -> bytes:
    """One Span.events 11 (Event: time 1 (fixed64), name 2, attributes 3)."""
    return _ld(11, b"\x09" + _FIXED64.pack(time_ns) + _str(2, name) + key_values(3, attributes))


def encode_flow_span(
    trace_id: bytes,
    span_id: bytes,
    parent_span_id: int | None,
    trace_state: str | None,
    head: bytes,
    start_ns: int,
    end_ns: int,
    attributes: list[bytes],
    events: bytes,
    status: bytes,
) -> bytes:
    """The bytes `encode_span` writes, from parts a flow shares already encoded: the ids as 16 and 8 bytes
    big-endian (`TraceContext.trace_id_bytes`, `span_id_bytes`), `head` (`span_head`), `status` (`span_status`),
    the attributes as encoded fields in parts (joined here with the rest: each copied once) and the events
    (`span_event`). One join, no keywords."""
    parts = [
        b"\x0a\x10", trace_id, b"\x12\x08", span_id,
        _str(3, trace_state) if trace_state else b"",
        b"\x22\x08" + parent_span_id.to_bytes(8, "big") if parent_span_id is not None else b"",
        head, _TIMES.pack(0x39, start_ns, 0x41, end_ns),  # one object, not a tag and 8 bytes each
    ]  # fmt: skip
    parts += attributes
    parts += (events, status, _FLAGS[parent_span_id is not None])
    return b"".join(parts)


def encode_resource(attributes: Mapping[str, Any]) -> bytes:
    """resource.v1.Resource: attributes 1."""
    return key_values(1, attributes)


def encode_scope(name: str, version: str) -> bytes:
    """common.v1.InstrumentationScope: name 1, version 2."""
    return _str(1, name) + _str(2, version)


def encode_request(resource: bytes, scope: bytes, spans: Iterable[bytes]) -> bytes:
    """collector.trace.v1.ExportTraceServiceRequest: resource_spans 1 → ResourceSpans(resource 1,
    scope_spans 2 → ScopeSpans(scope 1, spans 2))."""
    # each span is copied once, into the joined message: only the tags and lengths around it are made here
    parts = [b"", _ld(1, resource), b"", _ld(1, scope)]
    size = len(parts[3])
    for span in spans:
        head = _TAG_LD[2] + varint(len(span))
        parts += (head, span)
        size += len(head) + len(span)
    parts[2] = _TAG_LD[2] + varint(size)  # ResourceSpans.scope_spans
    parts[0] = _TAG_LD[1] + varint(len(parts[1]) + len(parts[2]) + size)  # ExportTraceServiceRequest.resource_spans
    return b"".join(parts)

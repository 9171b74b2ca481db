"""OIP v2 over gRPC: read the few fields the proxy needs straight from the protobuf wire bytes.

The proxy forwards the caller's original message bytes; it never builds protobuf objects for them.
Walking the wire format reads model name, version, id, the `data_labels` parameter and tensor data
by their offsets in the message, so a 50 MB tensor is hashed in place and never copied. (Importing
generated `inference.*` message classes would also collide with tritonclient's in protobuf's default
pool. Parsing with them, in C, would not make reading cheaper either: the digest covers the contents as
sent, every tag must still be checked for the one form all parsers read alike, and taking 10^5 small
tensors from parsed messages costs Python as much as taking them from the bytes.) The walk's cost is
Python's, per field: the hot loops are written out, and runs of numbers (unpacked contents, unknown
numeric fields) are skipped by a regular expression, in C.
Field numbers: protos/grpc_predict_v2.proto.
"""

from __future__ import annotations

import codecs
import hashlib
import math
import re
import struct
from collections.abc import Iterator
from typing import Any, Final

from proxy.detectors import Detectors
from proxy.errors import InvalidRequest, RequestTooLarge
from proxy.flow import Outcome, ProtocolName
from proxy.protocols import MAX_STRINGS, SHA256, STREAM_ERROR, Header, Observer, OutputText, Request, Target
from proxy.protocols import Adapter as AdapterBase
from proxy.protocols.oip import (
    BYTES_SCANNED,
    FRAMING_PARAMETERS,
    LABELS_PARAMETER,
    OUTPUT_NAMES,
    REQUEST_FRAMING_PARAMETERS,
    SEQUENCE_PARAMETERS,
    SHARED_MEMORY,
    TENSOR_FRAMING_PARAMETERS,
    TENSOR_TEXT_IF_STRING,
    U64,
    StreamNames,
    add_decoded_texts,
    add_name,
    bytes_tensor_strings,
    check_count,
    check_version,
    labels_parameter,
    named_datatype,
    not_utf8_element,
    number_text,
    observe_reply_meta,
    sequence_key,
    unbase64,
)

SERVICE: Final = "/inference.GRPCInferenceService/"
MODEL_INFER = SERVICE + "ModelInfer"
MODEL_STREAM_INFER = SERVICE + "ModelStreamInfer"
MODEL_METADATA = SERVICE + "ModelMetadata"
MODEL_READY = SERVICE + "ModelReady"
# RPCs whose requests carry no data, only a name (of a model, a repository or a region) and flags; every other
# method is opaque (`PASSTHROUGH`): Triton's repository loads, shared-memory registration and trace settings
# move data (model files, tensors, other callers' tensors to disk) the proxy does not read
_DATA_FREE = (
    "ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelConfig", "ModelStatistics",
    "RepositoryIndex", "SystemSharedMemoryStatus", "CudaSharedMemoryStatus",
)  # fmt: skip
PASSTHROUGH: Final = Target("passthrough")
# gRPC's standard health check (grpc.health.v1): its request names a service, nothing more. A load balancer's probe
# asks `Check`; a channel's client-side health checking (a service config's healthCheckConfig) keeps a `Watch` open,
# a stream of the service's status as it changes. Refused as opaque methods where zones are configured, a healthy
# upstream was down to them
HEALTH_CHECK: Final = "/grpc.health.v1.Health/Check"
HEALTH_WATCH: Final = "/grpc.health.v1.Health/Watch"
_HEALTH: Final = Target("health", carries_data=False)
_HEALTH_WATCH: Final = Target("health", carries_data=False, stream=True)  # a reply stream (`GrpcIngress.watch`)
# a ModelStreamInfer's later message (`Target.later`): read undigested
_LATER: Final = Target("infer", stream=True)

_MAX_STRINGS: Final = 10_000
_MAX_FIELD: Final = (1 << 29) - 1  # protobuf's largest field number


class WireError(ValueError):
    pass


def _run_pattern() -> re.Pattern[bytes]:
    """A run of fields that are not length-delimited (varint, fixed64, fixed32), each tag in the one form
    `_tag` accepts: matched in C, where the walker would take each field in Python (an unpacked
    `int_contents` of a million numbers, unknown numeric fields). Where it stops the walker goes on
    field by field, so a field it refuses is refused with the walker's own error."""

    def tag(wire: int) -> bytes:
        one = bytes(b for b in range(8, 0x80) if b & 7 == wire)  # fields 1-15 (field 0 is refused)
        more = bytes(b for b in range(0x80, 0x100) if b & 7 == wire)
        # 2-5 bytes, the last not 0 (the shortest form), a fifth at most 0x0f (a field number under 2^29)
        rest = rb"(?:[\x80-\xff]{0,2}[\x01-\x7f]|[\x80-\xff]{3}[\x01-\x0f])"
        return b"(?:[%s]|[%s]%s)" % (re.escape(one), re.escape(more), rest)

    varint = rb"[\x80-\xff]{0,9}[\x00-\x7f]"  # at most 10 bytes, as `_varint` reads
    return re.compile(b"(?:%s%s|%s.{8}|%s.{4})*+" % (tag(0), varint, tag(1), tag(5)), re.DOTALL)


_RUN: Final = _run_pattern()
# the bytes a tag in such a run starts with
_RUN_STARTS: Final = bytes(b for b in range(8, 0x100) if b & 7 in (0, 1, 5))
# 1 for a one-byte tag of a length-delimited field (1-15): with a one-byte length, the walkers' inline case
_SHORT: Final = bytes(int(8 <= key < 0x80 and key & 7 == 2) for key in range(256))


def _ld(number: int) -> int:
    """The one-byte tag of length-delimited field `number` (1-15)."""
    return number << 3 | 2


# tensor fields read by `_tensor` and `_contents`; InferTensorContents' numbers, packed (bool to fp64)
_NAME: Final = _ld(1)
_DATATYPE: Final = _ld(2)
_PARAMETERS: Final = _ld(4)
_CONTENTS: Final = _ld(5)
_BYTES_CONTENTS: Final = _ld(8)
_PACKED: Final = bytes(_ld(number) for number in range(1, 8))


def _varint(buf: bytes | memoryview, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise WireError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireError("varint too long")


def _tag(buf: bytes | memoryview, pos: int, end: int) -> tuple[int, int]:
    """A field's tag, read only in the one form every protobuf parser reads alike: at most 5 bytes, the
    shortest encoding, a field number protobuf allows. Parsers differ past that: C++ protobuf (Triton)
    keeps a tag's low 32 bits, so `8a 80 80 80 10` is field 1 to it and field 2^29+1 here; pure-Python
    protobuf looks tags up by their bytes, so `8a 00` is an unknown field to it and field 1 here. Either
    way the upstream would read another model name or tensor than the proxy checked."""
    start = pos
    key, pos = _varint(buf, pos, end)
    if pos - start > 5 or key >> 3 > _MAX_FIELD or buf[pos - 1] == 0:
        raise WireError("a field tag in a form protobuf parsers read differently (overlong, or field number "
                        "out of range)")  # fmt: skip
    return key, pos


def _key(buf: bytes | memoryview, pos: int, end: int) -> tuple[int, int]:
    """A tag at `pos` < `end`: one byte, inline, else `_tag`; field number 0 is refused (protobuf
    refuses it: so must the proxy, or the two would differ)."""
    key = buf[pos]
    if 8 <= key < 0x80:
        return key, pos + 1
    if key >= 0x80:
        key, pos = _tag(buf, pos, end)
    if key < 8:
        raise WireError("field number 0")
    return key, pos


def _length(buf: bytes | memoryview, pos: int, end: int) -> tuple[int, int]:
    """A length-delimited field's length: protobuf caps it below 2^31 and reads at most 5 bytes of it."""
    if pos < end and buf[pos] < 0x80:
        return buf[pos], pos + 1
    start = pos
    length, pos = _varint(buf, pos, end)
    if pos - start > 5 or length >= 1 << 31:
        raise WireError("a field length over protobuf's limit")
    return length, pos


def _field(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """The field at `pos`, whatever its form, for a walker whose inline case (`_SHORT`) it is not:
    (tag, start, stop) of a length-delimited one; any other is checked and skipped with the run of such
    fields it starts (`_RUN`), and comes back as tag 0 with start = stop past them: no reader reads one
    (a field of another wire type under a number a reader reads is an unknown field, as for protobuf)."""
    key, pos = _key(buf, pos, end)
    wire = key & 7
    if wire == 2:
        length, pos = _length(buf, pos, end)
        if pos + length > end:
            raise WireError("truncated length-delimited field")
        return key, pos, pos + length
    if wire == 0:
        _, pos = _varint(buf, pos, end)
    elif wire == 1 or wire == 5:
        pos += 8 if wire == 1 else 4
        if pos > end:
            raise WireError("truncated fixed-width field")
    elif wire == 3:  # a (deprecated) group: protobuf skips it as an unknown field, and so does the proxy
        pos = _skip_group(buf, pos, end, key >> 3, 1)
    else:
        raise WireError(f"unsupported wire type {wire}")
    if pos < end and buf[pos] in _RUN_STARTS:
        run = _RUN.match(buf, pos, end)
        if run is not None:
            pos = run.end()
    return 0, pos, pos


def fields(buf: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """(field number, wire type, value): an int for varints/fixed, a zero-copy slice for bytes. The
    metadata messages' walker; the inference messages are read by `_spans` and its inline copies."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _key(buf, pos, end)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos, end)
            yield number, wire, value
        elif wire == 2:
            length, pos = _length(buf, pos, end)
            if pos + length > end:
                raise WireError("truncated length-delimited field")
            yield number, wire, buf[pos : pos + length]
            pos += length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
            if pos > end:
                raise WireError("truncated fixed-width field")
            yield number, wire, 0  # the proxy reads no fixed-width field: skipped, not decoded
        elif wire == 3:  # a (deprecated) group: protobuf skips it as an unknown field, and so does the proxy
            pos = _skip_group(buf, pos, end, number, 1)
        else:
            raise WireError(f"unsupported wire type {wire}")


def _spans(buf: bytes, pos: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(field number, start, stop) of each length-delimited field of the message at buf[pos:end], offsets
    into `buf` (no slice made of a field nobody reads); every other field checked and skipped (`_field`).
    The loops of `read_infer_request`, `ReplyObserver._response`, `_tensor`, `_contents` and `_parameter` are this
    one written out: every call walks the first two, and a message of many small tensors or parameters spends its
    time in the others."""
    while pos < end:
        key = buf[pos]
        length = buf[pos + 1] if pos + 1 < end else 0x80
        if _SHORT[key] and length < 0x80:  # a one-byte tag and length, the common case
            pos += 2
            stop = pos + length
            if stop > end:
                raise WireError("truncated length-delimited field")
        else:
            key, pos, stop = _field(buf, pos, end)
            if not key:
                continue
        yield key >> 3, pos, stop
        pos = stop


def _frames(buf: bytes, start: int, stop: int) -> bool:
    """Whether buf[start:stop] is a message's fields, each whole (`_spans` walks it to its end)."""
    try:
        for _ in _spans(buf, start, stop):
            pass
    except WireError:
        return False
    return True


def _skip_group(buf: bytes | memoryview, pos: int, end: int, group: int, depth: int) -> int:
    """Past the end-group tag that closes `group` (groups nest, as deep as protobuf's recursion limit)."""
    if depth > 100:
        raise WireError("groups nested too deep")
    while pos < end:
        key, pos = _tag(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        if wire == 4:
            if number != group:
                raise WireError("end-group of another group")
            return pos
        if wire == 0:
            _, pos = _varint(buf, pos, end)
        elif wire == 2:
            length, pos = _length(buf, pos, end)
            pos += length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        elif wire == 3:
            pos = _skip_group(buf, pos, end, number, depth + 1)
        else:
            raise WireError(f"unsupported wire type {wire}")
        if pos > end:
            raise WireError("truncated field in a group")
    raise WireError("a group without its end")


_NOT_UTF8: Final = "a string field is not valid UTF-8"
_NOTHING: Final[frozenset[str]] = frozenset()


def _text(value: int | memoryview) -> str:
    """A protobuf `string` field from `fields`. Invalid UTF-8 is a WireError: protobuf parsers refuse it,
    so the upstream would read another message than the one the proxy decided on."""
    if not isinstance(value, memoryview):
        return ""
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        raise WireError(_NOT_UTF8) from None


def _string(buf: bytes, start: int, stop: int) -> str:
    """A protobuf `string` field from `_spans` (invalid UTF-8 is a WireError, as in `_text`)."""
    try:
        return buf[start:stop].decode("utf-8")
    except UnicodeDecodeError:
        raise WireError(_NOT_UTF8) from None


def _parameter(buf: bytes, pos: int, end: int) -> tuple[str, str | None, bool]:
    """A map<string, InferParameter> entry: (key, string_param or None, whether it holds a number), its string_param
    only when a server keeps it (`_string_param`); its numbers are read only when it holds one (`_parameter_texts`: a
    second walk of every string parameter took a request of 32 of them from about 65 to 185 µs, interpreted)."""
    name, text, numbered = "", None, False
    while pos < end:
        key = buf[pos]
        length = buf[pos + 1] if pos + 1 < end else 0x80
        if _SHORT[key] and length < 0x80:
            pos += 2
            stop = pos + length
            if stop > end:
                raise WireError("truncated length-delimited field")
        else:
            key, pos, stop = _field(buf, pos, end)
        if key == 0x0A:  # key
            name = _string(buf, pos, stop)
        elif key == 0x12:  # value: an InferParameter (two are merged, as protobuf merges them)
            text, numbered = _string_param(buf, pos, stop, text, numbered)
        pos = stop
    return name, text, numbered


def _string_param(buf: bytes, pos: int, end: int, text: str | None, numbered: bool) -> tuple[str | None, bool]:
    """An InferParameter's string_param (field 3), None when a member of its oneof every server's protocol has (bool 1,
    int64 2) comes after it: protobuf keeps the member parsed last, so `{string_param: "x", int64_param:
    2025550123}` is the number to Triton and MLServer (its runtime's `parameters`). Before 2026-12-05 the string was
    read and the number, a phone or a card, reached the model unread (`_parameter_numbers` reads it). A double (4) or
    uint64 (5) after it leaves it read: those are unknown fields to MLServer's and KServe's InferParameter (three
    members), which keep the string (Triton's number is read beside it; before 2026-12-07 the string was not).
    `text`, `numbered`: what an earlier value of the same entry left (a map entry's values are merged); returned with
    whether a number member (int64 2, double 4, uint64 5) came in it or them."""
    while pos < end:
        key, pos = _key(buf, pos, end)
        wire = key & 7
        if wire == 2:
            length, pos = _length(buf, pos, end)
            stop = pos + length
            if stop > end:
                raise WireError("truncated length-delimited field")
            if key == 0x1A:
                text = _string(buf, pos, stop)
            pos = stop
        elif wire == 0:
            _, pos = _varint(buf, pos, end)
            if key == 0x08 or key == 0x10:
                text = None
            numbered = numbered or key == 0x10 or key == 0x28
        elif wire == 1 or wire == 5:
            pos += 8 if wire == 1 else 4
            if pos > end:
                raise WireError("truncated fixed-width field")
            numbered = numbered or key == 0x21
        elif wire == 3:
            pos = _skip_group(buf, pos, end, key >> 3, 1)
        else:
            raise WireError(f"unsupported wire type {wire}")
    return text, numbered


def _parameter_value(buf: bytes, pos: int, end: int) -> object:
    """A map<string, InferParameter> entry's value: bool_param, int64_param, string_param or uint64_param (the
    last one set, as protobuf's oneof keeps), None for another. A number is its varint's low 64 bits, as protobuf
    keeps them: a ten-byte varint's last byte may hold more, which protobuf drops (read whole, a `sequence_start`
    of 2^64 started a sequence here that went on upstream, and a `sequence_id` named another sequence)."""
    value: object = None
    for number, _, given in fields(memoryview(buf)[pos:end]):
        if number == 2 and isinstance(given, memoryview):
            for kind, form, field in fields(given):
                if form == 0 and isinstance(field, int):
                    field &= U64  # the bits of a varint protobuf keeps
                if kind == 1 and form == 0:
                    value = bool(field)
                elif kind == 2 and form == 0 and isinstance(field, int):
                    value = field - (1 << 64) if field >> 63 else field  # an int64: two's complement
                elif kind == 5 and form == 0:
                    value = field
                elif kind == 3 and isinstance(field, memoryview):
                    value = _text(field)
                elif kind == 4 and form == 1:  # a double: no sequence id
                    # (as a double only: a field 4 of another wire type is an unknown field to protobuf, which keeps
                    # the member before it; before 2026-12-05 it was read as a double here, and a `sequence_id` so
                    # followed named no sequence to the proxy and sequence 5 to Triton: its labels were not carried)
                    value = None
    return value


def _parameter_numbers(buf: bytes, pos: int, end: int) -> list[str]:
    """A map<string, InferParameter> entry's numbers as decimal text (`number_text`), as each server's protocol keeps
    them: Triton's InferParameter has five members (bool 1, int64 2, string 3, double 4, uint64 5), MLServer's and
    KServe's model server's three (bool, int64, string: a double or uint64 is an unknown field to them, which leaves
    the member before it set). So the last of five members, when a number, and the last of three, when an int64: `{
    int64_param: 2025550123, uint64_param: 5}` is 5 to Triton and the phone number to MLServer's runtime (before
    2026-12-07 only 5 was read). A varint is its low 64 bits, as `_parameter_value` reads it. A backend reads a
    parameter's numbers too (a card or an id sent as a number)."""
    five: str | None = None  # Triton's reading
    three: str | None = None  # MLServer's and KServe's
    for field, _, given in fields(memoryview(buf)[pos:end]):
        if field != 2 or not isinstance(given, memoryview):
            continue
        at, stop = 0, len(given)
        while at < stop:
            key, at = _key(given, at, stop)
            kind, wire = key >> 3, key & 7
            if wire == 0:
                value, at = _varint(given, at, stop)
                value &= U64
                if kind == 2:
                    five = three = number_text(value - (1 << 64) if value >> 63 else value)  # int64: two's complement
                elif kind == 5:
                    five = number_text(value)
                elif kind == 1:
                    five = three = None
            elif wire == 1:
                if at + 8 > stop:
                    raise WireError("truncated fixed-width field")
                if kind == 4:
                    (double,) = _DOUBLE.unpack_from(given, at)
                    five = number_text(double) if math.isfinite(double) else None
                at += 8
            elif wire == 2:
                length, at = _length(given, at, stop)
                at += length
                if at > stop:
                    raise WireError("truncated length-delimited field")
                if kind == 3:
                    five = three = None
            elif wire == 5:
                at += 4
                if at > stop:
                    raise WireError("truncated fixed-width field")
            elif wire == 3:
                at = _skip_group(given, at, stop, kind, 1)
            else:
                raise WireError(f"unsupported wire type {wire}")
    if five is None:
        return [] if three is None else [three]
    return [five] if three is None or three == five else [five, three]


_DOUBLE: Final = struct.Struct("<d")


def _parameter_texts(text: str | None, numbered: bool, buf: bytes, pos: int, end: int) -> list[str]:
    """What servers read of a parameter's value at `buf[pos:end]` (a map entry): its string (`_string_param`'s `text`)
    and, when it holds a number (`numbered`), its numbers (`_parameter_numbers`), as Triton and as MLServer keep them,
    each read by the detectors."""
    if not numbered:
        return [text] if text else []
    numbers = _parameter_numbers(buf, pos, end)
    if text:
        numbers.insert(0, text)
    return numbers


def _tensor(
    buf: bytes, view: memoryview, pos: int, end: int, texts: list[str], digest: hashlib._Hash | None,
    labels: list[str] | None = None, names: list[str] | None = None, parameters: int = 0,
    beside: list[str] | None = None,
) -> tuple[str, bool, bool, bool, int, bool]:  # fmt: skip
    """An Infer{Input,Output}Tensor: hash its `contents`, collect its `bytes_contents` whatever the datatype
    (MLServer gives the model whichever contents field is set; the others are numbers by their protobuf
    type), each also decoded when the tensor declares `content_type: base64` (`_declared_base64`, as over REST)
    and, into `labels` (an input's), the labels its `data_labels` parameter declares, into `names` its name and a
    datatype none of the protocol's (`oip.tensor_names`); returns the datatype,
    whether its data is in a shared-memory region (which the proxy cannot read), whether its `contents` hold any
    bytes (`read_infer_request`: beside raw contents), whether it declares base64, and `parameters`, the parameters
    of its message read so far, with its own (`_count_parameter`), and whether its elements were read whole (False: one
    past `BYTES_SCANNED`: `_contents`). The other readings of an element that is not UTF-8
    go `beside` (`oip.not_utf8_element`; None: into `texts`, a reply's)."""
    datatype = ""
    whole = True
    shared = False
    filled = False
    base64 = False
    start = len(texts)
    strings: list[str] | None = None  # an input's strings under framing names (`TENSOR_TEXT_IF_STRING`), read as sent
    while pos < end:
        key = buf[pos]
        length = buf[pos + 1] if pos + 1 < end else 0x80
        if _SHORT[key] and length < 0x80:
            pos += 2
            stop = pos + length
            if stop > end:
                raise WireError("truncated length-delimited field")
        else:
            key, pos, stop = _field(buf, pos, end)
        if key == _CONTENTS:
            if digest is not None:
                digest.update(view[pos:stop])
            size = stop - pos
            filled = filled or size > 0
            if not (1 < size < 130 and buf[pos] in _PACKED and buf[pos + 1] == size - 2):
                whole = (
                    _contents(buf, pos, stop, texts, beside) and whole
                )  # unless all it holds is one packed field, under 128 bytes
        elif key == _DATATYPE:
            try:
                datatype = buf[pos:stop].decode("utf-8")
            except UnicodeDecodeError:
                raise WireError(_NOT_UTF8) from None
        elif key == _NAME and names is not None and stop > pos and len(names) < _MAX_STRINGS:
            names.append(_string(buf, pos, stop))
        elif key == _PARAMETERS:
            parameters = _count_parameter(parameters)
            name, text, numbered = _parameter(buf, pos, stop)
            shared = shared or name == SHARED_MEMORY
            if name == LABELS_PARAMETER and labels is not None:  # the labels of this input's data
                if text is None:
                    raise InvalidRequest(f"parameter {LABELS_PARAMETER!r} must be a string_param")
                labels += labels_parameter(text)
                if text:  # read as sent too, as MLServer hands it on (`oip.LABELS_PARAMETER`)
                    if strings is None:
                        strings = []
                    strings.append(text)
            elif name not in TENSOR_FRAMING_PARAMETERS:  # a tensor's parameters reach the backend with it
                for each in _parameter_texts(text, numbered, buf, pos, stop):
                    _add_text(each, texts)
                if name and names is not None:  # (its name too: `oip.parameter_strings`)
                    add_name(name, names)
            else:
                if name == "content_type":
                    base64 = text == "base64"
                if text and labels is not None and name in TENSOR_TEXT_IF_STRING:  # an input's: MLServer hands it on
                    if strings is None:
                        strings = []
                    strings.append(text)
        pos = stop
    if base64:
        whole = _declared_base64(texts, start, beside) and whole
    if strings is not None:
        texts += strings[: max(_MAX_STRINGS - len(texts), 0)]
    if names is not None and datatype and not named_datatype(datatype) and len(names) < _MAX_STRINGS:
        names.append(datatype)  # none of the protocol's: KServe hands it to the model (`oip.tensor_names`)
    return datatype, shared, filled, base64, parameters, whole


PARAMETERS: Final = "parameters (the request's, its tensors' and its requested outputs' together)"  # `check_count`'s


RAW_CONTENTS: Final = "raw contents"  # (`check_count`: one a tensor, counted apart from the tensors)


def _count_parameter(parameters: int) -> int:
    """One parameter more of a message (its own, its tensors', its requested outputs'): each is read in Python, to find
    `data_labels` and shared memory, whatever the scan limits, so none can be left unread and passed on; past
    `MAX_STRINGS` a request is refused (`check_count`) and a reply read no further (`ReplyObserver._response`). 200,000
    parameters on one input held the loop 1.7-1.9 s, where the request's own were refused past 65,536."""
    parameters += 1
    if parameters > MAX_STRINGS:
        check_count(parameters, PARAMETERS)
    return parameters


def _add_text(text: str, texts: list[str]) -> None:
    """A parameter's text into `texts`, unless they hold `_MAX_STRINGS` already: the message is then read on (for its
    labels) and `scan:truncated` (`_raw_strings`), as a REST request's parameters past the scan limit are."""
    if len(texts) < _MAX_STRINGS:
        texts.append(text)


def _declared_base64(texts: list[str], start: int, beside: list[str] | None = None) -> bool:
    """After `texts[start:]`, each as a runtime decoding the base64 its tensor declares reads it, leniently
    (`oip.unbase64`: a `b64decode` without `validate` drops a MIME line break, which MLServer's strict codec
    and `add_decoded_texts` do not decode); other readings `beside`. False when some was left unread."""
    whole = True
    for index in range(start, len(texts)):
        whole = unbase64(texts[index], texts, beside) and whole
    return whole


def _contents(buf: bytes, pos: int, end: int, texts: list[str], beside: list[str] | None) -> bool:
    """InferTensorContents: its `bytes_contents`, as text, one text an element (its other readings, not UTF-8,
    `beside`, None: into `texts`: `oip.not_utf8_element`); its numbers are stepped over (packed: one field for each kind; unpacked: runs
    in C, `_field`). An element is read up to `BYTES_SCANNED` bytes: False when one was longer (the rest unread). Before
    2026-12-05 each was read whole, and one not UTF-8 read replaced whole too: a 64 MB element of Latin-1 bytes held
    336 MB at once (its copy, the failed decoding's buffer, 64 M characters of two bytes each), 0.75 s."""
    whole = True
    while pos < end:
        key = buf[pos]
        length = buf[pos + 1] if pos + 1 < end else 0x80
        if _SHORT[key] and length < 0x80:
            pos += 2
            stop = pos + length
            if stop > end:
                raise WireError("truncated length-delimited field")
        else:
            key, pos, stop = _field(buf, pos, end)
        if key == _BYTES_CONTENTS and len(texts) < _MAX_STRINGS:
            if stop - pos > BYTES_SCANNED:  # read up to the bound, as a REST tensor is (`oip.bytes_tensor_strings`)
                whole = False
                element = buf[pos : pos + BYTES_SCANNED]
                if _utf8(buf, pos, stop):  # (not final: a character cut at the bound is left unread)
                    texts.append(codecs.utf_8_decode(element, "strict", False)[0])
                else:
                    not_utf8_element(element, texts, texts if beside is None else beside)
            else:
                element = buf[pos:stop]  # (once: it was sliced again for its other readings)
                try:
                    texts.append(element.decode("utf-8"))
                except UnicodeDecodeError:
                    not_utf8_element(element, texts, texts if beside is None else beside)
        pos = stop
    return whole


def _utf8(buf: bytes, pos: int, stop: int) -> bool:
    """Whether `buf[pos:stop]` is UTF-8, decoded `BYTES_SCANNED` bytes at a time and let go (decoded at once, 64 MB not
    UTF-8 held 134 MB, the decoder's buffer): an element is read in its other readings when it is not UTF-8 anywhere,
    as a short one is (`not_utf8_element`)."""
    view = memoryview(buf)
    while pos < stop:
        end = min(pos + BYTES_SCANNED, stop)
        try:
            used = codecs.utf_8_decode(view[pos:end], "strict", end == stop)[1]
        except UnicodeDecodeError:
            return False
        if used == 0:  # (a character cut at `end` is read with the next bytes: none of 1 MiB is no UTF-8)
            return False
        pos += used
    return True


def _requested_output(
    buf: bytes, start: int, stop: int, texts: list[str], names: list[str], parameters: int = 0
) -> tuple[bool, int]:
    """An InferRequestedOutputTensor: into `texts`, its parameters' strings and numbers but the protocol's own
    (MLServer hands a requested output's parameters to the model with the request, as an input's), into `names` its
    name (`oip.tensor_names`); whether its result is to be written to a shared-memory region, and `parameters`, the
    request's read so far with its own (`_count_parameter`)."""
    shared = False
    for number, first, last in _spans(buf, start, stop):
        if number == 1 and last > first and len(names) < _MAX_STRINGS:
            names.append(_string(buf, first, last))
        elif number == 2:
            parameters = _count_parameter(parameters)
            name, text, numbered = _parameter(buf, first, last)
            shared = shared or name == SHARED_MEMORY
            if name not in TENSOR_FRAMING_PARAMETERS or name == LABELS_PARAMETER:  # (no labels of the call here:
                # MLServer hands it on as any, `oip.LABELS_PARAMETER`)
                for each in _parameter_texts(text, numbered, buf, first, last):
                    _add_text(each, texts)
                if name:  # (its name too: `oip.parameter_strings`)
                    add_name(name, names)
            elif text and name in TENSOR_TEXT_IF_STRING:  # a string under a framing name: MLServer hands it on
                _add_text(text, texts)
    return shared, parameters


def _raw_strings(
    raws: list[memoryview], datatypes: list[str], texts: list[str], declared: list[bool] | None = None,
    beside: list[str] | None = None,
) -> bool:  # fmt: skip
    """raw_*_contents[i] belongs to the i-th tensor, wherever the fields stand on the wire (protobuf
    allows any order): match them up only once the whole message is read; `declared[i]`: the i-th tensor
    declares base64 (`_declared_base64`); other readings of elements `beside` (`oip.not_utf8_element`). False when
    some of it was past a scan limit."""
    if "BYTES" not in datatypes:  # numbers only, most calls: no raw contents to read as strings
        return len(texts) < _MAX_STRINGS
    whole = True
    for index, (raw, datatype) in enumerate(zip(raws, datatypes)):  # noqa: B905 (`strict=`: zip called as Python)
        if datatype == "BYTES":
            start = len(texts)
            whole = bytes_tensor_strings(raw, texts, beside) and whole
            if declared is not None and declared[index]:
                whole = _declared_base64(texts, start, beside) and whole
    return whole and len(texts) < _MAX_STRINGS


def read_infer_request(buf: bytes, stream: bool = False, digested: bool = True) -> Request:
    """A ModelInferRequest's model, version (in canonical form, `check_version`), labels, scannable text
    (base64 elements decoded too) and content digest. `buf` as gRPC gives it: bytes. `stream`: a message of a
    ModelStreamInfer stream (a streamed call: `gen_ai.request.stream`). `digested` False: no digest (a stream's
    later message, `Exchange.readmit`: the stream's record has its first message's)."""
    view = memoryview(buf)
    model = version = ""
    labels: list[str] = []
    texts: list[str] = []
    names: list[str] = []  # the inputs', requested outputs' and parameters' (`Request.names`)
    # the numbers of elements holding JSON, as a runtime prints them (`add_decoded_texts`), and the other readings of
    # elements that are not UTF-8 (`oip.not_utf8_element`): read beside the texts (`Request.decoded`), not captured
    reprinted: list[str] = []
    datatypes: list[str] = []
    digest = SHA256.copy() if digested else None
    raws: list[memoryview] = []
    seen = False
    shared = False  # a tensor in shared memory: data the proxy cannot read (policy.passthrough decides)
    filled = False  # a tensor's `contents` hold bytes
    declared: list[bool] = []  # each tensor's `content_type: base64`
    sequence_id: object = None
    starts = False
    cut = False  # an element read in part (`_tensor`)
    tensors = parameters = 0  # (`check_count`: each is walked in Python, a message of a million took seconds)
    pos, end = 0, len(buf)
    try:
        while pos < end:  # `_spans`, written out: a generator and a tuple a field cost more than the reading
            tag = buf[pos]
            length = buf[pos + 1] if pos + 1 < end else 0x80
            if _SHORT[tag] and length < 0x80:
                start = pos + 2
                stop = start + length
                if stop > end:
                    raise WireError("truncated length-delimited field")
            else:
                tag, start, stop = _field(buf, pos, end)
            pos = stop
            number = tag >> 3
            if number == 5:
                tensors += 1
                if tensors > MAX_STRINGS:
                    check_count(tensors)
                datatype, in_shared, in_contents, base64, parameters, read = _tensor(buf, view, start, stop, texts, digest, labels, names, parameters, reprinted)  # fmt: skip
                cut = cut or not read
                datatypes.append(datatype)
                declared.append(base64)
                shared = shared or in_shared
                filled = filled or in_contents
                seen = True
            elif number == 7:
                if len(raws) >= MAX_STRINGS:  # one an input (`_raw_strings`): 1 M empty ones were read, 3.4 s
                    check_count(len(raws) + 1, RAW_CONTENTS)
                raw = view[start:stop]
                if digest is not None:
                    digest.update(raw)
                seen = True
                raws.append(raw)
            elif number == 1:
                model = _string(buf, start, stop)
            elif number == 2:
                version = _string(buf, start, stop)
            elif number == 3 and stop > start:  # the id: MLServer hands it to the runtime, Triton to the backend
                texts.append(_string(buf, start, stop))
            elif number == 4:
                parameters = _count_parameter(parameters)  # every one read to find `data_labels`: none left unread
                key, text, numbered = _parameter(buf, start, stop)
                if key == LABELS_PARAMETER:
                    if text is None:
                        raise InvalidRequest(f"parameter {LABELS_PARAMETER!r} must be a string_param")
                    labels += labels_parameter(text)  # a list: a tuple grown entry by entry is quadratic
                    _add_text(text, texts)  # read as sent too, as servers hand it on (`oip.LABELS_PARAMETER`)
                elif key in REQUEST_FRAMING_PARAMETERS:  # a string there reaches MLServer's runtime (`TEXT_IF_STRING`)
                    if text:
                        _add_text(text, texts)
                    if key in SEQUENCE_PARAMETERS:  # (a stateful model's requests)
                        value = _parameter_value(buf, start, stop)
                        if key == "sequence_id":
                            sequence_id = value
                        else:
                            starts = value is True
                else:  # a backend reads them, and the runtime their names (`parameter_strings`)
                    # (past the scan limit unread, as over REST: `scan:truncated`)
                    for each in _parameter_texts(text, numbered, buf, start, stop):
                        _add_text(each, texts)
                    if key:
                        add_name(key, names)
            elif number == 6:
                tensors += 1
                if tensors > MAX_STRINGS:
                    check_count(tensors)
                in_shared, parameters = _requested_output(buf, start, stop, texts, names, parameters)
                shared = shared or in_shared
    except WireError as exc:
        raise InvalidRequest(f"ModelInferRequest is not a valid protobuf message: {exc}") from None
    if raws and filled:
        # Triton refuses the two together; MLServer gives raw_input_contents[i] to the i-th input whose contents
        # hold no element, not to the i-th input: raw text would reach a BYTES input read here as another's numbers
        raise InvalidRequest("contents and raw_input_contents in one request: an input's data is in one or the "
                             "other, for every input alike", param="raw_input_contents")  # fmt: skip
    whole = _raw_strings(raws, datatypes, texts, declared if any(declared) else None, reprinted) and len(names) < _MAX_STRINGS and not cut  # fmt: skip
    if not model:
        raise InvalidRequest("model_name is required", param="model_name")
    check_version(version)
    if texts:  # every text here is a tensor's: MLServer may decode any (base64, JSON)
        whole = add_decoded_texts(texts, 0, reprinted) and whole
    sequence = sequence_key(model, sequence_id)
    return Request(model, "infer", stream, tuple(texts), (), tuple(labels), version or None,
                   "sha256:" + digest.hexdigest() if digest is not None and seen and not shared else None, opaque=shared,
                   unscanned=not whole, sequence=sequence, starts=starts and sequence is not None,
                   decoded=tuple(reprinted), names=tuple(names))  # fmt: skip


def read_model_name(data: bytes) -> str:
    """field 1 of ModelReadyRequest, ModelMetadataRequest and the like (name = 1), the last one as for
    protobuf; "" when absent or invalid."""
    name = ""
    try:
        for number, _, value in fields(memoryview(data)):
            if number == 1 and isinstance(value, memoryview):
                name = _text(value)
    except WireError:
        return ""
    return name


def encode_model_metadata_request(name: str) -> bytes:
    encoded = name.encode()
    return b"\x0a" + _encode_varint(len(encoded)) + encoded if encoded else b""


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_model_metadata(data: bytes) -> dict[str, object]:
    """ModelMetadataResponse: name = 1, versions = 2, platform = 3."""
    name, platform, versions = "", "", []
    for number, _, value in fields(memoryview(data)):
        if number == 1:
            name = _text(value)
        elif number == 2:
            versions.append(_text(value))
        elif number == 3:
            platform = _text(value)
    return {"name": name, "versions": versions, "platform": platform}


class ReplyObserver(Observer):
    """Fills an Outcome from ModelInferResponse bytes (or ModelStreamInferResponse, field 2 of it)."""

    def __init__(self, outcome: Outcome, detectors: Detectors, capture: bool) -> None:
        self.outcome = outcome
        self.detectors = detectors
        self._capture = capture
        # the reply's text, made when its first text (or what could not be read) comes: most replies' tensors
        # are numbers; its digest is `_digest`'s, of the tensors as sent
        self._text: OutputText | None = None
        self._digest = SHA256.copy()
        self._seen = False
        self._cut = False  # a message past `MAX_STRINGS` tensors or parameters was read no further (`_response`)
        self._names = StreamNames()  # its outputs' names (a stream's messages', read together)
        # the model the call names (`Exchange`): MLServer's bare stream replies name it in their field 1, where
        # Triton's ModelStreamInferResponse holds an error message (`stream_message`)
        self.model = ""

    def head(self, status: int, header: Header) -> None:
        pass

    def body(self, data: bytes) -> None:
        self._response(data, 0, len(data))

    def stream_message(self, data: bytes) -> str | None:
        """One ModelStreamInferResponse (bytes, as gRPC gives it); returns its error_message, if any. An error
        message is Triton's in-band answer to one request of the stream (the stream goes on, its status OK): the call
        is recorded with `error.type` `STREAM_ERROR`, unless the stream ends otherwise than well (the gRPC ingress
        then records what ended it). MLServer's stream carries ModelInferResponse messages bare instead, told apart by
        a field only they have (an id, parameters, outputs, raw contents), or, without one, by their field 1 naming
        the call's model (`model`): before 2026-12-04 their `model_name` was read as an error message, every such
        stream recorded `upstream_error`, and their outputs were not read. MLServer sets the request's id, none when a
        gRPC client sent none, so a reply without outputs (a runtime's `InferenceResponse(model_name=..., outputs=[])`)
        is on the wire what Triton's error is, a field 1 alone: MLServer's names the model that answered, Triton's is
        a sentence (before 2026-12-04 it was recorded `upstream_error`, the model's name as the message). A field 3-6
        beside a Triton reply's `infer_response`, which Triton's client reads all the same, no longer hides that
        (before 2026-12-04 its outputs passed unread): whichever shape is chosen, a field 2 that frames as a message
        is read as an `infer_response`."""
        error = None
        responses: list[tuple[int, int]] = []
        bare = False
        try:
            for number, start, stop in _spans(data, 0, len(data)):
                if number == 1:
                    error = _string(data, start, stop) or None
                elif number == 2:
                    responses.append((start, stop))
                elif 3 <= number <= 6:  # a ModelInferResponse's own: MLServer streams those bare (its own proto)
                    bare = True
        except WireError:  # the rest of it passes unread: said so
            self._output().unread()
        bare = bare or (error is not None and error == self.model)
        if bare:
            self._response(data, 0, len(data))
            # its field 2 is a model_version string, but Triton's client reads it as the infer_response whatever else
            # the message holds: read as one too where it is one (a version string seldom frames as a message)
            responses = [(start, stop) for start, stop in responses if _frames(data, start, stop)]
            error = None
        if len(responses) > 1:
            # a non-repeated message field given twice is one message to protobuf, the two merged (as their bytes
            # together parse): Triton's client reads one ModelInferResponse, whose raw contents belong to the outputs
            # of both parts by their order. Read part by part (before 2026-12-05), a BYTES output in the first and its
            # raw contents in the second were never matched up, and their text passed unread
            joined = b"".join([data[start:stop] for start, stop in responses])
            self._response(joined, 0, len(joined))
        elif responses:
            self._response(data, responses[0][0], responses[0][1])
        if error is not None and not self.outcome.error_type:
            self.outcome.error_type = STREAM_ERROR
        return error

    def chunk(self, data: bytes) -> None:
        self.stream_message(data)

    def _response(self, buf: bytes, start: int, stop: int) -> None:
        view = memoryview(buf)
        model = version = rid = ""
        texts: list[str] = []
        names: list[str] = []  # the outputs' (`oip.aside_names`)
        beside: list[str] = []  # their elements' other readings (`oip.not_utf8_element`, `OutputText.aside_readings`)
        datatypes: list[str] = []
        raws: list[memoryview] = []
        parameters = 0  # (`_count_parameter`; its tensors are `datatypes`: past either bound, read no further)
        pos = start
        whole = framed = True
        try:
            while pos < stop:  # `_spans`, written out (as in `read_infer_request`)
                key = buf[pos]
                length = buf[pos + 1] if pos + 1 < stop else 0x80
                if _SHORT[key] and length < 0x80:
                    first = pos + 2
                    last = first + length
                    if last > stop:
                        raise WireError("truncated length-delimited field")
                else:
                    key, first, last = _field(buf, pos, stop)
                pos = last
                number = key >> 3
                if number == 5:
                    if len(datatypes) >= MAX_STRINGS:  # (as a request's: `check_count`)
                        check_count(len(datatypes) + 1)
                    datatype, _, _, _, parameters, read = _tensor(buf, view, first, last, texts, self._digest, None, names, parameters, beside)  # fmt: skip
                    whole = read and whole
                    datatypes.append(datatype)
                    self._seen = True
                elif number == 6:
                    if len(raws) >= MAX_STRINGS:
                        check_count(len(raws) + 1, RAW_CONTENTS)
                    raw = view[first:last]
                    self._digest.update(raw)
                    self._seen = True
                    raws.append(raw)
                elif number == 1:
                    model = _string(buf, first, last)
                elif number == 2:
                    version = _string(buf, first, last)
                elif number == 3:
                    rid = _string(buf, first, last)
                elif number == 4:  # the reply's own parameters: read beside the content, as over REST
                    parameters = _count_parameter(parameters)
                    name, text, numbered = _parameter(buf, first, last)
                    if name not in FRAMING_PARAMETERS:
                        said = "\n".join(_parameter_texts(text, numbered, buf, first, last))
                        if said or name:  # its name too, as over REST (`oip.parameter_strings`)
                            self._output().aside(("parameters", name), f"{name}\n{said}" if said else name)
        except WireError:  # not a message the walker reads to its end: what it read is kept, the rest said unread
            whole = framed = False
        except RequestTooLarge:  # past `MAX_STRINGS` outputs, raw contents or parameters, each read in Python (a
            whole = False  # million outputs: 7 s): a reply cannot be refused once the model ran, so it is passed on,
            self._cut = True  # read no further, its output `scan:truncated`, its tensors undigested (only some read)
        if framed:
            observe_reply_meta(self.outcome, model, version, rid)
        try:  # after the tensors' bytes_contents, read on the walk: their raw contents
            whole = _raw_strings(raws, datatypes, texts, None, beside) and whole
        except InvalidRequest:  # BYTES that are not whole elements: those before are kept
            whole = False
        if texts or not whole:
            self._output().add_pieces(texts, whole)
        if beside:
            self._output().aside_readings(beside)
        if names:
            self._aside_names(names)

    def _aside_names(self, names: list[str]) -> None:
        """The outputs' names (a stream's, each message's a line apart from the last's), read beside the content as
        over REST (`oip.StreamNames`: those the detectors found nothing in before are not read again, and a reply
        without text then has none made); past `_MAX_STRINGS` of a message, `scan:truncated`."""
        if len(names) >= _MAX_STRINGS:
            self._output().unread()
        read = self._names.to_read(self.detectors, names)
        if read is not None:
            self._output().aside(OUTPUT_NAMES, read)

    def _output(self) -> OutputText:
        """The reply's text, made when its first text (or what could not be read) comes."""
        text = self._text
        if text is None:
            text = self._text = OutputText(self.outcome, self.detectors, self._capture, digests=False)
        return text

    def finish(self) -> None:
        if self._text is not None:
            self._text.finish(self.detectors)
        elif self.detectors:  # no text: nothing found, as a scan of none finds (`OutputText.finish`)
            self.outcome.output_detected = _NOTHING
        self.outcome.output_digest = "sha256:" + self._digest.hexdigest() if self._seen and not self._cut else None


_TARGETS: Final = {
    MODEL_INFER: Target("infer"),
    MODEL_STREAM_INFER: Target("infer", stream=True, later=_LATER),
    **{SERVICE + m: Target("metadata", carries_data=False) for m in _DATA_FREE},
    HEALTH_CHECK: _HEALTH,
    HEALTH_WATCH: _HEALTH_WATCH,
}


class Adapter(AdapterBase):
    """OIP v2 over gRPC: ModelInfer and ModelStreamInfer (one stream is one call); health and metadata
    RPCs carry no data (`read` gives the model they name, for routing)."""

    name: ProtocolName = "oip-grpc"
    dialect = "oip"
    status_attribute = "rpc.grpc.status_code"
    provider: str | None = None

    def match(self, method: str, path: str) -> Target | None:
        return _TARGETS.get(path)

    def read(self, target: Target, body: bytes, header: Header) -> Request:
        if target is _HEALTH or target is _HEALTH_WATCH:  # names a service, not a model: routed as a call naming none
            return Request("", target.operation)
        if not target.carries_data:
            return Request(read_model_name(body), target.operation)
        if target is PASSTHROUGH:  # decided before its messages are read, which it never is: opaque
            return Request("", "passthrough", opaque=True)
        return read_infer_request(body, target.stream, target is not _LATER)

    def as_utf8_json(self, body: bytes, header: Header) -> bytes | None:
        return None  # (protobuf, which servers read as it is read here)

    def merge(self, listings: list[Any]) -> dict[str, Any]:
        raise NotImplementedError("OIP gRPC has no merged listing")

    def observer(self, target: Target, outcome: Outcome, detectors: Detectors, capture: bool) -> ReplyObserver | None:
        return None if target is PASSTHROUGH else ReplyObserver(outcome, detectors, capture)


ADAPTER = Adapter()

"""OIP v2 over gRPC: read the few fields the proxy needs straight from the protobuf wire bytes.

The proxy forwards the caller's original message bytes; it never builds protobuf objects for them.
Walking the wire format reads model name, version, id, the `data_labels` parameter and tensor data
as memoryview slices, so a 50 MB tensor is hashed in place and never copied. (Importing generated
`inference.*` message classes would also collide with tritonclient's in protobuf's default pool.)
Field numbers: protos/grpc_predict_v2.proto.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

from proxy.detectors import Detectors
from proxy.errors import InvalidRequest
from proxy.flow import Outcome, ProtocolName
from proxy.protocols import Header, OutputText, Request, Target
from proxy.protocols.oip import (
    FRAMING_PARAMETERS,
    LABELS_PARAMETER,
    SHARED_MEMORY,
    add_decoded_texts,
    bytes_tensor_strings,
    check_version,
    labels_parameter,
    observe_reply_meta,
)

SERVICE = "/inference.GRPCInferenceService/"
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
PASSTHROUGH = Target("passthrough")

_MAX_STRINGS = 10_000
_MAX_FIELD = (1 << 29) - 1  # protobuf's largest field number


class WireError(ValueError):
    pass


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise WireError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireError("varint too long")


def _tag(buf: memoryview, pos: int) -> tuple[int, int]:
    """A field's tag, read only in the one form every protobuf parser reads alike: at most 5 bytes, the
    shortest encoding, a field number protobuf allows. Parsers differ past that: C++ protobuf (Triton)
    keeps a tag's low 32 bits, so `8a 80 80 80 10` is field 1 to it and field 2^29+1 here; pure-Python
    protobuf looks tags up by their bytes, so `8a 00` is an unknown field to it and field 1 here. Either
    way the upstream would read another model name or tensor than the proxy checked."""
    start = pos
    key, pos = _varint(buf, pos)
    if pos - start > 5 or key >> 3 > _MAX_FIELD or buf[pos - 1] == 0:
        raise WireError("a field tag in a form protobuf parsers read differently (overlong, or field number "
                        "out of range)")  # fmt: skip
    return key, pos


def _length(buf: memoryview, pos: int) -> tuple[int, int]:
    """A length-delimited field's length: protobuf caps it below 2^31 and reads at most 5 bytes of it."""
    start = pos
    length, pos = _varint(buf, pos)
    if pos - start > 5 or length >= 1 << 31:
        raise WireError("a field length over protobuf's limit")
    return length, pos


def fields(buf: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """(field number, wire type, value): an int for varints/fixed, a zero-copy slice for bytes."""
    pos, end = 0, len(buf)
    while pos < end:
        key = buf[pos]  # a tag and a length under 128 are one byte: read inline, the common case
        if key < 0x80:
            pos += 1
        else:
            key, pos = _tag(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")  # protobuf refuses it: so must the proxy, or the two would differ
        if wire == 0:
            value, pos = _varint(buf, pos)
            yield number, wire, value
        elif wire == 2:
            length = buf[pos] if pos < end else 0x80
            if length < 0x80:
                pos += 1
            else:
                length, pos = _length(buf, pos)
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
            pos = _skip_group(buf, pos, number, 1)
        else:
            raise WireError(f"unsupported wire type {wire}")


def _skip_group(buf: memoryview, pos: int, group: int, depth: int) -> int:
    """Past the end-group tag that closes `group` (groups nest, as deep as protobuf's recursion limit)."""
    if depth > 100:
        raise WireError("groups nested too deep")
    end = len(buf)
    while pos < end:
        key, pos = _tag(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        if wire == 4:
            if number != group:
                raise WireError("end-group of another group")
            return pos
        if wire == 0:
            _, pos = _varint(buf, pos)
        elif wire == 2:
            length, pos = _length(buf, pos)
            pos += length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        elif wire == 3:
            pos = _skip_group(buf, pos, number, depth + 1)
        else:
            raise WireError(f"unsupported wire type {wire}")
        if pos > end:
            raise WireError("truncated field in a group")
    raise WireError("a group without its end")


def _text(value: int | memoryview) -> str:
    """A protobuf `string` field. Invalid UTF-8 is a WireError: protobuf parsers refuse it, so the
    upstream would read another message than the one the proxy decided on."""
    if not isinstance(value, memoryview):
        return ""
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        raise WireError("a string field is not valid UTF-8") from None


def _parameter(entry: memoryview) -> tuple[str, str | None]:
    """A map<string, InferParameter> entry: (key, string_param or None)."""
    key, text = "", None
    for number, _, value in fields(entry):
        if not isinstance(value, memoryview):
            continue  # a field of the expected number and another wire type is an unknown field, as for protobuf
        if number == 1:
            key = _text(value)
        elif number == 2:
            for inner, _, param in fields(value):
                if inner == 3 and isinstance(param, memoryview):  # string_param
                    text = _text(param)
    return key, text


def _tensor(tensor: memoryview, texts: list[str], digest: hashlib._Hash) -> tuple[str, bool]:
    """An Infer{Input,Output}Tensor: hash its `contents`, collect its `bytes_contents` whatever the datatype
    (MLServer gives the model whichever contents field is set; the others are numbers by their protobuf
    type); returns the datatype, and whether its data is in a shared-memory region (which the proxy cannot
    read)."""
    datatype = ""
    shared = False
    for number, _, value in fields(tensor):
        if number == 2 and isinstance(value, memoryview):
            datatype = _text(value)
        elif number == 4 and isinstance(value, memoryview):
            key, text = _parameter(value)
            shared = shared or key == SHARED_MEMORY
            if text and key not in FRAMING_PARAMETERS:  # a tensor's parameters reach the backend with it
                texts.append(text)
        elif number == 5 and isinstance(value, memoryview):
            digest.update(value)
            for inner, _, item in fields(value):
                if inner == 8 and isinstance(item, memoryview) and len(texts) < _MAX_STRINGS:  # bytes_contents
                    texts.append(bytes(item).decode("utf-8", "replace"))
    return datatype, shared


def _output_in_shared_memory(output: memoryview) -> bool:
    """An InferRequestedOutputTensor whose result is to be written to a shared-memory region."""
    return any(
        number == 2 and isinstance(value, memoryview) and _parameter(value)[0] == SHARED_MEMORY
        for number, _, value in fields(output)
    )


def _raw_strings(raws: list[memoryview], datatypes: list[str], texts: list[str]) -> bool:
    """raw_*_contents[i] belongs to the i-th tensor, wherever the fields stand on the wire (protobuf
    allows any order): match them up only once the whole message is read. False when some of it was past
    a scan limit."""
    whole = True
    for raw, datatype in zip(raws, datatypes, strict=False):
        if datatype == "BYTES":
            whole = bytes_tensor_strings(raw, texts) and whole
    return whole and len(texts) < _MAX_STRINGS


def read_infer_request(data: bytes) -> Request:
    """A ModelInferRequest's model, version (in canonical form, `check_version`), labels, scannable text
    (base64 elements decoded too) and content digest."""
    buf = memoryview(data)
    model = version = ""
    labels: tuple[str, ...] = ()
    texts: list[str] = []
    datatypes: list[str] = []
    digest = hashlib.sha256()
    raws: list[memoryview] = []
    seen = False
    shared = False  # a tensor in shared memory: data the proxy cannot read (policy.passthrough decides)
    try:
        for number, _, value in fields(buf):
            if not isinstance(value, memoryview):
                continue  # every field read here is length-delimited; another wire type is an unknown field
            if number == 1:
                model = _text(value)
            elif number == 2:
                version = _text(value)
            elif number == 4:
                key, text = _parameter(value)
                if key == LABELS_PARAMETER:
                    if text is None:
                        raise InvalidRequest(f"parameter {LABELS_PARAMETER!r} must be a string_param")
                    labels = labels + labels_parameter(text)
                elif text and key not in FRAMING_PARAMETERS:  # a backend reads them (`parameter_strings`)
                    texts.append(text)
            elif number == 5:
                datatype, in_shared = _tensor(value, texts, digest)
                datatypes.append(datatype)
                shared = shared or in_shared
                seen = True
            elif number == 6:
                shared = shared or _output_in_shared_memory(value)
            elif number == 7:
                digest.update(value)
                seen = True
                raws.append(value)
    except WireError as exc:
        raise InvalidRequest(f"ModelInferRequest is not a valid protobuf message: {exc}") from None
    whole = _raw_strings(raws, datatypes, texts)
    if not model:
        raise InvalidRequest("model_name is required", param="model_name")
    check_version(version)
    add_decoded_texts(texts, 0)  # every text here is a tensor's: MLServer may decode any (base64, JSON)
    return Request(model, "infer", False, tuple(texts), (), labels, version or None,
                   "sha256:" + digest.hexdigest() if seen and not shared else None, opaque=shared,
                   unscanned=not whole)  # fmt: skip


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


class ReplyObserver:
    """Fills an Outcome from ModelInferResponse bytes (or ModelStreamInferResponse, field 2 of it)."""

    __slots__ = ("_digest", "_seen", "_text", "detectors", "outcome")
    ended = False

    def __init__(self, outcome: Outcome, detectors: Detectors, capture: bool) -> None:
        self.outcome = outcome
        self.detectors = detectors
        self._text = OutputText(outcome, detectors, capture)
        self._digest = hashlib.sha256()
        self._seen = False

    def head(self, status: int, header: Header) -> None:
        pass

    def body(self, data: bytes) -> None:
        self._response(memoryview(data))

    def stream_message(self, data: bytes) -> str | None:
        """One ModelStreamInferResponse; returns its error_message, if any."""
        error = None
        try:
            for number, _, value in fields(memoryview(data)):
                if number == 1:
                    error = _text(value) or None
                elif number == 2 and isinstance(value, memoryview):
                    self._response(value)
        except WireError:
            pass
        return error

    def chunk(self, data: bytes) -> None:
        self.stream_message(data)

    def _response(self, buf: memoryview) -> None:
        model = version = rid = ""
        texts: list[str] = []
        datatypes: list[str] = []
        raws: list[memoryview] = []
        try:
            for number, _, value in fields(buf):
                if number == 1:
                    model = _text(value)
                elif number == 2:
                    version = _text(value)
                elif number == 3:
                    rid = _text(value)
                elif number == 5 and isinstance(value, memoryview):
                    datatypes.append(_tensor(value, texts, self._digest)[0])
                    self._seen = True
                elif number == 6 and isinstance(value, memoryview):
                    self._digest.update(value)
                    self._seen = True
                    raws.append(value)
        except WireError:
            return
        observe_reply_meta(self.outcome, model, version, rid)

        def read(out: list[str]) -> bool:
            out.extend(texts)  # the tensors' bytes_contents, read on the walk; then their raw contents
            return _raw_strings(raws, datatypes, out)

        self._text.add_tensors(read)

    def finish(self) -> None:
        self._text.finish(self.detectors)
        self.outcome.output_digest = "sha256:" + self._digest.hexdigest() if self._seen else None


_TARGETS = {
    MODEL_INFER: Target("infer"),
    MODEL_STREAM_INFER: Target("infer", stream=True),
    **{SERVICE + m: Target("metadata", carries_data=False) for m in _DATA_FREE},
}


class Adapter:
    """OIP v2 over gRPC: ModelInfer and ModelStreamInfer (one stream is one call); health and metadata
    RPCs carry no data (`read` gives the model they name, for routing)."""

    __slots__ = ()
    name: ProtocolName = "oip-grpc"
    dialect = "oip"
    status_attribute = "rpc.grpc.status_code"

    def match(self, method: str, path: str) -> Target | None:
        return _TARGETS.get(path)

    def read(self, target: Target, body: bytes, header: Header) -> Request:
        if not target.carries_data:
            return Request(read_model_name(body), target.operation)
        if target is PASSTHROUGH:  # decided before its messages are read, which it never is: opaque
            return Request("", "passthrough", opaque=True)
        return read_infer_request(body)

    def merge(self, listings: list[Any]) -> bytes:
        raise NotImplementedError("OIP gRPC has no merged listing")

    def observer(self, target: Target, outcome: Outcome, detectors: Detectors, capture: bool) -> ReplyObserver | None:
        return None if target is PASSTHROUGH else ReplyObserver(outcome, detectors, capture)


ADAPTER = Adapter()

"""The Open Inference Protocol v2 (KServe, Triton, MLServer): extraction shared by REST and gRPC.

REST bodies are JSON, optionally followed by binary tensor data (the binary-tensor extension, with the
JSON length in `Inference-Header-Content-Length`). Labels may ride in the request parameter
`data_labels` (a comma-separated string or a list). BYTES tensors are scanned as text; the digest covers
the tensor data (JSON `data` values and the binary section), not the framing.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import struct
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson

from proxy.config import Upstream
from proxy.detectors import Detectors
from proxy.errors import InvalidRequest
from proxy.flow import UPSTREAM, Checkpoint, Outcome, ProtocolName
from proxy.protocols import Fetch, Header, OutputText, Request, Target, load_request_json

HEADER_LENGTH = "Inference-Header-Content-Length"
LABELS_PARAMETER = "data_labels"
# a tensor parameter naming a shared-memory region that holds the tensor's data (Triton's extension): data the
# proxy cannot read, so such a call is opaque, as a path no adapter reads (policy.passthrough decides)
SHARED_MEMORY = "shared_memory_region"
_MAX_SCAN_STRINGS = 10_000


def split_path(path: str) -> tuple[str, str | None, str] | None:
    """`/v2/models/{name}[/versions/{v}][/rest]` -> (name, version, rest); None for other paths."""
    if not path.startswith("/v2/models/"):
        return None
    parts = path[len("/v2/models/") :].split("/")
    name = parts[0]
    if not name:
        return None
    version = None
    rest = parts[1:]
    if len(rest) >= 2 and rest[0] == "versions":
        version, rest = rest[1], rest[2:]
    return name, version, "/".join(rest)


def labels_parameter(value: Any) -> tuple[str, ...]:
    """The `data_labels` parameter as a tuple of labels (grammar is checked by the caller)."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(v.strip() for v in value if v.strip())
    raise InvalidRequest(
        f"parameter {LABELS_PARAMETER!r} must be a string or a list of strings", param=LABELS_PARAMETER
    )


def _strings(data: Any, out: list[str]) -> bool:
    """Every string in (nested lists of) tensor data, in order; iterative, so no nesting is too deep.
    False when some were left past `_MAX_SCAN_STRINGS`."""
    stack = [data]
    while stack and len(out) < _MAX_SCAN_STRINGS:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return not stack


BYTES_SCANNED = 1 << 20  # bytes of each BYTES tensor read for detectors (the rest is forwarded unscanned)


def bytes_tensor_strings(raw: bytes | memoryview, out: list[str]) -> bool:
    """Decode a raw BYTES tensor (each element: 4-byte little-endian length, then the bytes), at most
    `BYTES_SCANNED` bytes of it; False when some of it was left unread (the call is then labelled
    `scan:truncated`). Contents that do not split into such elements are an InvalidRequest: bytes past
    the last whole element would reach the model unscanned."""
    offset, end, budget, whole = 0, len(raw), BYTES_SCANNED, True
    while offset + 4 <= end:
        if budget <= 0 or len(out) >= _MAX_SCAN_STRINGS:
            return False  # the rest is forwarded unread, and said to be
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > end:
            break
        taken = min(length, budget)
        out.append(str(raw[offset : offset + taken], "utf-8", "replace"))
        budget -= taken
        whole = whole and taken == length
        offset += length
    if offset == end:
        return whole
    raise InvalidRequest("a BYTES tensor's contents do not split into elements (a 4-byte little-endian length, "
                         "then that many bytes)", param="raw_input_contents")  # fmt: skip


def _tensor_digest(tensors: Iterable[dict[str, Any]], binary: bytes) -> str | None:
    """`sha256:` over the tensors' JSON data, then the binary section; InvalidRequest for data nested
    deeper than any tensor (orjson stops at 255 levels)."""
    h = hashlib.sha256()
    seen = False
    for tensor in tensors:
        if "data" in tensor:
            try:
                h.update(orjson.dumps(tensor["data"]))
            except TypeError:
                raise InvalidRequest("tensor data is nested too deeply to be a tensor", param="data") from None
            seen = True
    if binary:
        h.update(binary)
        seen = True
    return "sha256:" + h.hexdigest() if seen else None


def _json_part(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    try:
        length = int(header_length)
    except ValueError:
        raise InvalidRequest(f"{HEADER_LENGTH} must be a number") from None
    if not 0 <= length <= len(body):
        raise InvalidRequest(f"{HEADER_LENGTH} ({length}) exceeds the body ({len(body)} bytes)")
    return body[:length], body[length:]


def read_rest_request(model: str, version: str | None, body: bytes, header_length: str | None) -> Request:
    head, binary = _json_part(body, header_length)
    data = load_request_json(head, "inference request")
    inputs = data.get("inputs")
    if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
        raise InvalidRequest("'inputs' is required and must be a list of tensors", param="inputs")
    parameters = data.get("parameters")
    labels = labels_parameter(parameters.get(LABELS_PARAMETER)) if isinstance(parameters, dict) else ()
    declared = sum(size for size in map(_binary_size, inputs) if size is not None)
    if declared != len(binary):
        raise InvalidRequest(f"the inputs' binary_data_size add up to {declared} bytes, but {len(binary)} bytes "
                             f"follow the JSON ({HEADER_LENGTH}): each byte must belong to exactly one input",
                             param="binary_data_size")  # fmt: skip
    texts: list[str] = []
    whole = _tensor_texts(inputs, binary, texts)
    outputs = data.get("outputs")
    shared = any(_in_shared_memory(t) for t in (*inputs, *(outputs if isinstance(outputs, list) else ())))
    return Request(model, "infer", False, tuple(texts), (), labels, version,
                   None if shared else _tensor_digest(inputs, binary), opaque=shared, unscanned=not whole)  # fmt: skip


def _in_shared_memory(tensor: Any) -> bool:
    parameters = tensor.get("parameters") if isinstance(tensor, dict) else None
    return isinstance(parameters, dict) and SHARED_MEMORY in parameters


def _tensor_texts(tensors: list[dict[str, Any]], binary: bytes, texts: list[str]) -> bool:
    """The strings of BYTES tensors, from JSON `data` or from the binary section: with the binary-tensor
    extension each tensor's `parameters.binary_data_size` bytes follow the JSON in tensor order, BYTES
    elements each a 4-byte little-endian length and the bytes (as tritonclient sends by default).
    Into `texts`; False when some of it was past a scan limit."""
    whole = True
    offset = 0
    for tensor in tensors:
        size = _binary_size(tensor)
        is_bytes = tensor.get("datatype") == "BYTES"
        if size is not None:
            if is_bytes:
                whole = bytes_tensor_strings(memoryview(binary)[offset : offset + size], texts) and whole
            offset += size
        elif is_bytes:
            if _parameters(tensor).get("content_type") == "base64":  # MLServer's codec: its model reads it decoded
                encoded: list[str] = []
                whole = _strings(tensor.get("data"), encoded) and whole
                for text in encoded:  # decoded, and as sent: a server that ignores content_type reads that
                    texts.append(text)
                    decoded = _unbase64(text)
                    if decoded != text:
                        texts.append(decoded)
            else:
                whole = _strings(tensor.get("data"), texts) and whole
    return whole


def _parameters(tensor: dict[str, Any]) -> dict[str, Any]:
    parameters = tensor.get("parameters")
    return parameters if isinstance(parameters, dict) else {}


def _unbase64(text: str) -> str:
    """A base64 element as the text it encodes, decoded as MLServer's codec does (`base64.b64decode`:
    characters outside the alphabet are dropped, so `dG86\nIGFs…` is still an address); as it is when it
    does not decode (then that is what the model is given)."""
    try:
        return binascii.a2b_base64(text.encode("utf-8", "surrogateescape")).decode("utf-8", "replace")
    except ValueError:
        return text


def _binary_size(tensor: dict[str, Any]) -> int | None:
    """`parameters.binary_data_size`: the bytes of the binary section that are this tensor's; None when
    its data is in the JSON."""
    parameters = tensor.get("parameters")
    size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None


class RestReplyObserver:
    """Fills an Outcome from an OIP REST inference reply (JSON, optionally with binary outputs)."""

    __slots__ = ("_header_length", "_text", "detectors", "outcome")
    ended = False

    def __init__(self, outcome: Outcome, detectors: Detectors, capture: bool, header_length: str | None) -> None:
        self.outcome = outcome
        self.detectors = detectors
        self._text = OutputText(outcome, detectors, capture)
        self._header_length = header_length

    def head(self, status: int, header: Header) -> None:
        self._header_length = header(HEADER_LENGTH.lower())

    def body(self, data: bytes) -> None:
        try:
            head, binary = _json_part(data, self._header_length)
            reply = orjson.loads(head)
        except (InvalidRequest, orjson.JSONDecodeError):
            return
        if not isinstance(reply, dict):
            return
        observe_reply_meta(self.outcome, reply.get("model_name"), reply.get("model_version"), reply.get("id"))
        found = reply.get("outputs")
        outputs = [o for o in found if isinstance(o, dict)] if isinstance(found, list) else []
        self._text.add_tensors(functools.partial(_tensor_texts, outputs, binary))
        try:
            self.outcome.output_digest = _tensor_digest(outputs, binary)
        except InvalidRequest:
            self.outcome.output_digest = None  # not a tensor the proxy can digest; forwarded all the same

    def chunk(self, data: bytes) -> None:
        """OIP REST has no streamed inference; a chunked reply is observed when whole."""

    def finish(self) -> None:
        digest = self.outcome.output_digest
        self._text.finish(self.detectors)
        if digest:
            self.outcome.output_digest = digest


def observe_reply_meta(outcome: Outcome, model: Any, version: Any, reply_id: Any) -> None:
    if isinstance(model, str) and model:
        outcome.response_model = f"{model}:{version}" if isinstance(version, str) and version else model
        outcome.extra["lineage.model.version"] = version if isinstance(version, str) else ""
    if isinstance(reply_id, str) and reply_id:
        outcome.response_id = reply_id


class Adapter:
    """OIP v2 REST inference: POST /v2/models/{name}[/versions/{v}]/infer."""

    __slots__ = ()
    name: ProtocolName = "oip"
    dialect = "oip"
    status_attribute = "http.response.status_code"

    def merge(self, listings: list[Any]) -> bytes:
        raise NotImplementedError("OIP REST has no merged listing")

    def match(self, method: str, path: str) -> Target | None:
        if method != "POST":
            return None
        parts = split_path(path)
        if parts is None or parts[2] != "infer":
            return None
        return Target("infer", parts[0], parts[1])

    def read(self, target: Target, body: bytes, header: Header) -> Request:
        return read_rest_request(target.model, target.version, body, header(HEADER_LENGTH.lower()))

    def observer(self, target: Target, outcome: Outcome, detectors: Detectors, capture: bool) -> RestReplyObserver:
        return RestReplyObserver(outcome, detectors, capture, None)


class ModelVersions:
    """OIP model metadata: model -> the versions it serves; no version asked means the latest
    (Triton's and MLServer's default version policy)."""

    __slots__ = ("_versions",)

    def __init__(self, versions: dict[str, tuple[str, ...]]) -> None:
        self._versions = versions

    def resolve(self, model: str, version: str | None) -> Checkpoint | None:
        versions = self._versions.get(model)
        if versions is None:
            return None
        if version:
            return Checkpoint(oip_checkpoint(model, version), UPSTREAM) if version in versions else None
        latest = latest_version(versions)
        return Checkpoint(oip_checkpoint(model, latest), UPSTREAM) if latest else None


def latest_version(versions: Iterable[str]) -> str | None:
    """The highest version, numerically when the versions are numbers."""
    items = [v for v in versions if v]
    if not items:
        return None
    numeric = [v for v in items if v.isdigit()]
    return max(numeric, key=int) if numeric else max(items)


def oip_checkpoint(model: str, version: str | None) -> str:
    return f"{model}:{version}" if version else model


class Dialect:
    """`GET /v2/models/{name}` over REST, or ModelMetadata over gRPC, for each model asked about."""

    async def discover(self, upstream: Upstream, fetch: Fetch, models: frozenset[str]) -> ModelVersions:
        grpc_metadata = fetch.model_metadata if upstream.grpc else None
        get: Callable[[str], Awaitable[Any]]
        if grpc_metadata is not None:

            async def get(model: str) -> Any:
                return await grpc_metadata(upstream, model)

            if not models:
                try:
                    await grpc_metadata(upstream, "")  # a liveness probe: any answer will do
                except LookupError:
                    pass
        else:
            await fetch.get_json(upstream, "/v2/health/ready")

            async def get(model: str) -> Any:
                return await fetch.get_json(upstream, f"/v2/models/{model}")

        found: dict[str, tuple[str, ...]] = {}
        for model in sorted(models):
            try:
                meta = await get(model)
            except LookupError:
                continue  # the upstream does not serve it (yet); not an outage
            versions = meta.get("versions") if isinstance(meta, dict) else None
            if isinstance(versions, list):
                found[model] = tuple(str(v) for v in versions)
        return ModelVersions(found)


ADAPTER = Adapter()
DIALECT = Dialect()

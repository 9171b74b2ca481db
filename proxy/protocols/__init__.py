"""Protocol adapters: how to read a call and its reply in each wire protocol (no sockets here).

An adapter matches a request (HTTP method and path, or a gRPC method), reads its body into a `Request`
(what the policy and recorder need), names its operation, and makes the observer that fills an Outcome
from the reply, whole or chunk by chunk. A dialect is what an upstream speaks (`upstreams[].protocol`)
and knows how to read that upstream's metadata for checkpoint discovery. Both live in tables here
(`ADAPTERS`, `DIALECTS`), so transports, checkpoints and spans never compare protocol names: a new wire
protocol is one module and one line in each table.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from proxy.config import Upstream
from proxy.detectors import TRUNCATED, Detectors, StreamScanner
from proxy.errors import InvalidRequest
from proxy.flow import Checkpoint, Outcome, ProtocolName


@dataclass(frozen=True, slots=True)
class Request:
    """What an adapter read from one request body."""

    model: str
    operation: str
    stream: bool = False
    texts: tuple[str, ...] = ()  # the content to scan and digest, in order
    params: tuple[tuple[str, Any], ...] = ()
    labels: tuple[str, ...] = ()  # labels carried in the body (OIP `data_labels` parameter)
    version: str | None = None
    digest: str | None = None  # set when the adapter digests something other than `texts`
    opaque: bool = False  # the adapter forwards the body unread (passthrough)
    unscanned: bool = False  # part of the content was past a scan limit: labelled `scan:truncated`


# keys whose strings are framing, not data: roles, ids, types, enums, and binary payloads (images, audio,
# files as base64) that text detectors cannot read
FRAMING_KEYS = frozenset(
    {
        "role", "type", "id", "tool_call_id", "tool_use_id", "call_id", "model", "status", "object",
        "image_url", "input_audio", "file", "file_id", "source", "url", "detail", "format", "cache_control",
        "media_type", "mime_type", "encoding_format",
    }
)  # fmt: skip
MAX_STRINGS = 10_000


_KEY_TOKEN = re.compile(rb'"\s*:')
_SPACED_KEY = re.compile(rb'"\s+:')


def load_request_json(body: bytes, what: str = "request body") -> dict[str, Any]:
    """Parse a request body that must be a JSON object. Duplicate keys are refused: parsers disagree on
    which one wins (Python and orjson keep the last, others the first), so the body the proxy decides
    on could differ from the body the upstream reads."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequest(f"{what} must be a JSON object")
    # Every key is a string followed by ':'. Inside a string value a quote is always escaped, so '":'
    # there is '\":' (tool-call arguments and tool results are JSON in strings). Counted in C: when the
    # '":' that are not '\":' are exactly the keys parsed, no key was dropped. That holds unless a key
    # ends in an escaped backslash ('\\":') or has space before its colon, so a body with '\\"' or
    # '" :' in it, or where the counts differ (a duplicate), is parsed again, slowly, to tell.
    keys = _count_keys(data)
    fast = body.count(b'":') - body.count(b'\\":') == keys and b'\\\\"' not in body and _SPACED_KEY.search(body) is None
    if not fast and len(_KEY_TOKEN.findall(body)) != keys:
        try:
            json.loads(body, object_pairs_hook=_no_duplicates)
        except _Duplicate as exc:
            raise InvalidRequest(f"{what}: key {exc.args[0]!r} appears twice in one object") from None
    return data


class _Duplicate(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _Duplicate(key)
        found[key] = value
    return found


def _count_keys(value: Any) -> int:
    """Keys in every object of a parsed JSON value (orjson gives exact dicts and lists: `type() is`)."""
    count = 0
    stack = [value]
    pop, push = stack.pop, stack.append
    while stack:
        item = pop()
        if type(item) is dict:
            count += len(item)
            children: Iterable[Any] = item.values()
        else:
            kinds = set(map(type, item))  # in C: a list of numbers (a tensor) is not walked in Python
            if dict not in kinds and list not in kinds:
                continue
            children = item
        for child in children:
            kind = type(child)
            if kind is dict or kind is list:
                push(child)
    return count


def user_strings(value: Any, out: list[str]) -> bool:
    """Every user-data string in a JSON value, in document order: message text, tool-call arguments,
    tool outputs, documents, queries. Everything but `FRAMING_KEYS` is scanned, so a field the proxy
    does not know yet is scanned, not skipped. Iterative: no nesting is too deep. At most `MAX_STRINGS`
    are taken: False when some were left (the adapter marks the request `unscanned`)."""
    if type(value) is str:
        if value:
            out.append(value)
        return True
    stack = [value]
    pop, push, add = stack.pop, stack.append, out.append
    while stack and len(out) < MAX_STRINGS:
        item = pop()
        if type(item) is dict:
            children: list[Any] = [v for k, v in item.items() if k not in FRAMING_KEYS or _text_source(k, v)]
        elif type(item) is list:
            children = item
        else:
            continue
        for child in reversed(children):
            kind = type(child)
            if kind is str:
                if child:
                    push(child)
            elif kind is dict or kind is list:
                push(child)
        while stack and type(stack[-1]) is str:  # strings in document order, as they come off the stack
            add(pop())
    return not any(map(_holds_text, stack))  # what is left over may hold no text at all


def _holds_text(value: Any) -> bool:
    found: list[str] = []
    user_strings(value, found)
    return bool(found)


def _text_source(key: str, value: Any) -> bool:
    """A document's `source` that is text, not a file (Anthropic: `{"type": "text", "data": ...}` or
    `{"type": "content", "content": [blocks]}`): data to scan, though other sources are binary or links."""
    return key == "source" and type(value) is dict and value.get("type") in ("text", "content")


def text_digest(texts: tuple[str, ...] | list[str]) -> str | None:
    """`sha256:<hex>` of the content: the text pieces in order, each followed by a newline."""
    if not texts:
        return None
    h = hashlib.sha256()
    for text in texts:
        h.update(text.encode("utf-8", "surrogatepass"))
        h.update(b"\n")
    return "sha256:" + h.hexdigest()


def bytes_digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
    return "sha256:" + h.hexdigest()


@dataclass(frozen=True, slots=True)
class Target:
    """What an adapter's `match` found in the request line: the operation, and what the path names."""

    operation: str
    model: str = ""
    version: str | None = None
    carries_data: bool = True  # False: metadata, health, listings; only the caller's key is checked
    stream: bool = False  # gRPC: a streaming RPC (one stream is one call)
    listing: bool = False  # the answer is every upstream's listing merged (`Adapter.merge`)


# a header by lower-case name, None when absent (HTTP headers, gRPC metadata)
Header = Callable[[str], str | None]


class Observer(Protocol):
    """Watches a reply go by and fills the call's Outcome. Observing never fails forwarding: an
    observer ignores what it cannot read."""

    @property
    def ended(self) -> bool:
        """True once the reply's last event went by (SSE `data: [DONE]`): the record can be made
        before the client has that event, even if the upstream's body has not ended yet."""
        ...

    def head(self, status: int, header: Header) -> None: ...

    def body(self, data: bytes) -> None: ...

    def chunk(self, data: bytes) -> None: ...

    def finish(self) -> None: ...


class Adapter(Protocol):
    """One wire protocol as the ingresses see it."""

    @property
    def name(self) -> ProtocolName: ...

    @property
    def status_attribute(self) -> str:
        """The span attribute for the reply's status (`http.response.status_code`, ...)."""
        ...

    def match(self, method: str, path: str) -> Target | None: ...

    def read(self, target: Target, body: bytes, header: Header) -> Request:
        """Read one request body; malformed input is an InvalidRequest naming what is wrong."""
        ...

    def observer(self, target: Target, outcome: Outcome, detectors: Detectors, capture: bool) -> Observer | None: ...

    @property
    def dialect(self) -> str:
        """The upstream protocol (`upstreams[].protocol`) this adapter's calls are served by."""
        ...

    def merge(self, listings: list[Any]) -> bytes:
        """One listing from several upstreams' (for `Target.listing`)."""
        ...


GetJson = Callable[[Upstream, str], Awaitable[Any]]
GetModelMetadata = Callable[[Upstream, str], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Fetch:
    """How discovery reaches an upstream's metadata: supplied by the transports that own the sockets."""

    get_json: GetJson
    model_metadata: GetModelMetadata | None = None


class MetadataStatus(LookupError):
    """The upstream answered a metadata request, but not with 2xx (404: it does not serve that)."""

    def __init__(self, status: int, what: str) -> None:
        super().__init__(f"HTTP {status} for {what}")
        self.status = status


class Catalog(Protocol):
    """What one upstream serves, as its metadata says."""

    def resolve(self, model: str, version: str | None) -> Checkpoint | None: ...


class Dialect(Protocol):
    """What an upstream speaks (`upstreams[].protocol`): how to learn which checkpoints it serves."""

    async def discover(self, upstream: Upstream, fetch: Fetch, models: frozenset[str]) -> Catalog:
        """Read the upstream's metadata (raises when the upstream is unreachable); `models` are the
        model names routes and traffic asked about."""
        ...


class OutputText:
    """Incremental digest, detection and (optional) capture of reply text as it passes."""

    __slots__ = ("_capture", "_hash", "_scanner", "_seen", "_unread", "outcome")

    def __init__(self, outcome: Outcome, detectors: Detectors, capture: bool) -> None:
        self.outcome = outcome
        self._hash = hashlib.sha256()
        self._scanner: StreamScanner | None = detectors.stream() if detectors else None
        self._capture: list[str] | None = [] if capture else None
        self._seen = False
        self._unread = False

    def add(self, text: str) -> None:
        if not text:
            return
        self._seen = True
        self._hash.update(text.encode("utf-8", "surrogatepass"))
        if self._scanner is not None:
            self._scanner.feed(text)
        if self._capture is not None:
            self._capture.append(text)

    def unread(self) -> None:
        """Some of the reply's text was past a read limit: its labels say `scan:truncated`."""
        self._unread = True

    def add_tensors(self, read: Callable[[list[str]], bool]) -> None:
        """The strings of a reply's output tensors, each its own piece. `read` fills the list and says
        whether it read them all; BYTES that are not whole elements (InvalidRequest) keep those before."""
        texts: list[str] = []
        try:
            whole = read(texts)
        except InvalidRequest:
            whole = False
        if not whole:
            self.unread()
        for text in texts:
            self.add(text)
            self.end_piece()

    def end_piece(self) -> None:
        """Mark the end of one output (a choice); keeps digests of whole and streamed replies equal."""
        self._hash.update(b"\n")

    def finish(self, masker: Detectors | None = None) -> None:
        if self._seen:
            self.outcome.output_digest = "sha256:" + self._hash.hexdigest()
        if self._scanner is not None:
            found = frozenset(self._scanner.found)
            self.outcome.output_detected = found | {TRUNCATED} if self._unread else found
        if self._capture:
            text = "".join(self._capture)
            self.outcome.content = (masker.mask(text) if masker else text,)


def _tables() -> tuple[dict[ProtocolName, Adapter], tuple[Adapter, ...], tuple[Adapter, ...], Mapping[str, Dialect]]:
    from proxy.protocols import anthropic, oip, oip_grpc, openai, passthrough

    adapters: dict[ProtocolName, Adapter] = {
        "openai": openai.ADAPTER,
        "anthropic": anthropic.ADAPTER,
        "oip": oip.ADAPTER,
        "oip-grpc": oip_grpc.ADAPTER,
        "passthrough": passthrough.ADAPTER,
    }
    # in match order; passthrough matches anything
    http = (openai.ADAPTER, anthropic.ADAPTER, oip.ADAPTER, passthrough.ADAPTER)
    dialects: dict[str, Dialect] = {
        "openai": openai.DIALECT,
        "oip": oip.DIALECT,
        "passthrough": passthrough.DIALECT,
    }
    grpc = (oip_grpc.ADAPTER,)  # methods no adapter matches pass through as bytes
    return adapters, http, grpc, dialects


ADAPTERS, HTTP_ADAPTERS, GRPC_ADAPTERS, DIALECTS = _tables()

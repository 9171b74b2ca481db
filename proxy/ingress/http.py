"""The HTTP ingress: requests from `wire.py`'s connections, forwarded by the pooled upstream client.

It reads requests and writes replies; what a request means is its protocol adapter's business (matched
from `HTTP_ADAPTERS`, passthrough otherwise) and the call's life is an Exchange's. Bodies are read once
and forwarded as the original bytes; replies that stream (SSE, chunked, or larger than
`limits.buffer_max_bytes`) are written chunk by chunk as they arrive. A reply whose body is in memory
goes out in one write, head and body together; the record (spans, edges) is made after that write,
except a new flow's first edge, which is durable before the client has the reply's last byte.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import zlib
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import unquote

import orjson

from proxy.config import Upstream
from proxy.errors import (
    DrainCut,
    ExpectationFailed,
    InvalidRequest,
    LeftUnread,
    LengthRequired,
    ModelNotFound,
    ProxyError,
    RequestTooLarge,
    UpstreamTimeout,
    UpstreamUnavailable,
    echoed,
    origin_path,
)
from proxy.exchange import (
    CLIENT_GONE,
    CODINGS,
    DRAIN_CUT,
    READ_UNIDENTIFIED_MAX,
    UPSTREAM_INCOMPLETE,
    Exchange,
    zlib_header,
)
from proxy.flow import quoted_name
from proxy.ingress.wire import (
    FORWARD_PROXY_HINT,
    NO_PEER,
    HttpConnection,
    Request,
    connection_field,
    date_header,
    list_members,
    status_line,
)
from proxy.pipeline import Pipeline, PipelineRef
from proxy.policy import Policy
from proxy.protocols import HTTP_ADAPTERS, STREAM_ERROR, Adapter, Header, MetadataStatus, Target
from proxy.protocols.anthropic import x_api_key_path
from proxy.protocols.kserve import ADAPTER as KSERVE
from proxy.protocols.kserve import OPENAI_PREFIX as KSERVE_OPENAI
from proxy.protocols.kserve import openai_fields, openai_unprefixed
from proxy.protocols.oip import HEADER_FRAMING, TRACE_IDS, field_text
from proxy.protocols.openai import ADAPTER as OPENAI
from proxy.protocols.openai import IN_PATH
from proxy.protocols.passthrough import (
    DEPLOYMENTS,
    FILES_CALL,
    PROVIDER_FILES_CALL,
    PROVIDER_QUERY,
    index_flags_only,
    query_pairs,
)
from proxy.protocols.tgi import tgi_body
from proxy.transport import UpstreamClosed, UpstreamProtocolError
from proxy.transport.http11 import _LOWER, first_places, keep, lower_name
from proxy.transport.pool import Response as UpstreamResponse
from proxy.transport.pool import UpstreamPool

log = logging.getLogger("lineage_proxy.http")

# RFC 9110 §7.6.1 connection-specific fields, plus framing the proxy recomputes itself (lower-case, as bytes:
# header blocks pass through undecoded)
HOP_BY_HOP = frozenset(
    {
        b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"proxy-connection", b"te",
        b"trailer", b"transfer-encoding", b"upgrade", b"host", b"content-length", b"expect",
    }
)  # fmt: skip
# reply headers only the proxy may set: an upstream's own are dropped, never passed off as the proxy's. Its trace
# context too (`traceparent`, level 2's `traceresponse`): it names the upstream's span, or a trace of its own, where the
# reply's trace is the proxy's (`x-trace-id`)
OWNED = frozenset({b"x-data-labels", b"x-trace-id", b"traceparent", b"traceresponse"})
NO_BODY_STATUSES: Final = frozenset({204, 304})
# how an upstream fails mid-reply (a client that leaves is a ConnectionResetError from the writes)
_UPSTREAM_BROKE = (UpstreamClosed, UpstreamProtocolError, TimeoutError)

# what an admin endpoint answers: (status, content type, body), or None when the path is not one
Admin = Callable[[str], tuple[int, bytes, bytes] | None]


def _tokens(value: str | None) -> frozenset[bytes]:
    """The field names a Connection header lists (they are hop-by-hop too), lower-case. Kept by value: a
    peer sends the same one or two (`keep-alive`, `close`) on every message."""
    if not value:
        return _NO_TOKENS
    tokens = _TOKENS.get(value)
    if tokens is None:
        tokens = frozenset(t.strip().lower().encode("latin-1", "replace") for t in value.split(","))
        keep(_TOKENS, value, tokens, _TOKENS_VALUE_MAX, 64)
    return tokens


_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})  # the methods whose request carries a body here
_NO_TOKENS: Final[frozenset[bytes]] = frozenset()
_TOKENS: Final[dict[str, frozenset[bytes]]] = {}
_TOKENS_VALUE_MAX: Final = 256  # characters (bytes) of a Connection value kept


# what a caller says about where the call came from (the client's address, scheme, host): never passed on as it came.
# The upstream is told the connection's own (`HttpConnection.forwarded`): X-Forwarded-For the caller's list with the
# peer's address appended (none at all to an upstream whose model is handed the fields: `Upstream.fields_to_model`),
# X-Forwarded-Proto the listener's scheme; the others are dropped
CLIENT_CLAIMS = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-real-ip", b"forwarded"})
_XFF: Final = b"x-forwarded-for"

# what is never forwarded to the upstream: by (strips the caller's Authorization and authorization-bin, and its x-api-key too (where the
# proxy reads it: `x_api_key_path`), reads the reply), at `_not_forwarded`'s index (a tuple, not a dict keyed by a
# tuple of three: no tuple made and hashed a call)
_NOT_FORWARDED: Final = tuple(
    HOP_BY_HOP
    | CLIENT_CLAIMS
    | {b"traceparent"}
    | ({b"authorization", b"authorization-bin"} if strips else set())
    | ({b"x-api-key"} if strips and x_api_key else set())
    | ({b"accept-encoding"} if observe else set())
    for strips in (False, True)
    for x_api_key in (False, True)
    for observe in (False, True)
)


def _not_forwarded(strips: bool, x_api_key: bool, observe: bool) -> frozenset[bytes]:
    """The fields never forwarded (`_NOT_FORWARDED`) when the caller's key is held back (`strips`), its `x-api-key` is
    a key (`x_api_key`), the reply is read (`observe`)."""
    return _NOT_FORWARDED[(4 if strips else 0) + (2 if x_api_key else 0) + (1 if observe else 0)]


_TRACESTATE: Final = frozenset({b"tracestate"})
# fields that say how the body forwarded as it came is to be read: a Connection header may not make them hop-by-hop
_DESCRIBE_BODY: Final = frozenset({b"content-encoding", b"content-type", b"inference-header-content-length"})
# what is never passed back from the upstream: framing, and what only the proxy may say
_NOT_RETURNED: Final = HOP_BY_HOP | OWNED
_DOT_SEGMENT = re.compile(r"/\.\.?(?:/|$)")  # in the percent-decoded path
_NOT_AN_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")  # a '%' without the two hex digits of an escape (RFC 3986)


# the operations whose handlers LiteLLM proxy gives a `model` argument, read from the query where the path names none
_MODEL_IN_QUERY: Final = frozenset({"chat", "text_completion", "embeddings"})


def _query_refused(adapter: Adapter, target: Target, request_target: str, path: str) -> str:
    """Why a call's query is refused, or "": one naming what the server runs in place of what the proxy decided on,
    read as FastAPI reads it (`query_pairs`): the handler's argument the path does not hold comes from the query. So
    an OIP model's path with `?model_version=1` (`/v2/models/{name}/infer`) runs version 1 on MLServer; and a chat,
    completion or embeddings call of OpenAI's whose body names its model (`/v1/chat/completions`, `/chat/completions`,
    ...) with `?model=m` runs `m` on LiteLLM proxy (`chat_completion(request, ..., model=None)`: `data["model"] = ...
    or model or data.get("model")`, its last value, where not empty), not the body's (until review revpaths15 the body's
    was judged, the query's run). A route naming the model in its path (`openai.IN_PATH`) takes it from the path, and
    no server on it reads a `model_version` (LiteLLM's and Azure OpenAI's handlers take none): its query goes on
    (until 2026-12-07 refused in MLServer's words, helper models16); so does the Responses API's `?model=` (LiteLLM's
    `responses_api` takes no `model` argument: it runs the body's). So does a `model_version` on a deployment's media
    path (`passthrough.DEPLOYMENTS`, its model the path's: LiteLLM's and Azure's handlers again; refused in MLServer's
    words until review revmodels16). `path` is the target's, percent-decoded, as Starlette routes it."""
    if target.model:
        if (adapter is not IN_PATH and not path.startswith(DEPLOYMENTS)
                and any(key == "model_version" for key, _ in query_pairs(request_target))):  # fmt: skip
            return ("the query may not name a model_version: MLServer runs the version it names, not the one the path "
                    "names (or the latest), which is the one decided on")  # fmt: skip
        return ""
    if (adapter is OPENAI and target.operation in _MODEL_IN_QUERY
            and any(key == "model" and value for key, value in query_pairs(request_target))):  # fmt: skip
        return ("the query may not name a model: LiteLLM proxy runs the model it names, not the body's 'model', which "
                "is the one decided on (name it in the body)")  # fmt: skip
    # LiteLLM proxy's file upload, batch creation and skill upload, which the proxy does not read
    # (`passthrough.MODEL_HEADER`): the query's `model` names the model that stores the file or runs the batch's calls;
    # the path as Starlette routes it, percent-decoded (`/v1/fil%65s` is `/v1/files`: until review revmodels16 it was
    # matched undecoded, and went on), with a trailing slash too (`passthrough.FILES_CALL`: Starlette answers
    # `/v1/skills/?model=m` 307 to `/v1/skills?model=m`, which a client follows; until 2026-12-07 forwarded, helper
    # models17)
    files = target is FILES_CALL or target is PROVIDER_FILES_CALL
    if not files and not (target.operation == "passthrough" and target.carries_data):
        return ""
    named = {key for key, value in query_pairs(request_target) if value}  # (the query read once for all three)
    if files and "model" in named:
        return ("the query may not name a model on a path lineage-proxy does not read: LiteLLM proxy stores a file, or "
                "runs a batch's calls, on the model it names, which no route's rules judge here; leave it out")  # fmt: skip
    # nor a provider by its `provider`: LiteLLM proxy's file upload and batch creation take a `provider` argument, the
    # path's on `/{provider}/v1/files` (`passthrough.PROVIDER_FILES_CALL`) and, FastAPI's way, the query's on
    # `/v1/files` and `/v1/batches`, before the header, the query's and the body's `custom_llm_provider` (until review
    # revmodels17 forwarded)
    if files and "provider" in named:
        return ("the query may not name a provider (provider) on a path lineage-proxy does not read: LiteLLM proxy "
                "stores a file, or runs a batch's calls, at the provider it names, which no route's rules judge here; "
                "leave it out")  # fmt: skip
    # and on any call it does not read, the query's provider, as its `custom-llm-provider` header
    # (`passthrough.PROVIDER_HEADER`): LiteLLM proxy's files, containers and videos routes read it
    # (`get_custom_llm_provider_from_request_query`) and run the call at that provider's API (until 2026-12-07
    # forwarded, helper models17)
    if PROVIDER_QUERY in named and target.operation == "passthrough" and target.carries_data:
        return (f"the query may not name a provider ({PROVIDER_QUERY}) on a path lineage-proxy does not read: LiteLLM "
                "proxy runs the call, or stores its file, at the provider it names, which no route's rules judge here; "
                "leave it out")  # fmt: skip
    return ""


def forward_fields(
    request: Request,
    ex: Exchange,
    api_key: str | None,
    observe: bool,
    forwarded: tuple[bytes, bytes, bytes] = NO_PEER,
    told: bool = True,
    kept: HttpConnection | None = None,
) -> list[bytes]:
    """The request's header block as the upstream gets it, in pieces (`ConnectionPool._head` joins them once, with the
    request line and a small body): the fields as sent (bytes, never decoded
    and encoded again) less hop-by-hop ones, the caller's key and its claims of where it came from (`CLIENT_CLAIMS`),
    then the proxy's own: X-Forwarded-For and X-Forwarded-Proto from `forwarded` (the connection's, made once for it:
    `HttpConnection.forwarded`), the caller's X-Forwarded-For list before the peer's address, as nginx's
    `$proxy_add_x_forwarded_for` does, so a server that takes the rightmost entry it does not trust gets the real one.
    Not `told` (an upstream whose model is handed the fields, `Upstream.fields_to_model`): no X-Forwarded-For at all,
    the caller's list nor the peer's address, which would reach the model as data.
    The caller's key is held back once callers have keys, when the upstream has its own, and when the call is rerouted
    (`Exchange.rerouted`).
    A Connection header naming a field that describes the body (`_DESCRIBE_BODY`) is refused (InvalidRequest).
    `kept`: the connection the request came on, whose last head has its names' lower case (`field_lower`)."""
    skip = _not_forwarded(ex.pipeline.strips_auth or bool(api_key) or ex.rerouted(), ex.x_api_key, observe)
    listed = _tokens(request.header("connection"))
    # else the caller's list is hop-by-hop by its own word (the peer's address alone), or not told at all
    chain = told and _XFF not in listed
    if listed and not listed <= skip:
        if not listed.isdisjoint(_DESCRIBE_BODY):
            # the body is forwarded as it came: without the field that says how to read it the upstream reads other
            # content than the proxy decided on (gzip bytes as they are), yet RFC 9110 §7.6.1 has a listed field removed
            raise InvalidRequest(
                f"Connection: {echoed(request.header('connection') or '')} names a field that describes the body (Content-Encoding, "
                "Content-Type, Inference-Header-Content-Length): dropped as hop-by-hop, the upstream would read the body "
                "otherwise than lineage-proxy decided on it",
                param="connection",
            )
        skip = skip | listed
    if ex.trace.tracestate is None and request.header("tracestate") is not None:
        # the caller's trace was not joined (W3C: a tracestate alone is discarded), or its tracestate is not one the
        # span keeps (`kept_tracestate`: malformed, or past W3C's bounds): not forwarded either
        skip = skip | _TRACESTATE
    out: list[bytes] = []  # the pieces, joined once with the request line (no bytes made a field, nor a block)
    callers: list[bytes] | None = None  # the caller's X-Forwarded-For values
    for at, (name, value) in enumerate(request.headers):
        # the lower case kept by the connection the request came on (`HttpConnection.field_lower`), when given
        lower = lower_name(name) if kept is None else kept.field_lower(at, name)
        if lower not in skip:
            out.append(name)
            out.append(b": ")
            out.append(value)
            out.append(b"\r\n")
        elif lower == _XFF and chain and value:
            if callers is None:
                callers = [value]
            else:
                callers.append(value)
    if not told:
        out.append(forwarded[2])
    elif callers is None:
        out.append(forwarded[0])
    else:
        out.append(b"X-Forwarded-For: ")
        out.append(callers[0] if len(callers) == 1 else b", ".join(callers))
        out.append(forwarded[1])
    out.append(b"traceparent: ")
    out.append(ex.trace.traceparent().encode())
    out.append(b"\r\n")
    if api_key:
        out.append(f"Authorization: Bearer {api_key}\r\n".encode())
    if observe:
        out.append(b"Accept-Encoding: identity\r\n")  # the proxy reads replies to record them
    return out


def reply_fields(
    out: list[bytes], raw: list[tuple[bytes, bytes]], names: list[bytes], lineage: bytes, base: str | None,
    index: dict[bytes, int] | None = None,
) -> None:  # fmt: skip
    """The upstream's header block as the client gets it, added to `out` in pieces (the reply's head, and a small
    body, are joined once): its fields as received (`names`: theirs lower-case) less hop-by-hop ones (those its
    Connection fields name too, but for those that describe the body, `_DESCRIBE_BODY`) and those only the proxy may
    set (`x-lineage-*` and `OWNED`), then the lineage headers (`lineage`: `Exchange.lineage_fields`). A `Location` on the upstream itself (`base`: its URL) is made a path, so a client that follows a
    redirect comes back through the proxy, not around it to an address it should not know. `index`: each name's first
    place in `names` (`ReplyFields.index`), made here when not given."""
    if index is None:
        index = first_places(names)
    skip = _NOT_RETURNED
    if b"connection" in index and not _plain_connection(raw, names, index):
        listed = _connection_tokens(raw, names)
        if not listed <= skip:  # `keep-alive` and `close` are hop-by-hop already
            # less the fields that say how the body, passed on as it came, is read: dropped, a gzip body reached the
            # client as plain bytes (the proxy, which read it decoded, recorded what it held)
            skip = skip | (listed - _DESCRIBE_BODY if not listed.isdisjoint(_DESCRIBE_BODY) else listed)
    rebase = base if base and b"location" in index else None
    for i in range(len(raw)):
        lower = names[i]
        # (`startswith` is a method called with its arguments parsed: only for a name that may be one)
        if lower in skip or (len(lower) >= 10 and lower[1] == 45 and lower.startswith(b"x-lineage-")):
            continue
        name, value = raw[i]
        if rebase is not None and lower == b"location":
            value = _on_proxy(value, rebase)
        out.append(name)
        out.append(b": ")
        out.append(value)
        out.append(b"\r\n")
    out.append(lineage)


def _plain_connection(raw: list[tuple[bytes, bytes]], names: list[bytes], index: dict[bytes, int]) -> bool:
    """Whether a reply's Connection fields (it has one) are one field saying `keep-alive` or `close` alone, as an upstream
    says on every reply: its tokens, hop-by-hop already, drop nothing more, so they need not be read (`_connection_tokens`
    hashed the value and looked it up, a reply). `index` (each name's first place, `ReplyFields.index`) places it, and
    says when no name is on two fields, without a search of `names`."""
    value = raw[index[b"connection"]][1]
    if value != b"keep-alive" and value != b"close":
        return False
    return len(index) == len(names) or names.count(b"connection") == 1


def _connection_tokens(raw: list[tuple[bytes, bytes]], names: list[bytes]) -> frozenset[bytes]:
    """The tokens of a reply's Connection fields (`_tokens` of them decoded and joined), kept by their bytes: an
    upstream sends the same one (`keep-alive`) on every reply."""
    # (the caller saw one: `index` finds it; a list of them is made only for a reply that sends several)
    value = raw[names.index(b"connection")][1]
    if names.count(b"connection") > 1:
        value = b",".join([raw[i][1] for i in range(len(names)) if names[i] == b"connection"])
    tokens = _RAW_TOKENS.get(value)
    if tokens is None:
        # decoded as a whole as each value is alone: the ',' between them ends any byte sequence cut short
        tokens = _tokens(value.decode("utf-8", "surrogateescape"))
        keep(_RAW_TOKENS, value, tokens, _TOKENS_VALUE_MAX, 64)
    return tokens


_RAW_TOKENS: Final[dict[bytes, frozenset[bytes]]] = {}


def _on_proxy(location: bytes, base: str) -> bytes:
    """`location` as a path when it points at the upstream (`base`, its URL); as it is otherwise."""
    prefix = base.rstrip("/").encode("latin-1", "replace").lower()
    if not location.lower().startswith(prefix) or location[len(prefix) : len(prefix) + 1] not in (
        b"",
        b"/",
        b"?",
        b"#",
    ):
        return location
    rest = location[len(prefix) :]
    # one leading slash: `//host/x` (or `/\host/x`) is read by browsers as another host's address, and so
    # is `/\t/host/x`, as browsers drop tab, CR and LF anywhere in a URL
    return b"/" + rest.lstrip(b"/\\\t\r\n")


def _serving_upstream(pipeline: Pipeline, path: str) -> Upstream | None:
    """Where an OIP call that carries no data and names no model (`/v2/health/live`, `/v2/health/ready`, `/v2`, a
    `POST /v2/repository/index` without a body or with its flags only) goes when no '*' route says: the first `protocol: oip` upstream that
    speaks HTTP, as such a gRPC call (ServerLive, ServerReady, ServerMetadata, RepositoryIndex) goes to the first gRPC
    upstream. A config of named routes only answered
    tritonclient's `is_server_live()` and `is_server_ready()`, and a probe of `/v2/health/ready`, 404 `model_not_found`
    (so False), where the same calls over gRPC were answered. `GET /`, KServe V1's liveness (`{"status": "alive"}`,
    what KServe's `InferenceRESTClient.is_server_live()` asks over V1), likewise to the first `protocol: kserve` upstream.
    None for any other path: 404 as before."""
    if path == "/":
        protocol = "kserve"
    elif path == "/v2" or path.startswith("/v2/"):
        protocol = "oip"
    else:
        return None
    for upstream in pipeline.config.upstreams:
        if upstream.url is not None and upstream.protocol == protocol:
            return upstream
    return None


# the adapters whose servers hand the model the request's header fields (`_oip_header_text` reads them)
_HEADERS_TO_MODEL: Final = frozenset({"oip", "kserve"})
_OIP_FRAMING: Final = frozenset(name.encode() for name in HEADER_FRAMING)
_OIP_TRACE_IDS: Final = {name.encode(): re.compile(form.pattern.encode(), re.ASCII) for name, form in TRACE_IDS.items()}


def _trace_id(lower: bytes, value: bytes) -> bool:
    form = _OIP_TRACE_IDS.get(lower)
    return form is not None and form.fullmatch(value) is not None


def _oip_header_text(headers: list[tuple[bytes, bytes]]) -> str | None:
    """`oip.header_text` of a request's fields as received: names matched in their lower-case bytes (`lower_name`'s
    table), only the fields read decoded (most calls: a `User-Agent`, or none). A field its `Connection` field names is
    hop-by-hop, never forwarded (`forward_fields`): not read either."""
    known = _LOWER
    lines: list[str] | None = None
    read: list[bytes] = _NO_NAMES  # the names of `lines`, in step (made with it)
    connection: bytes | None = None  # (its value; most calls' say `keep-alive` or `close`, naming no other field)
    for name, value in headers:
        lower = known.get(name) or lower_name(name)
        if lower in _OIP_FRAMING:
            if lower == b"connection":
                connection = value if connection is None else connection + b"," + value
            continue
        if lower in _OIP_TRACE_IDS and _trace_id(lower, value):  # a trace id (`oip.TRACE_IDS`)
            continue
        if lines is None:
            lines, read = [], []
        text = field_text(value)
        lines.append(lower.decode("latin-1") + ": " + text)  # (not UTF-8: `scan:truncated`)
        read.append(lower)
        if not value.isascii():
            # and as MLServer hands its model the value, decoded as Latin-1 (Starlette's `request.headers`): a line of
            # its own, of the same name. Read as U+FFFD alone, a phone written with no-break spaces, `555\xa0123\xa04567`,
            # reached the model labelled `scan:truncated` only (before 2026-12-07); and a value that is UTF-8 too:
            # `alice×@example.com` is none, but its bytes in Latin-1 are `aliceÃ\x97@example.com`, an address
            lines.append(lower.decode("latin-1") + ": " + value.decode("latin-1"))
            read.append(lower)
    if lines is None:
        return None
    if connection is not None and connection not in _PLAIN_CONNECTION:
        listed = _tokens(connection.decode("latin-1"))
        if not listed <= _OIP_FRAMING:
            lines = [line for lower, line in zip(read, lines, strict=True) if lower not in listed]
            if not lines:
                return None
    return "\n".join(lines)


_NO_NAMES: Final[list[bytes]] = []  # (never appended to: `read` is a new list once a line is)
# Connection values that name no field but framing ones (`keep-alive`, `close`), as clients write them
_PLAIN_CONNECTION: Final = frozenset({b"keep-alive", b"Keep-Alive", b"close", b"Close"})


def _kserve_openai(request: Request, path: str) -> str:
    """A call on KServe's OpenAI prefix (`/openai/v1/chat/completions`, `kserve.openai_unprefixed`) made the same call
    without it: its target loses its first segment (kept as `request.base`), so the OpenAI adapter reads it; an
    upstream's url that holds `/openai` (README), or a `protocol: kserve` upstream (`_upstream_target`), puts it back.
    Its path, as the rest of the call reads it. Any other path as it is; and so is a prefix whose segment is not
    `openai` once decoded alone (`/openai%2Fv1/...`): a path no adapter reads."""
    unprefixed = openai_unprefixed(request.method, path)
    if unprefixed is None:
        return path
    raw = request.target
    end = raw.find("/", 1)
    if end < 0 or unquote(raw[:end]) != KSERVE_OPENAI:
        return path
    request.target = raw[end:]
    request.base = KSERVE_OPENAI
    return unprefixed


def _upstream_target(request: Request, adapter: Adapter, upstream: Upstream) -> str:
    """The target the upstream serves the call at. KServe's model server serves OpenAI's API under `/openai` alone
    (`/v1/chat/completions` is a 404 there): a `protocol: kserve` upstream gets an OpenAI call, made on `/v1` or on
    `/openai/v1`, and any call made on `/openai/v1` (`GET /openai/v1/models/{name}`, the OpenAI model's health, which
    V1 serves as readiness at `/v1/models/{name}`), at `/openai/v1/...`. Any other upstream, at the target as read
    (an OpenAI-compatible upstream's url holds the prefix when it needs one)."""
    if upstream.protocol != "kserve" or (not request.base and adapter.name != "openai"):
        return request.target
    return KSERVE_OPENAI + request.target


def _exchange(pipeline: Pipeline, method: str, path: str, header: Header) -> Exchange:
    """The call's Exchange, with the adapter whose path it is (the last one matches anything)."""
    for adapter in HTTP_ADAPTERS:
        target = adapter.match(method, path)
        if target is not None:
            return Exchange(pipeline, adapter, target, pipeline.trace(header), x_api_key=x_api_key_path(path))
    raise AssertionError("the passthrough adapter matches every path")


def shape_root(
    error: ProxyError, request: Request, path: str, pipeline: Pipeline, read_by: Adapter | None = None
) -> None:
    """`/` is TGI's compat route (huggingface_hub's `text_generation` posts there) and the root of other apps (a Ray
    Serve or BentoML app's): a refusal there is in TGI's error shape when the call is TGI's, and in OpenAI's otherwise
    (`ProxyError.shaped_as`). The call is TGI's when the adapter that read its body as a call (`read_by`) is TGI's
    (passthrough's for a body that is not); a body in that none read, refused before (its caller, its purpose, its
    JSON), when it is TGI's (`tgi_body`: TGI's `inputs`), parsed only up to `READ_UNIDENTIFIED_MAX` (a larger one an
    unknown caller sends is refused unparsed, and so is it shaped); else when the upstream `/` goes to (the route
    of a call naming no model) is TGI, as its metadata says (`/info`). (An absolute-form target's, refused, is its
    path's.)"""
    if path != "/" and (path[:1] == "/" or origin_path(path) != "/"):
        return
    body = request.received() if read_by is None else None
    if read_by is not None:
        tgi = read_by.provider == "tgi"
    elif body is not None and len(body) <= READ_UNIDENTIFIED_MAX:
        tgi = tgi_body(body)
    else:
        matched = pipeline.policy.route("")
        found = pipeline.runtime.book.resolve(matched[1], "", learn=False) if matched is not None else None
        tgi = found is not None and found.provider == "tgi"
    if not tgi:
        error.shaped_as = ""


class HttpIngress:
    """One per process: the request handler for the http listener."""

    def __init__(self, ref: PipelineRef, pool: UpstreamPool, admin: Admin | None = None) -> None:
        self.ref = ref
        self.pool = pool
        self.admin = admin

    async def handle(self, request: Request, conn: HttpConnection) -> None:
        method, path = request.method, request.path
        if method in ("GET", "HEAD") and self.admin is not None:
            answer = self.admin(path)
            if answer is not None:
                conn.reply(request, *answer)
                return
        if path.startswith(KSERVE_OPENAI):  # (a path no other API has: one test a call)
            path = _kserve_openai(request, path)
        pipeline = self.ref.current
        header = request.header
        ex = _exchange(pipeline, method, path, header)
        ex.key_memo = conn.key_memo
        if pipeline.client_address:
            ex.outcome.client = conn.client
        adapter, target = ex.adapter, ex.target
        # a failure is answered after its `except` block is left: a compiled coroutine awaiting inside one leaves
        # its exception as the thread's handled one while suspended, for other calls to meet (sys.exc_info,
        # `__context__`)
        failure: ProxyError | None = None
        internal = False
        try:
            if not request.target.startswith("/"):
                raise InvalidRequest(
                    "the request target must be a path (origin-form): lineage-proxy is not a forward proxy"
                    + FORWARD_PROXY_HINT
                )
            if "#" in request.target:  # servers drop it; matched with it, a call would miss the adapter that reads it
                raise InvalidRequest("the request target may not carry a fragment (#...): it is never sent to a server")
            if "%" in request.target and _NOT_AN_ESCAPE.search(request.target.partition("?")[0]):
                raise InvalidRequest("a '%' in the request path must begin an escape, two hex digits: servers read the "
                                     "others their own ways (cpp-httplib, llama.cpp's server, reads `%u0063` as 'c'), "
                                     "so the path decided on would not be the path served")  # fmt: skip
            if "/." in path and _DOT_SEGMENT.search(path):
                raise InvalidRequest("the request path may not hold '.' or '..' segments: servers and gateways "
                                     "resolve them, so the path decided on would not be the path served")  # fmt: skip
            if "//" in path:
                raise InvalidRequest("the request path may not hold empty segments ('//', also percent-encoded): gateways "
                                     "merge them (nginx's merge_slashes, on by default), so the path decided on would "
                                     "not be the path served")  # fmt: skip
            if "?" in request.target and (why := _query_refused(adapter, target, request.target, path)):
                raise InvalidRequest(why)
            if not target.carries_data or (target.bodiless_data_free and not request.content_length
                                           and request.header("transfer-encoding") is None):  # fmt: skip
                if request.content_length or request.header("transfer-encoding") is not None:
                    raise InvalidRequest(f"a {method} request may not carry a body here: lineage-proxy forwards no "
                                         "data it does not read and decide on")  # fmt: skip
                if ((method == "GET" or method == "HEAD") and pipeline.config.zones
                        and (not target.listing or "?" in request.target)
                        and (found := ex.query_read(request.target, header)) is not None):  # fmt: skip
                    # its path (`@app.get("/predict/{text}")`) and query are its request (`passthrough.QueryAdapter`),
                    # labelled: read, decided as any call's data (a listing's query too, a label found in it: then the
                    # `"*"` route's call, to its upstream alone, not merged; not one no label is found in or declared
                    # for: a probe's, a scrape's, an API's known GET path's, a listing's `?limit=20`, carrying no data).
                    # What its reading found is not read again (`found`)
                    upstream = ex.admit(request.target.encode("latin-1"), header, conn.peer, True, found=found)
                    await self._forward(request, conn, ex, upstream, b"", observe=False)
                    return
                await self._data_free(request, conn, ex, pipeline, adapter, target)
                return
            if (
                request.content_length is None
                and method in _BODY_METHODS
                and adapter.name != "passthrough"
                and (request.header("transfer-encoding") is None)
            ):
                # neither Content-Length nor Transfer-Encoding: an empty body by RFC 9112 §6.3, where an adapter reads
                # one (a passthrough path's POST may carry none: its path is its request). The connection closes with
                # the answer: the body the client meant is not served as a request (what follows a request whose
                # length is given, or that no adapter reads, is the next request, as RFC 9112 has it)
                request.keep_alive = False
                raise LengthRequired(f"a {method} request here carries a body: send it with a Content-Length, or "
                                     "Transfer-Encoding: chunked")  # fmt: skip
            expect = request.header("expect")
            if expect is not None and not request.expects and list_members(expect):  # 417: one it cannot meet
                raise ExpectationFailed(f"unsupported Expect: {echoed(expect)} (only 100-continue)", param="expect")
            try:
                # (passthrough forwards a body unread, but a files call's form is read, gzip or deflate undone too: LiteLLM
                # proxy may undo gzip before its routes, `GunzipRequestMiddleware`, BerriAI/litellm#41567; until review
                # revmodels17 a gzipped form naming a model went on unread; +1 Python instruction a call with a body)
                coding = _coding(request.header("content-encoding"),
                                 adapter.name != "passthrough" or _form_coded(target, request))  # fmt: skip
            except InvalidRequest:
                if not target.shared:
                    raise
                ex.pass_through()  # (a body another server's may be in a coding the proxy does not read: forwarded so)
                adapter, target, coding = ex.adapter, ex.target, None
            body = request.received()
            if body is None:
                if request.expects and not pipeline.policy.audit:
                    # the client waits for 100 Continue to send its body: a call its key refuses, or its purpose, is
                    # answered now, before it is asked for a body that would be read for nothing (the connection
                    # then closes)
                    pipeline.identify_only(header, conn.peer, ex.x_api_key, ex.key_memo)
                    ex.refuse_at_head(header, conn.peer)
                body = await conn.body(request)
            if coding is None:
                read = body
            else:  # held while the call is, counted as a body is (`limits.bodies_max_bytes`): a few KB make 64 MiB
                read = _decoded(body, coding, conn.server.max_body_bytes)
                conn.hold(request, len(read))
            ex.pipeline = self.ref.current  # decided by the config in force once the body is in (a reload meanwhile)
            if target.bodiless_data_free and index_flags_only(read):  # Triton's `{"ready": true}`: no data either
                await self._data_free(request, conn, ex, ex.pipeline, adapter, target, body)
                return
            # an OIP server hands its model the request's header fields too (MLServer: `parameters.headers`), and so does
            # KServe's model server over its V1 protocol (`kserve.Model.predict(payload, headers)`) and its OpenAI data
            # plane (`context["headers"]`: where a KServe upstream may be sent the call, which its body's model says,
            # `Pipeline._to_kserve`). Built and read only where its route's model is handed them (`Pipeline._fields_read`)
            fields: Callable[[], str | None] | None = None
            body_fields: Callable[[], tuple[str | None, bool]] | None = None
            if adapter.name in _HEADERS_TO_MODEL:
                fields = functools.partial(_oip_header_text, request.headers)
            elif ex.pipeline.kserve_openai and adapter.name == "openai":  # its body's fields too (`openai_fields`)
                fields = functools.partial(_oip_header_text, request.headers)
                body_fields = functools.partial(openai_fields, read, target.operation, adapter.provider)
            upstream = ex.admit(read, header, conn.peer, True, fields, body_fields)  # completed once sent: `_forward`
            await self._forward(request, conn, ex, upstream, body, observe=ex.observes)  # the bytes as they came
        except ProxyError as error:
            failure = error
        except (asyncio.CancelledError, ConnectionError):
            if ex.call is None:  # its client left, or the drain cut it, while its request was still arriving: recorded
                ex.finish(self._unread(request, conn, ex))
            else:
                _gone(conn, ex)
            raise
        except Exception:
            log.exception("internal error handling %s %s", method, path, extra={"trace_id": ex.trace.trace_id_hex})
            failure = ProxyError("internal error in lineage-proxy; see its log")
            ex.outcome.status = failure.status  # whatever the upstream said, the client gets this
            internal = True
        finally:
            if failure is None:
                ex.finish()  # a no-op when the call already ended, which every path above does
        if failure is not None:
            try:
                await self._failed(request, conn, ex, failure, keep_alive=not internal)
            finally:
                ex.finish()  # a no-op once `_failed` has ended it
                # its traceback holds this frame, and so the request's body: not a cycle left for the collector. Let go
                # of by the error too: one the request keeps (`Request.failed`, raised by `HttpConnection.body`: a body
                # malformed part-way, or late, 408) held the frames, which hold the request and its connection (before
                # 2026-12-05, review revrecords: a cycle the collector alone freed)
                failure.with_traceback(None)
                failure = None
            if internal:
                conn.closing = True  # the connection's state is unknown: it ends with this answer
                conn.closed_by = ProxyError  # what is pipelined behind it is recorded so (`record_unserved`)

    @staticmethod
    async def _failed(
        request: Request, conn: HttpConnection, ex: Exchange, error: ProxyError, *, keep_alive: bool = True
    ) -> None:
        """Answer `error`: recorded first, with the status the client gets, then the error reply; if the
        reply has already started (no known path; never two replies on one connection), the connection
        is cut instead."""
        # the status the client gets: this error's, unless the upstream's reply head is already on its way
        ex.outcome.status = ex.outcome.status if conn.replying else error.status
        # the adapter that read its body as a call, if one did (`shape_root`): `finish` makes a call of one refused
        # before, for its record
        read_by = ex.adapter if ex.call is not None and request.complete else None
        if ex.call is None:  # refused before it was read: its caller, when the key says
            ex.pipeline.name_refused(error, request.header, conn.peer, ex.x_api_key, ex.key_memo)
        ex.finish(error)
        try:
            await ex.recorded()
        except asyncio.CancelledError:  # its client left, or the drain cut it, while the answer waited: never sent
            _gone(conn, ex)
            raise
        if conn.replying:
            conn.abort()
        else:
            shape_root(error, request, request.path, ex.pipeline, read_by)
            conn.error(request, error, ex.lineage_headers(), keep_alive=keep_alive)

    @staticmethod
    def _unread(request: Request, conn: HttpConnection, ex: Exchange) -> ProxyError:
        """The end of a call whose request had not arrived whole (its head read: the call had begun), its client gone or
        the drain's time run out, as the refusal it is recorded as (as one whose body is too slow is): its caller the
        one its key names, nothing of it read or forwarded."""
        if conn.cut:
            ended: ProxyError = DrainCut(
                "lineage-proxy stopped before this request had arrived whole (limits.drain_timeout_s)"
            )
        else:
            ended = LeftUnread("the client left before its request had arrived whole")
        ended.caller = ex.pipeline.caller_name(request.header, conn.peer, ex.x_api_key, ex.key_memo)
        return ended

    def record_unserved(self, request: Request, conn: HttpConnection, whole: bool) -> None:
        """Record a request pipelined behind another, its head read (its body too, or part of it), whose client left
        before it was served, or behind the reply that closed its connection for the drain, or for a refusal or an
        internal error (`HttpConnection._unserved`): the call had begun, and ends as one whose client left while it was
        still arriving does (`_unread`), or one the drain cut, or refused as the one before it, with no status, nothing
        of it read or forwarded, no one answered. Not `whole`: a head only partly read when the drain closed its
        connection (`HttpConnection._head_cut`), recorded `drain_timeout`, or when the reply before it closed it,
        recorded as one whole behind that reply is. A reload that changed `listen.tls` client
        authentication closing the connection (`conn.reloaded`) is recorded as the drain's closing is, its reason the
        reload's (before 2026-12-05 SIGTERM's, though the process went on)."""
        pipeline = self.ref.current
        ex = _exchange(pipeline, request.method, request.path, request.header)
        if pipeline.client_address:
            ex.outcome.client = conn.client
        # the drain (or a reload) closed the connection: not when the reply before it had closed it already, a stream
        # to an HTTP/1.0 client or an upgrade request's answer, its head out or not (`closed_first`: recorded as behind
        # that reply; before 2026-12-05, helper records and review revrecords, `drain_timeout`), unless the drain's time
        # ran out (`cut`)
        drained = conn.cut or (conn.draining and not conn.closed_first)
        if not whole and not conn.cut and conn.closed_by is not None:
            # its head partly read when the answer before it closed the connection (a refusal, an internal error),
            # refused as that one was (before 2026-12-05 dropped unrecorded, or said behind an upgrade request between);
            # or when the proxy cut it (`lost`: a reply its upstream broke off, `_broke`), as a whole one behind it is.
            # So too when a drain began while that answer waited for its record's write: the answer closed the
            # connection, not the drain, which cut nothing unless its time ran out (`cut`); before 2026-12-05 (helper
            # grpcrecord) recorded `drain_timeout`, and counted in the drain's warning (`HttpConnection._head_cut`)
            behind = (
                f"a call that ended {conn.closed_by.code} (a reply its upstream broke off, or an answer closing the "
                f"connection)"
                if conn.lost
                else f"one answered {conn.closed_by.code}, after which the connection closes"
            )
            ended: ProxyError = conn.closed_by(
                f"lineage-proxy closed the connection before this request's head had arrived whole: it was pipelined "
                f"behind {behind}; send it again on a new connection"
            )
        elif not whole and not drained and conn.closing and not conn.upgrade_answered:
            # behind a reply framed by the connection's close (an HTTP/1.0 stream), an upgrade request between or not
            ended = InvalidRequest(
                "lineage-proxy closed the connection before this request's head had arrived whole: it was pipelined "
                "behind a reply whose body ends with the connection (a stream to an HTTP/1.0 client); send it again on "
                "a new connection, or speak HTTP/1.1"
            )
        elif not whole and conn.upgraded and not drained:
            # its head partly read when the one asking to upgrade before it was answered (`HttpConnection._head_cut`)
            ended = InvalidRequest(
                "lineage-proxy closed the connection before this request's head had arrived whole: it was pipelined "
                "behind one asking to upgrade the connection (lineage-proxy does not switch protocols, and closes it "
                "after that one's answer); send it again on a new connection"
            )
        elif not whole and conn.reloaded and not conn.cut:
            ended = DrainCut(
                "lineage-proxy closed the connection before this request's head had arrived whole, for a reload that "
                "changed listen.tls client authentication (requests are identified on new connections); send it again"
            )
        elif not whole:  # its head not all read: the drain closed the connection (`HttpConnection._head_cut`)
            ended = DrainCut(
                "lineage-proxy stopped (SIGTERM) before this request's head had arrived whole: the drain closed its "
                "connection"
            )
        elif conn.cut:
            ended = DrainCut("lineage-proxy stopped before this request was served (limits.drain_timeout_s)")
        elif conn.lost and conn.closed_by is not None:
            # the proxy ended the connection (the reply before it broken off by its upstream, `_broke`, or an answer
            # that closes it), whatever the client did after: not its client leaving (before 2026-12-05 recorded
            # `client_disconnected` after an upstream's break)
            ended = conn.closed_by(
                f"lineage-proxy ended the connection before this request was served: it was pipelined behind a call "
                f"that ended {conn.closed_by.code} (a reply its upstream broke off, or an answer closing the connection)"
            )
        elif conn.lost:
            ended = LeftUnread("the client left before its request was served (pipelined behind one not yet answered)")
        elif conn.closed_by is not None:
            # the connection closed with its answer to the one before it (a refusal, an internal error): refused as it
            ended = conn.closed_by(
                f"lineage-proxy closed the connection before this request was served: it was pipelined behind one "
                f"answered {conn.closed_by.code}, after which the connection closes"
            )
        elif drained and conn.reloaded:
            ended = DrainCut(
                "lineage-proxy closed the connection before this request was served: it was pipelined behind the reply "
                "that closed the connection for a reload that changed listen.tls client authentication; send it again"
            )
        elif drained:
            ended = DrainCut(
                "lineage-proxy stopped (SIGTERM) before this request was served: it was pipelined behind the reply "
                "that closed the connection for the drain"
            )
        elif conn.closing and not conn.upgrade_answered:
            # behind a reply framed by the connection's close (a stream to an HTTP/1.0 client, which has no chunked
            # coding): no reply can follow that one's body on the connection. Before any upgrade request read behind
            # it, itself among them (until 2026-12-05 recorded as pipelined behind one asking to upgrade); not when
            # that reply was the upgrade request's own (`closing` too: recorded as behind it, helper revrecords3)
            ended = InvalidRequest(
                "lineage-proxy closed the connection before this request was served: it was pipelined behind a reply "
                "whose body ends with the connection (a stream to an HTTP/1.0 client); send it again on a new "
                "connection, or speak HTTP/1.1"
            )
        elif conn.upgraded:
            # behind a request asking to upgrade (`Connection: Upgrade`), served as it is and answered closing the
            # connection (`HttpConnection.upgraded`); before 2026-12-05 dropped unread with no record
            ended = InvalidRequest(
                "lineage-proxy closed the connection before this request was served: it was pipelined behind one "
                "asking to upgrade the connection (lineage-proxy does not switch protocols, and closes it after that "
                "one's answer); send it again on a new connection"
            )
        else:
            ended = LeftUnread("the client left before its request was served (pipelined behind one not yet answered)")
        ended.caller = pipeline.caller_name(request.header, conn.peer, ex.x_api_key)
        ex.finish(ended)

    async def record_refusal(self, request: Request, error: ProxyError, conn: HttpConnection) -> list[tuple[str, str]]:
        """Record a request the connection refuses before any handler sees it (`wire.py`: malformed framing, a
        head over the limits, a request line it does not speak, past the connection cap) as any refusal is:
        its span, access line and metrics, no edge. Returns the lineage headers its answer carries. Of a head
        that did not parse nothing was kept (`request` is empty): its caller is the one its client certificate
        names, else anonymous, and its trace a new one."""
        pipeline = self.ref.current
        ex = _exchange(pipeline, request.method, request.path, request.header)
        if pipeline.client_address:
            ex.outcome.client = conn.client
        error.caller = pipeline.caller_name(request.header, conn.peer, ex.x_api_key)
        ex.outcome.status = error.status
        ex.finish(error)
        await ex.recorded()
        shape_root(error, request, request.path or conn.refused_path, pipeline)
        return ex.lineage_headers()

    async def _data_free(
        self, request: Request, conn: HttpConnection, ex: Exchange, pipeline: Pipeline, adapter: Adapter,
        target: Target, body: bytes | None = None,
    ) -> None:  # fmt: skip
        """Requests that carry no data (metadata, health, files, listings): only the caller's key is
        checked; forwarded to the upstream of the model the path names, or of the '*' route; an OIP one naming no
        model without a '*' route (`/v2/health/ready`, `/v2`) to the first OIP upstream, KServe V1's `GET /` to the first
        KServe one (`_serving_upstream`).
        `body`: one already read (a repository index's flags, `index_flags_only`), forwarded as it came."""
        caller = pipeline.identify_only(request.header, conn.peer, ex.x_api_key)
        if target.listing:
            if request.method == "HEAD":  # the GET's answer without its body: the span says which request it was
                ex.outcome.extra.update({"http.request.method": "HEAD", "url.path": request.path})
            await self._listing(request, conn, ex, pipeline, adapter, caller)
            return
        matched = pipeline.policy.route(target.model)
        if matched is not None:
            upstream: Upstream | None = matched[1]
        else:  # none for a model no route serves; for a call naming none, an OIP server's (`_serving_upstream`)
            upstream = None if target.model else _serving_upstream(pipeline, request.path)
        if upstream is None:
            raise _no_route(request.path, target.model, caller)
        ex.admit_data_free(upstream, caller)
        ex.outcome.extra.update({"http.request.method": request.method, "url.path": request.path})
        if body is None:
            body = request.received()
        if body is None:
            body = await conn.body(request)
        await self._forward(request, conn, ex, upstream, body, observe=False)

    async def _listing(
        self, request: Request, conn: HttpConnection, ex: Exchange, pipeline: Pipeline, adapter: Adapter,
        caller: str | None,
    ) -> None:  # fmt: skip
        """A listing (`GET /v1/models`, or `GET /openai/v1/models` on KServe's OpenAI prefix): every model OpenAI calls
        are routed to, in OpenAI's list, which the openai SDK's `models.list()` reads: the `protocol: openai`
        upstreams' lists and the `protocol: kserve` ones' OpenAI data plane's (`/openai/v1/models`: `_upstream_target`),
        merged by the adapter, each model once. `/v1/models` is KServe V1's list too: there the KServe upstreams' V1
        names come along under V1's own key, `models`, which V1's clients read (`{"object": "list", "data": [...],
        "models": [...]}`). One OpenAI upstream and no KServe one answers as it is."""
        openai = _listers(pipeline, adapter.dialect)
        kserve = _listers(pipeline, KSERVE.dialect)
        if len(openai) == 1 and not kserve:
            ex.admit_data_free(openai[0], caller)
            if request.method == "HEAD":
                await self._listing_head(request, conn, ex, openai[0])
                return
            await self._forward(request, conn, ex, openai[0], b"", observe=False)
            return
        ex.admit_data_free(None, caller)  # several lists answer: none is the call's (read whole: a drain cuts it)
        unreached: set[str] = set()
        listings = await self._listings(request, adapter, openai + kserve, unreached)
        answered = {name for name, _ in listings}
        answer = adapter.merge(_routed_entries(pipeline.policy, listings, answered))
        if kserve and not request.base:  # a name routed to an upstream that answered OpenAI's list is not V1's to offer
            # (one not reached is not asked again: said once, waited for once)
            names = await self._listings(request, KSERVE, [u for u in kserve if u.name not in unreached], unreached)
            answer.update(KSERVE.merge(_routed_entries(pipeline.policy, names, answered | {name for name, _ in names})))
        ex.outcome.status = 200
        ex.finish()
        fields = b"x-trace-id: %s\r\n" % ex.trace.trace_id_hex.encode()
        conn.reply(request, 200, b"application/json", orjson.dumps(answer), fields)

    async def _listing_head(self, request: Request, conn: HttpConnection, ex: Exchange, upstream: Upstream) -> None:
        """`HEAD` of one upstream's listing: its GET's answer, head only (RFC 9110 section 9.3.2), as the merged
        listing's is. Forwarded as a HEAD (before 2026-12-05), a FastAPI server, vLLM's or llama-cpp-python's, answered
        405: it routes the GET alone."""
        try:
            fields = forward_fields(
                request, ex, upstream.api_key, False, conn.forwarded, not upstream.fields_to_model, conn
            )
        except InvalidRequest as refused:  # recorded as the refusal it is, nothing sent
            raise ex.refuse(refused, "connection") from None
        request.headers.clear()
        try:
            target = _upstream_target(request, ex.adapter, upstream)
            resp = await self.pool.request(upstream, "GET", target, fields, b"", ex.forwarded)
        except Exception as exc:
            raise ex.upstream_failed(exc) from None
        try:
            ex.head(resp.status, resp.headers.get, resp.content_length, None)
            # the body is no HEAD's: not waited for (a GET's cut or slow body, or one past limits.buffer_max_bytes,
            # which the GET streams, made the HEAD wait, or answered 502), read off apart from the call (bounded)
            if resp.complete() is None:
                resp.read_off()
            ex.finish()
            if ex.recording:
                await ex.recorded()
            head, _ = self._head(request, conn, ex, resp, None)  # (a HEAD's: the GET's Content-Length, no body)
            conn.write(head)
        finally:
            resp.release()

    async def _listings(
        self, request: Request, adapter: Adapter, upstreams: list[Upstream], unreached: set[str]
    ) -> list[tuple[str, Any]]:
        """Each upstream's list of `adapter`'s kind (by its name), asked where it serves it; one that does not answer is
        left out, said in a log line, and named in `unreached` when no answer came at all (not an HTTP status). A
        KServe model server with no OpenAI model answers its OpenAI list 404 (its `/openai` routes are made only for
        one: `maybe_register_openai_endpoints`): an empty list, not a failure."""
        listings: list[tuple[str, Any]] = []
        for upstream in upstreams:
            target = _upstream_target(request, adapter, upstream)
            try:
                listings.append((upstream.name, await self.pool.get_json(upstream, target)))
            except MetadataStatus as answered:  # (a name of its own: mypyc types a name by its first binding)
                if answered.status == 404 and upstream.protocol == KSERVE.dialect and adapter.dialect == "openai":
                    listings.append((upstream.name, _NO_MODELS))
                else:
                    log.warning("GET %s: upstream %s did not answer: %s", request.path, upstream.name, answered)
            except Exception as exc:
                unreached.add(upstream.name)
                log.warning("GET %s: upstream %s did not answer: %s", request.path, upstream.name, exc)
        return listings

    async def _forward(
        self, request: Request, conn: HttpConnection, ex: Exchange, upstream: Upstream, body: bytes, *, observe: bool
    ) -> None:
        if upstream.url is None:  # refused before anything is sent: recorded as the refusal it is (`Exchange.refuse`)
            raise ex.refuse(
                UpstreamUnavailable(
                    f"upstream {upstream.name!r} speaks gRPC only; send this call to the gRPC listener"
                ),
                f"upstream:{upstream.name}",
            )
        try:
            fields = forward_fields(
                request, ex, upstream.api_key, observe, conn.forwarded, not upstream.fields_to_model, conn
            )
        except InvalidRequest as refused:  # recorded as the refusal it is, nothing sent
            raise ex.refuse(refused, "connection") from None
        # the fields as sent are read once, here (`request.header` keeps their values): their tuples are let go before
        # the upstream wait, not kept to the call's end (the pool takes `fields`' pieces into the request's head)
        request.headers.clear()
        try:
            # what only the record and the reply need is done once the request is on its way (`ex.forwarded`)
            target = _upstream_target(request, ex.adapter, upstream)
            resp = await self.pool.request(upstream, request.method, target, fields, body, ex.forwarded)
        except Exception as exc:
            raise ex.upstream_failed(exc) from None
        large = False  # a reply read whole that is not written in one send: waited for until its client has it
        try:
            coding = resp.headers.get("Content-Encoding")
            if coding is not None:  # (rare: the proxy asks for none) every field, as its client reads them all
                coding = ", ".join(resp.headers.getall("Content-Encoding"))
            ex.head(resp.status, resp.headers.get, resp.content_length, coding)
            streamed = (
                resp.content_length is None
                or resp.content_length > ex.pipeline.buffer_max_bytes
                or (resp.headers.get("Content-Type") or "").lower().startswith("text/event-stream")  # RFC 9110 §8.3.1
                # a reply read whole is held until its client has taken it, counted as request bodies are: past
                # limits.bodies_max_bytes it is passed on as it arrives (clients that do not read replies of up to
                # buffer_max_bytes on many connections held 16 MiB a connection, past any bound)
                or not conn.hold_if_room(request, resp.content_length)
            )
            if streamed:
                await self._streamed_reply(request, conn, ex, resp)
                return
            data = resp.complete()  # a small reply comes whole with its head: no wait
            if data is None:
                try:
                    data = await resp.read()
                except Exception as exc:
                    raise ex.upstream_failed(exc) from None
            if ex.whole(data):  # a reply read as an event stream a slice a loop turn (`Exchange.more`)
                await _read_on(ex)
            ex.finish()
            if ex.recording:  # a new flow's first edge is durable before the client has the reply
                await ex.recorded()  # (a coroutine only then: not for a flow seen before, most calls)
            # its head made after that wait: a drain begun during it (nothing owed, no head gone out) closes the
            # connection after this reply, which says so (until 2026-12-05, helper records, it said keep-alive)
            small = len(data) < 65536  # a small reply goes in one write (one send), head and body joined once
            head, _ = self._head(request, conn, ex, resp, len(data), data if small else b"")
            conn.write(head)
            if not small:
                conn.write(data)  # a large body is not copied to be joined
                large = True
        finally:
            resp.release()
        if large:
            await conn.sent()  # held (and counted) until the client has taken it: given back by `HttpConnection._serve`

    @staticmethod
    def _head(
        request: Request, conn: HttpConnection, ex: Exchange, resp: UpstreamResponse, length: int | None,
        body: bytes = b"", lineage: bytes | None = None,
    ) -> tuple[bytes, bool]:  # fmt: skip
        """The reply's head: the upstream's status and fields, the lineage headers (`lineage`: as made before, else
        now), and the framing (`length`: the body's size; None: chunked, or until close for an HTTP/1.0 client), with
        `body` after it (the pieces joined once). Also whether the body is to be sent chunked."""
        keep_alive = conn.keeps_alive(request)
        framing = b""
        chunked = False
        if request.method == "HEAD":
            upstream_length = resp.headers.get("Content-Length")
            if upstream_length is not None:
                framing = b"Content-Length: %s\r\n" % upstream_length.encode("latin-1")
        elif resp.status in NO_BODY_STATUSES or resp.status < 200:
            pass
        elif length is not None:
            framing = b"Content-Length: %d\r\n" % length
        elif request.version == "1.1":
            framing = b"Transfer-Encoding: chunked\r\n"
            chunked = True
        else:
            keep_alive = False  # an HTTP/1.0 client: the body ends with the connection
        if not keep_alive:
            conn.closing = True
        framing += connection_field(keep_alive, request.version == "1.0")
        upstream = ex.decision.upstream if ex.decision is not None else None
        fields = resp.headers  # (their names looked up in its `index`: no search of the names a lookup)
        out = [_status_line(resp.status, resp.reason)]
        if b"date" not in fields.index:
            out.append(date_header())
        base = upstream.url if upstream is not None else None
        reply_fields(
            out, fields.raw, fields.names, ex.lineage_fields() if lineage is None else lineage, base, fields.index
        )
        out.append(framing)
        out.append(b"\r\n")
        out.append(body)
        return b"".join(out), chunked

    async def _streamed_reply(
        self, request: Request, conn: HttpConnection, ex: Exchange, resp: UpstreamResponse
    ) -> None:
        """Pass an upstream reply on as it arrives. The piece holding the reply's end is written only once
        the call is recorded, so a client that stops reading at `data: [DONE]` and leaves loses nothing; a piece that
        cannot hold it (`Exchange.may_end`) is written first and read after, in the same turn (until 2026-12-06 every
        piece was read first: 10-15 µs an event, the first included, before its client had it).
        What an upstream sends after that end (`data: [DONE]`, the API's last event) in a later piece is no
        output of the call's record: it is not passed on, and the client's body ends with that piece (a client
        reading its body to the end is not kept waiting for an upstream that holds its body open); the rest is
        read off apart from the call (`Response.read_off`: the upstream connection is kept if it ends soon).

        When the upstream fails mid-reply the status line is gone, so the only honest signal left is to
        cut the client's connection without a clean end of body; once it is past the reply's end, the client's body
        ends as it would have. A client that leaves raises as usual."""
        if ex.wants_first_chunk:
            # the reply names the model in its first event: wait for it so the head can say
            unsized = resp.content_length is None and request.method != "HEAD" and resp.status not in NO_BODY_STATUSES
            if unsized and request.version != "1.1":
                # its body ends with the connection (an HTTP/1.0 client's, `_head`): so said before the wait, as for
                # one that came whole (below), so a drain begun during it leaves what is behind recorded as behind it
                # (until 2026-12-05, helper smalls, `drain_timeout`)
                conn.closing = True
            try:
                first = await resp.readany()
            except _UPSTREAM_BROKE as exc:
                # broken off (or silent) after its head: the client gets that head and the cut, as it would direct (a
                # 502 or 504 instead had its SDK send the call again: the openai SDK retries them)
                conn.write(self._head(request, conn, ex, resp, resp.content_length)[0])
                self._broke(conn, ex, exc)
                return
            except Exception as exc:
                raise ex.upstream_failed(exc) from None
            last = ex.chunk(first) if first else False
            lineage = ex.lineage_fields()
            early = False
        else:
            lineage = ex.lineage_fields()  # (the labels before its body is read: a stream's head says no output's)
            # what came with the upstream's head goes out with the client's, in one write: the head alone
            # would leave the client a second segment (a second read) to wait for before its first event
            first = resp.buffered()
            # a piece that cannot end the reply goes to its client before it is read (`Exchange.may_end`), in this turn
            early = not conn.lost and not ex.may_end(first) if first else False
            last = ex.chunk(first) if first and not early else False
        if first and last:
            if resp.content_length is None and request.version != "1.1":
                # its body ends with the connection (an HTTP/1.0 client's, `_head`), whatever a drain begun during the
                # wait below does: what is behind it is recorded as behind it (`shutdown`'s `closed_first`), as when
                # its head was made before that wait (review revrecords: made after it, `drain_timeout`)
                conn.closing = True
            if ex.reads_on:  # (sized, kept whole and no JSON: read a slice a loop turn)
                await _read_on(ex)
                ex.read_on_ended()
            await ex.end()
        # its head made after that wait for its record, its lineage fields as they were before: a drain begun during it
        # (nothing owed, no head gone out) closes the connection after this reply, which says so (until 2026-12-05,
        # helper records, it said keep-alive)
        head, chunked = self._head(request, conn, ex, resp, resp.content_length, lineage=lineage)
        conn.write(head + _frame(first, chunked) if first else head)
        if early and ex.chunk(first):  # (never: `may_end` says True wherever it may end)
            await ex.end()
        try:
            # what is here already is taken without a wait; a wait is the connection's future, not a coroutine
            # around it (`Response.more`: a stream waits before its every event)
            while not ex.finished:  # (past the reply's end, what comes is not passed on)
                chunk = resp.buffered()
                if chunk:
                    if conn.lost or ex.may_end(chunk):
                        if ex.chunk(chunk):
                            if ex.reads_on:  # (sized, kept whole and no JSON: read a slice a loop turn)
                                await _read_on(ex)
                                ex.read_on_ended()
                            await ex.end()
                        conn.write(_frame(chunk, chunked))
                    else:  # it cannot end the reply: its client has it before it is read (`Exchange.may_end`)
                        conn.write(_frame(chunk, chunked))
                        if ex.chunk(chunk):  # (never: as above)
                            await ex.end()
                    if conn.must_drain():
                        await conn.drain()
                else:
                    waiting = resp.more()
                    if (
                        waiting is None
                    ):  # the reply's end (one that came at its API's last event, or its size, ended the loop)
                        if ex.ending():  # kept whole and no JSON: read as an event stream a slice a loop turn
                            await _read_on(ex)
                        if not resp.until_close and ex.unfinished():
                            # its last chunk came before its event stream's end: the upstream ended it incomplete, and
                            # so does the client's body, whose SDK ends it without an error (the openai SDK's
                            # iteration ends as at `[DONE]`)
                            ex.finish(UPSTREAM_INCOMPLETE)
                        break
                    await waiting
        except _UPSTREAM_BROKE as exc:
            self._broke(conn, ex, exc)
            return
        except ConnectionError:  # the client left, or the drain's time ran out
            ex.finish(_left(conn, ex))
            return
        resp.read_off()  # past the reply's end: what the upstream still sends is no one's
        if resp.until_close and not ex.finished and ex.cut_short():
            # its connection's close ended it before its event stream's end: a cut, as far as can be told (the client's
            # body ends as the upstream's did, as it would direct)
            ex.finish("upstream_reset")
        await ex.end()
        if chunked:
            conn.write(b"0\r\n\r\n")

    @staticmethod
    def _broke(conn: HttpConnection, ex: Exchange, exc: BaseException) -> None:
        error = "upstream_timeout" if isinstance(exc, TimeoutError) else "upstream_reset"
        upstream = ex.decision.upstream if ex.decision is not None else None
        log.warning(
            "upstream %s failed mid-reply (%s); aborting the client connection",
            upstream.name if upstream else "?",
            error,
            extra={"trace_id": ex.trace.trace_id_hex},
        )
        ex.finish(error)
        # what is pipelined behind it is recorded so (`record_unserved`): the proxy cut the connection, its client did
        # not leave
        conn.closed_by = UpstreamTimeout if isinstance(exc, TimeoutError) else UpstreamUnavailable
        conn.abort()


async def _read_on(ex: Exchange) -> None:
    """The slices of a reply its observer reads on (`Exchange.whole`, `Exchange.ending`), one a loop turn (before
    2026-12-05 all of it in one turn). Its client left, or the drain cut it: the rest read on so too before the call is
    recorded (`_gone`), not all in one turn at `finish`; cancelled again, `finish` reads what is left."""
    try:
        while True:
            await asyncio.sleep(0)
            if not ex.more():
                return
    except asyncio.CancelledError:
        while ex.more():
            await asyncio.sleep(0)
        raise


def _gone(conn: HttpConnection, ex: Exchange) -> None:
    """A call its client left, or the drain cut, recorded so (`_left`); one recorded already whose answer waited for its
    record's write (`Exchange.held`) never got it: no status, unless its reply's head had gone out."""
    if ex.held and not conn.replying:
        ex.outcome.status = None
    ex.finish(_left(conn, ex))


def _left(conn: HttpConnection, ex: Exchange) -> str | None:
    """What a client leaving before its reply's end ends the call as: `client_disconnected` (the drain's cut:
    `drain_timeout`); but a client that leaves after the upstream's error in band leaves that error the call's type
    (None: kept), as the SDKs raise at it and close their response there, as they would direct."""
    if conn.cut:
        return DRAIN_CUT
    return None if ex.outcome.error_type == STREAM_ERROR else CLIENT_GONE


_NO_MODELS: Final = {"object": "list", "data": []}  # OpenAI's list of no model


def _listers(pipeline: Pipeline, dialect: str) -> list[Upstream]:
    """The HTTP upstreams of `dialect` that a listing asks, each once (several routes may name one)."""
    return list({u.name: u for u in pipeline.policy.upstreams.values() if u.protocol == dialect and u.url}.values())


def _routed_entries(policy: Policy, listings: list[tuple[str, Any]], answered: set[str]) -> list[Any]:
    """The upstreams' model lists (by upstream name) as `merge` is to read them, each model's first entry kept: an
    entry of a model whose route goes to another upstream is left out, so a model several upstreams list is
    described by the one its calls reach, not by the first in the config, and a model only an upstream its calls
    never reach lists (no route, or the route's upstream answered without it) is not offered. A model whose route's
    upstream did not answer (none of `answered`, the upstreams that answered a list) stays, described by the upstream
    that did."""
    kept: list[Any] = []
    for name, listing in listings:
        data = listing.get("data") if isinstance(listing, dict) else None
        if not isinstance(data, list):
            names = listing.get("models") if isinstance(listing, dict) else None
            if isinstance(names, list):  # KServe V1's `{"models": [name, ...]}`
                names = [
                    model for model in names if not isinstance(model, str) or _reached(policy, model, name, answered)
                ]
                listing = {**listing, "models": names}
            kept.append(listing)
            continue
        entries = []
        for entry in data:
            model = entry.get("id") if isinstance(entry, dict) else None
            if not isinstance(model, str):
                entries.append(entry)  # no model named: the adapter's merge decides
                continue
            if _reached(policy, model, name, answered):
                entries.append(entry)
        kept.append({**listing, "data": entries})
    return kept


def _reached(policy: Policy, model: str, lister: str, answered: set[str]) -> bool:
    """Whether a model upstream `lister` lists is offered: a route sends its calls to `lister`, or to an upstream that
    did not answer (`answered`: those that did)."""
    routed = policy.route(model)
    if routed is None:
        return False
    owner = routed[1].name
    return owner == lister or owner not in answered


def _no_route(path: str, model: str, caller: str | None) -> ModelNotFound:
    """The refusal of a call that carries no data (`_data_free`) to a model no route serves, recorded as `caller`'s.
    Made here, not in the frame that raises it: a variable of that frame holding it, its traceback would hold the frame,
    and so the request handler's, in a reference cycle left to the collector (before 2026-12-05)."""
    missing = ModelNotFound(f"no route for {echoed(path)} (no route for model {quoted_name(model)} and no '*' route)")
    missing.caller = caller
    return missing


def _coding(encoding: str | None, reads_body: bool) -> str | None:
    """The request body's content coding the proxy must undo to read it (None: none, or a body it
    forwards unread, passthrough). One gzip or deflate layer is read; anything else is a 400, since a
    body the proxy cannot read cannot be checked."""
    if encoding is None or not reads_body:
        return None
    coding = encoding.strip().lower()
    if coding in ("", "identity"):
        return None
    if coding not in CODINGS:
        raise InvalidRequest(f"Content-Encoding {echoed(encoding)}: the proxy reads every request body it checks, and "
                             "reads gzip or deflate (one layer) or an uncompressed body", param="content-encoding")  # fmt: skip
    return coding


def _form_coded(target: Target, request: Request) -> bool:
    """Whether a passthrough call's body is a files call's (`passthrough.FILES_CALL`, its form read) in a coding
    `_coding` reads, gzip or deflate (one layer): undone for reading; any other's is forwarded as it came, unread."""
    encoding = request.header("content-encoding")
    return target is FILES_CALL and encoding is not None and encoding.strip().lower() in CODINGS


def _decoded(body: bytes, coding: str, limit: int) -> bytes:
    """`body` decompressed, for the proxy to read (the upstream gets the compressed bytes as they came);
    at most `limit` bytes, as for an uncompressed body, so a small bomb cannot fill memory."""
    raw = coding == "deflate" and not zlib_header(body)  # "deflate" is zlib-framed; some clients send it raw
    if raw and body.lstrip(b" \t\r\n")[:1] in (b"{", b"["):
        # raw deflate has no header to tell it from JSON, and an upstream that does not decode request bodies (vLLM,
        # llama.cpp) reads the bytes as they came: a body that begins as JSON does (a fixed-code block whose first
        # byte is a 3-byte UTF-8 character's) could be read as a request other than the one decided on
        raise InvalidRequest("a raw deflate body whose bytes begin as JSON does: an upstream that does not decode it "
                             "would read other JSON than the proxy decided on; send zlib-framed deflate (RFC 9110) "
                             "or gzip", param="content-encoding")  # fmt: skip
    inflater = zlib.decompressobj(-15 if raw else CODINGS[coding])
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InvalidRequest(f"the body is not valid {coding} data: {exc}", param="content-encoding") from None
    if len(data) > limit:
        raise RequestTooLarge(f"request body is over the limit of {limit} bytes once decompressed ({coding})")
    if not inflater.eof or inflater.unused_data:
        raise InvalidRequest(f"the {coding} body is cut short or has bytes after its end", param="content-encoding")
    return data


def _status_line(status: int, reason: str) -> bytes:
    """An upstream's status line as the client gets it, kept by status and reason: an upstream says the same
    few on every reply."""
    key = (status, reason)
    line = _STATUS_LINES.get(key)
    if line is None:
        line = status_line(status, reason.encode("latin-1", "replace"))
        if len(_STATUS_LINES) >= 64:  # bounded: an upstream sending ever new reasons makes no table grow
            _STATUS_LINES.clear()
        _STATUS_LINES[key] = line
    return line


_STATUS_LINES: Final[dict[tuple[int, str], bytes]] = {}


def _frame(data: bytes, chunked: bool) -> bytes:
    if not chunked or not data:
        return data
    return b"%x\r\n%s\r\n" % (len(data), data)

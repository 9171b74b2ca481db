"""The ProxyError family: every failure a client can see, with the contract's code and statuses.

Transports map these to HTTP and gRPC in one place each; nothing else decides a status code.
"""

from __future__ import annotations

import ssl
from typing import Final

import orjson

# what a refusal shows of a name a caller sent and it refuses (a label, a purpose: at most 128 characters when valid; a
# JSON key given twice), at most: one is as long as what carries it, a header (~64 KB) or a body (up to
# limits.max_body_bytes), and was echoed whole into the error body (1 MB for a 1 MB `data_labels` or key), its span's
# reason and its gRPC status message
ECHOED_MAX_CHARS: Final = 160


def echoed(given: str) -> str:
    """`given` (what a caller sent, refused) as its refusal names it: `repr` of it when at most
    ECHOED_MAX_CHARS long, else of its start and its length."""
    if len(given) <= ECHOED_MAX_CHARS:
        return repr(given)
    return f"{given[:ECHOED_MAX_CHARS]!r}... ({len(given)} characters)"


# what OpenSSL says when the server at an https:// URL answers in plain HTTP (3.0: WRONG_VERSION_NUMBER; 3.2 on:
# RECORD_LAYER_FAILURE; a few bytes of a plain reply read as a record's length: PACKET_LENGTH_TOO_LONG)
PLAINTEXT_REASONS: Final = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"})


def plaintext_hint(exc: BaseException, peer: str = "upstream", setting: str = "url") -> str:
    """What to add to a failure to reach a `peer` (an upstream; the span exporter's collector) whose TLS handshake met
    a plain-HTTP server (an `https://` `setting` for a server that speaks `http://`): OpenSSL's words alone ("wrong
    version number") do not say it. Else ''."""
    for cause in (exc, exc.__cause__, exc.__context__):
        if isinstance(cause, ssl.SSLError) and cause.reason in PLAINTEXT_REASONS:
            return f" (the {peer} answered in plain HTTP, not TLS: if it serves http, write its {setting} with http://)"
    return ""


class StartupError(Exception):
    """Why the proxy could not start, as one line for the user (no traceback)."""


class ProxyError(Exception):
    """A failure with a stable contract code (CONTRACT.md §3). Subclasses fix the four values; an
    instance may override them (an upstream's own gRPC status, passed on as it came)."""

    code: str = "internal_error"
    status: int = 500
    grpc_code: str = "INTERNAL"
    error_type: str = "server_error"
    retry_after_s: int | None = None  # when a retry may succeed, in seconds: what a Retry-After would say (None: -)
    # whether the call failed, as its record says it (`error.type`, `lineage_proxy_errors_total`): every refusal and
    # failure of the proxy's; an upstream's own gRPC status only when a server's span counts it one (`UpstreamStatus`)
    failed: bool = True

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.caller: str | None = None  # who made a call refused before it was read, when known (its record)
        # an upstream's own trailing metadata, which a gRPC answer passes on with the status (less the proxy's keys)
        self.trailers: tuple[tuple[str, str | bytes], ...] = ()
        # and its initial metadata, when no reply passed it on: sent before the status
        self.initial: tuple[tuple[str, str | bytes], ...] = ()
        # the path whose API's error shape its HTTP answer takes, when not its request's (`http_body`): '' (OpenAI's)
        # for a refusal at `/` of a call that is not TGI's (`ingress.http.shape_root`)
        self.shaped_as: str | None = None

    def body(self) -> bytes:
        """The OpenAI error shape, so OpenAI SDKs raise typed errors carrying the message."""
        return orjson.dumps(
            {"error": {"message": self.message, "type": self.error_type, "code": self.code, "param": self.param}}
        )

    def oip_body(self, type_key: str = "type") -> bytes:
        """OIP v2 REST's error shape, `{"error": "<message>"}` (Triton's, MLServer's, KServe's, Ollama's), with the
        code and type beside it: tritonclient and MLServer's client raise InferenceServerException with `error` as its
        message, which must be a string (an object there made its `str()` raise TypeError). TGI's names the type
        `error_type` (`type_key`)."""
        return orjson.dumps({"error": self.message, "code": self.code, type_key: self.error_type, "param": self.param})

    def http_body(self, path: str) -> bytes:
        """The error shape of the API `path` (percent-decoded, no query) belongs to: OIP v2 REST's for `/v2` and
        `/v2/...`, and for KServe V1's `/v1/models/{name}:predict` and `:explain` (KServe answers `{"error": "..."}`
        there too), and for Ollama's `/api/...`; TGI's, `{"error": "<message>", "error_type"}`, for its native
        paths; else OpenAI's (the Anthropic paths' too). An object as `error` reached the `ollama` client as its
        `ResponseError.error` (a dict where a string is typed), and huggingface_hub as a 403 that blamed the
        caller's token, the reason a dict's repr on its last line. An absolute-form target's (`http://host/api/chat`,
        refused) is its path's, `/api/chat`. `shaped_as`, when set, is the path that decides."""
        if self.shaped_as is not None:
            path = self.shaped_as
        elif path[:1] != "/":
            path = origin_path(path)
        if path == "/v2" or path.startswith("/v2/") or _kserve_v1_call(path) or _ollama(path):
            return self.oip_body()
        if _tgi_native(path):
            return self.oip_body(_TGI_TYPE)
        return self.body()


def origin_path(target: str) -> str:
    """The path of an absolute-form target (`http://host:port/api/chat` -> `/api/chat`; `http://host` -> `/`, as RFC
    9112 §3.2.2 reads it); '' for what is neither (`*`, an authority)."""
    scheme, sep, rest = target.partition("://")
    if not sep or not scheme:
        return ""
    at = rest.find("/")
    return rest[at:] if at >= 0 else "/"


# Ollama's API: its client raises `ResponseError` with a reply's `error` as the reason, a string
_OLLAMA: Final = "/api/"
# TGI's clients (huggingface_hub's `InferenceClient`, `text_generation`) raise an error of the reply's `error_type`
# with its `error`, a string, as the message
_TGI_TYPE: Final = "error_type"


def _ollama(path: str) -> bool:
    """Whether `path` is one of Ollama's: `/api/<name>`, one segment (`/api/chat`, `/api/tags`, ...), or a blob's
    (`/api/blobs/<digest>`). A deeper one is another server's (Open WebUI's OpenAI-compatible
    `/api/chat/completions`, called with OpenAI's SDK, which reads `code` from an `error` object)."""
    if not path.startswith(_OLLAMA):
        return False
    rest = path[len(_OLLAMA) :]
    return "/" not in rest or rest.startswith("blobs/")


def _tgi_native(path: str) -> bool:
    """Whether `path` is one of TGI's native paths (`/generate`, `/generate_stream`, `/`: other apps' root too, whose
    refusals are shaped as OpenAI's by `shaped_as`)."""
    from proxy.protocols.tgi import NATIVE_PATHS  # (here: that module raises this one's errors)

    return path in NATIVE_PATHS


def _kserve_v1_call(path: str) -> bool:
    """Whether `path` is a KServe V1 inference call's, `/v1/models/{name}:predict` or `:explain`, as KServe's router
    reads one (`kserve.v1_call_path`: `/v1/models/a/b:predict` is none, answered 404 in FastAPI's own shape)."""
    from proxy.protocols.kserve import v1_call_path  # (here: that module raises this one's errors)

    return v1_call_path(path)


class InvalidRequest(ProxyError):
    code = "invalid_request"
    status = 400
    grpc_code = "INVALID_ARGUMENT"
    error_type = "invalid_request_error"


class UnknownPurpose(InvalidRequest):
    """An `x-purpose` that `policy.known_purposes` does not list (`Pipeline.check_purpose`): refused before the
    request is read, and recorded under UNKNOWN_PURPOSE, never the purpose as sent."""


class HeaderTooLarge(InvalidRequest):
    """A request head over `limits.max_header_bytes` or `limits.max_headers` fields."""

    status = 431


class TargetTooLong(InvalidRequest):
    """A request target over 8 KiB."""

    status = 414


class BodyTimeout(InvalidRequest):
    """A request body that stopped coming for `limits.header_timeout_s`."""

    status = 408


class MessageTimeout(BodyTimeout):
    """gRPC: a call's request message (a unary call's request, a stream's first message) not whole within
    `limits.grpc_request_timeout_s` of the call's start (`GrpcIngress._request`): the row of a body that stopped
    coming, answered DEADLINE_EXCEEDED."""

    grpc_code = "DEADLINE_EXCEEDED"


class ExpectationFailed(InvalidRequest):
    """An `Expect` the proxy cannot meet (anything but 100-continue)."""

    status = 417


class LengthRequired(InvalidRequest):
    """A request to a path whose adapter reads a body, sent with neither Content-Length nor Transfer-Encoding: by
    RFC 9112 §6.3 its body is empty and what follows it the next request, so the JSON it meant to send would be read
    as a malformed request (two refusals for one call)."""

    status = 411


class Unauthenticated(ProxyError):
    code = "invalid_api_key"
    status = 401
    grpc_code = "UNAUTHENTICATED"
    error_type = "authentication_error"


class PurposeDenied(ProxyError):
    code = "purpose_denied"
    status = 403
    grpc_code = "PERMISSION_DENIED"
    error_type = "permission_error"


class PurposeRequired(ProxyError):
    code = "purpose_required"
    status = 403
    grpc_code = "PERMISSION_DENIED"
    error_type = "permission_error"


class RegionDenied(ProxyError):
    code = "region_denied"
    status = 403
    grpc_code = "PERMISSION_DENIED"
    error_type = "permission_error"


class EndpointDenied(ProxyError):
    code = "endpoint_denied"
    status = 403
    grpc_code = "PERMISSION_DENIED"
    error_type = "permission_error"


class FlowNotApproved(ProxyError):
    """The call's flow is not in the approved baseline and `lineage.on_unapproved` is `block`."""

    code = "flow_not_approved"
    status = 403
    grpc_code = "PERMISSION_DENIED"
    error_type = "permission_error"


class CheckpointUnknown(ProxyError):
    """`lineage.on_unapproved: block`, and the checkpoint the call's upstream serves for its model is not
    known yet (its metadata has not answered, or not about the model yet), so the flow cannot be checked
    against the baseline. Retryable: the metadata is asked again, at most once every `retry_after_s`
    (`CheckpointBook.why_unknown`)."""

    code = "checkpoint_unknown"
    status = 503
    grpc_code = "UNAVAILABLE"
    error_type = "server_error"
    retry_after_s = 1  # how often a refused call's model is asked about at most (checkpoints.NUDGE_GAP_S reads it)


class ModelNotFound(ProxyError):
    code = "model_not_found"
    status = 404
    grpc_code = "NOT_FOUND"
    error_type = "invalid_request_error"


class RequestTooLarge(ProxyError):
    code = "request_too_large"
    status = 413
    grpc_code = "RESOURCE_EXHAUSTED"
    error_type = "invalid_request_error"


class ReplyTooLarge(ProxyError):
    """gRPC: an upstream's reply message over `limits.grpc_max_reply_bytes`, refused by the proxy's channel to it
    (`proxy.transport.grpc_channels.reply_limit`): RESOURCE_EXHAUSTED, as grpc answers a message over its limit."""

    code = "reply_too_large"
    status = 502
    grpc_code = "RESOURCE_EXHAUSTED"
    error_type = "server_error"


class Overloaded(ProxyError):
    code = "overloaded"
    status = 503
    grpc_code = "UNAVAILABLE"
    error_type = "server_error"


class RecordUnavailable(ProxyError):
    """A zone with `require_record: true` while neither the lineage store nor its journal takes edges."""

    code = "record_unavailable"
    status = 503
    grpc_code = "UNAVAILABLE"
    error_type = "server_error"


class UpstreamUnavailable(ProxyError):
    code = "upstream_unavailable"
    status = 502
    grpc_code = "UNAVAILABLE"
    error_type = "server_error"


class UpstreamTimeout(ProxyError):
    code = "upstream_timeout"
    status = 504
    grpc_code = "DEADLINE_EXCEEDED"
    error_type = "server_error"


class DeadlinePassed(ProxyError):
    """gRPC: the client's own deadline passed while its upstream's call, given what was left of it, was under way
    (recorded as when grpc cancels the call at that deadline: `deadline_exceeded`)."""

    code = "deadline_exceeded"
    status = 504
    grpc_code = "DEADLINE_EXCEEDED"
    error_type = "server_error"


class DrainCut(ProxyError):
    """A request still arriving (its head read, its body not whole) when the SIGTERM drain ran out: recorded as
    a call refused before it was read is, its code the drain's (`drain_timeout`); its client gets no answer."""

    code = "drain_timeout"
    status = 503
    grpc_code = "UNAVAILABLE"
    error_type = "server_error"


class LeftUnread(ProxyError):
    """A request still arriving (its head read, its body not whole) when its client left: recorded as a call refused
    before it was read is, as the drain's cut of one is (`DrainCut`), its code the client's leaving
    (`client_disconnected`); no one is answered."""

    code = "client_disconnected"
    status = 499  # (nginx's "client closed request": never sent, nor recorded as sent)
    grpc_code = "CANCELLED"
    error_type = "invalid_request_error"


# the gRPC statuses a SERVER span records as an error (OpenTelemetry's RPC conventions, gRPC): the others (NOT_FOUND,
# INVALID_ARGUMENT, PERMISSION_DENIED, RESOURCE_EXHAUSTED, ...) say what the client asked for, as an HTTP 4xx does
GRPC_SERVER_ERRORS = frozenset(
    {"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"}
)


class UpstreamStatus(ProxyError):
    """An upstream answered a gRPC call with an error status: what the gRPC transport raises, mapped
    to the contract's errors by the Exchange (UNAVAILABLE, DEADLINE_EXCEEDED) or passed on as is. Passed on, it is
    the call's failure (its `error.type`, the status's name) only when a server's span counts it one
    (`GRPC_SERVER_ERRORS`): an upstream's NOT_FOUND or INVALID_ARGUMENT is recorded as an HTTP upstream's 4xx is,
    its status (`rpc.grpc.status_code`) and no error."""

    status = 502
    error_type = "server_error"

    def __init__(self, grpc_code: str, message: str) -> None:
        super().__init__(message)
        self.grpc_code = grpc_code
        self.code = grpc_code
        self.failed = grpc_code in GRPC_SERVER_ERRORS


DENIAL_ERRORS: dict[str, type[ProxyError]] = {
    cls.code: cls
    for cls in (
        Unauthenticated,
        PurposeDenied,
        PurposeRequired,
        RegionDenied,
        ModelNotFound,
        EndpointDenied,
        FlowNotApproved,
        CheckpointUnknown,
        RecordUnavailable,
    )
}


class ConfigError(Exception):
    """A configuration that cannot be used; carries every problem, each with its location."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems

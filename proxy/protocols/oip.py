"""The Open Inference Protocol v2 (KServe, Triton, MLServer): extraction shared by REST and gRPC.

REST bodies are JSON, optionally followed by binary tensor data (the binary-tensor extension, with the
JSON length in `Inference-Header-Content-Length`). Labels may ride in the request parameter
`data_labels` (a comma-separated string or a list). Every string in a tensor's JSON data is scanned as
text, whatever its datatype (MLServer hands an INT32 tensor's strings to the model), as are binary BYTES
tensors; the digest covers the tensor data (JSON `data` values and the binary section), not the framing.
"""

from __future__ import annotations

import binascii
import codecs
import functools
import hashlib
import json
import logging
import operator
import re
import struct
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable
from itertools import accumulate, repeat
from typing import Any, Final

import orjson

from proxy.config import Upstream
from proxy.detectors import TRUNCATED, Detectors
from proxy.errors import InvalidRequest, RequestTooLarge, echoed
from proxy.flow import UPSTREAM, Checkpoint, Outcome, ProtocolName
from proxy.protocols import (
    _REPRINTED,
    MAX_JSON_CONTAINERS,
    MAX_STRINGS,
    NOT_JSON,
    SHA256,
    VISIBLE,
    Fetch,
    Header,
    MetadataStatus,
    Observer,
    OutputText,
    Request,
    Target,
    _Duplicate,
    _no_duplicates,
    client_raises,
    ends_early,
    json_unescaped,
    load_request_json,
    refused_json,
    reply_json,
    reprinted_numbers,
    request_json_as_utf8,
    utf8_text,
)
from proxy.protocols import Adapter as AdapterBase
from proxy.protocols.sse import _DIGIT_MARKS, _INT_DIGITS, _LONG_RUN, _long_integer

log = logging.getLogger("lineage_proxy.checkpoints")  # discovery's, as `CheckpointBook.refresh` logs it

HEADER_LENGTH = "Inference-Header-Content-Length"
LABELS_PARAMETER = "data_labels"
# ... whose value is read as text too, wherever it stands (the request's, an input's, a requested output's parameters;
# over REST and gRPC, and a generate's), as `x-data-labels` is: MLServer hands its runtime every parameter as sent
# (`payload.parameters.data_labels`, a tensor's too), and Triton its backend the request's, and a label is any word
# of the grammar. Before 2026-12-07 it was the proxy's alone, unread: `"data_labels": "4111111111111111"` took a card
# to MLServer's model for any purpose, and a requested output's, not taken as labels, anything
# a tensor parameter naming a shared-memory region that holds the tensor's data (Triton's extension): data the
# proxy cannot read, so such a call is opaque, as a path no adapter reads (policy.passthrough decides)
SHARED_MEMORY = "shared_memory_region"
_MAX_SCAN_STRINGS = 10_000
# a version an integer parser reads as a number (Triton: std::stol skips white space, takes a sign, stops at the
# first non-digit), and the one form in which that number is the version's only spelling
_NUMERIC_VERSION = re.compile(r"\s*[+-]?[0-9]")
_CANONICAL_VERSION = re.compile(r"0|[1-9][0-9]*")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
# the numbers Triton's JSON parser reads beside JSON's own (rapidjson's kParseNanAndInfFlag) as tritonclient writes them
# (`"data":[NaN,Infinity,-Infinity]` for an FP32 array with missing values): orjson refuses them
_CONSTANT: Final = re.compile(rb"NaN|Infinity")
_QUOTE, _BRACE = ord('"'), ord("{")  # as ints, `in` a bytes object is one memchr (a bytes needle costs 10 times that)


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


# request header fields (and gRPC metadata keys) the proxy drops, writes anew, or reads as its own and checks (HTTP's
# framing and hop-by-hop fields, the trace (a `tracestate` forwarded with it is read as the trace keeps it:
# `tracestate_text`), the body's coding, `X-Forwarded-For`: an upstream whose model is handed the fields is sent none,
# `Upstream.fields_to_model`), and the caller's key (`Authorization`, `authorization-bin`, read where passed on:
# `passed_key_text`): every other one MLServer hands its model with the request as the client sent it
# (`parameters.headers`: each field of a REST request, each metadata entry of a gRPC one, a binary one's bytes;
# `Accept`, `Content-Type`, `User-Agent` too), as KServe's model server does (`predict(payload, headers)`) and
# Triton those its `--http-header-forward-pattern` names: their names and values are read. The purpose too
# (`x-purpose`, forwarded for a proxy chained behind): any word of the label grammar without `policy.known_purposes`, so
# `x-purpose: 4111111111111111` took a card to the model; and so the labels (`x-data-labels`, forwarded so too: a label
# is any word of the grammar, `4111111111111111` as well). A `Cookie` and an `x-api-key` (a key only on the Anthropic
# API's paths, never an OIP or KServe one) are forwarded as they came, and were not read: `Cookie: note=alice@...` reached
# the model for a purpose its zone forbids
HEADER_FRAMING: Final = frozenset({
    "host", "content-length", "content-encoding", "transfer-encoding", "connection", "keep-alive", "te", "expect",
    "accept-encoding", "authorization", "authorization-bin", "traceparent", "tracestate", "x-forwarded-for", "x-forwarded-proto",
    "x-forwarded-host", "x-real-ip", "forwarded", HEADER_LENGTH.lower(), "grpc-timeout", "grpc-encoding",
    "grpc-accept-encoding", "proxy-authorization", "proxy-authenticate", "proxy-connection", "trailer", "upgrade",
})  # fmt: skip


# the trace context other tracers write on a call, in the form they write it (the whole value): random ids, on every call
# (Datadog's, Google's load balancer's, Envoy's and nginx's request id, B3, Jaeger, Sentry, AWS's load balancer's).
# Read as text they labelled calls at random: one Datadog id (a decimal uint64) in ten passes the card check, and one
# UUID in about 550 reads as a phone number. A value of its field's form is an id, not read; any other value is read
_H: Final = "[0-9a-fA-F]"
_UUID: Final = rf"{_H}{{8}}-{_H}{{4}}-{_H}{{4}}-{_H}{{4}}-{_H}{{12}}"
_AMZN: Final = rf"(?:Self|Root)=1-{_H}{{8}}-{_H}{{24}}|Parent={_H}{{16}}|Sampled=[01?]|Lineage={_H}{{8}}:[0-9]{{1,3}}"
TRACE_IDS: Final = {
    name: re.compile(form, re.ASCII)
    for names, form in (
        (("x-request-id",), rf"{_UUID}|{_H}{{16,32}}"),
        (("x-datadog-trace-id", "x-datadog-parent-id"), "[0-9]{1,20}"),
        (("x-cloud-trace-context",), rf"{_H}{{32}}(?:/[0-9]{{1,20}})?(?:;o=[0-9])?"),
        (("x-b3-traceid",), rf"{_H}{{16}}(?:{_H}{{16}})?"),
        (("x-b3-spanid", "x-b3-parentspanid"), rf"{_H}{{16}}"),
        (("b3",), rf"[01d]|{_H}{{16}}(?:{_H}{{16}})?-{_H}{{16}}(?:-[01d](?:-{_H}{{16}})?)?"),
        (("uber-trace-id",), rf"{_H}{{1,32}}:{_H}{{1,16}}:{_H}{{1,16}}:{_H}{{1,2}}"),
        (("sentry-trace",), rf"{_H}{{32}}-{_H}{{16}}(?:-[01])?"),
        (("x-amzn-trace-id",), rf"(?:{_AMZN})(?:;(?:{_AMZN})){{0,5}}"),
    )
    for name in names
}


# the caller's key as gRPC binary metadata (its bytes base64 on the wire; grpc hands them decoded), or an HTTP field so
# named: its text twin's, passed on, or not, and read, or not, with it (`Pipeline._passed_on`); before 2026-12-04 it was
# passed on unread, so `authorization-bin: Bearer alice@example.com` reached MLServer's model for any purpose
KEY_BIN: Final = "authorization-bin"


def header_text(fields: Iterable[tuple[str, str | bytes]]) -> str | None:
    """The header fields (or gRPC metadata) an OIP server hands its model with the request, `name: value` a line, for
    the detectors to read apart from the request's texts (for labels only: never captured nor digested, as any field
    may hold a credential): None when every field is framing (`HEADER_FRAMING`, most calls) or a
    trace id (`TRACE_IDS`).
    Names in lower case (gRPC's are; HTTP's are lowered here), a binary value read as UTF-8 (`binary_text`), and one
    that is not UTF-8 as Latin-1 too, a line of its own of the same name (`_latin1_line`)."""
    lines: list[str] | None = None
    for name, value in fields:
        key = name.lower()
        if key in HEADER_FRAMING or key.startswith(":"):
            continue
        if isinstance(value, str):
            form = TRACE_IDS.get(key)
            if form is not None and form.fullmatch(value):  # an id (`TRACE_IDS`)
                continue
            text = value
        else:
            text = binary_text(value)
        if lines is None:
            lines = []
        lines.append(f"{key}: {text}")
        if type(value) is bytes and not text.isascii() and _UNDECODED.search(text) is not None:
            lines.append(_latin1_line(key, value))
    return "\n".join(lines) if lines is not None else None


def _latin1_line(key: str, value: bytes) -> str:
    """A gRPC binary value that is not UTF-8 as Latin-1 (a line break a space, as `binary_text` reads it): MLServer
    hands its model the bytes, which a model decodes as it likes, bytes that are not UTF-8 most often as Latin-1 or
    Windows-1252 (whose letters are Latin-1's), as a BYTES tensor element that is not UTF-8 is read
    (`not_utf8_element`) and an HTTP field (MLServer hands its model that decoded as Latin-1). Read as U+FFFD alone, a
    phone written with no-break spaces, `555\\xa0123\\xa04567`, reached MLServer's model labelled `scan:truncated`
    only (before 2026-12-07); the call is still labelled so (EBCDIC, other charsets, stay unread)."""
    text = str(value, "latin-1")
    return f"{key}: " + (text.replace("\n", " ") if "\n" in text else text)


# the bytes of a gRPC binary entry (`-bin`) that are not UTF-8, as `binary_text` keeps them (`surrogateescape`: each
# one a lone surrogate, U+DC80-U+DCFF, which no text decoded from HTTP's or gRPC's text metadata holds)
_UNDECODED: Final = re.compile(r"[\udc80-\udcff]")  # (escapes `re` reads: no lone surrogate in a literal mypyc emits)
_ONLY_TRUNCATED: Final = frozenset({TRUNCATED})


def field_text(value: bytes) -> str:
    """A field's bytes (an HTTP field's value, a gRPC binary metadata value) as the detectors read them: as UTF-8,
    those that are not kept as `_UNDECODED` marks, which `header_labels` reads as `scan:truncated`. MLServer hands its
    model the bytes (gRPC), or them decoded as Latin-1 (HTTP), which it may decode otherwise (`alice@example.com` in
    EBCDIC): replaced, as before 2026-12-04, they were read as U+FFFD and the call went on unlabelled, as if its model
    had been handed nothing unread."""
    try:
        return value.decode()  # (UTF-8, most: without the error handler's look-up, which cost as much again)
    except UnicodeDecodeError:
        return value.decode("utf-8", "surrogateescape")


def binary_text(value: bytes) -> str:
    """A gRPC binary metadata value (`x-note-bin`, `authorization-bin`) as the detectors read it (`field_text`), a line
    break in it read as a space (one field a line: `named_fields`, `header_labels`; an HTTP field's value holds none)."""
    text = field_text(value)
    return text.replace("\n", " ") if "\n" in text else text


def _undecoded(text: str) -> str | None:
    """`text` with its `_UNDECODED` marks replaced (U+FFFD, what the detectors read in their place), or None where it
    holds none (an ASCII text, most: one check)."""
    if text.isascii() or _UNDECODED.search(text) is None:
        return None
    return _UNDECODED.sub("\ufffd", text)


# what a User-Agent's product versions hold (RFC 9110's `product/version`) is not the value a detector takes it for:
# desktop Chrome's `Chrome/120.0.0.0` read as an IP address, Android's `Chrome/120.0.6099.144` and Edge's
# `Edg/120.0.2210.91` as phone numbers, on every call a browser makes. Such a piece is read on its own, apart from its
# line, and what it holds of these labels is not the call's: anything else it holds is (a card written
# `4111.1111.1111.1111` as a version). A value anywhere else in the fields is read as ever
FORM_LABELS: Final = frozenset({"pii:ip_address", "pii:phone"})
_PRODUCT_VERSION: Final = re.compile(r"(?<=[!#$%&'*+.^_`|~0-9A-Za-z-]/)[0-9]+(?:\.[0-9]+)+(?![^ ;)])", re.ASCII)
# what the pieces read apart are joined with: no built-in finder reads across it, so each is read as on its own
_APART: Final = "\n#\n"


def header_labels(detectors: Detectors, text: str) -> frozenset[str]:
    """What the detectors find in `header_text`'s text: a User-Agent's product versions read apart, without
    `FORM_LABELS` (see above), a cookie whose value is an id not read (`_cookies`); `scan:truncated` with what a binary
    value held that is not UTF-8 (`binary_text`), read as U+FFFD. A text without those fields (gRPC's, most REST calls'
    but a browser's) is scanned as it is."""
    replaced = _undecoded(text)
    if replaced is not None:
        return header_labels(detectors, replaced) | _ONLY_TRUNCATED
    if "user-agent: " not in text and "cookie: " not in text:
        return detectors.scan(text)
    lines: list[str] = []
    apart: list[str] = []
    for line in text.split("\n"):
        name, _, value = line.partition(": ")
        if name == "user-agent":
            versions = _PRODUCT_VERSION.findall(value)
            if versions:
                apart.extend(versions)
                line = "user-agent: " + _PRODUCT_VERSION.sub("", value)
        elif name == "cookie":
            line = "cookie: " + _cookies(value)
        lines.append(line)
    found = detectors.scan("\n".join(lines))
    return found | (detectors.scan(_APART.join(apart)) - FORM_LABELS) if apart else found


# a cookie's value in the form of a random id: a UUID, what session cookies often hold, one in about 570 of which reads
# as a phone number (its groups of digits between dashes): read, the session's every call was refused for it
_SESSION_ID: Final = re.compile(_UUID, re.ASCII)
# a cookie's value that is a Unix time, in seconds or milliseconds, as analytics and consent tools write on every call
# (`ts=1701234567890`): read, its 10 or 13 digits pass the phone check, and the session's every call was refused for
# it. In seconds only from 2014-05-13 (14...) to 2033: a 10-digit number beginning 10 to 13 is a national number where
# 10 digits begin with 1 (Buenos Aires' and Sao Paulo's 11, Sao Paulo state's 12 and 13, Egypt's mobiles' 10 to 12,
# Birmingham's 121 without the UK's leading 0), and a time before 2014-05, which a cookie seldom still holds (a browser
# keeps one 400 days at most unless written anew). Those beginning 14 to 19 are still taken for times (Sao Paulo
# state's 14 to 19, Egypt's 15, Manchester's 161): README. No number is 13 digits beginning with 1 (North America's,
# with its country code, is 11)
_EPOCH: Final = re.compile(r"1(?:[4-9][0-9]{8}|[0-9]{12})", re.ASCII)


def _cookies(value: str) -> str:
    """A `Cookie` field's value as read: its `name=value` pairs but those whose value, its %-escapes decoded (Segment
    writes `ajs_anonymous_id=%22<uuid>%22`), is a UUID (`_SESSION_ID`), an id, or a Unix time (`_EPOCH`). Any other
    value is read, as the model is handed it (`note=alice@example.com`, a card's digits), and, holding %-escapes, as
    decoded too."""
    kept: list[str] = []
    for pair in value.split(";"):
        _, equals, cookie = pair.partition("=")
        if equals:
            decoded = urllib.parse.unquote(cookie) if "%" in cookie else cookie
            bare = decoded.strip(' \t"')
            if _SESSION_ID.fullmatch(bare) is not None or _EPOCH.fullmatch(bare) is not None:
                continue
            if (
                decoded is not cookie
            ):  # read as decoded too (`note=alice%40example.com`: servers' cookie parsers decode it)
                pair = f"{pair}; {decoded}"
        kept.append(pair)
    return ";".join(kept)


# the ids a `tracestate`'s list-members hold, in the forms tracers write them on every call: Datadog's span id and its
# trace id's upper half (`dd=s:1;p:00f067aa0ba902b7;t.tid:640cfd8d00000000`, 16 hex digits each), OpenTelemetry's
# random value (`ot=rv:7a7d1e8c3f2b9a`, 14), W3C's trace and span ids (32, 16). Read, one Datadog `t.tid` in 450
# (the hour's 8 digits, then 8 zeros) passed the card check: a call refused at random. Not read, as the trace ids are
_TRACESTATE_ID: Final = re.compile(
    r"(?<![0-9A-Za-z])(?:[0-9a-f]{32}|[0-9a-f]{16}|[0-9a-f]{14})(?![0-9A-Za-z])", re.ASCII
)


# a list-member New Relic (`33@nr=0-0-<account>-<app>-<span id>-<transaction id>-1-0.5-<ms time>`) or Dynatrace
# (`<tenant>@dt=fw4;...`) writes on every call: ids, numbers and times in hex digits and punctuation. Read, about one in
# five New Relic members passed the card or phone check (its decimal account, app and time): a call refused at random.
# Not read when its value holds nothing else (no letter past f, no `@`), as the ids above
_TRACER_MEMBER: Final = re.compile(r"[a-z0-9_*/-]{1,241}@(?:nr|dt)=[0-9A-Fa-f.;:-]*", re.ASCII)


def tracestate_text(beside: str | None, tracestate: str) -> str:
    """`beside` (`header_text`'s text, None for none) with the `tracestate` the upstream is sent with the trace, which an
    OIP or KServe server hands its model as any field (`tracestate: rojo=alice@example.com` is W3C's), its ids not read
    (`_TRACESTATE_ID`, each read as a space so that what stood either side of one is not read as one number; New
    Relic's and Dynatrace's members, `_TRACER_MEMBER`)."""
    members = [m for m in tracestate.split(",") if _TRACER_MEMBER.fullmatch(m.strip(" \t")) is None]
    return _with_line(beside, "tracestate: " + _TRACESTATE_ID.sub(" ", ",".join(members)))


def passed_key_text(
    beside: str | None, authorization: str, name: str = "authorization", field: bool = True
) -> str | None:
    """`beside` with the caller's `Authorization` (or its binary twin, `name` `authorization-bin`, its bytes as text),
    passed on as it came where no caller has a key (the upstream's own auth), which an OIP or KServe server hands its
    model as any field (`Bearer alice@example.com`; MLServer a gRPC binary value as its bytes): read, but for a
    credential that is a UUID, an id as a cookie's is (`_SESSION_ID`: one in about 600 reads as a phone number). Read
    as Latin-1 too, a line of its own (`_latin1_line`), as the model is handed it: an HTTP field (`field`) that is not
    ASCII, which MLServer hands its model decoded as Latin-1 whatever its bytes, as the other fields are read
    (`http._oip_header_text`: `alice×@example.com` in UTF-8 is `aliceÃ\x97@example.com`, an address); gRPC binary
    metadata (`field` False) where its bytes are not UTF-8 (`field_text`'s marks), as `header_text` reads it."""
    if _SESSION_ID.fullmatch(authorization.partition(" ")[2].strip(" \t")) is not None:
        return beside
    beside = _with_line(beside, f"{name}: {authorization}")
    if authorization.isascii() or not (field or _UNDECODED.search(authorization) is not None):
        return beside
    return _with_line(beside, _latin1_line(name, authorization.encode("utf-8", "surrogateescape")))


def named_fields(text: str, named: re.Pattern[str]) -> str | None:
    """`header_text`'s text with only the fields whose name `named` matches (a Triton's forward pattern, as
    `config.forward_pattern` compiles it: those its model is handed, `Upstream.fields_named`); None for none."""
    lines = [line for line in text.split("\n") if named.search(line.partition(": ")[0]) is not None]
    return "\n".join(lines) if lines else None


def _with_line(beside: str | None, line: str) -> str:
    return line if beside is None else beside + "\n" + line


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


def check_version(version: str | None) -> None:
    """An explicit model version must name one version only. Triton reads `02`, `+2`, ` 2` and `2abc` as
    version 2, so the proxy, which matches versions as written (the upstream's metadata, the baseline's
    `iris:2`), would decide on a version the upstream does not run: a version that starts like a number
    must be one in canonical decimal form. Others (MLServer's `v0.1.0`) are names, matched as written by
    MLServer and refused by Triton."""
    if not version or (version.isdigit() and version.isascii() and (version[0] != "0" or len(version) == 1)):
        return  # none, or canonical: the common case, without a regex
    if _NUMERIC_VERSION.match(version) and not _CANONICAL_VERSION.fullmatch(version):
        raise InvalidRequest(f"model version {version!r} is not in canonical form: a version that starts with a "
                             "digit, a sign or white space must be a decimal number without leading zeros "
                             "(0|[1-9][0-9]*), as Triton reads it ('02' is its version 2)",
                             param="model_version")  # fmt: skip


# parameters of the protocol and its extensions: framing, never data
FRAMING_PARAMETERS = frozenset({
    LABELS_PARAMETER, "content_type", "binary_data_size", "binary_data", "binary_data_output", "classification",
    SHARED_MEMORY, "shared_memory_byte_size", "shared_memory_offset", "sequence_id", "sequence_start",
    "sequence_end", "priority", "timeout", "headers",
})  # fmt: skip
# ... of those, the ones a tensor's own `parameters` (an input's, a requested output's) hold that the server takes for
# itself: MLServer hands a tensor's `parameters.headers` to the runtime with its data, as it does the request's
TENSOR_FRAMING_PARAMETERS = FRAMING_PARAMETERS - {"headers"}
# ... of those, the ones a request's own `parameters` (not a tensor's) hold that the server takes for itself: Triton
# hands every other one to the backend as the request's parameters (`TRITONSERVER_InferenceRequestSetStringParameter`),
# so a string under a tensor's framing name there (`content_type`, `headers`, `classification`) reaches the model
REQUEST_FRAMING_PARAMETERS = frozenset({
    LABELS_PARAMETER, "sequence_id", "sequence_start", "sequence_end", "priority", "timeout", "binary_data_output",
})  # fmt: skip


SEQUENCE_PARAMETERS: Final = frozenset({"sequence_id", "sequence_start"})
# ... of those, the ones whose value a server takes for itself only as a number or a boolean (a `sequence_id`: or a
# string Triton keeps as its correlation id): MLServer reads none of them and hands its runtime every one, so a string
# there (`"sequence_id": "alice@example.com"`, `"priority": "..."`) reaches the model, and is read; so is `data_labels`,
# its labels as sent (a list's too: `LABELS_PARAMETER`)
TEXT_IF_STRING: Final = REQUEST_FRAMING_PARAMETERS
# ... and so with a tensor's (an input's, a requested output's): MLServer hands the runtime its `parameters` whole
# (`Parameters` keeps every field), so a string under `classification`, `binary_data_size`, `shared_memory_*`,
# `sequence_id` there, or a `content_type` that names no codec it has (or one that does), reaches the model: read
# (a number or a boolean, as Triton takes them, is still framing; `data_labels` is read as the request's is; a
# shared-memory region's name is not: a request naming one is opaque, refused while zones are configured unless
# `passthrough: forward`). A reply's `data_labels` is framing (`aside_parameters`: no `strings`), as over gRPC
TENSOR_TEXT_IF_STRING: Final = TENSOR_FRAMING_PARAMETERS - {SHARED_MEMORY}


# characters of a sequence's key (`sequence_key`) kept as they are: a longer one (a model's name or a string id as long
# as a body) is kept as its digest. A stream keeps the keys of the sequences it went on with for its record (up to as
# many as the process keeps), each a new string holding the model's name: a stream of 16 KiB names grew by that a
# message, past the bytes `Runtime.sequences` keeps of them
SEQUENCE_KEY_MAX: Final = 256


def sequence_key(model: str, given: object) -> str | None:
    """The sequence a request of `model` belongs to, by its `sequence_id` (Triton's correlation id, a number or
    a string; 0 and "" are none): `model` and the id, a number and its decimal string alike (kept together,
    a call is never taken out of the sequence it may be in). The number is a uint64: Triton takes a gRPC
    int64_param as one (-1 is 2^64 - 1, the id a REST `sequence_id` of 18446744073709551615 names)."""
    if given is None or type(given) is bool or given == 0 or given == "" or type(given) not in (int, str):
        return None
    if type(given) is int and given < 0:
        given &= U64
    key = f"{model}\n{given}"
    if len(key) > SEQUENCE_KEY_MAX:  # its digest (no line break: never a short key's), one key per sequence still
        return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return key


U64: Final = (1 << 64) - 1  # a uint64's bits: Triton's correlation ids, and what protobuf keeps of a varint


def rest_sequence(model: str, parameters: Any) -> tuple[str | None, bool]:
    """A REST request's sequence (`sequence_key`) and whether it starts it anew (`sequence_start: true`)."""
    if not isinstance(parameters, dict) or "sequence_id" not in parameters:
        return None, False
    sequence = sequence_key(model, parameters["sequence_id"])
    return sequence, sequence is not None and parameters.get("sequence_start") is True


def parameter_strings(
    parameters: dict[str, Any], out: list[str], framing: frozenset[str] = FRAMING_PARAMETERS,
    strings: frozenset[str] = frozenset(), names: list[str] | None = None,
) -> bool:  # fmt: skip
    """The strings in a request's or a tensor's `parameters` but the protocol's own (`framing`; a string under one of
    `strings` all the same: `TEXT_IF_STRING`, `data_labels` there a list's too), and their numbers as decimal text (`number_text`: a card or an id sent as
    a number): a backend reads its request's parameters (Triton's Python backend, MLServer runtimes), so text and
    numbers there reach the model. Into `names` (`out` when not given), the names of those parameters: MLServer and
    KServe's model server hand the runtime the parameters whole, their names too (`payload.parameters`), so before
    2026-12-04 a parameter named `alice@example.com` reached it unread."""
    whole = True
    keys = out if names is None else names
    for key, value in parameters.items():
        if not whole:  # past a limit: read no further (a dict of 1.3 M parameters was walked whole, 1.2 s)
            return False
        kind = type(value)
        if key in framing:
            if key == LABELS_PARAMETER and key in strings:  # its labels as sent, a list's too (`LABELS_PARAMETER`)
                whole = _strings(value, out, numbers=True) and whole
            elif kind is str and value and key in strings:  # it reaches MLServer's runtime all the same: read
                out.append(value)
            continue
        if key:
            whole = add_name(key, keys) and whole
        if kind is str or kind is list or kind is dict:
            whole = _strings(value, out, numbers=True) and whole
        elif kind is int or kind is float:  # (past the limit unread, as a string there is)
            if len(out) < _MAX_SCAN_STRINGS:
                out.append(number_text(value))
            else:
                whole = False
    return whole


def number_text(value: int | float) -> str:
    """A parameter's number as decimal text, as a backend prints it: an integer's digits; a double that holds an
    integer (`4111111111111111.0`) as that integer's digits, so a pattern of digits alone reads it too; any other
    double as Python writes it."""
    if isinstance(value, int):
        return str(value)
    if value.is_integer() and abs(value) < 1e21:  # (`is_integer` is False for infinities and NaN)
        return str(int(value))
    return repr(value)


def _strings(data: Any, out: list[str], tensor: dict[str, Any] | None = None, numbers: bool = False) -> bool:
    """Every string in tensor data, in order: nested lists, and the keys and values of objects, which no
    tensor holds (a request's `tensor` holding one is an InvalidRequest naming it); with `numbers`, every number
    too, as decimal text (a parameter's: a tensor's numbers are its data, not text). Iterative, so no nesting is
    too deep. False when some were left past `_MAX_SCAN_STRINGS`."""
    stack = [data]
    while stack and len(out) < _MAX_SCAN_STRINGS:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
        elif numbers and (type(item) is int or type(item) is float):
            out.append(number_text(item))
        elif isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, dict):
            if tensor is not None:
                name = str(tensor.get("name"))[:128]
                raise InvalidRequest(f"tensor {name!r}: its data holds a JSON object; tensor data is a (nested) list "
                                     "of numbers, booleans or strings", param="data")  # fmt: skip
            for key, value in reversed(item.items()):
                stack += (value, key)
    return not stack


BYTES_SCANNED = 1 << 20  # bytes of each BYTES tensor read for detectors (the rest is forwarded unscanned)


def not_utf8_element(raw: bytes, out: list[str], beside: list[str]) -> bool:
    """A BYTES element that is not UTF-8, into `out`, read replaced; into `beside`, as Latin-1 too or, when it holds a
    NUL, in each of UTF-16's and UTF-32's byte orders it is text in to its last whole code unit, and as Latin-1 where
    that is text with NULs at its end only (binary data, an image, is text in none). A BYTES element
    reaches the model as bytes, which it may decode in another charset: `jörg@exämple.de` written in Latin-1 or
    Windows-1252 (their letters are Latin-1's), UTF-16 or UTF-32, read replaced has U+FFFD for `ö` and `ä` (and,
    without its NULs, as the detectors read it, only an ASCII address is whole), no address, and reached the model for
    a purpose its zone forbids (before 2026-12-05). Only an element that is not UTF-8 pays for it. A wide reading with
    control characters (`_BINARY_CONTROL`) is binary data's (quiet audio, a string table's offsets: its `@`s and
    enclosed or fullwidth digits gave it `pii:` labels), not taken; the other readings take at most `BYTES_SCANNED`
    bytes (a KServe V1 `b64` decoded is unbounded; a gRPC `bytes_contents` element was before 2026-12-05, when one of
    64 MB was read three to five times over: it is now cut there first, `oip_grpc._contents`).

    An element is one text of `out` (the one captured, counted against the texts' bound): the other readings go
    `beside` it (a request's `Request.decoded`: scanned, not captured, counted nor digested; a value found only
    there withholds the captured content). Before 2026-12-05 they were texts too: a span captured an element's
    U+FFFD reading unmasked beside its masked Latin-1 one, and 6,000 Latin-1 `bytes_contents` elements filled the
    10,000 texts a gRPC request is read to (`scan:truncated`, ~1,000 elements unread).

    Its reading replaced takes `BYTES_SCANNED` bytes too: False when the element is longer (some of it unread, the
    call `scan:truncated`). Before 2026-12-05 it was made whole: a 64 MB gRPC `bytes_contents` element not UTF-8 was
    read as 64 M characters, two bytes each (U+FFFD is no Latin-1 character), 300 MB held at once with its copies."""
    whole = len(raw) <= BYTES_SCANNED
    if not whole:
        raw = raw[:BYTES_SCANNED]
    out.append(str(raw, "utf-8", "replace"))
    latin = str(raw, "latin-1")
    if b"\x00" not in raw:
        beside.append(latin)
        return whole
    size = len(raw)
    for codec, unit in _WIDE_CODECS:
        cut = size - size % unit  # (to its last whole unit: one odd byte after UTF-16 text made it none)
        try:
            text = str(raw if cut == size else raw[:cut], codec)
        except UnicodeDecodeError as error:
            # a C string before bytes that are no text in it (a lone surrogate after its NUL) is read to that NUL: before
            # 2026-12-05 such bytes after it made the reading none, and the address before them reached the model
            text = str(raw[: error.start], codec) if error.start > 0 else ""
            if "\x00" not in text:
                continue
        _c_string(text, beside)
    # Latin-1 too, as text ended by a C string's NULs is (before 2026-12-05 an element holding a NUL was read in the
    # wide codecs alone: `jörg@exämple.de` then a NUL, CJK in UTF-16, reached the model); binary data's has controls
    _c_string(latin, beside)
    return whole


def _c_string(text: str, beside: list[str]) -> None:
    """`text`, a reading of a BYTES element holding a NUL, into `beside` as a C string is read, to its first NUL, where
    that holds no control character but white space (binary data's reading holds some). Before 2026-12-05 the whole
    reading was taken only without one but NULs at its end: a byte after the NUL (`jörg@exämple.de\\0\\1`) made it
    none, and the address a model reading the C string reads reached it unlabelled."""
    head = text.partition("\x00")[0]
    if head and _BINARY_CONTROL.search(head) is None:
        beside.append(head)


_REPLACEMENT: Final = "\ufffd".encode()  # U+FFFD in UTF-8: a reading holding it without them was not UTF-8
# a BYTES element's charsets that hold NULs (`not_utf8_element`): without a byte-order mark Python's reads little-endian
# (each with its code unit's bytes)
_WIDE_CODECS: Final = (("utf-16", 2), ("utf-16-be", 2), ("utf-32", 4), ("utf-32-be", 4))
# a control character but white space: a wide reading holding one (but NULs at its end, a C string's) is binary data,
# not text (`not_utf8_element`)
_BINARY_CONTROL: Final = re.compile("[\x00-\x08\x0e-\x1f]")


def bytes_tensor_strings(raw: bytes | memoryview, out: list[str], beside: list[str] | None = None) -> bool:
    """Decode a raw BYTES tensor (each element: 4-byte little-endian length, then the bytes), at most
    `BYTES_SCANNED` bytes of it; False when some of it was left unread (the call is then labelled
    `scan:truncated`). Contents that do not split into such elements are an InvalidRequest: bytes past
    the last whole element would reach the model unscanned. An element's other readings go `beside`
    (`not_utf8_element`; None: into `out`, a reply's)."""
    offset, end, budget, whole = 0, len(raw), BYTES_SCANNED, True
    while offset + 4 <= end:
        if budget <= 0 or len(out) >= _MAX_SCAN_STRINGS:
            return False  # the rest is forwarded unread, and said to be
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > end:
            break
        taken = min(length, budget)
        try:
            if taken == length:
                out.append(str(raw[offset : offset + taken], "utf-8"))
            else:  # (not final: a character cut at the bound is left unread, where it made the element not UTF-8)
                out.append(codecs.utf_8_decode(raw[offset : offset + taken], "strict", False)[0])
        except UnicodeDecodeError:
            not_utf8_element(bytes(raw[offset : offset + taken]), out, out if beside is None else beside)
        budget -= taken
        whole = whole and taken == length
        offset += length
    if offset == end:
        return whole
    raise InvalidRequest("a BYTES tensor's contents do not split into elements (a 4-byte little-endian length, "
                         "then that many bytes)", param="raw_input_contents")  # fmt: skip


def _data_json(tensor: dict[str, Any]) -> bytes | None:
    """A tensor's `data` as orjson writes it: what the digest covers, and where C finds whether any text is
    in it (a `"`), so a numeric tensor is never walked in Python. None without data, or nested deeper than
    orjson writes (255 levels)."""
    if "data" not in tensor:
        return None
    try:
        return orjson.dumps(tensor["data"])
    except TypeError as exc:  # too deep; or an integer past 64 bits, read with its digits (`load_request_json`)
        return _constants_json(tensor) if str(exc) == _PAST_64_BITS else None


_PAST_64_BITS: Final = "Integer exceeds 64-bit range"  # what orjson says of an int it does not write


def _tensor_digest(tensors: Iterable[dict[str, Any]], dumped: Iterable[bytes | None], binary: bytes) -> str | None:
    """`sha256:` over the tensors' JSON data (`_data_json`), then the binary section; InvalidRequest for
    data nested deeper than any tensor."""
    h = SHA256.copy()
    seen = False
    for tensor, data in zip(tensors, dumped):  # noqa: B905 (`strict=`: zip called as Python, not a compiled loop)
        if data is not None:
            h.update(data)
            seen = True
        elif "data" in tensor:
            raise InvalidRequest("tensor data is nested too deeply to be a tensor", param="data")
    if binary:
        h.update(binary)
        seen = True
    return "sha256:" + h.hexdigest() if seen else None


def _json_part(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """The JSON and the binary section of a body, split at `Inference-Header-Content-Length`. Only ASCII digits
    are a length: Triton reads the field with `atoi`, which stops at the first other character, where Python's
    `int` also reads other scripts' digits, `_` between digits and Unicode spaces (`１３`, `0_13` and a
    no-break space before `13` are 13 here, 0 to Triton). And 0 asks Triton for a raw binary request: the whole
    body is its model's one input, bytes the proxy would have read as JSON and tensors."""
    if header_length is None:
        return body, b""
    digits = header_length.strip(" \t")
    if not (digits.isascii() and digits.isdigit()):
        raise InvalidRequest(f"{HEADER_LENGTH} must be a number written in ASCII digits, not {header_length!r}")
    try:
        length = int(digits)
    except ValueError:  # over the digits Python converts
        raise InvalidRequest(f"{HEADER_LENGTH} must be a number") from None
    if length == 0:
        raise InvalidRequest(f"{HEADER_LENGTH}: 0 makes the whole body one input's raw bytes (Triton's raw binary "
                             "request), which the proxy does not read: send the JSON inference request before them")  # fmt: skip
    if length > len(body):
        raise InvalidRequest(f"{HEADER_LENGTH} ({length}) exceeds the body ({len(body)} bytes)")
    return body[:length], body[length:]


def _request_json(head: bytes) -> tuple[dict[str, Any], bool]:
    """An inference request's JSON, and whether it holds `NaN` or an infinity. Triton reads those (rapidjson's
    kParseNanAndInfFlag) and tritonclient writes them for an FP32 array with missing values; orjson refuses them,
    so such a request is read again, only then, by Python's `json` (which takes `NaN`, `Infinity`, `-Infinity`),
    as strictly as `load_request_json` reads otherwise: UTF-8, no key twice in an object."""
    try:
        return load_request_json(head, "inference request"), False
    except InvalidRequest:
        data = _with_constants(head) if _CONSTANT.search(head) is not None else None
        if data is None:
            # refused as it was, raised again here: kept in a variable of a frame its traceback holds, it would hold
            # that frame, and so the frames of its callers (the request handler's, its body), in a reference cycle
            # (before 2026-12-05)
            raise
    if not isinstance(data, dict):
        raise InvalidRequest("inference request must be a JSON object")
    return data, True


def _with_constants(head: bytes) -> Any:
    """`head` read by Python's `json` (`_request_json`), which takes `NaN` and the infinities; None when it is no such
    JSON, or is JSON holding none of them (refused for something else, the words in a string): what orjson said is the
    reason."""
    used: list[str] = []
    try:
        data = json.loads(head.decode("utf-8"), object_pairs_hook=_no_duplicates,
                          parse_constant=functools.partial(_constant, used))  # fmt: skip
    except _Duplicate as duplicate:
        raise InvalidRequest(
            f"inference request: key {echoed(duplicate.args[0])} appears twice in one object"
        ) from None
    except (ValueError, RecursionError):  # (UnicodeDecodeError too)
        return None
    return data if used else None


def _constant(used: list[str], name: str) -> float:
    """`NaN`, `Infinity` or `-Infinity` read (`json.loads`' parse_constant), noted in `used`."""
    used.append(name)
    return float(name)


def _constants_json(tensor: dict[str, Any]) -> bytes | None:
    """`_data_json` for data that may hold `NaN` or infinities, which orjson writes as `null`: written by Python's
    `json` as they came (`NaN`, `Infinity`), so a missing value is not digested as a missing element."""
    if "data" not in tensor:
        return None
    try:
        return json.dumps(tensor["data"], separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")
    except (TypeError, ValueError, RecursionError):
        return None


def read_rest_request(
    model: str, version: str | None, body: bytes, header_length: str | None, operation: str = "infer",
    stream: bool = False,
) -> Request:  # fmt: skip
    """An OIP inference request (`/infer`; `operation` and `stream` name the other paths that take one: MLServer's
    `/infer_stream`, `/generate`, `/generate_stream`)."""
    check_version(version)
    head, binary = _json_part(body, header_length)
    if len(head) > _MANY_TENSORS_FROM:
        refuse_many_tensors(head)
    data, constants = _request_json(head)
    return inference_request(model, version, data, constants, binary, operation, stream)


def inference_request(
    model: str, version: str | None, data: dict[str, Any], constants: bool, binary: bytes, operation: str, stream: bool
) -> Request:
    """An OIP inference request's JSON (`data`, holding `NaN` or infinities: `constants`) and binary section read."""
    inputs = data.get("inputs")
    outputs = data.get("outputs")
    if type(inputs) is list:
        check_count(len(inputs) + (len(outputs) if type(outputs) is list else 0))
    if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
        raise InvalidRequest("'inputs' is required and must be a list of tensors", param="inputs")
    parameters = data.get("parameters")
    labels = labels_parameter(parameters.get(LABELS_PARAMETER)) if isinstance(parameters, dict) else ()
    for tensor in inputs:  # an input's own `data_labels`: the labels of its data
        given = tensor.get("parameters")
        if isinstance(given, dict) and LABELS_PARAMETER in given:
            labels += labels_parameter(given[LABELS_PARAMETER])
    sizes = [_binary_size(tensor) for tensor in inputs]
    declared = sum(size for size in sizes if size is not None)
    if declared != len(binary):
        raise InvalidRequest(f"the inputs' binary_data_size add up to {declared} bytes, but {len(binary)} bytes "
                             f"follow the JSON ({HEADER_LENGTH}): each byte must belong to exactly one input",
                             param="binary_data_size")  # fmt: skip
    texts: list[str] = []
    names: list[str] = []  # the tensors' and the parameters' (`Request.names`)
    # numbers of elements holding JSON as a runtime parsing them prints them, the other readings of elements that are
    # not UTF-8 (`not_utf8_element`): read beside the texts (`Request.decoded`), never captured (most: none)
    reprinted: list[str] = []
    dumped = [(_constants_json if constants else _data_json)(tensor) for tensor in inputs]
    whole = _tensor_texts(inputs, dumped, binary, texts, reprinted, request=True, sizes=sizes)
    if isinstance(parameters, dict) and parameters:
        whole = parameter_strings(parameters, texts, REQUEST_FRAMING_PARAMETERS, TEXT_IF_STRING, names) and whole
    for given in (tensor.get("parameters") for tensor in inputs):
        if isinstance(given, dict) and given:
            whole = parameter_strings(given, texts, TENSOR_FRAMING_PARAMETERS, TENSOR_TEXT_IF_STRING, names) and whole
    for requested in outputs if isinstance(outputs, list) else ():  # MLServer hands a requested output's
        given = requested.get("parameters") if isinstance(requested, dict) else None  # parameters to the model too
        if isinstance(given, dict) and given:
            whole = parameter_strings(given, texts, TENSOR_FRAMING_PARAMETERS, TENSOR_TEXT_IF_STRING, names) and whole
    given_id = data.get("id")  # MLServer hands the request's id to the runtime (`payload.id`), Triton to the backend
    if type(given_id) is str and given_id:
        texts.append(given_id)
    whole = tensor_names(inputs, names) and whole
    if isinstance(outputs, list):
        whole = tensor_names(outputs, names) and whole
    shared = any(_in_shared_memory(t) for t in (*inputs, *(outputs if isinstance(outputs, list) else ())))
    sequence, starts = rest_sequence(model, parameters)
    return Request(model, operation, stream, tuple(texts), (), labels, version,
                   None if shared else _tensor_digest(inputs, dumped, binary), opaque=shared,
                   unscanned=not whole, sequence=sequence, starts=starts, decoded=tuple(reprinted),
                   names=tuple(names))  # fmt: skip


TENSORS: Final = "tensors (inputs and requested outputs together)"  # what `check_count` counts
_WS: Final = rb"[ \t\n\r]*+"  # JSON's white space (`_json_value`)
_JSON_STRING: Final = rb'"(?:[^"\\]++|\\.)*+"'  # one JSON string, its escapes too


def _json_value(depth: int) -> bytes:
    """A pattern of one JSON value nested at most `depth` levels, each string matched whole (its escapes too), so
    that in JSON nothing inside a string is read as structure; possessive, so it never backtracks."""
    string, scalar = _JSON_STRING, rb"[-+.0-9A-Za-z]++"
    if depth == 0:
        return b"(?:" + string + b"|" + scalar + b")"
    inner = _json_value(depth - 1)
    items = inner + _WS + b"(?:," + _WS + inner + _WS + b")*+"
    member = string + _WS + b":" + _WS + inner + _WS
    members = member + b"(?:," + _WS + member + b")*+"
    return (b"(?:" + string + b"|" + scalar + rb"|\[" + _WS + b"(?:" + items + rb")?\]|\{" + _WS + b"(?:" + members
            + rb")?\})")  # fmt: skip


# a request body that begins `{"inputs": [` and holds more than `MAX_STRINGS` values in that list (each nested at most
# three levels, as tritonclient writes a tensor: its data flat), matched in C without parsing the body, so that such a
# request is refused (`check_count`) before orjson builds its millions of objects: 278,000 one-element inputs (16 MB)
# took 0.5-0.8 s to parse (1 s with the check of its keys), 0.11 s to match. Its first `MAX_STRINGS` inputs each
# followed by a comma: in JSON another value follows. Any other body (another first key, deeper tensors) is parsed and
# counted as before; one that is no JSON past them, or names `inputs` again, is refused so too (refused either way)
_MANY_TENSORS: Final = re.compile(
    _WS + rb"\{" + _WS + rb'"inputs"' + _WS + b":" + _WS + rb"\[" + _WS
    + b"(?:" + _json_value(3) + _WS + b"," + _WS + b"){" + str(MAX_STRINGS).encode() + b"}"
)  # fmt: skip
_MANY_TENSORS_FROM: Final = 3 * MAX_STRINGS  # bytes a body of more tensors holds at least (`{},` each)
# bytes of a body `_MANY_TENSORS` walks: 128 a tensor (tritonclient's one-element input takes 60, spaced 70). It walks
# tens of nanoseconds a value: walked whole, a 63 MB body of 65,535 arrays of `{}` took 3.5 s, where its objects alone
# refuse it, counted in C, in 0.1 s; one of numbers 27 ns a byte, before it was parsed
_MANY_TENSORS_UPTO: Final = 128 * MAX_STRINGS


def refuse_many_tensors(head: bytes) -> None:
    """Refuse an inference request's JSON of over `MAX_STRINGS` inputs unparsed when its first ones are matched
    (`_MANY_TENSORS`), over its first `_MANY_TENSORS_UPTO` bytes; not one its objects and arrays refuse
    (`load_request_value`: counted in C, where the match would walk every value first)."""
    braces = head.count(b"{")
    if (
        braces > MAX_STRINGS
        and braces + head.count(b"[") <= MAX_JSON_CONTAINERS
        and _MANY_TENSORS.match(head, 0, _MANY_TENSORS_UPTO) is not None
    ):
        check_count(MAX_STRINGS + 1)  # (refused: `_MANY_TENSORS`)


# a reply body whose list under `key` (`outputs`: an OIP reply's) holds more than `MAX_STRINGS` values (each nested at
# most three levels, as a server writes an output: its data flat), its members before it too (none of them named `key`:
# so it is walked once, not again as a member when it holds fewer): matched in C, so that only its first
# `MAX_STRINGS` + 1 values are parsed (`many_values`). orjson built all of a million tiny outputs (63 MB) to have
# all but 65,536 passed over, 3.3-5 s; 1.3 M of `{"data":[1]}` (16 MiB, buffered whole by default) 4.2 s
def many_values_pattern(key: bytes) -> re.Pattern[bytes]:
    return re.compile(
        _WS + rb"\{" + _WS
        + b"(?:(?!" + key + _WS + b":)" + _JSON_STRING + _WS + b":" + _WS + _json_value(3) + _WS + b"," + _WS + b")*+"
        + key + _WS + b":" + _WS + rb"\[" + _WS
        + b"(?:" + _json_value(3) + _WS + b"," + _WS + b"){" + str(MAX_STRINGS).encode() + b"}" + _json_value(3)
    )  # fmt: skip


_MANY_OUTPUTS: Final = many_values_pattern(rb'"outputs"')
_OUTPUTS_NAMED: Final = (b'"outputs"',)


# the values of a list after its `MAX_STRINGS` + 1st, each nested at most three levels, to the `]` that ends it
_LIST_REST: Final = b"(?:" + _WS + b"," + _WS + _json_value(3) + b")*+" + _WS + rb"(\])"
# what follows a reply's `MAX_STRINGS` + 1st output when its JSON is whole, in the shape `_MANY_OUTPUTS` matched: so a
# reply framed by its connection's close is told whole (`RestReplyObserver.cut_short`) in C, not by parsing it; where
# its list ends, its group 1
_OUTPUTS_END: Final = re.compile(
    _LIST_REST + _WS + b"(?:," + _WS + _JSON_STRING + _WS + b":" + _WS + _json_value(3) + _WS + b")*+" + rb"\}" + _WS
)  # fmt: skip
# where a cut list ends, read a piece of the reply at a time (`_list_end`): each piece's bytes that are no JSON structure
# taken out (all but brackets, braces and quotes), its strings taken out (`_structure`)
_SCAN_PIECE: Final = 1 << 16
_NOT_STRUCTURE: Final = bytes(byte for byte in range(256) if byte not in b'[]{}"')
_ONE_KIND: Final = bytes.maketrans(b"{}", b"[]")
_CLOSED_BY: Final = bytes.maketrans(b"[{", b"]}")  # an opening bracket's or brace's closing one (`_kinds_close`)
_RUNS: Final = re.compile(rb"[\[{]++|[\]}]++")  # runs of opening and of closing ones (`_kinds_close`)
# a valley read (`_lowest`: ~0.14 us) in bytes a level's pass over a piece reads (~4-6 ns each on brackets alone)
_VALLEY_COST: Final = 32
# a run left for Python (`_kinds_close`: ~0.35 us interpreted) in bytes a level's pass reads (`[]`, then `{}`)
_RUN_COST: Final = 64
# chains of brackets alone (`[[[[]]]]`), deepest first, taken out whole where few of a piece's bytes are braces
# (`_kinds_close`): a value nested below 64 levels in at most five passes, not a pass a level or a run stepped in Python
_CHAINS: Final = tuple(b"[" * depth + b"]" * depth for depth in (32, 16, 8, 4, 2))
_CHAINS_BRACES: Final = 16  # bytes of a shape a brace among them at most, for its chains to be so taken out
_FOUND_BY_BYTE: Final = 64  # bytes of a piece read byte by byte where the list's end is in it (`_closing`)
# a block a piece's structure repeats (`_period`): found where its first `_PERIOD_KEY` bytes are next, within
# `_PERIOD_UPTO` of its start
_PERIOD_KEY: Final = 64
_PERIOD_UPTO: Final = 4096
NO_JSON: Final = -2  # `_list_end` of values whose brackets and braces do not match: no JSON, as no reader reads it
# `many_values` of a whole reply (`ends`) whose rest is not in the shape matched: parsed whole (`whole_json`)
UNMATCHED: Final = -3


def _list_end(head: bytes, cut: int) -> int:
    """Where the list cut at `cut` (after one of its values) ends: its `]`, the first bracket past the cut that closes
    more than the values after it opened, however deep they are and whatever follows (its escapes blanked, then read
    `_SCAN_PIECE` bytes at a time, `_structure` then `_lowest`, or `_kinds_close` once a brace is among them, and within
    the piece that holds it halved, `_closing`): in C,
    linear in the bytes read (25-45 ms of CPU for 16 MiB of values of one shape, 0.06-0.36 s for values nested in no
    repeating shape); -1 where none does (JSON cut short); `NO_JSON` where a brace does, or a bracket closes a brace
    or a brace a bracket before it (`_kinds_close`, once a brace is among the values: no JSON, which until 2026-12-06
    was read as the list's values where the two met below its end). Until 2026-12-05 it was found from the reply's
    end, past members nested at most three levels in its last 64 KiB, else by walking values nested at most three
    levels from the cut: with a value past the cut nested four levels and a member after the list so too (or longer),
    not at all, the members after the list unread (an OIP reply's `model_name`)."""
    text, start = head, cut
    if head.find(b"\\", cut) >= 0:  # (each escape two bytes of no structure: the quote of `\"` ends no string)
        text, start = head[cut:].replace(b"\\\\", b"  ").replace(b'\\"', b"  "), 0
    size = len(text)
    depth, quoted, at = 0, False, start
    opened: bytearray | None = None  # the brackets and braces open, once a brace is among them (`_kinds_close`)
    while at < size:
        end = min(at + _SCAN_PIECE, size)
        shape, after = _structure(text, at, end, quoted)
        if opened is None and (123 in shape or 125 in shape):  # (`{`, `}`)
            opened = bytearray(b"[" * depth)
        if opened is None:
            lowest, ended = _lowest(shape), len(shape) - 2 * shape.count(b"]")
        else:
            closes = _kinds_close(shape, opened)
            if closes is None:
                return NO_JSON
            lowest, ended = (-depth - 1 if closes else 0), len(opened) - depth
        if depth + lowest < 0:
            closed = _closing(text, at, end, depth, quoted)
            return closed - start + cut if text[closed] == 93 else NO_JSON  # (`]`)
        depth, quoted, at = depth + ended, after, end
    return -1


def _structure(text: bytes, start: int, end: int, quoted: bool) -> tuple[bytes, bool]:
    """JSON `text[start:end]` (its escapes blanked), begun in a string when `quoted`, as its brackets and braces none
    of its strings holds, and whether it ends in a string."""
    shape = text[start:end].translate(None, _NOT_STRUCTURE)
    if quoted:
        shape = b'"' + shape
    quoted = False
    if 34 in shape:  # (`"`)
        # strings holding no bracket first (two quotes side by side: taking them out moves no quote's count across
        # another)
        shape = shape.replace(b'""', b"")
        if 34 in shape:
            quoted = shape.count(b'"') % 2 == 1
            shape = b"".join(shape.split(b'"')[::2])
    return shape, quoted


def _piece_depths(text: bytes, start: int, end: int, quoted: bool) -> tuple[int, int, bool]:
    """Of JSON `text[start:end]` (its escapes blanked), begun in a string when `quoted`: the lowest depth a prefix of it
    reaches and its depth at its end, from 0 (brackets and braces alike, none in a string counted), and whether it ends
    in a string."""
    shape, quoted = _structure(text, start, end, quoted)
    shape = shape.translate(_ONE_KIND)
    return _lowest(shape), len(shape) - 2 * shape.count(b"]"), quoted


def _lowest(shape: bytes) -> int:
    """The lowest depth a prefix of `shape` (brackets only) reaches, from 0: its innermost pairs taken out level by level
    (a pair side by side moves no depth before or after it), then what is left read from its valleys (`][`), between
    which it opens, then closes: each one's depth summed in C (`accumulate`). Levels are taken out while the passes
    left, their bytes shrinking as the last pass's did, would read fewer than `_VALLEY_COST` times the valleys it left
    (at most its pairs): values nested a few levels are taken out whole (summed from the second level on, 16 MiB of
    values nested 3 to 6 levels took 0.49 s until 2026-12-06, 0.28 s before 2026-12-05), values nested deeper in few
    passes (16 MiB of values nested 1 to 59 levels, each level holding 1/17 fewer, took 57 passes over most of it until
    2026-12-05, 1.2 s). A `shape` that repeats a block is read as that block (`_period`): values of one shape four
    levels deep or more had each of their valleys summed, 16 MiB of `[[[[]]]]` 0.53 s."""
    period = _period(shape)
    if period:
        shape = shape[:period]
    while b"[]" in shape:
        fewer = shape.replace(b"[]", b"")
        left, taken = len(fewer), len(shape) - len(fewer)
        shape = fewer
        if left * left >= _VALLEY_COST * (taken >> 1) * taken:  # (`left / taken * left`: what passes so shrinking read)
            break
    if b"[]" not in shape:  # (closing brackets, then opening ones)
        opened = shape.find(b"[")
        return -(len(shape) if opened < 0 else opened)
    parts = shape.split(b"][")
    # each part's depth at its end; a valley's `]` one below it after every part but the last
    ends: list[int] = list(
        accumulate(map(operator.sub, map(bytes.count, parts, repeat(b"[")), map(bytes.count, parts, repeat(b"]"))))
    )
    return min(0, ends[-1], min(ends[:-1], default=1) - 1)


def _period(shape: bytes) -> int:
    """The length of a block `shape` (brackets and braces) is copies of, the last perhaps in part, which opens as many
    as it closes: each copy then begins at depth 0, so that the lowest depth a prefix of `shape` reaches is the block's;
    0 where none is so found (a list's values of one shape are; the block is where the first `_PERIOD_KEY` bytes
    are next, checked in C: `memcmp`)."""
    if len(shape) < 2 * _PERIOD_KEY:
        return 0
    period = shape.find(shape[:_PERIOD_KEY], 1, _PERIOD_UPTO + _PERIOD_KEY)
    if period < 0 or 2 * (shape.count(b"]", 0, period) + shape.count(b"}", 0, period)) != period:
        return 0
    return period if shape[period:] == shape[:-period] else 0


def _kinds_close(shape: bytes, opened: bytearray) -> bool | None:
    """Whether `shape` (brackets and braces), begun with `opened` open, closes one more than those (the list's end):
    `opened` then those open where it ends. None where a bracket closes a brace or a brace a bracket before then (no
    JSON). Its pairs side by side taken out level by level (none of them unmatched: the values of an OIP reply's
    outputs, `{"data":[1]}`, each at once) while the passes left, shrinking as the last did, would read fewer bytes
    than `_RUN_COST` times the runs it left (at most the bytes it took out; until the review of helper bigreply2's
    change, while a pass took out one byte of `_VALLEY_COST`: values nested 1 to 59 levels, a brace among them, 57
    passes, 1.2 s for 16 MiB), then what is left read run by run, each run of closing ones against those it closes
    (`_RUNS`): Python steps a run. A shape
    that repeats a block is read as two copies and the rest (`_period`: each copy closes what the one before opened,
    as the second does). One of few braces has its chains of brackets (`_CHAINS`) taken out first, deepest first:
    values nested 8 to 20 levels, an OIP output's brace among them, were left as two runs each after a pass, 16 MiB
    0.37-0.58 s interpreted until 2026-12-06 (0.26-0.32 s before that day's check of kinds), now 0.15 s."""
    period = _period(shape)
    if period and len(shape) >= 2 * period:
        shape = shape[: 2 * period] + shape[len(shape) - len(shape) % period :]
    if _CHAINS_BRACES * shape.count(b"{") < len(shape):  # (many braces: a pass each would seldom find one)
        for chain in _CHAINS:
            shape = shape.replace(chain, b"")
    while True:
        fewer = shape.replace(b"[]", b"")
        if b"{}" in fewer:
            fewer = fewer.replace(b"{}", b"")
        left, taken = len(fewer), len(shape) - len(fewer)
        shape = fewer
        if not taken or left * left >= _RUN_COST * taken * taken:
            break
    for run in _RUNS.findall(shape):
        if run[0] == 91 or run[0] == 123:  # (`[`, `{`)
            opened += run
            continue
        count = len(run)
        if count > len(opened):  # (the list's end in it: a bracket, `_closing` finds)
            return None if len(opened) and opened[::-1].translate(_CLOSED_BY) != run[: len(opened)] else True
        if opened[-1 : -count - 1 : -1].translate(_CLOSED_BY) != run:
            return None
        del opened[-count:]
    return False


def _closing(text: bytes, start: int, end: int, depth: int, quoted: bool) -> int:
    """Where in JSON `text[start:end]` (its escapes blanked), begun at `depth` (in a string when `quoted`), the first
    bracket or brace is that takes it below 0 (`_piece_depths` found one): the piece halved down to
    `_FOUND_BY_BYTE` bytes, then read byte by byte; -1 when none does."""
    while end - start > _FOUND_BY_BYTE:
        middle = (start + end) // 2
        lowest, ended, after = _piece_depths(text, start, middle, quoted)
        if depth + lowest < 0:
            end = middle
        else:
            start, depth, quoted = middle, depth + ended, after
    for at in range(start, end):
        byte = text[at]
        if byte == 34:  # (`"`)
            quoted = not quoted
        elif quoted:
            continue
        elif byte == 91 or byte == 123:  # (`[`, `{`)
            depth += 1
        elif byte == 93 or byte == 125:  # (`]`, `}`)
            depth -= 1
            if depth < 0:
                return at
    return -1


def many_values(
    head: bytes, pattern: re.Pattern[bytes] = _MANY_OUTPUTS, named: tuple[bytes, ...] = _OUTPUTS_NAMED,
    ends: bool = False, after_unread: bool = False,
) -> tuple[bytes, int, int]:  # fmt: skip
    """A reply's JSON without its list's values past the first `MAX_STRINGS` + 1 (`pattern`, `many_values_pattern`):
    those, then the members after the list (after where it ends, `_list_end`), so that the reply is read as one of too
    many values (`read_reply`: the first `MAX_STRINGS` read, `scan:truncated`, no digest) without the rest being built.
    Returned with where the values were cut and where the list ended (`head`, 0 and `NO_JSON` where its brackets and
    braces past the cut do not match: no JSON, which its caller need not parse to be told; with `ends`, `UNMATCHED`:
    below). `head` itself (and 0, -1) when not so matched over its first `_MANY_TENSORS_UPTO` bytes past the first of
    `named` (read whole, as before), when too few of those bytes are braces and brackets (counted in C) for so many
    values (a large tensor's flat data: not walked), when its rest names one of `named` again (its client reads that
    list, the last of a name) or may (a `\\u` escape), or when where the list ends is not found (read whole; but
    `after_unread`, an OIP reply's, is cut all the same, the members after it unread, as all were before 2026-12-05: its
    output is `scan:truncated` already, and a million tiny outputs parsed whole took 1.2 s, where 0.08 s). `ends`: cut
    only when the rest is whole JSON in the shape matched (`_OUTPUTS_END`, in C, which tells where the list ends), as a
    whole reply is read where whether it was cut short is told by its JSON alone
    (`oip_generate.GenerateObserver.large_json`); else `head`, the cut and `UNMATCHED`, for its caller to parse whole
    (`whole_json`)."""
    if len(head) < _MANY_TENSORS_FROM:
        return head, 0, -1
    found = min((at for at in (head.find(name) for name in named) if at >= 0), default=-1)
    end = found + _MANY_TENSORS_UPTO
    if found < 0 or head.count(b"{", found, end) + head.count(b"[", found, end) <= MAX_STRINGS:
        return head, 0, -1
    matched = pattern.match(head, 0, end)
    if matched is None:
        return head, 0, -1
    cut = matched.end()
    # a member of one of those names after them (so written, or with a `\u` escape: JSON has no other) would be the
    # list its client reads (the last of a name), not these: such a reply is parsed whole, as before. Searched in C,
    # 9 ms a 16 MiB rest (a `\` first: `find` of one byte is `memchr`'s, of `\u` 23 ms)
    if any(head.find(name, cut) >= 0 for name in named) or (head.find(b"\\", cut) >= 0 and head.find(b"\\u", cut) >= 0):
        return head, 0, -1
    if ends:  # (13 ns a byte of the rest: 0.76 s of 59 MB)
        ended = _OUTPUTS_END.fullmatch(head, cut)
        if ended is None:  # (parsed whole; its list's end looked for only where orjson refuses it: `whole_json`)
            return head, cut, UNMATCHED
        closed = ended.start(1)
    else:
        closed = _list_end(head, cut)
    if closed < 0:
        return (head[:cut] + b"]}", cut, -1) if after_unread and closed != NO_JSON else (head, 0, closed)
    return head[:cut] + b"]" + head[closed + 1 :], cut, closed


# bytes of the values `many_values` left unread marked at a time (`unread_long_integer`): a piece's copies stay in the
# cache, where 25 MiB marked at once took ~30 ms of CPU, 12 ms so
_MARKED_PIECE: Final = 1 << 20


def unread_long_integer(head: bytes, cut: int, closed: int) -> bool:
    """Whether the values `many_values` left unread in `head` (from `cut` to where their list ends, `closed`; to its
    end where that was not found) hold an integer of more digits than `int` reads from text, out of a string
    (`sse._long_integer`), at which its client's `json.loads` (tritonclient's rapidjson) raises, as at one in the values
    read (`_whole_json_text`, `upstream_error`; an event's data so is no JSON). Their digits are marked and such a run
    looked for first, a piece at a time (each overlapping the next by a run's length less one), in C: where none is, as
    in every reply a JSON writer writes, their quotes and escapes are not read (`_Past`: 8-70 ms more of 25 MiB). Until
    2026-12-06 one past the first `MAX_STRINGS` + 1 values was a success."""
    end = closed if closed >= 0 else len(head)
    for at in range(cut, end, _MARKED_PIECE):
        if head[at : min(at + _MARKED_PIECE + _INT_DIGITS, end)].translate(_DIGIT_MARKS).find(_LONG_RUN) >= 0:
            return _long_integer(head[cut:end])
    return False


def whole_json(head: bytes, cut: int, text: OutputText) -> Any:
    """A whole reply in no charset that `many_values` left to be parsed whole (`UNMATCHED`: its rest not in the shape
    matched, a value nested past three levels) read as `reply_json` reads it; None where orjson refuses it and its
    brackets and braces past `cut` do not match (`_list_end`: `NO_JSON`), no JSON, not parsed again by a client's
    `json` (`_client_json`: 12 MiB 1.3-2 s). The list's end is looked for only there: before every such parse it
    would take 30-220 ms of CPU of 14 MiB interpreted, where orjson refuses 14 MiB in 70 ms."""
    try:
        value = orjson.loads(head)
    except orjson.JSONDecodeError as error:
        if _list_end(head, cut) == NO_JSON:
            return None
        # (read as a client's `json` reads it, not refused by orjson again: `reply_json` would parse it a second time,
        # up to 70 ms of 14 MiB)
        return refused_json(head, text, error, True)
    text.source = head  # (as `reply_json` keeps it)
    return value


def check_count(count: int, what: str = TENSORS) -> None:
    """Refuse a request of more than `MAX_STRINGS` tensors (inputs and requested outputs together; over gRPC, of
    parameters too: `what`), as a body of too many JSON objects is (`load_request_value`): each is read in Python
    several times over, whatever the scan limits (whether it is in shared memory, its binary section's size, its
    labels, its data for the digest), and a tensor left unread could not be passed on: its bytes of the binary
    section, its shared-memory region, its `data_labels` decide how the rest is read and what the call is. 278,000
    tensors of one element (16 MB) held the loop 1.4-2.3 s (a REST body of them is now refused unparsed:
    `_MANY_TENSORS`); Triton's and MLServer's clients send one tensor an input,
    a handful a call."""
    if count > MAX_STRINGS:
        raise RequestTooLarge(f"an inference request of over {MAX_STRINGS:,} {what}: more than the proxy reads in "
                              "one request")  # fmt: skip


# the protocol's datatypes: framing. KServe's model server hands its model any other string as an input's datatype (upper
# case), where Triton and MLServer refuse it
DATATYPES: Final = frozenset({
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BF16",
    "BYTES",
})  # fmt: skip


def named_datatype(datatype: str) -> bool:
    """Whether an input's `datatype` is one of the protocol's (`DATATYPES`, in any case: KServe upper-cases it)."""
    return datatype in DATATYPES or datatype.upper() in DATATYPES


def tensor_names(tensors: list[Any], names: list[str]) -> bool:
    """Into `names`, the names of a request's inputs (or requested outputs, or a reply's outputs: `aside_names`), and a
    datatype that is none of the protocol's (`named_datatype`): text the model's runtime is handed beside their data (MLServer's and KServe's
    `payload.inputs[i].name`, KServe's `.datatype`; MLServer's pandas codec makes the names a DataFrame's column names,
    its `decode_args` a predict function's arguments), read for labels (`Request.names`). Triton takes only the names
    its model's configuration gives; these servers take any, so before 2026-12-04 an input named `alice@example.com`
    reached MLServer's runtime unread. False when some were past `_MAX_SCAN_STRINGS`."""
    for tensor in tensors:
        if type(tensor) is not dict:
            continue
        name = tensor.get("name")
        datatype = tensor.get("datatype")
        for text in (name, None if type(datatype) is not str or named_datatype(datatype) else datatype):
            if type(text) is str and text and not add_name(text, names):
                return False
    return True


def add_name(name: str, names: list[str]) -> bool:
    """`name` into `names` (`Request.names`), unless they hold `_MAX_SCAN_STRINGS` already: then False (some unread)."""
    if len(names) >= _MAX_SCAN_STRINGS:
        return False
    names.append(name)
    return True


def _in_shared_memory(tensor: Any) -> bool:
    parameters = tensor.get("parameters") if isinstance(tensor, dict) else None
    return isinstance(parameters, dict) and SHARED_MEMORY in parameters


def _tensor_texts(
    tensors: list[dict[str, Any]],
    dumped: list[bytes | None],
    binary: bytes,
    texts: list[str],
    reprinted: list[str] | None = None,
    request: bool = False,
    sizes: list[int | None] | None = None,
) -> bool:
    """The strings of the tensors, from the binary section and from JSON `data`, into `texts`: with the
    binary-tensor extension each tensor's `parameters.binary_data_size` bytes follow the JSON in tensor
    order, BYTES elements each a 4-byte little-endian length and the bytes (as tritonclient sends by
    default); JSON `data` is read whatever the datatype (MLServer does not check data against it) and
    beside a binary part too (MLServer reads no binary part, only `data`). In a `request` an object in
    `data` is an InvalidRequest, and base64 and JSON-escaped elements are read decoded too (`add_decoded_texts`; the
    numbers of elements holding JSON into `reprinted`, and so the other readings of elements that are not UTF-8,
    `not_utf8_element`, a reply's too, read beside its output: `OutputText.aside_readings`; `sizes`, each tensor's
    `_binary_size` when known already). False when some of it was past a scan limit."""
    whole = True
    offset = 0
    if sizes is None:
        sizes = [_binary_size(tensor) for tensor in tensors]
    for tensor, data, size in zip(tensors, dumped, sizes):  # noqa: B905 (`strict=`: zip called as Python)
        start = len(texts)
        if size is not None:
            if tensor.get("datatype") == "BYTES":
                whole = bytes_tensor_strings(memoryview(binary)[offset : offset + size], texts, reprinted) and whole
            offset += size
        # only numbers, booleans and nulls when orjson wrote no '"' and no '{': then not walked in Python
        walk = _QUOTE in data or _BRACE in data if data is not None else "data" in tensor
        refuse = tensor if request else None
        if walk and _parameters(tensor).get("content_type") == "base64":  # MLServer's codec: the model reads it decoded
            whole = _declared_base64(tensor.get("data"), texts, refuse, reprinted) and whole
            continue
        if walk:
            whole = _strings(tensor.get("data"), texts, refuse) and whole
        if request and len(texts) > start:
            whole = add_decoded_texts(texts, start, reprinted) and whole
    return whole


def _declared_base64(
    data: Any, texts: list[str], tensor: dict[str, Any] | None, beside: list[str] | None = None
) -> bool:
    """The strings of data declared `content_type: base64`, each as sent (a server that ignores content_type
    gives the model that) and decoded (`unbase64`; other readings `beside`)."""
    encoded: list[str] = []
    whole = _strings(data, encoded, tensor)
    for text in encoded:
        texts.append(text)
        whole = unbase64(text, texts, beside) and whole
    return whole


def add_decoded_texts(texts: list[str], start: int, reprinted: list[str] | None = None) -> bool:
    """After `texts[start:]`, the text each stands for once a runtime decodes it: base64 (below), then
    JSON escapes. MLServer's `pd_json` codec (and any runtime parsing an element as JSON) reads
    `{"to": "alice\\u0040example.com"}` as an address, so an element holding `\\uXXXX` is scanned
    unescaped too (one search in C per element). Such a runtime prints an element's numbers again as it parsed them
    (`{"card": 4.111111111111111e15}` is `{"card": 4111111111111111.0}` to the model): those that print otherwise
    go to `reprinted` (`reprinted_numbers`, as a tool call's `arguments` are read), for an element that may be JSON
    (its first character opens a JSON text) and holds such a number (`_REPRINTED`, a search in C). False when some
    were past `MAX_STRINGS`.

    MLServer decodes an input whose model-settings declare `content_type: base64` although the request
    does not say so, so any element its codec would decode (`b64decode(validate=True)`: the alphabet only, whole padded quads) is
    scanned decoded too when that is text: UTF-8 but for at most one character in 8 (read replaced, so a
    stray byte hides nothing), and, not UTF-8, as Latin-1 or UTF-16/32 too, into `reprinted` (`not_utf8_element`:
    before 2026-12-05 a KServe V1 instance's `b64` holding `jörg@exämple.de` in Latin-1 had no address). Binary data (an image) is not
    read: it would only spend the scan budget. Under 8 characters an element holds nothing the detectors find."""
    whole = True
    for index in range(start, len(texts)):
        text = texts[index]
        if len(text) < 8 or len(text) & 3 or _BASE64.fullmatch(text) is None:
            continue
        try:
            raw = binascii.a2b_base64(text, strict_mode=True)
        except binascii.Error:
            continue
        decoded = utf8_text(raw)
        if decoded is None:
            continue
        if "\ufffd" in decoded and _REPLACEMENT not in raw:  # not UTF-8: read as a BYTES element so sent is
            whole = not_utf8_element(raw, texts, texts if reprinted is None else reprinted) and whole
        else:
            texts.append(decoded)
    end = len(texts)  # (the elements and their base64 decoded: a runtime parses JSON escapes as it reads their numbers)
    for index in range(start, end):
        text = texts[index]
        if "\\u" in text:
            unescaped = json_unescaped(text)
            if unescaped != text:
                texts.append(unescaped)
    if reprinted is None:
        return whole
    for index in range(start, end):
        text = texts[index]
        if text[:1] in _JSON_FIRST and _REPRINTED.search(text) is not None and not reprinted_numbers(text, reprinted):
            return False
    return whole


# what a JSON text may begin with (white space, then a value): an element otherwise is no JSON a runtime parses
_JSON_FIRST: Final = frozenset(' \t\n\r{["-0123456789')


def _parameters(tensor: dict[str, Any]) -> dict[str, Any]:
    parameters = tensor.get("parameters")
    return parameters if isinstance(parameters, dict) else {}


def unbase64(text: str, out: list[str], beside: list[str] | None = None) -> bool:
    """An element declared base64 as the text it encodes, into `out`, decoded leniently (characters outside the
    alphabet dropped, so `dG86\nIGFs…` is still an address): all that MLServer's strict codec decodes, and
    what a runtime calling `b64decode` without `validate` decodes; nothing when it does not decode (then
    what the model is given is the element as sent), or decodes to itself. Bytes that are not UTF-8 are read as a
    BYTES element sent so is (`not_utf8_element`): the model is given the bytes (before 2026-12-05 read replaced
    only, a Latin-1 `jörg@exämple.de` so sent had no address); its other readings go `beside` (None: into `out`).
    False when some of it was left unread (`not_utf8_element`)."""
    try:
        raw = binascii.a2b_base64(text.encode("utf-8", "surrogateescape"))
    except ValueError:
        return True
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        return not_utf8_element(raw, out, out if beside is None else beside)
    if decoded != text:
        out.append(decoded)
    return True


def _binary_size(tensor: dict[str, Any]) -> int | None:
    """`parameters.binary_data_size`: the bytes of the binary section that are this tensor's; None when
    its data is in the JSON."""
    parameters = tensor.get("parameters")
    size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None


class RestReplyObserver(Observer):
    """Fills an Outcome from an OIP REST inference reply (JSON, optionally with binary outputs): read
    whole, or, passed on as it arrives (no Content-Length, or over `limits.buffer_max_bytes`), kept as it
    passes, at most `Detectors.keep_max` bytes, and read so once it ended (past that: `scan:truncated`). Its
    JSON is read as a client reads it (`reply_json`); a reply that holds more than white space but no JSON object
    the proxy reads (a page of HTML, plain text, JSON nested too deeply) is passed on unread, its output labelled
    `scan:truncated`."""

    def __init__(self, outcome: Outcome, detectors: Detectors, capture: bool, header_length: str | None) -> None:
        self.outcome = outcome
        self.detectors = detectors
        self._text = OutputText(outcome, detectors, capture)
        self._header_length = header_length
        self._kept: list[bytes] | None = None  # the pieces of a reply passed on as it arrives
        self._kept_size = 0  # their bytes; -1 once past `detectors.keep_max`
        self._ended_early = False  # a reply whose JSON ends before its value does (`cut_short`)
        self._cut_head: bytes | None = None  # a reply's JSON read only up to its outputs past the bound (`many_values`)
        self._cut_at = 0  # where it was cut

    def head(self, status: int, header: Header) -> None:
        self._header_length = header(HEADER_LENGTH.lower())
        self._text.declare(header("content-type"))

    def body(self, data: bytes) -> None:
        self._read(data)

    def _read(self, data: bytes) -> None:
        """Read a whole reply: a JSON object (after `Inference-Header-Content-Length`'s bytes, with the binary-tensor
        extension), else not read (`_unread`)."""
        try:
            head, binary = _json_part(data, self._header_length)
        except InvalidRequest:
            self._unread(data)
            return
        read, cut, closed = many_values(head, after_unread=True)
        if closed == NO_JSON and self._text.charset is None:
            # (no JSON past the first outputs, a bracket closing a brace: unread as parsing it whole tells, 1.5 s of 12
            # MiB of tiny outputs until the review of helper bigreply2's change; in a charset it may be other JSON)
            self._unread(data)
            return
        if read is not head and self._text.charset is not None:
            # read in the charset its type names, as its client reads it (`_in_charset`), its rest may be other JSON
            # (`"+AG8-utputs"`, `"outputs"` in UTF-7): parsed whole
            read = head
        reply = reply_json(read, self._text, True)
        if not isinstance(reply, dict):
            self._unread(data, reply is NOT_JSON and ends_early(head, self._text))
            return
        if read is not head:  # (whether the rest ends as JSON: asked only of a reply framed by its close, `cut_short`)
            self._cut_head, self._cut_at = head, cut
            if unread_long_integer(head, cut, closed):
                client_raises(self.outcome)
        self.outcome.output_digest = read_reply(self._text, self.detectors, reply, binary)

    def _unread(self, data: bytes, ended_early: bool = False) -> None:
        """A reply that is no JSON object: unread, and said to be unless it held only white space (no content);
        `ended_early`: its JSON ends before its value does (`cut_short`)."""
        self._ended_early = ended_early
        if VISIBLE.search(data) is not None:
            self._text.unread()

    def chunk(self, data: bytes) -> None:
        """OIP REST has no streamed inference: a reply passed on as it arrives is kept, to be read whole
        at `finish`; past `detectors.keep_max` bytes nothing more is, and its output is labelled `scan:truncated`."""
        size = self._kept_size
        if size < 0:
            return
        size += len(data)
        if size > self.detectors.keep_max:
            self._kept = None
            self._kept_size = -1
            self._text.unread()
            return
        self._kept_size = size
        kept = self._kept
        if kept is None:
            kept = self._kept = []
        kept.append(data)

    def _read_kept(self) -> None:
        kept = self._kept
        if kept:
            self._kept = None
            data = kept[0] if len(kept) == 1 else b"".join(kept)
            kept.clear()
            self._read(data)  # (one cut short, `Exchange.finish` says why, is no JSON: unread)

    def cut_short(self) -> bool:
        """At the end of a reply framed by its connection's close (which HTTP cannot tell from a cut), read now:
        whether its JSON ends before its value does."""
        self._read_kept()
        head = self._cut_head
        if head is not None:  # its outputs past the bound unparsed: whole if the rest ends so, else as a whole reply is
            self._cut_head = None
            return _OUTPUTS_END.fullmatch(head, self._cut_at) is None and ends_early(head)
        return self._ended_early

    def finish(self) -> None:
        self._read_kept()
        digest = self.outcome.output_digest
        self._text.finish(self.detectors)
        if digest:
            self.outcome.output_digest = digest


def read_reply(
    text: OutputText, detectors: Detectors, reply: dict[str, Any], binary: bytes,
    streamed: Callable[[Any, list[str]], None] | None = None, names: StreamNames | None = None,
) -> str | None:  # fmt: skip
    """An OIP inference reply's JSON (and binary section) read into `text`: its model (`observe_reply_meta`), the strings
    of its outputs, their names and its parameters beside them; a reply naming no `outputs`, its strings as unknown.
    Returns the digest of its tensors (None for none, or data the proxy cannot digest). `streamed`: one event of a
    streamed reply (MLServer's `infer_stream`), each output's name and strings handed to it, which continues that
    output's text with them rather than make each a piece of its own, so a value a model streams over two events
    (`alice@` then `example.com`) is read whole, and not run into another output's strings between; `names`, the
    stream's output names so far (`StreamNames`). Past `MAX_STRINGS` outputs, each read in Python several times over (a
    million: a minute), the rest is passed on unread, `scan:truncated`, and no digest is made (only some were read): a
    reply cannot be refused once the model ran, as a request of so many tensors is (`check_count`)."""
    observe_reply_meta(text.outcome, reply.get("model_name"), reply.get("model_version"), reply.get("id"))
    found = reply.get("outputs")
    if not isinstance(found, list):  # none of the fields the output is in
        text.add_unknown(reply)
        if binary:  # bytes no output claims
            text.unread()
        found = []
    cut = len(found) > MAX_STRINGS
    if cut:
        text.unread()
        text.undigested()  # (nor of their text: a BYTES reply's)
        found = found[:MAX_STRINGS]
    outputs = [o for o in found if isinstance(o, dict)]
    dumped = [_data_json(output) for output in outputs]
    if streamed is None:
        text.add_tensors(functools.partial(_tensor_texts, outputs, dumped, binary))
    else:
        for output, data in zip(outputs, dumped):  # noqa: B905 (`strict=`: zip called as Python, not a compiled loop)
            texts: list[str] = []
            beside: list[str] = []  # (its elements' other readings: `not_utf8_element`)
            try:
                if not _tensor_texts([output], [data], binary, texts, beside):
                    text.unread()
            except InvalidRequest:  # BYTES that are not whole elements: those before are read
                text.unread()
            streamed(output.get("name"), texts)
            if beside:
                text.aside_readings(beside)
    aside_names(text, detectors, outputs, names)
    read = aside_parameters(text, ("parameters",), reply.get("parameters"))
    for at, output in enumerate(outputs):
        if read > MAX_STRINGS:  # (each output's are bounded alone: 250 outputs' 2.5 M parameters took 2.5 s)
            text.unread()
            break
        read += aside_parameters(text, (at, "parameters"), output.get("parameters"))
    if cut:
        return None
    try:
        return _tensor_digest(outputs, dumped, binary)
    except InvalidRequest:
        return None  # not a tensor the proxy can digest; forwarded all the same


def aside_parameters(text: OutputText, key: tuple[Any, ...], parameters: Any) -> int:
    """A reply's or an output's `parameters` but the protocol's own (`FRAMING_PARAMETERS`: `content_type`, `headers`, a
    sequence's), read beside the content (`OutputText.aside`), their numbers too, as a request's are: a runtime answers
    there as well as in its tensors (MLServer's `Parameters` take any field, Triton's Python backend gives a response
    parameters), and its client reads them. Returns the number of texts read (their names and values), which
    `read_reply` bounds across a reply."""
    if type(parameters) is not dict:
        return 0
    for name in parameters:  # (most are the protocol's alone, MLServer's `content_type`: no list made for them)
        if name not in FRAMING_PARAMETERS:
            break
    else:
        return 0
    texts: list[str] = []
    if not parameter_strings(parameters, texts):
        text.unread()
    if texts:
        text.aside(key, "\n".join(texts))
    return len(texts)


OUTPUT_NAMES: Final = ("names",)  # the `OutputText.aside` key of a reply's tensor names (`aside_names`)


def aside_names(text: OutputText, detectors: Detectors, outputs: list[Any], stream: StreamNames | None = None) -> None:
    """A reply's output names, and a datatype none of the protocol's, read beside the content (`OutputText.aside`) as a
    request's are (`tensor_names`): MLServer and KServe's model server send the names their runtime gives (a custom
    runtime may name an output from its input), and its client reads them, so before 2026-12-04 an output named
    `alice@example.com` reached the client with the output unlabelled. Names in which the detectors found nothing
    before (`OUTPUT0`, on every call) are not read again (`Detectors.finds_nothing`). `stream`: the reply is one
    message of a stream, whose names are read together (`StreamNames`)."""
    names: list[str] = []
    if not tensor_names(outputs, names):
        text.unread()
    aside_name_list(text, detectors, names, stream)


def aside_name_list(
    text: OutputText, detectors: Detectors, names: list[str], stream: StreamNames | None = None
) -> None:
    """`aside_names` of names read already (a Triton generate reply's output names are its JSON keys)."""
    if names:  # (a whole reply: the one message of its stream)
        read = (StreamNames() if stream is None else stream).to_read(detectors, names)
        if read is not None:
            text.aside(OUTPUT_NAMES, read)


class StreamNames:
    """The output names of a reply's messages (a stream's replies over gRPC, its events over REST), each message's a
    line apart from the last's, as one text beside the content (`OUTPUT_NAMES`). The first message's are not read where
    the detectors found nothing in them before (`Detectors.finds_nothing`: `OUTPUT0`, on every call), but a later
    message's are read with them, as a pattern may span the two (found nothing in apart, `secret` then `project` were
    both passed over: over REST until 2026-12-04, each event's names being checked alone)."""

    def __init__(self) -> None:
        self._named = False  # the first message's names came
        self._unread = ""  # they were not read
        self._read = False  # some were read: the next come a line after them

    def to_read(self, detectors: Detectors, names: list[str]) -> str | None:
        """What of a message's `names` (some) is read now, beside what was read before; None for nothing."""
        joined = names[0] if len(names) == 1 else "\n".join(names)
        if not self._named:
            self._named = True
            if detectors.finds_nothing(joined):
                self._unread = joined
                return None
        elif self._unread:
            joined, self._unread = self._unread + "\n" + joined, ""
        if self._read:
            return "\n" + joined
        self._read = True
        return joined


def observe_reply_meta(outcome: Outcome, model: Any, version: Any, reply_id: Any) -> None:
    if isinstance(model, str) and model:
        outcome.response_model = f"{model}:{version}" if isinstance(version, str) and version else model
        outcome.extra["lineage.model.version"] = version if isinstance(version, str) else ""
    if isinstance(reply_id, str) and reply_id:
        outcome.response_id = reply_id


class Adapter(AdapterBase):
    """OIP v2 REST inference: POST /v2/models/{name}[/versions/{v}]/infer."""

    name: ProtocolName = "oip"
    dialect = "oip"
    status_attribute = "http.response.status_code"
    provider: str | None = None

    def merge(self, listings: list[Any]) -> dict[str, Any]:
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

    def as_utf8_json(self, body: bytes, header: Header) -> bytes | None:
        """None for a body with the binary tensor extension: Triton (rapidjson) and KServe (orjson) read its head in
        UTF-8 alone, and `Inference-Header-Content-Length` counts the bytes sent, which written again are others."""
        return None if header(HEADER_LENGTH.lower()) is not None else request_json_as_utf8(body)

    def observer(self, target: Target, outcome: Outcome, detectors: Detectors, capture: bool) -> RestReplyObserver:
        return RestReplyObserver(outcome, detectors, capture, None)


class ModelVersions:
    """OIP model metadata: model -> the versions it serves; no version asked means the latest
    (Triton's and MLServer's default version policy). A model listed with no version (MLServer's default:
    `"versions": []`) is its name alone, as its replies name it (no `model_version`)."""

    def __init__(
        self, versions: dict[str, tuple[str, ...]], unready: frozenset[str] = frozenset(),
        missing: frozenset[str] = frozenset(),
    ) -> None:  # fmt: skip
        self._versions = versions
        self.unready = unready  # models whose metadata answered an error but 404: not ready (`Catalog.unready`)
        self.missing = missing  # models whose metadata answered 404: not loaded (`Catalog.missing`)
        self.loads = False  # (a model loaded is asked about by name: `Catalog.missing`)
        # model -> version asked ("": the latest) -> its checkpoint, made on the first call that asks: every
        # call resolves its checkpoint, and an answer's are immutable (bounded by the versions listed)
        self._made: dict[str, dict[str, Checkpoint]] = {}

    def scales_unknown(self) -> ModelVersions:
        return self  # nothing a call does not name itself (its version) chooses the weights that serve it

    def twins(self, checkpoint: str) -> tuple[str, ...]:
        return ()  # (a model's versions are other weights)

    def resolve(self, model: str, version: str | None) -> Checkpoint | None:
        made = self._made.get(model)
        if made is not None:
            found = made.get(version or "")
            if found is not None:
                return found
        versions = self._versions.get(model)
        if versions is None:
            return None
        if version:
            if version not in versions:
                return None
            found = Checkpoint(oip_checkpoint(model, version), UPSTREAM)
        else:
            found = Checkpoint(oip_checkpoint(model, latest_version(versions)), UPSTREAM)
        if made is None:
            made = self._made[model] = {}
        made[version or ""] = found
        return found


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

            async def get_grpc(model: str) -> Any:
                return await grpc_metadata(upstream, model)

            get = get_grpc  # two functions of one name in a method: mypyc compiles them as one

            if not models:
                try:
                    await grpc_metadata(upstream, "")  # a liveness probe: any answer will do
                except (LookupError, ValueError):  # a status, or an answer that is no ModelMetadataResponse
                    pass
        else:
            try:
                await fetch.get_json(upstream, "/v2/health/ready")
            except MetadataStatus:  # it answered: the server is up, though a model of it may not be ready (MLServer,
                pass  # and Triton's strict readiness, answer 400 then): the ready ones are named, the others retried

            async def get_rest(model: str) -> Any:
                # the name as a path segment, escaped as tritonclient sends it: the name a call's path names is read
                # percent-decoded (a space, `?`, CR LF, a character outside latin-1 written in as it is would make
                # another request than this one, or none)
                return await fetch.get_json(upstream, f"/v2/models/{urllib.parse.quote(model, safe='')}")

            get = get_rest

        found: dict[str, tuple[str, ...]] = {}
        unready: list[str] = []
        missing: list[str] = []
        for model in sorted(models):
            try:
                meta = await get(model)
            except MetadataStatus as status:  # the upstream does not serve it (yet); not an outage
                # not "not found": Triton's 400 or 503 for a model loading, or failed to load; "not found": newer
                # Triton's 404 for a model not loaded (`has no available versions`), or a name it never served
                (missing if status.status == 404 else unready).append(model)
                continue
            except LookupError:
                continue
            except ValueError as exc:  # it answered, with no ModelMetadataResponse: this model is not named
                _unreadable(upstream, model, str(exc))
                continue
            if not isinstance(meta, dict):  # over REST: no JSON object (none, or not JSON)
                _unreadable(upstream, model, "not a JSON object")
                continue
            versions = meta.get("versions")  # listed; `versions` is optional (absent: none named)
            found[model] = tuple(str(v) for v in versions) if isinstance(versions, list) else ()
        return ModelVersions(found, frozenset(unready), frozenset(missing))


_UNREADABLE_LOGGED: set[tuple[str, str]] = set()  # (upstream, model), logged once per process (bounded)


def _unreadable(upstream: Upstream, model: str, why: str) -> None:
    """An upstream answered a model's metadata with what cannot be read (not a valid ModelMetadataResponse
    over gRPC, no JSON object over REST): that model is not named by it, the round goes on, the upstream
    stays reachable."""
    key = (upstream.name, model)
    if key in _UNREADABLE_LOGGED or len(_UNREADABLE_LOGGED) >= 4096:
        return
    _UNREADABLE_LOGGED.add(key)
    log.warning("upstream %s: the metadata of model %r cannot be read (%s); its checkpoint is not named from it "
                "(logged once)", upstream.name, model, why)  # fmt: skip


ADAPTER = Adapter()
DIALECT = Dialect()

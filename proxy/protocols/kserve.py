"""KServe's V1 protocol (KServe's Python model server, `kserve.ModelServer`; TorchServe in KServe mode).

`POST /v1/models/{name}:predict` and `:explain`, a JSON body (`{"instances": [...]}`, or `{"inputs": ...}`), answered
`{"predictions": [...]}` (`explanations` for an explainer); `GET /v1/models/{name}`, the model's readiness
(`{"name", "ready"}`: 404 for a model it does not serve, 503 for one not ready). The model server hands the model the
whole body as it parsed it (a custom `kserve.Model`'s `predict(payload, headers)`), so every string in it is read:
`instances` and `inputs` (both; KServe's predictors read `inputs` first) as OIP tensor data is (their strings, and
the keys of their objects: a row's column names; their numbers are data, not text; an element's base64 and JSON
escapes decoded too), any other key as OIP parameters are (strings and numbers as text); a structured CloudEvent's
`data` is read as the body, as KServe hands the model that alone (and a structured CloudEvent reply is read by its
`data`, the model's reply). KServe parses a body as JSON for the `Content-Type`s it lists, compared whole
(`_JSON_TYPES`: `application/octet-stream` is one), for none, and for a binary CloudEvent's whose body is JSON; any
other reaches the model as its raw bytes: when its type says JSON (`application/json; charset=utf-8`) read as JSON,
or as text when it is none; when it says text (`text/plain`), read as that text (both in the `charset` the type
names, as the model may decode them: `codec_of`); else data the proxy does not read (opaque, as OIP tensors in shared
memory: `policy.passthrough` decides). A JSON body that is no object (`[[1, "a"]]`,
`"text"`) reaches a custom model as that value: read as `instances` are. KServe's OpenAI data plane, under
`/openai/v1`, is OpenAI's API (`openai_unprefixed`; the ingress gives the prefix back: `http._upstream_target`).
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any, Final, TypeGuard

import orjson

from proxy.config import Upstream
from proxy.detectors import Detectors
from proxy.errors import InvalidRequest, echoed
from proxy.flow import Outcome, ProtocolName
from proxy.protocols import (
    NOT_DATA,
    NOT_JSON,
    Fetch,
    Header,
    MetadataStatus,
    Request,
    Target,
    bytes_digest,
    client_raises,
    ends_early,
    load_request_json,
    load_request_value,
    reply_json,
    request_json_as_utf8,
)
from proxy.protocols import Adapter as AdapterBase
from proxy.protocols.charsets import codec_of, readings
from proxy.protocols.oip import (
    NO_JSON,
    ModelVersions,
    RestReplyObserver,
    _strings,
    _unreadable,
    add_decoded_texts,
    many_values,
    many_values_pattern,
    parameter_strings,
    unread_long_integer,
)
from proxy.protocols.openai import ADAPTER as OPENAI
from proxy.protocols.openai import CONTENT_KEYS, NUMBER_PARAMS

PREFIX: Final = "/v1/models/"
# KServe's OpenAI data plane's routes, `/openai/v1/chat/completions`, ... (`KSERVE_OPENAI_ROUTE_PREFIX`'s default)
OPENAI_PREFIX: Final = "/openai"
_VERBS: Final = frozenset({"predict", "explain"})
# the request's data: KServe's predictors read `inputs` when there is one, else `instances` (`get_predict_input`); a
# custom model gets the whole body, so both are read as data, the digest the one a predictor reads
DATA_KEYS: Final = ("inputs", "instances")
OUTPUT_KEYS: Final = ("predictions", "explanations", "outputs")  # a reply's, as its client reads it (first found)
# a reply whose output list holds more than `MAX_STRINGS` values: its first `MAX_STRINGS` + 1 found in its bytes and
# parsed, with its other members (`oip.many_values`). orjson built a million tiny predictions (16 MiB) whole, 0.4-0.5 s
_MANY_PREDICTIONS: Final = many_values_pattern(rb'"(?:predictions|explanations|outputs)"')
_OUTPUTS_NAMED: Final = tuple(b'"' + key.encode() + b'"' for key in OUTPUT_KEYS)
# the `Content-Type` values KServe's model server parses a body of as JSON (`JSON_HEADERS`: `application/octet-stream`
# too; a body that is not JSON refused 400), compared whole, as it compares them: any other value, even
# `application/json; charset=utf-8`, hands the model the raw bytes, but for a binary CloudEvent's (`_CLOUDEVENT`)
_JSON_TYPES: Final = frozenset(
    {"application/json", "application/cloudevents+json", "application/ld+json", "application/octet-stream"}
)
# the fields that make a request a binary-mode CloudEvent (the `cloudevents` package's `has_binary_headers`): KServe's
# model server then parses its body as JSON whatever its `Content-Type` says, and hands the model the raw bytes when
# that fails (Knative Eventing sends them so)
_CLOUDEVENT: Final = ("ce-specversion", "ce-source", "ce-type", "ce-id")
_QUOTE, _BRACE = ord('"'), ord("{")  # as ints, `in` a bytes object is one memchr
_WHOLE: Final = ""  # the key a body that is no JSON object is read under: its data, as `instances` are
_WHOLE_KEYS: Final = (_WHOLE,)
# a body with all these keys is a structured CloudEvent to KServe (`is_structured_cloudevent`): its model gets `data`
_STRUCTURED: Final = ("specversion", "id", "source", "type", "time", "data")


def split_path(path: str) -> tuple[str, str] | None:
    """`/v1/models/{name}[:verb]` -> (name, verb, "" for none): the name as KServe's router reads it (one path
    segment; before the last `:` only when what follows is `predict` or `explain`); None for other paths."""
    if not path.startswith(PREFIX):
        return None
    rest = path[len(PREFIX) :]
    if not rest or "/" in rest:
        return None
    name, colon, verb = rest.rpartition(":")
    if colon and name and verb in _VERBS:
        return name, verb
    return rest, ""


def v1_call_path(path: str) -> bool:
    """Whether `path` is a KServe V1 inference call's (`:predict`, `:explain`) as KServe's router reads it (one
    path segment, not empty, names the model): answered in KServe's error shape."""
    parts = split_path(path)
    return parts is not None and parts[1] != ""


def openai_unprefixed(method: str, path: str) -> str | None:
    """`path` less KServe's OpenAI prefix (`/openai/v1/chat/completions` -> `/v1/chat/completions`) when what is left
    is a call the OpenAI adapter reads, or KServe's OpenAI model health (`GET /openai/v1/models/{name}`, routed by
    the model it names as V1's readiness is); None for any other path. KServe's routes are all under `/openai/v1/`."""
    rest = path[len(OPENAI_PREFIX) :]
    if not path.startswith(OPENAI_PREFIX) or not rest.startswith("/v1/"):
        return None
    if OPENAI.match(method, rest) is not None:
        return rest
    parts = split_path(rest) if method == "GET" or method == "HEAD" else None
    return rest if parts is not None and parts[1] == "" else None


def openai_fields(body: bytes, operation: str, provider: str | None = "openai") -> tuple[str | None, bool]:
    """The fields of an OpenAI call's body that the OpenAI adapter does not read, as KServe's OpenAI data plane hands
    them to its model (`create_chat_completion(request, raw_request, context)`: the request object, which keeps the
    fields it does not know, and the raw request): `user`, `metadata`, `safety_identifier` and the rest of `NOT_DATA`,
    numbers (a field of the caller's own; not a parameter's every server takes as a number, `openai.NUMBER_PARAMS`: a
    `seed`, `max_tokens`), an object or a list but a call's content and what its API's templates print
    (`openai.CONTENT_KEYS` of its `operation`: a field of the caller's own, `{"context": {"url": ...}}`, or named as
    another API's, a `tools` beside a text completion's `prompt`, whose keys, numbers and members named as framing the
    adapter does not read), and every top-level key (a field named `alice@example.com`) but
    `model`, which names the model that runs. Read as a V1 body's other keys are (`parameter_strings`: their strings
    and numbers as text, their names), a line each, None for none; and whether that is all of them (False: past
    `_MAX_SCAN_STRINGS` the rest is unread, `scan:truncated`). Never digested: the digest is that of what every server
    reads. Read only for a call that may reach KServe (`Pipeline.call`), apart from its header fields. An Ollama call
    (its adapter's `provider`) is read as its adapter reads it: every object and list its content (`ollama.read_request`:
    `options`, a generate's `context` of token ids, `images`), where read as an OpenAI call's of the same operation its
    `options.seed` (`2147483647`) was a phone number and four token ids a card (before 2026-12-04)."""
    try:
        data = load_request_json(body)
    except InvalidRequest:  # read by the adapter as UTF-8 (`Exchange._read_as_utf8`): the same here
        utf8 = request_json_as_utf8(body)
        if utf8 is None:
            return None, True
        data = load_request_json(utf8)
    others: dict[str, Any] = {}
    content = CONTENT_KEYS[operation] if provider != "ollama" else None
    for key, value in data.items():
        if not _read_by_adapter(key, value, content) and not _a_number_param(key, value):
            others[key] = value
        elif key:  # read by the adapter, or a parameter (`seed`): its name, not its value
            others[key] = None
    others.pop("model", None)
    texts: list[str] = []
    names: list[str] = []
    whole = parameter_strings(others, texts, frozenset(), names=names)
    return ("\n".join(names + texts) if names or texts else None), whole


def _read_by_adapter(key: str, value: Any, content: frozenset[str] | None) -> bool:
    """Whether the OpenAI adapter reads a body's top-level field as every server reads it: a string, the call's content
    or what its API's templates print (`content`, `CONTENT_KEYS` of its operation; None: every object and list, as
    Ollama's adapter reads them), not `NOT_DATA`."""
    if key in NOT_DATA:
        return False
    kind = type(value)
    return kind is str or ((kind is list or kind is dict) and (content is None or key in content))


def _a_number_param(key: str, value: Any) -> bool:
    """Whether a body's top-level field is a number of a parameter every server takes as one (`openai.NUMBER_PARAMS`:
    `seed`, `max_tokens`, ...): not read as text, where a number of the caller's own field is."""
    kind = type(value)
    return (kind is int or kind is float) and key in NUMBER_PARAMS


def _declared_json(content_type: str | None) -> bool:
    """Whether this `Content-Type` says the body is JSON (its media type, any case, parameters aside; none: it is), so
    text. A request with several `Content-Type` fields (the proxy reads them joined, `a, b`) is an InvalidRequest:
    KServe's model server reads the last one alone, so `text/plain` then `application/json` would be raw bytes to
    the proxy and JSON to the model; so would `text/plain; charset=utf-8` then `application/json` (`_several`)."""
    if content_type is None:
        return True
    media = content_type.partition(";")[0]
    if "," in content_type and _several(content_type):
        raise InvalidRequest(f"several Content-Type fields ({echoed(content_type)}): KServe's model server reads the "
                             "last one alone, so the body could be read otherwise than lineage-proxy decided on; send "
                             "one", param="content-type")  # fmt: skip
    media = media.strip().lower()
    return media in _JSON_TYPES or media.endswith("+json")


def _several(content_type: str) -> bool:
    """Whether this `Content-Type` is several fields joined (`a, b`): a comma outside a quoted parameter value (where
    one must be), or after an opening quote left unclosed. Before 2026-12-04 only a comma in the media type told,
    so a first field with parameters (`text/plain; charset=utf-8` then `application/json`) was read as text alone."""
    outside = content_type.split('"')
    if len(outside) % 2 == 0:  # (an odd count of quotes: the last is open)
        return True
    return any(index % 2 == 0 and "," in part for index, part in enumerate(outside))


def _binary_cloudevent(header: Header | None) -> bool:
    """Whether the request is a binary-mode CloudEvent (`_CLOUDEVENT`): KServe's model server parses its body as JSON
    whatever its `Content-Type` says, and hands the model the raw bytes when that fails."""
    return header is not None and all(header(name) is not None for name in _CLOUDEVENT)


def _declared_text(content_type: str | None) -> bool:
    """Whether this `Content-Type` (one, `_declared_json` has seen to that) says the body is text: a `text/*` type
    (`text/plain`, `text/csv`), any case, parameters aside."""
    return content_type is not None and content_type.partition(";")[0].strip().lower().startswith("text/")


def _raw(model: str, operation: str, body: bytes, content_type: str | None, text: bool, json_typed: bool) -> Request:
    """A body that is no JSON, which KServe's model server hands the model as its raw bytes: read as the text its
    `Content-Type` says it is (`text`: one that says JSON, `application/json; charset=utf-8`, or text, `text/plain`),
    as UTF-8, or in the `charset` it names, as a model may decode it (`text/plain; charset=utf-16`, `latin-1`,
    `shift_jis`: `codec_of`); bytes that are not text in it read as U+FFFD, the call labelled `scan:truncated`, as is one
    in a `charset` Python does not know (read as UTF-8). One whose type says JSON (`json_typed`) and that is JSON once
    decoded so (`application/json; charset=utf-16`) is read as that JSON (its strings, escapes decoded, as a JSON
    body is read), its digest the bytes'. With any other type (`image/png`), data the proxy does not read (`policy.passthrough`)."""
    digest = bytes_digest(body) if body else None
    if not text:
        return Request(model, operation, digest=digest, opaque=True)
    charset = codec_of(content_type)
    if charset:
        return _in_charset(model, operation, readings(body, charset), digest, json_typed)
    try:
        read, whole = body.decode("utf-8"), charset is None
    except UnicodeDecodeError:
        read, whole = body.decode("utf-8", "replace"), False
    return Request(model, operation, texts=(read,) if read else (), digest=digest, unscanned=not whole)


def _in_charset(
    model: str, operation: str, readings: tuple[tuple[str, bool], ...], digest: str | None, json_typed: bool
) -> Request:
    """`_raw`'s reading of a body in a charset (`readings`: UTF-16 without a byte-order mark both ways): each reading
    that is JSON, where its type says JSON, as that JSON (escapes and all, as a model that parses the text it decoded
    reads it), else as text; the digest the bytes'. The first reading (Python's) is the `texts`; one in the other byte
    order is read beside them (`decoded`), as text with escapes decoded is: it holds the first's values byte-swapped
    (`alice@...` as CJK), which no detector masks, so it is never captured, and a value found in it withholds the
    captured content (before 2026-12-04 a span captured it, the address masked in one reading a byte swap away in the
    other)."""
    texts: list[str] = []
    decoded: list[str] = []
    names: list[str] = []
    whole = True
    for index, (read, read_whole) in enumerate(readings):
        whole = whole and read_whole
        into = decoded if index else texts  # (the first reading's texts; the other order's beside them)
        if json_typed:
            try:
                parsed = read_request(model, operation, read.encode("utf-8", "surrogatepass"), None)
            except InvalidRequest:
                pass
            else:
                into.extend(parsed.texts)
                decoded.extend(parsed.decoded)
                names.extend(parsed.names)
                whole = whole and not parsed.unscanned
                continue
        if read:
            into.append(read)
    return Request(model, operation, texts=tuple(texts), digest=digest, unscanned=not whole, decoded=tuple(decoded),
                   names=tuple(names))  # fmt: skip


def _structured(value: Any) -> TypeGuard[dict[str, Any]]:
    """Whether a body (a request's, a reply's) is a structured CloudEvent, as KServe's `is_structured_cloudevent` reads
    one (`_STRUCTURED`): KServe hands the model its `data` alone, and answers one sent as `application/cloudevents+json`
    with one whose `data` is the model's reply."""
    return type(value) is dict and "specversion" in value and all(name in value for name in _STRUCTURED)


def _dumped(value: Any) -> bytes:
    """`value` as JSON written by orjson (what the digest covers); Python's `json` for an integer past 64 bits."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")


def read_request(
    model: str, operation: str, body: bytes, content_type: str | None, header: Header | None = None
) -> Request:
    """A V1 `:predict` or `:explain` body (see the module's doc): InvalidRequest for one that is no JSON where KServe's
    model server parses it (and refuses it so), or whose `instances` is not a list (KServe's predictors refuse it
    too). A body that is JSON but no object (a list, a string, a number) is handed to a custom model as it is: read as
    `instances` are. `header`: the request's fields, asked only when the body is not JSON or its `Content-Type` does
    not say it is (a binary CloudEvent's body is parsed as JSON whatever it says: `_binary_cloudevent`)."""
    declared_json = _declared_json(content_type)
    if not declared_json and not _binary_cloudevent(header):
        return _raw(model, operation, body, content_type, _declared_text(content_type), False)
    try:
        value = load_request_value(body, "request body")
    except InvalidRequest:
        # KServe's model server refuses it 400 too when it parses the body for its `Content-Type`, which it compares
        # whole (`_JSON_TYPES`); for any other, or a binary CloudEvent's, the model gets its bytes
        if (content_type is None or content_type in _JSON_TYPES) and not _binary_cloudevent(header):
            raise
        return _raw(model, operation, body, content_type, declared_json or _declared_text(content_type), declared_json)
    envelope: dict[str, Any] | None = None
    if _structured(value):
        envelope = {name: item for name, item in value.items() if name != "data"}  # (the model gets `data` alone)
        value = value["data"]
    data: dict[str, Any] = value if type(value) is dict else {_WHOLE: value}
    instances = data.get("instances")
    if instances is not None and type(instances) is not list:
        raise InvalidRequest("'instances' must be a list (KServe V1: one element an instance)", param="instances")
    texts: list[str] = []
    reprinted: list[str] = []
    whole = True
    digest: str | None = None
    keys = 0  # the data keys the body has
    walked = False
    for key in DATA_KEYS if type(value) is dict else _WHOLE_KEYS:
        if key in data:
            keys += 1
            dumped = _dumped(data[key])
            if digest is None:
                digest = bytes_digest(dumped)
            if _QUOTE in dumped or _BRACE in dumped:  # numbers, booleans and nulls only: not walked in Python
                whole = _strings(data[key], texts) and whole
                walked = True
    if walked:
        whole = add_decoded_texts(texts, 0, reprinted) and whole
    names: list[str] = []  # the other keys, which the model gets with their values (`Request.names`)
    if len(data) > keys:  # (most bodies: their data alone)
        others = {name: item for name, item in data.items() if name not in DATA_KEYS}
        whole = parameter_strings(others, texts, frozenset(), names=names) and whole
    if envelope is not None:  # (its attributes: read as parameters are)
        whole = parameter_strings(envelope, texts, frozenset(), names=names) and whole
    if content_type is not None and content_type not in _JSON_TYPES:
        charset = codec_of(content_type)
        if charset:
            # the model gets the raw bytes, and may decode them by the `charset` named (`application/json;
            # charset=utf-7`: `+AEA-` is `@` in it): what it reads so, when other text than their UTF-8, is read
            # beside (`decoded`)
            other = _other_reading(model, operation, body, charset, header)
            if other is not None:
                reprinted.extend(other.texts + other.decoded)
                names.extend(other.names)
                whole = whole and not other.unscanned
        elif charset is not None and not _binary_cloudevent(header):
            # one Python does not know (or two that differ): the model may read other text in it, as it may a text's
            whole = False
    return Request(model, operation, texts=tuple(texts), digest=digest, unscanned=not whole,
                   decoded=tuple(reprinted), names=tuple(names))  # fmt: skip


def _other_reading(model: str, operation: str, body: bytes, charset: str, header: Header | None) -> Request | None:
    """A JSON body KServe hands the model as raw bytes (its `Content-Type` is not one it parses), read in the `charset`
    its type names (`codec_of`; `_in_charset`, decoded once: before 2026-12-04 twice) where that is other text than its
    UTF-8 (`latin-1` bytes that are UTF-8 too, UTF-7's `+AEA-`); None when it is the same text, or the request is a
    binary CloudEvent (whose JSON data KServe parses, whatever charset its type names). Not digested."""
    if _binary_cloudevent(header):
        return None
    utf8 = body.decode("utf-8", "replace")
    others = tuple(reading for reading in readings(body, charset) if reading[0] != utf8)
    return _in_charset(model, operation, others, None, True) if others else None


class ReplyObserver(RestReplyObserver):
    """Fills an Outcome from a V1 reply: the strings of its `predictions` (or `explanations`, `outputs`; a reply that is
    a JSON array, itself) are the output, each a piece, its digest that value's JSON; the rest of the reply is read
    beside it. Kept as it passes when not read whole, and read once it ended, as an OIP REST reply is (whose observer
    this is, but for what it reads: so a reply framed by its connection's close whose JSON ends before its value does
    is told apart, `cut_short`, as an OIP reply is); a reply that is no JSON is passed on unread, labelled
    `scan:truncated`. A structured CloudEvent (KServe's answer to one sent as `application/cloudevents+json`) is read
    by its `data`, the model's reply, its attributes beside it."""

    def __init__(self, outcome: Outcome, detectors: Detectors, capture: bool) -> None:
        super().__init__(outcome, detectors, capture, None)

    def head(self, status: int, header: Header) -> None:
        self._text.declare(header("content-type"))  # (no binary extension in V1: its JSON is the whole body)

    def _read(self, data: bytes) -> None:
        read, cut, closed = data, 0, -1
        if self._text.charset is None:  # (one in a charset is read whole, in it: its rest may be other JSON)
            read, cut, closed = many_values(data, _MANY_PREDICTIONS, _OUTPUTS_NAMED)
            if closed == NO_JSON:  # (no JSON past the first values: unread as parsing it whole tells, as OIP's is)
                self._unread(data)
                return
        reply = reply_json(read, self._text, True)
        if read is not data and _structured(reply):  # (the model's reply is its `data`: read whole, as before)
            read = data
            reply = reply_json(data, self._text, True)
        if reply is NOT_JSON or (type(reply) is not dict and type(reply) is not list):
            self._unread(data, reply is NOT_JSON and ends_early(data, self._text))
            return
        if _structured(reply):  # KServe's reply to a structured CloudEvent: the model's reply is its `data`
            self._text.aside_strings("cloudevent", {name: item for name, item in reply.items() if name != "data"})
            reply = reply["data"]  # (a string too: what a custom model returned)
        value: Any = reply
        if type(reply) is dict:
            key = next((name for name in OUTPUT_KEYS if name in reply), None)
            if key is None:  # none of the fields the output is in (an error, a custom reply)
                self._text.add_unknown(reply)
                return
            value = reply[key]
            if len(reply) > 1:
                self._text.aside_strings("reply", {name: item for name, item in reply.items() if name != key})
        dumped = _dumped(value)
        texts: list[str] = []
        whole = _strings(value, texts) if _QUOTE in dumped or _BRACE in dumped else True
        if read is not data:
            # its values past the first `MAX_STRINGS` + 1 unread: its labels whole where they hold no string (numbers
            # are no labelled data), but no digest, which would stand for the reply (as an OIP reply so cut)
            self._cut_head, self._cut_at = data, cut
            if unread_long_integer(data, cut, closed):
                client_raises(self.outcome)
            self._text.add_pieces(texts, whole and data.find(b'"', cut, closed) < 0)
            self._text.undigested()
            self.outcome.output_digest = None
            return
        self._text.add_pieces(texts, whole)
        self.outcome.output_digest = bytes_digest(dumped)


class Adapter(AdapterBase):
    """KServe V1 over HTTP: `POST /v1/models/{name}:predict` and `:explain`; `GET /v1/models/{name}` (readiness,
    carrying no data, routed by the model it names). `GET /v1/models` is OpenAI's listing (`openai.Adapter`), with KServe
    V1's names beside it (this adapter's `merge`: `HttpIngress._listing`)."""

    name: ProtocolName = "kserve"
    dialect = "kserve"
    status_attribute = "http.response.status_code"
    provider: str | None = None

    def match(self, method: str, path: str) -> Target | None:
        if method != "POST" and method != "GET" and method != "HEAD":
            return None
        parts = split_path(path)
        if parts is None:
            return None
        name, verb = parts
        if method == "POST":
            return Target(verb, name) if verb else None
        # KServe's `GET /v1/models/{name}` takes the whole segment for the name (`iris:predict` too)
        return Target("metadata", name + ":" + verb if verb else name, carries_data=False)

    def merge(self, listings: list[Any]) -> dict[str, Any]:
        """One `GET /v1/models` list, KServe V1's `{"models": [name, ...]}`, from several KServe model servers': each
        model once, first upstream first (`HttpIngress._listing` puts them beside OpenAI's list)."""
        names: list[Any] = []
        seen: set[str] = set()
        for listing in listings:
            models = listing.get("models") if isinstance(listing, dict) else None
            for name in models if isinstance(models, list) else ():
                if type(name) is not str:
                    names.append(name)
                elif name not in seen:
                    seen.add(name)
                    names.append(name)
        return {"models": names}

    def read(self, target: Target, body: bytes, header: Header) -> Request:
        return read_request(target.model, target.operation, body, header("content-type"), header)

    def as_utf8_json(self, body: bytes, header: Header) -> bytes | None:
        return request_json_as_utf8(body)

    def observer(self, target: Target, outcome: Outcome, detectors: Detectors, capture: bool) -> ReplyObserver:
        return ReplyObserver(outcome, detectors, capture)


class Dialect:
    """`GET /v1/models/{name}` for each model asked about: 200 (`"ready": true`) names the model itself as its
    checkpoint (V1 names no version); 404, not served; any other error, or `"ready": false`, not ready. Asked about
    none: `GET /v1/models`, any answer (the server is up)."""

    async def discover(self, upstream: Upstream, fetch: Fetch, models: frozenset[str]) -> ModelVersions:
        if not models:
            try:
                await fetch.get_json(upstream, "/v1/models")
            except MetadataStatus:
                pass
            return ModelVersions({})
        found: dict[str, tuple[str, ...]] = {}
        unready: list[str] = []
        missing: list[str] = []
        for model in sorted(models):
            try:
                meta = await fetch.get_json(upstream, PREFIX + urllib.parse.quote(model, safe=""))
            except MetadataStatus as status:
                (missing if status.status == 404 else unready).append(model)
                continue
            except LookupError:
                continue
            if not isinstance(meta, dict):
                _unreadable(upstream, model, "not a JSON object")
                continue
            if meta.get("ready") is False:
                unready.append(model)
                continue
            found[model] = ()
        return ModelVersions(found, frozenset(unready), frozenset(missing))


ADAPTER = Adapter()
DIALECT = Dialect()

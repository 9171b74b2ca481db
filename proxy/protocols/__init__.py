"""Protocol adapters: how to read a call and its reply in each wire protocol (no sockets here).

An adapter matches a request (HTTP method and path, or a gRPC method), reads its body into a `Request`
(what the policy and recorder need), names its operation, and makes the observer that fills an Outcome
from the reply, whole or chunk by chunk. A dialect is what an upstream speaks (`upstreams[].protocol`)
and knows how to read that upstream's metadata for checkpoint discovery. Both live in tables here
(`ADAPTERS`, `DIALECTS`), so transports, checkpoints and spans never compare protocol names: a new wire
protocol is one module and one line in each table.
"""

from __future__ import annotations

import binascii
import codecs
import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from itertools import chain, compress, repeat
from operator import is_not
from typing import Any, Final, Protocol, cast
from urllib.parse import unquote_to_bytes

import orjson

from proxy.config import Upstream
from proxy.detectors import CAPTURE_MAX_CHARS, TRUNCATED, WINDOW_WIDEST, Detectors, StreamScanner, read_edges
from proxy.errors import InvalidRequest, RequestTooLarge, echoed
from proxy.flow import Checkpoint, Outcome, ProtocolName
from proxy.protocols.charsets import codec_of, readings


@dataclass(frozen=True, slots=True, init=False)
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
    joined: tuple[tuple[str, ...], ...] = ()  # texts the model reads run together (`join_text_parts`): scanned
    # where they meet (`boundary_windows`), not digested
    decoded: tuple[str, ...] = ()  # texts with JSON escapes, as the model may read them (`unescaped`): scanned
    builds_on: str | None = None  # a reply the upstream stored, whose conversation it puts before this input
    stored: bool = False  # the upstream may store this call's reply under its id, for later calls to build on
    # an OIP sequence (`sequence_id`, by model) whose state a stateful model keeps from request to request, and
    # whether this request starts it anew (`sequence_start`): a later request carries what the earlier ones held
    sequence: str | None = None
    starts: bool = False
    # read, and names no model (llama.cpp's native endpoints, whose server runs its one model): the `"*"` route's call,
    # decided as one whose path names none (`policy.passthrough`: `opaque_unrouted_allowed`)
    unrouted: bool = False
    # text the model is handed beside the content, not of it (an OIP request's tensor names, `oip.tensor_names`): read
    # for labels, neither digested nor captured, as the header fields are
    names: tuple[str, ...] = ()
    # a vLLM's or SGLang's LoRA adapter load or unload, the call of the adapter it names (`Call.runs_no_weights`)
    runs_no_weights: bool = False

    def __init__(
        self, model: str, operation: str, stream: bool = False, texts: tuple[str, ...] = (),
        params: tuple[tuple[str, Any], ...] = (), labels: tuple[str, ...] = (), version: str | None = None,
        digest: str | None = None, opaque: bool = False, unscanned: bool = False,
        joined: tuple[tuple[str, ...], ...] = (), decoded: tuple[str, ...] = (), builds_on: str | None = None,
        stored: bool = False, sequence: str | None = None, starts: bool = False, unrouted: bool = False,
        names: tuple[str, ...] = (), runs_no_weights: bool = False,
    ) -> None:  # fmt: skip
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "operation", operation)
        object.__setattr__(self, "stream", stream)
        object.__setattr__(self, "texts", texts)
        object.__setattr__(self, "params", params)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "version", version)
        object.__setattr__(self, "digest", digest)
        object.__setattr__(self, "opaque", opaque)
        object.__setattr__(self, "unscanned", unscanned)
        object.__setattr__(self, "joined", joined)
        object.__setattr__(self, "decoded", decoded)
        object.__setattr__(self, "builds_on", builds_on)
        object.__setattr__(self, "stored", stored)
        object.__setattr__(self, "sequence", sequence)
        object.__setattr__(self, "starts", starts)
        object.__setattr__(self, "unrouted", unrouted)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "runs_no_weights", runs_no_weights)


# keys whose string values are framing, not data: roles, types, enums, links (inside messages; a role that
# is not a standard one is data: chat templates print it). Not ids: some templates print a tool call's id
# (Kimi-K2's `<|tool_call_begin|>{{ id }}`, `## Return of {{ tool_call_id }}`), so ids are scanned.
# Ciphertext a server hands out and takes back (`encrypted_content`: an Anthropic search result's page) is none:
# kilobytes of base64 a result, which no detector can read (the Messages adapter marks a call holding a search result's
# `scan:truncated`: `anthropic._ciphertext_held`). But a Responses reasoning item's (`_REASONING_ITEM`). A code
# execution's standard output encrypted (`encrypted_stdout`, marked as `anthropic._code_result_unread` says) so too:
# until review revfields17 read as text in a request and a reply, the only ciphertext so, its letters labelling both
_STRING_FRAMING = frozenset(
    {
        "role", "type", "model", "status", "object", "url", "file_id", "detail", "format", "media_type", "mime_type",
        "encoding_format", "encrypted_content", "encrypted_index", "encrypted_stdout",
    }
)  # fmt: skip
# a Responses input reasoning item, whose `encrypted_content` is read as text: Ollama's Responses API makes it the next
# assistant message's thinking (`FromResponsesRequest`: `pendingThinking = v.EncryptedContent`), which its renderers
# print to the model, and hands its own thinking out there as plain text. Before 2026-12-05 it was framing, unread: an
# address in it reached the model for any purpose. OpenAI's is base64, in which the detectors found no label in 2,000
# random strings of 1-4 KB (helper encrypted)
_REASONING_ITEM: Final = "reasoning"
_CIPHERTEXT: Final = "encrypted_content"
# keys whose values are binary payloads (images, audio, files as base64 or links) that text detectors cannot
# read, whatever their shape: skipped inside messages
_PAYLOADS = frozenset({"image_url", "input_audio", "file", "source", "cache_control"})
FRAMING_KEYS: Final = _STRING_FRAMING | _PAYLOADS
ROLES = frozenset({"system", "user", "assistant", "tool", "function", "developer", "ipython"})
# Disaggregated serving's state, which a router sets on the call it sends a decode node (vLLM's `kv_transfer_params` and
# `ec_transfer_params`: the prefill node's engine id, host, port and block ids; SGLang's `bootstrap_host`,
# `bootstrap_port`, `bootstrap_room`; TensorRT-LLM's `disaggregated_params`: the context server's `ctx_info_endpoint`,
# request ids, `encoded_opaque_state` in base64): where the KV cache of this call's prompt, computed by a prefill node,
# is fetched from. No server prints them to the model, which reads the call's own prompt, read here, continued from that
# cache. Read as text before 2026-12-07, their hosts labelled every such call `pii:ip_address` (`10.0.0.3`; TensorRT-LLM's
# 5,000 of 5,000 generation calls, its endpoint an address), refused where a zone forbids addresses. Not
# `scan:truncated` either: that would refuse all disaggregated serving in such zones, for a prompt the proxy reads
# (README, "Detectors: what of a request is read")
ENGINE_STATE: Final = frozenset(
    {"kv_transfer_params", "ec_transfer_params", "bootstrap_host", "bootstrap_port", "bootstrap_room",
     "disaggregated_params"}
)  # fmt: skip
# the names an engine keys a call or its prefix cache by, opaque to it (hashed, logged, handed back): vLLM's
# `request_id` (its default `uuid4().hex`) and `cache_salt` (a random salt, "43 characters base64-encoded"), SGLang's
# `rid` (`uuid4().hex`) and `extra_key` (its cache's namespace, `cache_salt` joined to it). No template prints them; a
# client's own id read as text was a label the model never saw (`"request_id": "5082513832886728665"`, a 63-bit id
# written in decimal: 8.2% of random ones pass the card check), as OpenAI's `prompt_cache_key` is not read. And the ids a
# router keys a conversation by: SGLang's `routing_key` ("routing key for routing-key schedule policy", its gateway's
# `x-smg-routing-key` header) and `conversation_id` ("conversation id used for tracking requests", `GenerateReqInput`),
# TensorRT-LLM's `conversation_params` (`ConversationParams`, extra fields forbidden: its `conversation_id` alone, "stable
# multi-turn conversation id used for routing"), and the top-level `conversation_id` a router may take beside it
ENGINE_IDS: Final = frozenset(
    {"request_id", "cache_salt", "rid", "extra_key", "routing_key", "conversation_id", "conversation_params"}
)  # fmt: skip
# top-level keys whose values are about the request, never in the prompt: not scanned (a stored reply's id is the
# server's name for it, which no template prints; disaggregated serving's state, `ENGINE_STATE`; an engine's ids and
# salts, `ENGINE_IDS`)
NOT_DATA: Final = (
    frozenset(
        {"model", "user", "metadata", "safety_identifier", "prompt_cache_key", "stream_options", "previous_response_id"}
    )
    | ENGINE_STATE
    | ENGINE_IDS
)
# the texts a request is read up to (past them `scan:truncated`), bounding the work of the event loop per text (each is
# read, digested, scanned and, captured, masked: ~1 us compiled, ~4 us more masked). Not fewer: a coding agent's turn
# of a tool call is a dozen texts (ids, a call's input keys and values, its result's blocks, all printed to the model),
# so 10,000 were reached by a session of ~830 Anthropic tool calls, 270 KiB; 65,536 texts are more than a session's
# ~1,000,000 characters that `limits.scan_max_chars` reads hold, at a dozen characters or more a text
MAX_STRINGS: Final = 65_536
# error.type of a call whose upstream answered with an error in band, the call going on: a request of a gRPC stream
# (Triton's ModelStreamInferResponse.error_message), an event of an HTTP stream after its 200 head (`data:
# {"error": ...}`, an `error` event, a Responses stream ending `response.failed`)
STREAM_ERROR: Final = "upstream_error"


_KEY_TOKEN = re.compile(rb'"\s*:')
_BACKSLASH: Final = 92  # b"\\" as an int: `in` is then a memchr (a bytes needle is first tried as an int, a TypeError)


MAX_JSON_CONTAINERS = 1_000_000  # objects and arrays a request body may hold (about 100 MB once parsed)
_MANY_CONTAINERS_FROM: Final = 1 << 20  # a body under 1 MiB cannot hold enough of them to matter: not counted


def load_request_json(body: bytes, what: str = "request body") -> dict[str, Any]:
    """Parse a request body that must be a JSON object (`load_request_value`)."""
    data = load_request_value(body, what)
    if type(data) is not dict:
        raise InvalidRequest(f"{what} must be a JSON object")
    return data


def load_request_value(body: bytes, what: str = "request body") -> Any:
    """Parse a request body that holds any JSON value (KServe V1's model server hands its model a list, a string
    or a number as it parsed it). Duplicate keys are refused: parsers disagree on
    which one wins (Python and orjson keep the last, others the first), so the body the proxy decides
    on could differ from the body the upstream reads. A large body of many objects and arrays is refused
    before it is parsed: each costs tens of bytes in memory for two or three in the body (`{},` held 30×
    its size), so `limits.max_body_bytes` alone would let one request take gigabytes."""
    if len(body) > _MANY_CONTAINERS_FROM and body.count(b"{") + body.count(b"[") > MAX_JSON_CONTAINERS:
        raise RequestTooLarge(f"{what} holds over {MAX_JSON_CONTAINERS:,} JSON objects and arrays (counting "
                              "braces and brackets, in strings too): too many to read")  # fmt: skip
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"{what} is not valid JSON: {exc}") from None
    kind = type(data)
    if kind is dict:
        if _compact(body, data):
            return data
    elif kind is not list:  # a string, number, boolean or null: no keys (a double read again: one past 64 bits)
        return json.loads(body, parse_int=_parse_int) if kind is float else data
    # Every key is a string followed by ':', white space between or not: each is a '"\s*:' in the body. Any
    # other '"\s*:' is inside a string, where a quote is always escaped ('\":': tool-call arguments and tool
    # results are JSON in strings), or opens a string beginning with ':'. So the '"\s*:' less the '\":' are
    # at least the body's keys — unless a key ends with an escaped backslash ('\\":'): a body with '\\"' in
    # it is counted without taking any away — and orjson, which keeps the last of a key written twice, kept
    # as many keys as that count only when no key was written twice. Counted in C (re, bytes.count) and in
    # the parsed value (`_count_keys`, compiled); when the counts differ (a duplicate, or a string beginning
    # with ':'), the body is parsed again, slowly, to tell. A body without a backslash (looked for with a
    # memchr) has neither: the two searches for them, each as slow as the count of keys, are left out.
    keys = _key_tokens(body)
    if _BACKSLASH in body and b'\\\\"' not in body:
        keys -= body.count(b'\\":')
    counted, inexact = _count_keys(data)
    if keys != counted or inexact:
        try:
            exact = _exact_json(body)
        except _Duplicate as duplicate:
            raise InvalidRequest(f"{what}: key {echoed(duplicate.args[0])} appears twice in one object") from None
        except RecursionError:  # orjson reads 1,024 levels, Python's json about 1,000: unchecked, so refused
            if keys != counted:
                raise InvalidRequest(f"{what} is nested too deeply to be checked for duplicate keys") from None
            return data
        if inexact:
            return exact
    return data


def _key_tokens(body: bytes) -> int:
    """How many '"\\s*:' `body` holds, counted a window at a time: `findall` over a whole body makes a list of
    every match first (a body of `\\":` written over and over took 15 times its size). A window ends after a
    byte that is neither '"' nor white space, so no match is cut by its end."""
    size = len(body)
    if size <= _KEY_WINDOW:
        return len(_KEY_TOKEN.findall(body))
    count = 0
    start = 0
    while start < size:
        end = min(start + _KEY_WINDOW, size)
        while end < size and body[end - 1] in _IN_KEY_TOKEN:
            end += 1
        count += len(_KEY_TOKEN.findall(body, start, end))
        start = end
    return count


_KEY_WINDOW: Final = 1 << 18  # bytes searched at once: at most one match in two bytes, tens of bytes each in the list
_IN_KEY_TOKEN: Final = b'" \t\n\r\f\v'  # what a match holds before its ':' ('"' and what `\\s` matches in bytes)


def _compact(body: bytes, data: dict[str, Any]) -> bool:
    """Whether the body is `data` written again by orjson, byte for byte: then each of its objects is a
    dict's keys, each written once, and it holds no duplicate. Most bodies are written so (compact, UTF-8
    as it is: httpx's and the OpenAI SDK's `json.dumps(..., ensure_ascii=False, separators=(",", ":"))`,
    JavaScript's `JSON.stringify`), and writing one again (in C) costs less than counting its keys (a
    regex over the body, a walk of the value). A body with white space after its first key's colon
    (Python's `json.dumps` as it is, `requests`), or that does not begin with a key (pretty-printed), is
    not written again."""
    size = len(body)
    if size < 8 or body[0] != 123 or body[1] != 34:  # '{"'
        return False
    # the first key's closing quote, looked for in its first bytes: compiled, byte by byte (a key is a few bytes;
    # `body.find(b'"', 2, 64)` parsed its arguments as a tuple, ~1,000 machine instructions a call)
    end = 2
    limit = min(64, size)
    while end < limit and body[end] != 34:
        end += 1
    if end + 2 >= size or body[end + 1] != 58 or body[end + 2] == 32:  # ':', ' '
        return False
    try:
        return orjson.dumps(data) == body
    except orjson.JSONEncodeError:  # over the 254 levels orjson writes (it reads 1,024)
        return False


class _Duplicate(ValueError):
    pass


def _exact_json(body: bytes) -> Any:
    """`body` as Python's `json` reads it, a key written twice in one object a `_Duplicate`. Its integers are read by
    `int` in C: `_parse_int` is a call into Python for every integer, and a 60 MB body of small integers beside one
    past 64 bits (read here, `load_request_value`) held the event loop 14 s so. Only an integer of more digits than
    `int` reads from text (4,300; orjson, which read the body first, refuses one as infinite) has the body read again
    with `_parse_int`."""
    try:
        return json.loads(body, object_pairs_hook=_no_duplicates)
    except _Duplicate:
        raise
    except ValueError:  # (only that: `body` is JSON, orjson read it)
        return json.loads(body, object_pairs_hook=_no_duplicates, parse_int=_parse_int)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _Duplicate(key)
        found[key] = value
    return found


def _count_keys(value: Any) -> tuple[int, bool]:
    """Keys in every object of a parsed JSON value (orjson gives exact dicts and lists: `type() is`), and whether it
    holds a double of an integer's size past int64 (`_INEXACT`): orjson reads an integer past 64 bits as a double,
    its digits lost (`41111111111111111111111` is `4.111111111111111e+22`), where Python's `json`, and so vLLM and
    MLServer, keep them. (A body holding one is never written again as it came, `_compact`: its keys are counted.)"""
    count = 0
    inexact = False
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if type(item) is dict:  # each kind walked as itself: compiled, a loop over a dict's values or a list's items
            count += len(item)
            for child in item.values():
                kind = type(child)
                if kind is dict or kind is list:
                    stack.append(child)
                elif kind is float and not -_INEXACT < child < _INEXACT:
                    inexact = True
        else:
            items: list[Any] = item
            for child in items:
                kind = type(child)
                if kind is dict or kind is list:
                    stack.append(child)
                elif kind is float and not -_INEXACT < child < _INEXACT:
                    inexact = True
    return count, inexact


# 2^63: orjson reads an integer from -2^63 to 2^64 - 1 as an int, one past them as a double; a double this large
# may be one (a body holding one is read again by Python's `json`, which keeps every digit)
_INEXACT: Final = 9223372036854775808.0


_JSON_ESCAPE = re.compile(r"\\u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})|\\u([0-9a-fA-F]{4})")


def _unescape_one(match: re.Match[str]) -> str:
    high, low, single = match.groups()
    if single is not None:
        code = int(single, 16)  # a lone surrogate stays as written: it is no character, and encodes to nothing
        return match.group(0) if 0xD800 <= code <= 0xDFFF else chr(code)
    return chr(0x10000 + ((int(high, 16) - 0xD800) << 10) + (int(low, 16) - 0xDC00))


def json_unescaped(text: str) -> str:
    """`text` with its JSON `\\uXXXX` escapes decoded (a lone surrogate stays as written)."""
    return _JSON_ESCAPE.sub(_unescape_one, text)


def unescaped(body: bytes, texts: Iterable[str], reprinted: list[str] | None = None) -> tuple[str, ...]:
    """The texts holding JSON `\\uXXXX` escapes, with them decoded: a tool call's `arguments` is JSON in
    a string, which servers parse and print again unescaped (vLLM, then a template's `tojson` with
    `ensure_ascii=False`), so `alice\\u0040example.com` reaches the model as an address. Empty unless
    the body holds an escaped backslash before a `u` (searches in C: a memchr for a backslash first). Then
    `reprinted`, the numbers of such `arguments` as servers print them again (`reprinted_numbers`)."""
    if _BACKSLASH not in body or b"\\\\u" not in body:
        return tuple(reprinted) if reprinted else ()
    decoded = tuple(json_unescaped(text) for text in texts if "\\u" in text)
    return decoded + tuple(reprinted) if reprinted else decoded


def named_as_fields(item: dict[str, Any], fields: frozenset[str]) -> bool:
    """Refuse a key of `item` that Go's `encoding/json` (Ollama's server, its OpenAI-compatible API too) takes for
    one of `fields` without being it: Go matches a key to a field whatever its case (`Tools` is `tools`), `ſ` for `s`
    and the Kelvin sign for `k` too (Unicode's simple folding), the last such key winning; the proxy reads these
    fields by name. `fields` are ASCII and lower case. Whether `item` holds a key not of `fields` (one an adapter may
    look for only then, at no cost to a body of them all: `OthersNamed`)."""
    if fields.issuperset(item):  # (most bodies: every key one of them, looked up in C)
        return False
    for key in item:
        if key not in fields:
            field = key.lower().replace("\u017f", "s")  # (`str.lower` gives the Kelvin sign's `k`, not `ſ`'s `s`)
            if field in fields:
                raise InvalidRequest(f"key {echoed(key)} is read as {field!r} by servers that read JSON with Go's "
                                     f"encoding/json (Ollama), whatever its case: write it {field!r}",
                                     param=field)  # fmt: skip
    return True


# the fields (JSON names) and the inner keys of the objects under a key, by key (`nested_named_as_fields`' `below`)
Levels = dict[str, tuple[frozenset[str], frozenset[str]]]
# the values an object holds when nothing in it is an object or a list (`nested_named_as_fields`' quick check)
_SCALARS: Final = frozenset({str, int, float, bool, type(None)})
_VALUES: Final = dict.values  # (bound once: one lookup a call, not two)
_GET: Final = dict.get
_FLAT: Final = chain.from_iterable
_DICT: Final = frozenset({dict}).__contains__  # (a type's test in C, for `map` and `compress`)
_LIST: Final = frozenset({list}).__contains__


# `nested_named_as_fields`' quick check on a list this short (most chats: a system and a user message) is made object by
# object: compiled, ~2,100 machine instructions for two messages where making the iterators of the check in C took ~8,000
# (callgrind, 2026-12-05); a longer list's is made in C, so its Python work stays bounded, interpreted too
_FEW: Final = 8


def _flat_named(items: list[Any], fields: frozenset[str]) -> bool:
    """Whether every one of `items` is an object whose values are all scalars (`_SCALARS`) and whose keys are all
    `fields`: nothing in them for the walk to look at."""
    for item in items:
        if type(item) is not dict:
            return False
        for key, value in cast(dict[str, Any], item).items():
            if type(value) not in _SCALARS or key not in fields:
                return False
    return True


def nested_named_as_fields(
    items: list[Any], fields: frozenset[str], inner: frozenset[str], below: Levels | None = None
) -> bool:
    """`named_as_fields` for each object in `items` (messages, input items) and each object under its `inner`
    keys (a list of them: content parts, blocks, tool calls; or one: a call's function), and under theirs: Go decodes
    these into structs too (Ollama's `Message`, `ToolCall`, an Anthropic `ContentBlock`), a key spelt otherwise taken
    for a field. Items of scalars only whose keys are all `fields` (most chat messages: a role and a text) are looked
    at together, in C, whatever their number; the rest a level at a time (items, then what is under their `inner`
    keys, then under theirs), each level's keys (each once) and children gathered in C: its work grows with the levels,
    the `inner` keys present and the keys not `fields`, not with the objects (a 200-message chat agent history: four
    levels, its messages, their parts, their tool calls and the calls' functions, each a struct of its own). At most
    `MAX_STRINGS` values are looked at, the levels' together: False when some were left (the adapter marks the request
    `unscanned`, as for texts past the limit). Before 2026-12-05 every one was, 0.17-0.4 s of the
    event loop for a body of a million tiny objects. `below`: the fields and inner keys of the objects under a key, when
    they are another struct than the one they are under (an Anthropic block's `source`); without it, or for a key it
    does not name, `fields` and `inner` serve every level."""
    whole = True
    if len(items) > MAX_STRINGS:
        items = items[:MAX_STRINGS]
        whole = False
    if len(items) <= _FEW:
        if _flat_named(items, fields):
            return whole
    else:
        try:
            if _SCALARS.issuperset(map(type, _FLAT(map(_VALUES, items)))) and fields.issuperset(_FLAT(items)):
                return whole
        except TypeError:  # not a list of objects (`dict.values` refuses another value): level by level, below
            pass
    level = items
    named = fields
    within = inner
    others: list[tuple[list[Any], frozenset[str], frozenset[str]]] = []  # (levels of other structs, `below`'s)
    room = MAX_STRINGS
    while level or others:
        if not level:
            level, named, within = others.pop()
        if len(level) > room:  # (past the values looked at: the rest unread, a slice from the start)
            level = level[:room]
            whole = False
        room -= len(level)
        if not all(map(_DICT, map(type, level))):  # (a list in a list, a string: no struct of Go's, passed over)
            level = list(compress(level, map(_DICT, map(type, level))))
        keys = dict.fromkeys(
            _FLAT(level)
        )  # (the level's keys, each once, in body order: an unknown one looked at once)
        named_as_fields(keys, named)
        children: list[Any] = []
        for key in within.intersection(keys):
            found: list[Any] = list(map(_GET, level, repeat(key)))
            if below is not None and key in below:  # (another struct's: a level of its own)
                struct = below[key]
                others.append((
                    [*_FLAT(compress(found, map(_LIST, map(type, found)))),
                     *compress(found, map(_DICT, map(type, found)))],
                    struct[0], struct[1]))  # fmt: skip
            else:
                children.extend(_FLAT(compress(found, map(_LIST, map(type, found)))))
                children.extend(compress(found, map(_DICT, map(type, found))))
        level = children
    return whole


def request_strings(
    data: dict[str, Any],
    rendered: frozenset[str],
    out: list[str],
    reprinted: list[str] | None = None,
    budget: list[int] | None = None,
) -> bool:
    """Every string of a request body that may reach the model, in body order: each top-level value but
    the parameters (numbers, booleans, null) and `NOT_DATA`, so a field the proxy does not know (an
    engine's own, a new API's) is scanned, not skipped. Values under `rendered` keys are what chat
    templates print whole (tool definitions, schemas, template arguments): `rendered_strings`; the
    rest (messages, prompts, inputs) `user_strings` (`reprinted` as there). False when some were past `MAX_STRINGS`.
    `budget`: the objects looked at, shared with the caller's other reads (`user_strings`'), as there."""
    whole = True
    # (the objects and lists `user_strings` and `rendered_strings` still look at, the fields' together, and the strings
    # taken before that were counted for more: `budget`'s)
    objects = [MAX_STRINGS, 0] if budget is None else budget
    for key, value in data.items():
        kind = type(value)
        if (kind is not str and kind is not list and kind is not dict) or key in NOT_DATA:
            continue
        if key in rendered:
            whole = rendered_strings(value, out, budget=objects) and whole
        else:
            whole = user_strings(value, out, reprinted, objects) and whole
            if kind is dict and key in _TOKENIZED_KEYS:  # (a dict's key compared only: most bodies have no dict here)
                whole = tokenized_keys(value, out, data.get(_TOKENIZED_BY) == "tokens") and whole
    return whole


# top-level objects whose keys a server tokenizes as text: `logit_bias` (`{"<text or token id>": bias}`: llama.cpp's
# llama-server tokenizes a key that is not a token id, llama-cpp-python every key with `logit_bias_type: "tokens"`), so
# the text reaches the model's tokenizer as a prompt's does (its `[["text", bias]]` form is strings in lists, read
# as any are)
_TOKENIZED_KEYS: Final = frozenset({"logit_bias"})
# the field by which a request says its `logit_bias` keys are all text (llama-cpp-python's `"tokens"`): digits too
_TOKENIZED_BY: Final = "logit_bias_type"
_C_SPACE: Final = " \t\n\v\f\r"  # what `strtol` skips before a number (C's `isspace`)


def tokenized_keys(value: dict[str, Any], out: list[str], every: bool = False) -> bool:
    """The keys of `value` that are text, not a token id (an integer as llama.cpp's `strtol` reads one: white space,
    a sign, ASCII digits), in body order; with `every` (`logit_bias_type: "tokens"`), every key: llama-cpp-python
    then tokenizes each as text, `"4111111111111111"` too. False when some were past `MAX_STRINGS`."""
    for key in value:
        number = key.lstrip(_C_SPACE)
        if number[:1] == "+" or number[:1] == "-":
            number = number[1:]
        if key and (every or not (number.isascii() and number.isdigit())):
            if len(out) >= MAX_STRINGS:  # (a text key past the limit: token ids are not strings read, nor counted)
                return False
            out.append(key)
    return True


def user_strings(
    value: Any,
    out: list[str],
    reprinted: list[str] | None = None,
    budget: list[int] | None = None,
    numbers: bool = True,
) -> bool:
    """Every user-data string in a JSON value (messages, prompts, documents), in document order. Framing
    is skipped: the string values of `_STRING_FRAMING` keys (a role only when it is a standard one) and
    binary payloads (`_PAYLOADS`); a framing key whose value is an object or a list is walked, so a
    user's own key named `id` or `url` hides nothing. Iterative: no nesting is too deep. At most
    `MAX_STRINGS` are taken, and as many objects and lists looked at (three more a string taken): False when some were
    left (the adapter marks the request `unscanned`). A tool call's
    `arguments` string's numbers written with an exponent go to `reprinted` as servers print them (`reprinted_numbers`;
    into `out` when it is None). `budget`: the objects still looked at and the strings taken before that were counted
    for more (`len(out)` then), shared by several values (a request's fields), left as this one leaves it. A null,
    true or false is a value looked at, counted as an object is, and a number too unless `numbers` is False (a reply's
    element: an unknown reply's vectors, llama.cpp's embeddings, are read whole, their numbers not counted)."""
    if type(value) is str:
        if value:
            # counted as any string is: a request's top-level fields each come here (`request_strings`), and a body of
            # a million string fields went whole into `out`, where a list of them was read up to the limit
            if len(out) >= MAX_STRINGS:
                return False
            out.append(value)
        return True
    stack = [value]  # (its methods called as they are: compiled, a bound method is a call through Python)
    whole = True
    printed_as_repr: set[int] = set()  # ids of the tool results in messages not the user's
    # the objects and lists still looked at: `MAX_STRINGS`, as `nested_named_as_fields` does, and three more for each
    # string taken (a message, its blocks' list, a block: as many strings as are read are never past it). Before
    # 2026-12-05 every one was, only strings counted: 999,000 empty blocks took 1.2-3.1 s of the event loop, interpreted
    objects = MAX_STRINGS if budget is None else budget[0]
    credited = len(out) if budget is None else budget[1]  # (the strings taken before that were counted for more)
    while stack and len(out) < MAX_STRINGS:
        if not objects:
            objects, credited = _refilled(out, credited, budget), len(out)
            if not objects:  # past the objects looked at: the rest unread, text or not
                return False
        objects -= 1
        item = stack.pop()
        if type(item) is dict:
            # a plain chat message (most of them): its content, the role being framing
            if len(item) == 2 and type(text := item.get("content")) is str and _standard_role(item.get("role")):
                if text:
                    out.append(text)
                while stack and type(stack[-1]) is str and len(out) < MAX_STRINGS:  # the strings after it, as below
                    out.append(stack.pop())
                continue
            block = item.get("type")
            children: list[Any]
            if block == _REASONING_ITEM:  # its `encrypted_content` too, where it stands (`_REASONING_ITEM`)
                children = [
                    v for k, v in item.items() if k == _CIPHERTEXT or k not in FRAMING_KEYS or not _framing(k, v)
                ]
            else:
                children = [v for k, v in item.items() if k not in FRAMING_KEYS or not _framing(k, v)]
            if type(block) is str and block in _WHOLE_KEYS:  # a tool call's input, a tool's result: printed as JSON
                for key in _WHOLE_KEYS[block]:  # a call's input whole; a result's content but its images
                    printed = item.get(key)
                    if type(printed) is dict or type(printed) is list:
                        # (a result's `content` alone holds images; a definition or a schema is read whole, a property
                        # named `file`, `source`, `image_url` too: until review revfields17 each was skipped as an image)
                        payloads = key != "content" or id(item) in printed_as_repr
                        shared = [objects, credited]  # (counted as this walk's: `objects` goes on from it)
                        whole = rendered_strings(printed, out, payloads=payloads, budget=shared) and whole
                        objects, credited = shared[0], shared[1]
                        children = [child for child in children if child is not printed]
            elif block == "file":  # a chat file part: its name and its data, as a server that reads it does
                file = item.get("file")
                name = _file_name(file)
                if name:
                    children.append(name)
                if type(file) is dict and "file_data" in file:
                    whole = _file_read(file["file_data"], children) and whole
            elif block == "input_file" and "file_data" in item:  # a Responses file: read decoded, not as base64
                sent = item["file_data"]
                children = [child for child in children if child is not sent]
                whole = _file_read(sent, children) and whole
            elif block == _WEB_SEARCH_RESULTS:
                # Ollama prints each result's title and `url` (`- title: url`), and content that is an object (not an
                # error) or a number as JSON, keys and numbers too: read so (before 2026-12-05 a url, framing, was not
                # read, nor such a number)
                results = item.get("content")
                if type(results) is list:
                    children.extend([r["url"] for r in results if type(r) is dict and type(r.get("url")) is str])
                elif (type(results) is dict and results.get("type") != "web_search_tool_result_error") or (
                    type(results) is int or type(results) is float  # (printed as JSON too: a card number)
                ):
                    shared = [objects, credited]
                    whole = rendered_strings(results, out, budget=shared) and whole
                    objects, credited = shared[0], shared[1]
                    children = [child for child in children if child is not results]
            elif block is None and item.get("role", "user") != "user" and type(item.get("content")) is list:
                # vLLM prints a tool result outside a user message as the Python repr of its blocks: an
                # image's `source` (its link, its base64) is text the model reads there
                printed_as_repr.update(id(part) for part in item["content"] if _printed_whole(part))
            # (looked for by key: most objects walked, a content part, a tool call, have none; `in` is 4 Python
            # instructions interpreted, where `get` and a test of what it gave were 8)
            if (
                _MESSAGE_TOOLS in item
                and ("role" in item or (type(block) is str and block in _TOOL_LISTINGS))
                and (type(tools := item[_MESSAGE_TOOLS]) is list or type(tools) is dict)
            ):
                # a message's own tools (SGLang's: `ChatCompletionMessageGenericParam.tools`, which its chat template
                # is handed with the message, `model_dump()`), and the tools an item or a block lists (`_TOOL_LISTINGS`:
                # an MCP server's, a tool search's): printed as top-level tools are, keys and numbers too
                shared = [objects, credited]
                whole = rendered_strings(tools, out, budget=shared) and whole
                objects, credited = shared[0], shared[1]
                children = [child for child in children if child is not tools]
            arguments = item.get("arguments")
            if type(arguments) is dict or type(arguments) is list:
                # a tool call's arguments as a JSON object, not a string of it: llama.cpp prints them as JSON
                # (`args.dump()`), keys and numbers too, as a tool call's `input` is
                shared = [objects, credited]
                whole = rendered_strings(arguments, out, budget=shared) and whole
                objects, credited = shared[0], shared[1]
                children = [child for child in children if child is not arguments]
            elif type(arguments) is str and _REPRINTED.search(arguments) is not None:
                whole = reprinted_numbers(arguments, out if reprinted is None else reprinted) and whole
        elif type(item) is list:
            children = item
        else:
            continue
        index = len(children)
        room = MAX_STRINGS - len(out)
        if index > room or index > objects:  # more than the strings or objects still taken: those up to the first past
            # (objects and lists: as many as the strings to come may allow; nulls, booleans, numbers: as many as the
            # strings taken so far allow now, counted here as they are never pushed)
            # (none while a list's strings counted as credited ahead, below, are not yet in `out`: a negative credit let
            # `_taken` go over every null of the lists on top of them, and reset `credited` to count them twice, so 200
            # lists of 60,002 nulls before `["a"] * 30_000 + [None] * 70_000` were read whole, helper revreqreads)
            credit = max(3 * (len(out) - credited), 0)
            taken, cut, skipped = _taken(children, room, objects + 3 * room, objects + credit, numbers)
            if skipped > objects:  # (the strings taken counted for more, as the refill at the top would)
                objects += credit
                credited = max(credited, len(out))
                if skipped > objects:
                    # and the list's own strings before them (`_taken`), three values each, counted as credited now:
                    # they go into `out` from the stack (before 2026-12-05 they earned nothing here, so
                    # `["a"] * 30_000 + [None] * 70_000` and an address after them were cut, helper reqreads)
                    own = (skipped - objects + 2) // 3
                    objects += 3 * own
                    credited += own
            objects -= skipped
            whole = whole and not cut
            taken.reverse()
            stack.extend(taken)
            index = 0
        while index:  # last first (a stack); not reversed(): mypyc cannot compile it over this list
            index -= 1
            child = children[index]
            kind = type(child)
            if kind is str:
                if child:
                    stack.append(child)
            elif kind is dict or kind is list:
                stack.append(child)
            elif numbers or (kind is not int and kind is not float):
                # null, true, false (a number in a request): a value looked at, counted as an object is (no more than
                # `objects` here). Before 2026-12-05 none was: 200 lists of 60,000 nulls took 2-5 s interpreted, whole
                objects -= 1
        # strings in document order, as they come off the stack, up to the limit (a list of millions of one-character
        # strings went into `out` whole, each then digested, masked and joined: the limit was checked only above)
        while stack and type(stack[-1]) is str and len(out) < MAX_STRINGS:
            out.append(stack.pop())
    if budget is not None:
        budget[0] = objects
        budget[1] = credited
    # what is left over may hold no text at all: looked at in one walk, within one reading's values (each left value
    # had its own before 2026-12-05: 65,536 strings then 200 lists of 60,000 nulls took 2 s interpreted, read whole)
    return whole and not (stack and _holds_text(stack, numbers))


def _taken(children: list[Any], room: int, objects: int, scalars: int, numbers: bool) -> tuple[list[Any], bool, int]:
    """The strings, objects and lists of `children` (a JSON object's values or a list's items) in order, up to the
    string past the first `room`, the object or list past the first `objects` or the null, boolean (or number, with
    `numbers`) past the first `scalars` and three more for each string before it; whether there is one (then never
    read); and the nulls, booleans and numbers gone over: `user_strings` takes at most `room` strings more and looks at
    `objects` more, so a walk of a list of
    millions of strings (or of empty objects, of nulls: before 2026-12-05, each was pushed, or gone over uncounted)
    stops there, where it went over every one."""
    taken: list[Any] = []
    strings = 0
    containers = 0
    skipped = 0
    for child in children:
        kind = type(child)
        if kind is str:
            if child:
                if strings == room:
                    return taken, True, skipped
                strings += 1
                taken.append(child)
        elif kind is dict or kind is list:
            if containers == objects:
                return taken, True, skipped
            containers += 1
            taken.append(child)
        elif numbers or (kind is not int and kind is not float):
            if skipped == scalars + 3 * strings:  # (three more for each string of the list's before it)
                return taken, True, skipped
            skipped += 1
    return taken, False, skipped


# content blocks engines print whole, keys and all: a tool call's `input` (vLLM json.dumps it into the call's
# arguments, llama.cpp dumps it), a tool's result (vLLM prints an assistant-side one as a Python repr)
# an Anthropic web search's results block (Ollama's Anthropic-compatible API prints it as a tool message's text)
_WEB_SEARCH_RESULTS: Final = "web_search_tool_result"
_PRINTED_WHOLE: Final = frozenset({"tool_use", "server_tool_use", "mcp_tool_use", "tool_result", "mcp_tool_result"})
# the blocks whose keys are read whole (`rendered_strings`): those `_PRINTED_WHOLE`, their `input` and `content`; and a
# Messages `compaction` block's `tool_changes` (the `tool_addition`s, a tool's definition among them by value, as a
# `tools` entry, and `tool_removal`s that take the call's `tools` to those in effect after the turns it summarises),
# which Anthropic applies to the call's tools: printed as they are, keys and numbers too (before 2026-12-07 read as
# content: a schema's property named `alice@example.com` unread); and a `tool_addition` block's `tool` where it stands
# alone, in a message's content (a system message's too: `BetaSystemMessageParam`), a tool made available from there on,
# defined by value (`tool_definition`) under the inline-tools beta (read as content until review revfields15); and a
# Responses `configuration_update` item's `text`, the text format (a JSON schema) of the responses after it, read as the
# call's own `text` is (`openai._configured_unread`; read as content until helper fields17)
_WHOLE_KEYS: Final = {
    **dict.fromkeys(_PRINTED_WHOLE, ("input", "content")),
    "compaction": ("tool_changes",),
    "tool_addition": ("tool",),
    "configuration_update": ("text",),
}


# a chat message's own tools (SGLang takes `tools` in any message but the user's and hands them to its chat template
# with the message, which prints them as it prints a call's `tools`: DeepSeek's encoders a system or developer
# message's): read as a call's `tools` are, their keys and numbers too (`rendered_strings`). Before 2026-12-07 read as
# content, their strings alone: a property named `alice@example.com`, an enum's 4111111111111111 reached the model
# unlabelled. Not held to their schemas: SGLang's tool call constraint is the call's `tools` alone, so a `pattern`
# there is text (`own_grammar`)
_MESSAGE_TOOLS: Final = "tools"
# a Responses input's `mcp_list_tools` item (`ResponseInputItemParam.McpListTools`: the tools an MCP server listed,
# each `name`, `description`, `input_schema`, `annotations`), which OpenAI keeps in the conversation as the tools the
# model may call there: its `tools` are read whole as a call's own are, keys and numbers too (a schema's property
# names, its `format`, an `enum` of numbers). Before 2026-12-07 they were read as content, those unread. So too a
# Responses `tool_search_output` item's (the tools a tool search loaded, defined by value, which the model may call from
# there on; no `role`), an `additional_tools` item's without its `role`, and a Messages `mcp_tool_listing` block's (the
# listing an MCP server returned, sent back in the assistant turn, which Anthropic uses in place of asking the server
# again): read as content until review revfields15. Looked for only in an object holding `tools` and no `role`
_TOOL_LISTINGS: Final = frozenset({"mcp_list_tools", "tool_search_output", "additional_tools", "mcp_tool_listing"})


def _printed_whole(part: Any) -> bool:
    if type(part) is not dict:
        return False
    kind = part.get("type")
    return type(kind) is str and kind in _PRINTED_WHOLE


# a JSON number that may print otherwise once parsed: written with an exponent (`4.111111111111111e15`,
# `41111111111111110E-1`), or with more digits than a double holds (`4111111111111110.99999999` prints
# `4111111111111111.0`; up to 15 significant digits a double prints as written)
_REPRINTED: Final = re.compile(r"[0-9][eE][+-]?[0-9]|[0-9.]{17}")
_BEFORE_NUMBER: Final = frozenset(" \t\n\r:,[")  # what stands before and after a JSON number
_AFTER_NUMBER: Final = frozenset(" \t\n\r,]}")


def reprinted_numbers(arguments: str, out: list[str]) -> bool:
    """The numbers of a tool call's `arguments` (JSON in a string) as servers print them again, when that is not as
    they stand in the string (`_REPRINTED`, `_written`): vLLM parses the string (`json.loads`) and its template prints
    the object (`tojson`), llama.cpp `json::parse`s and `dump`s it, so `{"card": 4.111111111111111e15}` (or
    `4111111111111110.99999999`) reaches the model as `{"card": 4111111111111111.0}`, digits no detector found in the
    string as sent. Each such number as Python writes it (nlohmann's `dump` writes the same up to 15 digits);
    nothing when the string is not JSON (the server refuses it, or prints it as it is). Python's `json` when orjson
    refuses it: vLLM's reads `NaN` and integers past 64 bits too. False when some were past `MAX_STRINGS`."""
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        try:
            value = json.loads(arguments)
        except (ValueError, RecursionError):
            return True
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is float:
            printed = repr(item)
            if _written(printed, arguments):  # read in the string as sent already (most numbers)
                continue
            if len(out) >= MAX_STRINGS:
                return False
            out.append(printed)
        elif kind is dict:
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
    return True


def _written(number: str, text: str) -> bool:
    """Whether `number` stands in `text` as a JSON number of its own (not a piece of a longer one or of a word,
    `94111111111111111.05` or `x4111111111111111.0` holding `4111111111111111.0`), where the detectors read it as it
    is printed."""
    start = text.find(number)
    while start >= 0:
        end = start + len(number)
        if (start == 0 or text[start - 1] in _BEFORE_NUMBER) and (end == len(text) or text[end] in _AFTER_NUMBER):
            return True
        start = text.find(number, start + 1)
    return False


def _file_name(file: Any) -> str | None:
    """A chat file part's `filename` (`{"type": "file", "file": {"filename", "file_data"}}`): text a server may
    show the model (OpenAI does), and the Responses API's `input_file` carries it beside its data, where it is read."""
    if type(file) is not dict:
        return None
    name = file.get("filename")
    return name if type(name) is str else None


def _file_read(data: Any, out: list[Any]) -> bool:
    """Into `out`, the text of a file sent whole (a chat `file` part's `file_data`, an `input_file`'s): a server that
    takes one reads its text to the model (OpenAI, a PDF's text; KServe hands a custom model the part as sent). False
    when it is no text the proxy reads (`file_text`), or not all of it: then unread, `scan:truncated`."""
    if type(data) is not str:
        return data is None
    read = file_text(data)
    if read is None:
        return False
    text, whole = read
    if text:
        out.append(text)
    return whole


# what a PDF's bytes begin with: its text is in streams a server parses (most compressed, or strings in hex), never
# text read as written, so one is unread whatever its bytes decode to
_PDF: Final = b"%PDF-"


def file_text(data: str) -> tuple[str, bool] | None:
    """The text of a file sent whole: a data URL (`data:text/plain;base64,...`; percent-encoded when it says no
    `;base64`), or bare base64, decoded as `base64.b64decode` does (characters outside the alphabet dropped), read as
    text when it is UTF-8 (`utf8_text`) and holds no NUL, with whether every byte was (False: some not UTF-8, read as
    U+FFFD, where a server that drops them reads `alice@example.com` the proxy read broken); None for a file that is no
    text the proxy reads: a PDF, binary data, or base64 that does not decode."""
    header, comma, payload = data.partition(",") if data.startswith("data:") else ("", "", data)
    try:
        if comma and not _says_base64(header):
            raw = unquote_to_bytes(payload)
        else:
            raw = binascii.a2b_base64(payload.encode("utf-8", "surrogateescape"))
    except ValueError:  # (binascii.Error is one)
        return None
    if raw.startswith(_PDF) or b"\x00" in raw:  # (a NUL: binary, an image or an archive, whatever else it holds)
        return None
    try:
        return raw.decode("utf-8"), True
    except UnicodeDecodeError:
        text = utf8_text(raw)
        return None if text is None else (text, False)


def _says_base64(header: str) -> bool:
    """Whether a data URL's header (`data:text/plain;base64`) says its data is base64: a parameter `base64` in any case
    and with white space about it (`;BASE64`, `; base64`: WHATWG's data URL reading; a parameter after it, as a custom
    model's `split(",")` and `b64decode` reads it too). Before 2026-12-04 only `;base64` at the end was: the base64
    of `;BASE64,...` was read as the text it stands as, where no detector finds anything."""
    return any(parameter.strip(" \t\n\r\f").lower() == "base64" for parameter in header.split(";")[1:])


def utf8_text(raw: bytes) -> str | None:
    """`raw` as text when it is UTF-8 but for at most one character in 8 (read replaced, so a stray byte hides
    nothing), else None: binary data (an image, an archive), which no text detector reads."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        decoded = raw.decode("utf-8", "replace")
        return decoded if decoded.count("\ufffd") * 8 <= len(decoded) else None


def _standard_role(role: Any) -> bool:
    return type(role) is str and role in ROLES


def _framing(key: str, value: Any) -> bool:
    if key in _PAYLOADS:
        return _payload(key, value)
    return type(value) is str and (key != "role" or value in ROLES)


def _payload(key: str, value: Any) -> bool:
    """Whether a value is a binary payload (an image, audio, a file; not a document's text source)."""
    return key in _PAYLOADS and not _text_source(key, value)


def rendered_strings(value: Any, out: list[str], *, payloads: bool = True, budget: list[int] | None = None) -> bool:
    """Every string, object key and number of a JSON value, as text, in document order: what a chat
    template prints with `tojson` (tool definitions, JSON schemas, template arguments), where no key is
    framing, a property may be named `url` and an enum may hold a card number. `payloads=False` skips
    binary payloads (`_PAYLOADS`: an image in a tool's result). False when some were past `MAX_STRINGS`, or past the
    objects and lists looked at (nulls, booleans and numbers counted as they are): as many, and three more a string
    taken, as `user_strings` looks at (`budget`: shared with it, a request's fields' together). Before 2026-12-05
    every one was: `"tools": [{}] * 999000` took 0.4-0.8 s of the event loop, interpreted, read as whole."""
    stack = [value]
    objects = MAX_STRINGS if budget is None else budget[0]
    credited = len(out) if budget is None else budget[1]  # (the strings taken before that were counted for more)
    while stack and len(out) < MAX_STRINGS:
        item = stack.pop()
        kind = type(item)
        if kind is str:
            if item:
                out.append(item)
            continue
        # every other value is counted: an object, a list, and null, true, false, a number too (before 2026-12-05 only
        # objects and lists were: a tool's 3,000,000 nulls took 1.4 s of the event loop, interpreted, read as whole)
        if not objects:
            objects, credited = _refilled(out, credited, budget), len(out)
            if not objects:  # past the values looked at: the rest unread, text or not
                return False
        objects -= 1
        if kind is dict:
            for key, child in reversed(item.items()):
                if not payloads and _payload(key, child):
                    continue
                stack.append(child)
                stack.append(key)
        elif kind is list:
            stack.extend(reversed(item))
        elif kind is int or kind is float:
            out.append(repr(item))
    if budget is not None:
        budget[0] = objects
        budget[1] = credited
    # what is left over (past the strings) may hold nothing that prints: looked at within the values still looked at
    return not (stack and _holds_scalar(stack, objects))


def _refilled(out: list[str], credited: int, budget: list[int] | None) -> int:
    """The values `user_strings` and `rendered_strings` may look at once those they had are spent: three for each
    string taken since `credited`. None (0): the reading stops there, said in `budget`, the request's other fields'
    share, when it has one."""
    # (none while strings counted as credited ahead, a list's before its nulls, `user_strings`, are not yet in `out`)
    objects = max(3 * (len(out) - credited), 0)
    if not objects and budget is not None:
        budget[0] = 0
        budget[1] = len(out)
    return objects


def _holds_scalar(value: Any, room: int) -> bool:
    """Whether a JSON value holds any string (an empty key aside) or number: stops at the first, or past `room` values
    looked at (then True: it may; before 2026-12-05 every one was, 999,000 empty objects left past the strings 0.6 s)."""
    stack = [value]
    while stack:
        if not room:
            return True
        room -= 1
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            if any(item):
                return True
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
        elif (kind is str and item) or kind is int or kind is float:
            return True
    return False


# content parts whose text a template prints (vLLM turns plain strings, refusals and thinking into text parts)
_TEXT_PARTS = {
    "text": "text",
    "input_text": "text",
    "output_text": "text",
    "refusal": "refusal",
    "thinking": "thinking",
}


def _part_text(part: Any) -> str | _Moved | None:
    """A content part's text; a Responses `input_image` taken out (`_MOVED`): Ollama's Responses API runs a message's
    text parts together and hands its images apart (vLLM prints one between: each part is also read alone). Before
    2026-12-05 an image parted them, and `"ana@exa"`, an image, `"mple.org"` reached Ollama's model as the address."""
    if type(part) is str:
        return part
    if type(part) is dict:
        kind = part.get("type")
        field = _TEXT_PARTS.get(kind) if type(kind) is str else None  # (a hostile `type` may be a list)
        if field is None:
            return _MOVED if kind == "input_image" else None
        text = part.get(field)
        return text if type(text) is str else None
    return None


Run = tuple[str, ...]  # consecutive text parts the model reads run together


class _Moved:
    """A content part the server takes out of the content before the template prints it: the text
    parts on either side of it are printed together."""


_MOVED = _Moved()
Read = Callable[[Any], str | _Moved | None]  # a part's text; `_MOVED`; None: it parts the text around it


def _block_text(block: Any) -> str | _Moved | None:
    """An Anthropic content block as servers put a message's content to the template: a text block is text;
    every other block is taken out (a tool use becomes a call, a tool result a message of its own, thinking the
    message's reasoning; redacted thinking and blocks they do not know are dropped), an image too: Ollama runs a
    message's (and a tool result's) text blocks together and hands its images apart. (vLLM and llama.cpp put an image
    between the texts around it: read joined, each also on its own, those are read as they read them too. Before
    2026-12-05 an image parted them, and `"alice@"`, an image, `"example.com"` reached Ollama's model as the address.)"""
    if type(block) is str:
        return block
    kind = block.get("type") if type(block) is dict else None
    if kind == "text":
        text = block.get("text")
        return text if type(text) is str else _MOVED
    return _MOVED


def _block_text_vllm(block: Any) -> str | _Moved | None:
    """`_block_text` for a message not the user's, as vLLM reads it: a tool result stays in the content
    as the text part `Tool result: <content>` (its blocks as a Python repr, which ends in `}]`)."""
    if type(block) is dict and block.get("type") == "tool_result":
        content = block.get("content")
        if not content or type(content) is str:
            return "Tool result: " + (content or "")
        return None
    return _block_text(block)


def join_text_parts(
    messages: Any, system: Any = None, *, blocks: bool = False, size: int | None = None
) -> tuple[tuple[Run, ...], bool]:
    """The runs of texts the model may read run together, for the detectors to scan where they meet
    (`boundary_windows`) as well as each piece: a message's consecutive text parts (templates print them
    with nothing between: Qwen2-VL's, which vLLM uses for OpenAI-style content; Gemma 3's trims each
    first), the text blocks of a tool result, and the system prompt's blocks with system-role messages'
    text, whether a string or parts (vLLM and llama.cpp join them). Others put a newline between parts
    (vLLM's string format), so each part is scanned on its own too. `blocks`: Anthropic content blocks
    (`_block_text`), where the text blocks around a tool use, a tool result or thinking are consecutive
    once the server has taken those out, and a message's thinking blocks are its reasoning, joined; the system's
    texts also without those beginning `x-anthropic-billing-header`, which vLLM leaves out. With the runs, whether
    they are all there: messages and parts past `MAX_STRINGS` are not joined (`_past_limit`), the request then
    `unscanned` (its texts, read up to that limit, are read so too). `size`: the bytes of the body they were parsed
    from; one of `_UNCOUNTED_BODY_BYTES` or fewer cannot hold that many (each is a JSON value and a comma, two bytes at
    least), so a call's messages are not counted one by one (most calls: +105 Python instructions, counted)."""
    if (size is None or size > _UNCOUNTED_BODY_BYTES) and _past_limit(messages, system):
        return (), False
    read: Read = _block_text if blocks else _part_text
    runs: list[Run] = []
    systems: list[str] = []
    if type(system) is str:
        systems.append(system)
    elif type(system) is list:
        systems.extend(_texts(system, read))
    for message in messages if type(messages) is list else ():
        if type(message) is not dict:
            continue
        content = message.get("content")
        role = message.get("role")
        if role == "system":
            if type(content) is str:
                systems.append(content)
            elif type(content) is list:
                systems.extend(_texts(content, read))
        if type(content) is not list:
            continue
        _runs(content, runs, read)
        if blocks:
            if role != "user" and any(type(b) is dict and b.get("type") == "tool_result" for b in content):
                _runs(content, runs, _block_text_vllm)  # llama.cpp takes such a result out; vLLM keeps it
            thinking = [b.get("thinking") for b in content if type(b) is dict and b.get("type") == "thinking"]
            _runs([t for t in thinking if type(t) is str], runs)
        for part in content:  # a tool result's blocks (llama.cpp concatenates their text); a document's (`_document`)
            if type(part) is dict:
                kind = part.get("type")
                if kind == "tool_result" and type(part.get("content")) is list:
                    _runs(part["content"], runs, read)
                    for block in part["content"] if blocks else ():  # (an Anthropic tool result may hold documents)
                        if type(block) is dict and block.get("type") == "document":
                            _document(block, runs, read)
                elif kind == "document" and blocks:
                    _document(part, runs, read)
    if len(systems) > 1:
        _runs(systems, runs)
        if blocks:  # vLLM leaves Claude Code's billing header out, the text around it then run together
            kept = [text for text in systems if not text.startswith(_BILLING_HEADER)]
            if 1 < len(kept) < len(systems):
                _runs(kept, runs)
    if not runs:  # (plain string contents, as most calls are)
        return (), True
    return tuple(dict.fromkeys(runs)), True  # each once (vLLM's and llama.cpp's readings share most runs)


def output_runs(items: list[Any], joined: tuple[Run, ...]) -> tuple[tuple[Run, ...], bool]:
    """`joined` (a Responses input's runs, `join_text_parts`) with the runs of its tool call outputs given as parts (a
    `function_call_output`'s or a `custom_tool_call_output`'s `output`): Ollama writes their texts one after another
    into the tool message's content (`ResponsesFunctionCallOutput`), so `"alice@"` and `"example.com"` there reach its
    model as the address, which before 2026-12-07 was read as two texts, unlabelled. With whether they are all there:
    parts past `MAX_STRINGS` are not joined, as `join_text_parts` does not join a message's (the request then
    `unscanned`). Apart from `join_text_parts`, so a chat's messages are not asked for an `output`."""
    return _runs_joined(items, "output", joined, _part_text)


def harmony_runs(messages: list[Any], joined: tuple[Run, ...]) -> tuple[tuple[Run, ...], bool]:
    """`joined` with the runs of vLLM's `previous_input_messages` (a Responses call's earlier turns, in Harmony's form,
    `{"author": {"role": ...}, "content": [...]}`, or a chat's): vLLM makes each part of a message's content Harmony
    text, whatever its type (`TextContent(text=part.get("text", ""))`), which its renderer writes one after another, so
    `"alice@"` and `"example.com"` there reach gpt-oss as the address (before 2026-12-07 read as two texts). With whether
    they are all there, as `output_runs` says."""
    return _runs_joined(messages, "content", joined, _harmony_text)


def _runs_joined(items: list[Any], key: str, joined: tuple[Run, ...], read: Read) -> tuple[tuple[Run, ...], bool]:
    """`joined` with the runs (`_runs`, each part read by `read`) of each of `items`' parts under `key`, and whether
    they are all there: parts past `MAX_STRINGS` are not joined (`output_runs`, `harmony_runs`)."""
    runs: list[Run] = []
    count = 0
    for item in items:
        parts = item.get(key) if type(item) is dict else None
        if type(parts) is list and len(parts) > 1:
            count += len(parts)
            if count > MAX_STRINGS:
                return joined, False
            _runs(parts, runs, read)
    if not runs:
        return joined, True
    return tuple(dict.fromkeys((*joined, *runs))), True


def _harmony_text(part: Any) -> str | None:
    """A part as vLLM makes it Harmony text: its `text` whatever its type, `""` when it has none (nothing between)."""
    if type(part) is str:
        return part
    if type(part) is dict:
        text = part.get("text", "")
        return text if type(text) is str else None
    return None


# the largest body `join_text_parts` need not count the messages and parts of: each of them two bytes at least
_UNCOUNTED_BODY_BYTES: Final = 2 * MAX_STRINGS


def _past_limit(messages: Any, system: Any) -> bool:
    """Whether the messages, their content parts and the blocks in those (a tool result's, a document's) are more than
    `MAX_STRINGS` together: counted no further than that. Each was read in Python, several times over, whatever the
    limit (a 16 MB body of 533,333 two-character text parts: 1.2 s on the event loop, 0.1 s of it parsing)."""
    count = len(system) if type(system) is list else 0
    for message in messages if type(messages) is list else ():
        count += 1
        content = message.get("content") if type(message) is dict else None
        if type(content) is list:
            count += len(content)
            for part in content:
                if count > MAX_STRINGS:
                    return True
                if type(part) is dict:
                    inner = part.get("content")
                    if type(inner) is list:
                        count += len(inner)
                    source = part.get("source")
                    if type(source) is dict and type(source.get("content")) is list:
                        count += len(source["content"])
        if count > MAX_STRINGS:
            return True
    return count > MAX_STRINGS


# the start of a system text block vLLM's Messages API leaves out of the system prompt (Claude Code's per-request
# attribution, which would defeat prefix caching: `_convert_system_message`, `inline_system._blocks_text`)
_BILLING_HEADER: Final = "x-anthropic-billing-header"


def _document(block: dict[str, Any], runs: list[Run], read: Read) -> None:
    """An Anthropic document given as content (`source.type` `content`, its `content` a list of text blocks, which the
    API keeps apart only to cite them): the model reads its blocks run together, so they are a run as a tool
    result's are."""
    source = block.get("source")
    if type(source) is dict and source.get("type") == "content" and type(source.get("content")) is list:
        _runs(source["content"], runs, read)


def _texts(parts: list[Any], read: Read) -> list[str]:
    return [text for text in map(read, parts) if type(text) is str]


def _runs(parts: list[Any], runs: list[Run], read: Read = _part_text) -> None:
    """Each run of two or more consecutive text parts (`read`: parts taken out between them skipped), as
    they are and with each part trimmed."""
    run: list[str] = []
    for part in (*parts, None):
        text = read(part) if part is not None else None
        if text is _MOVED:
            continue
        if type(text) is str:
            run.append(text)
            continue
        if len(run) > 1:
            runs.append(tuple(run))
            trimmed = tuple(piece.strip() for piece in run)
            if trimmed != runs[-1]:
                runs.append(trimmed)
        run = []


_REACH = 256  # characters either side of a part boundary that a value split there can span (an address's most)
# how far either side of where parts meet a custom pattern's value is read, its window on to white space `_REACH`
# characters further at most: a value of up to this many characters split there is found, white space or newlines
# in it (a PEM key's lines) or not
CUSTOM_REACH: Final = 4096
CUSTOM_WIDEST: Final = CUSTOM_REACH + _REACH
# the fewest characters of where parts meet read for custom patterns, a call: a limit of its own, `limits.scan_max_chars`
# when that is more (read in windows of 2 x CUSTOM_REACH it spent the scan's three times over on a call of many parts;
# below the scan's, a call of 70 parts of 4,000 characters was `scan:truncated` with a custom pattern, whole without);
# past it, `scan:truncated`
CUSTOM_JOINS_MAX_CHARS: Final = 262_144
_SPACE = re.compile(r"\s")  # white space as `str.isspace` says
_LAST_SPACE = re.compile(r"\s(?=\S*\Z)")


def boundary_windows(
    runs: tuple[Run, ...] | list[list[str]],
    reach: int = _REACH,
    widest: int = WINDOW_WIDEST,
    before: list[int] | None = None,
) -> list[str]:
    """Around the boundaries inside each run, the text as it reads joined: at least `_REACH` characters
    either side, widened to white space so no word is cut (a cut would read as a word's edge, and a token
    longer than the reach, a custom pattern's, stays whole) but no further than `WINDOW_WIDEST` characters from
    the boundary (a run without white space was a walk to its end from every boundary: 14 s for 40 KB of
    four-character parts), overlapping windows merged so the text scanned again is never more than the
    run. Text is looked at once: where a window ends is looked for from where the one before ended. A long
    message costs no second full scan. `reach` and `widest` for custom patterns: `CUSTOM_REACH`, `CUSTOM_WIDEST`.
    `before`, when given, is given each window's characters before its first boundary: in a part, read whole with the
    part (`Reading.scan_windows`)."""
    windows: list[str] = []
    for given in runs:
        # each part as the detectors read it near its edges: a run of characters they drop (zero-width spaces) takes no
        # room in a window, which reaches as far in what is read from where the parts meet as in plain text
        run = [read_edges(part, widest) for part in given]
        _windows_of(run, "".join(run), reach, widest, before, windows)
    return windows


def both_boundary_windows(runs: tuple[Run, ...] | list[list[str]], before: list[int]) -> tuple[list[str], list[str]]:
    """`boundary_windows(runs, before=before)` and `boundary_windows(runs, CUSTOM_REACH, CUSTOM_WIDEST)`, the parts
    read near their edges once for both (`read_edges`), where that reading is the part itself (a part that reads as
    it stands there, most), and run together once when every part of a run is: built apart, a call of 10,000 text
    parts with a custom pattern configured spent twice the Python on where its parts meet (2,002,277 instructions
    `Pipeline.call`, 1,001,844 without one)."""
    windows: list[str] = []
    customs: list[str] = []
    for given in runs:
        wide = [read_edges(part, CUSTOM_WIDEST) for part in given]
        whole = "".join(wide)
        run = wide
        # a part read as it stands within CUSTOM_WIDEST of its ends is so within WINDOW_WIDEST too, but for one between
        # twice the one and twice the other, read whole at the one and as two edges at the other (`read_edges`)
        if any(map(is_not, wide, given)) or max(map(len, given)) > 2 * WINDOW_WIDEST:
            run = [
                edges if edges is part and not 2 * WINDOW_WIDEST < len(part) <= 2 * CUSTOM_WIDEST
                else read_edges(part, WINDOW_WIDEST)
                for part, edges in zip(given, wide, strict=True)
            ]  # fmt: skip
        _windows_of(run, whole if run is wide else "".join(run), _REACH, WINDOW_WIDEST, before, windows)
        _windows_of(wide, whole, CUSTOM_REACH, CUSTOM_WIDEST, None, customs)
    return windows, customs


def _windows_of(
    run: list[str], whole: str, reach: int, widest: int, before: list[int] | None, windows: list[str]
) -> None:
    """The windows of one run (its parts as read near their edges, and `whole`, them joined) added to `windows`
    (`boundary_windows`)."""
    size = len(whole)
    spans: list[list[int]] = []
    reached = 0  # where the last window ended: white space, the run's end, or as far as it reaches
    at = 0
    parts = len(run) - 1  # the boundaries: after each part but the last
    index = 0
    while index < parts:
        at += len(run[index])
        first = at
        # the boundaries that follow within 2 x `reach` of the one before are in its window: only the last
        # of them moves where the window ends
        while index + 1 < parts and len(run[index + 1]) <= 2 * reach:
            index += 1
            at += len(run[index])
        index += 1
        back = first - reach
        if spans and back <= reached:  # in the window before
            start = spans[-1][0]
        else:
            start = _space_before(whole, max(first - widest, reached, 0), max(back, 0))
        reached = _space_after(whole, max(min(at + reach, size), reached), min(at + widest, size))
        if spans and start <= spans[-1][1]:
            spans[-1][1] = reached
        else:
            spans.append([start, reached])
            if before is not None:
                before.append(first - start)
    windows.extend(whole[start:end] for start, end in spans)


def _space_before(text: str, low: int, at: int) -> int:
    """`at` moved back to just after white space, or to `low` (the text's start, the window before's end,
    or as far back as a window reaches)."""
    near = max(low, at - 64)  # most words are short: looked for near first
    found = _LAST_SPACE.search(text, near, at) or (_LAST_SPACE.search(text, low, near) if near > low else None)
    return found.end() if found is not None else low


def _space_after(text: str, at: int, high: int) -> int:
    """`at` moved on to white space, or to `high` (the text's end, or as far as a window reaches)."""
    if at >= high:
        return at
    found = _SPACE.search(text, at, high)
    return found.start() if found is not None else high


_NUMBERS = frozenset({int, float, bool})


def token_ids(value: Any) -> bool:
    """Whether a prompt or input holds token ids anywhere (`[64, 65]`, `[[1, 2]]`, llama.cpp's mixed
    `["text", 13, "text"]` and `{"prompt_string": [...]}`): text the proxy cannot read, which the model
    reads whole. Any number or boolean counts: vLLM's pydantic reads `15339.0`, `1.5339e4` and `true` as
    token ids, llama.cpp any JSON number."""
    if value is None or type(value) is str:
        return False
    if type(value) in _NUMBERS:
        return True
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is list:
            if any(type(i) in _NUMBERS for i in item):
                return True
            stack.extend(i for i in item if type(i) is list or type(i) is dict)
        elif type(item) is dict:
            stack.extend(i for i in item.values() if type(i) is list or type(i) is dict)
    return False


def unread_parts(messages: Any) -> bool:
    """Whether a message (a chat's, or a Responses input's) holds a part whose content the proxy cannot read: a prompt
    given as embeddings (vLLM's `prompt_embeds` content part), or a file the server stores, named by its id (a chat
    `file` part's `file.file_id`, an `input_file`'s `file_id`), or one it fetches (an `input_file`'s `file_url`): the
    server reads that file's text to its model, as it puts a stored conversation before the input."""
    for message in messages if type(messages) is list else ():
        content = message.get("content") if type(message) is dict else None
        if type(content) is list:
            for part in content:
                if type(part) is dict and _unread_part(part):
                    return True
    return False


def unread_output(output: Any) -> bool:
    """Whether a Responses tool call's output given as parts (a `function_call_output`'s or a `custom_tool_call_output`'s
    `output`, which OpenAI reads to its model as a message's content) holds a part the proxy cannot read, as
    `unread_parts` says of a message's: before 2026-12-07 not looked at, so a file named there by `file_id` or
    `file_url` reached the model unread and unlabelled."""
    return type(output) is list and any(type(part) is dict and _unread_part(part) for part in output)


def _unread_part(part: dict[str, Any]) -> bool:
    kind = part.get("type")
    if kind == "file":
        file = part.get("file")
        return type(file) is dict and file.get("file_id") is not None
    if kind == "input_file":
        return part.get("file_id") is not None or part.get("file_url") is not None
    return kind == "prompt_embeds"


def placed_strings(value: Any, out: dict[tuple[Any, ...], list[str]], strings: int = MAX_STRINGS) -> None:
    """The strings `user_strings` reads in `value` (framing values skipped), each under its place: the keys and
    indices it stands at. At most `MAX_STRINGS` (`user_strings` says whether there were more), within the values it
    may look at having taken `strings` (`MAX_STRINGS` and three more a string: objects, lists, nulls, booleans; a
    reply's numbers not counted, gone over as there). Before 2026-12-05 every value was placed, each a tuple: an
    unknown reply's 1,000,000 nulls or numbers beside a text took 1.8 s interpreted, 200 lists of 60,000 nulls 18 s."""
    stack: list[tuple[tuple[Any, ...], Any]] = [((), value)]
    count = 0
    looked = MAX_STRINGS + 3 * strings
    while stack and count < MAX_STRINGS:
        place, item = stack.pop()
        kind = type(item)
        if kind is str:
            if item:
                out.setdefault(place, []).append(item)
                count += 1
            continue
        pairs: Iterable[tuple[Any, Any]]
        if kind is dict:
            pairs = [(key, child) for key, child in item.items() if key not in FRAMING_KEYS or not _framing(key, child)]
        elif kind is list:
            pairs = enumerate(item)
        else:
            continue
        kept: list[tuple[tuple[Any, ...], Any]] = []
        room = MAX_STRINGS - count
        for key, child in pairs:  # in order, up to the string or value past those still taken or looked at
            kind = type(child)
            if kind is str:
                if not child:
                    continue
                if not room:
                    break
                room -= 1
            elif kind is int or kind is float:
                continue
            else:
                if not looked:
                    break
                looked -= 1
                if kind is not dict and kind is not list:
                    continue
            kept.append(((*place, key), child))
        kept.reverse()
        stack.extend(kept)


def own_template(data: dict[str, Any]) -> bool:
    """Whether a request brings its own chat template (vLLM's `chat_template`, or one in `chat_template_kwargs`, which
    vLLM takes as one too): a program the server runs to write the prompt, which can compute text standing nowhere in
    the request (`{{ 'bob@exa' ~ 'mple.org' }}`, `|join`, `|reverse`). Its literal text is scanned, as its arguments
    are; what it prints is content the proxy cannot read, as token ids are (`scan:truncated`)."""
    if data.get("chat_template") is not None:
        return True
    arguments = data.get("chat_template_kwargs")
    return type(arguments) is dict and arguments.get("chat_template") is not None


# the fields that hold a grammar or a regular expression a server holds the model's output to (llama.cpp's and
# llama-cpp-python's GBNF `grammar`, vLLM's `guided_grammar` and `guided_regex`, SGLang's `regex` and `ebnf`), and those
# that may hold one: vLLM's `structured_outputs` (its `grammar` and `regex`, a `json` schema's or a `structural_tag`'s
# `pattern`s), `response_format` (TGI's `{"type": "regex", "value": ...}`, its chat API's `GrammarType`:
# `regex_grammar`; a schema's `pattern`s, a structural tag's grammars), `guided_json`, llama.cpp's `json_schema` (its
# native `/completion`'s and, copied through, its chat's: json-schema-to-grammar), a tool's `parameters` (the
# legacy `functions`' too, Anthropic's `input_schema`), the Responses API's `text.format`, the Messages API's
# `output_config.format` (vLLM hands it to the same structured decoding)
GRAMMARS: Final = frozenset(
    {"grammar", "guided_grammar", "guided_regex", "regex", "ebnf", "structured_outputs", "response_format",
     "guided_json", "json_schema", "tools", "functions", "text", "output_config", "guided_whitespace_pattern",
     "custom_logit_processor", "output_format"}
)  # fmt: skip
_STRUCTURED_GRAMMARS: Final = ("grammar", "regex", "whitespace_pattern")
_STRUCTURED_SCHEMAS: Final = ("json", "structural_tag")
# the tools whose schemas a server holds a call's arguments to, and the field that may call none (OpenAI's and
# Anthropic's `tools`, the legacy `functions` that llama-cpp-python honours)
_TOOL_CHOICES: Final = (("tools", "tool_choice"), ("functions", "function_call"))
# (the Messages API's structured outputs beta's `output_format`, `{"type": "json_schema", "schema": ...}`, which the
# proxy reads whole as `output_config` is: before 2026-12-07 its `pattern`s were read as text alone)
_SCHEMA_FIELDS: Final = ("guided_json", "json_schema", "text", "output_config", "output_format")


def own_grammar(data: dict[str, Any], body: bytes, typed_choice: bool = False) -> bool:
    """Whether a request brings a grammar or a regular expression (`GRAMMARS`, not empty) a server holds the model's
    output to: a program, as a chat template of the request's own is (`own_template`), which writes text standing
    nowhere in it (GBNF's escapes, `"alice\\x40example.com"`, its literals run together, `"alice" "@" "example.com"`, a
    class, `[@]`, each of which llama-cpp-python's server held SmolLM2 to, and it wrote `alice@example.com`; a regular
    expression's `alice@example\\.com`). Its literal text is scanned, as any string is; what it writes is content the
    proxy cannot read (`scan:truncated`). So is a JSON schema's `pattern` the server holds the output to
    (`schema_program`: `response_format`'s schema, `guided_json`, llama.cpp's `json_schema`, `structured_outputs`'
    `json` and `structural_tag`, the Responses API's `text.format`, the Messages API's `output_config`, a tool's
    `parameters` unless the tool choice calls none: `typed_choice`, the Messages API's `{"type": "none"}` too); a
    schema without one is read whole, as the text it is. Most bodies hold none of these keys: a caller looks first
    (`GRAMMARS.isdisjoint(data)`, in C), not calling this; most schemas (a chat's tools) spell neither `pattern` nor
    `grammar` nor an escape in `body`, which is looked through in C, not walked."""
    response_format = data.get("response_format")
    if regex_grammar(response_format):
        return True
    spelled = b"pattern" in body or b"grammar" in body or _escaped_letter(body)
    if spelled and schema_program(response_format):
        return True
    if _GRAMMAR_FIELDS.isdisjoint(data):  # (in C: a body with a `response_format` holds none of the others, most)
        return False
    for key in _GRAMMAR_STRINGS.intersection(data):  # (those the body has, found in C: most have none)
        value = data[key]
        if type(value) is str and value:
            return True
        if type(value) is list and any(type(one) is str and one for one in value):  # (SGLang's, one a prompt: a list)
            return True
    structured = data.get("structured_outputs")
    if type(structured) is dict and any(
        type(value) is str and value for value in map(structured.get, _STRUCTURED_GRAMMARS)
    ):
        return True
    if not spelled:
        return False
    for tools, choice in _TOOL_CHOICES:
        if (
            data.get(tools) is not None
            and not _no_call(data.get(choice), typed_choice)
            and schema_program(data.get(tools))
        ):
            return True
    for key in _SCHEMA_FIELDS:  # (the Responses API's `text.format`, the Messages API's `output_config.format`)
        if schema_program(data.get(key)):
            return True
    return type(structured) is dict and any(schema_program(value) for value in map(structured.get, _STRUCTURED_SCHEMAS))


def _escaped_letter(body: bytes) -> bool:
    """Whether `body` may spell `pattern` or `grammar` with an escape (`p\\u0061ttern`): each of their letters is
    U+0061 to U+0074, `\\u006.` or `\\u007.` (in C). Text escaped as ASCII (`Gr\\u00fc\\u00dfe`, `\\ud83d`, the
    Python SDK's and `json.dumps`' non-ASCII) is neither, so a chat with tools in it is not walked for it."""
    return b"\\u006" in body or b"\\u007" in body


def _no_call(choice: Any, typed: bool) -> bool:
    """Whether a tool choice calls no tool (OpenAI's `"none"`; Anthropic's `{"type": "none"}`, `typed`, on its Messages
    API alone): then nothing is held to the tools' schemas. On OpenAI's API `{"type": "none"}` is no choice: llama.cpp
    reads `tool_choice` as a string, takes an object for its default, `"auto"`, and holds a call's arguments to the
    tools' schemas (vLLM refuses it)."""
    return choice == "none" or (typed and type(choice) is dict and choice.get("type") == "none")


def regex_grammar(grammar: Any) -> bool:
    """Whether `grammar` is TGI's grammar of a regular expression, `{"type": "regex", "value": ...}` (its
    `parameters.grammar`, its chat API's `response_format`), not empty: a program, as `own_grammar`'s are."""
    if type(grammar) is not dict or grammar.get("type") != "regex":
        return False
    pattern = grammar.get("value")
    return type(pattern) is str and pattern != ""


def schema_program(value: Any) -> bool:
    """Whether a JSON schema (or a structural tag, or tools, or a schema given as JSON text, as vLLM takes
    `guided_json` and `structural_tag`) holds, at any depth, a regular expression the server's schema decoding holds
    the model's output to: a `pattern` (xgrammar's `regex` format's too) or `patternProperties`' keys, not empty, or
    xgrammar's `grammar` format (`{"type": "grammar", "grammar": ...}`), or the Responses API's custom tool's
    (`{"type": "grammar", "syntax": "regex" | "lark", "definition": ...}`, which OpenAI holds a call's input to).
    vLLM's xgrammar and outlines, llama.cpp's json-schema-to-grammar and TGI's outlines compile a `pattern` into the
    grammar, so `"^alice\\x40example\\.com$"` writes an address its text is not. Any object's `pattern` string counts,
    one in an `enum` or a `default` too: an over-read, never an under-read. A property named `pattern` holds a schema,
    an object, not counted; nor one named `patternProperties` (`_NAMES`: a key there is a name, its value a schema,
    walked as one), which until 2026-12-07 was taken for the keyword, a tool with such a parameter unread. TGI's json
    grammar whose `value` is the schema as JSON text (`{"type": "json", "value": "{...}"}`, or `"json_object"`, its
    alias, which TGI parses) is read as that schema (before 2026-12-07 its text alone: a `pattern` in it was read as
    text)."""
    if type(value) is str:
        if "pattern" not in value and "grammar" not in value and not ("\\u006" in value or "\\u007" in value):
            return False  # (in C: JSON text that cannot spell either key)
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return False  # (the server refuses it, as it does any schema not JSON)
    stack = [value]
    names: list[Any] = []  # (objects whose keys are names, their values schemas: `_NAMES`)
    while stack or names:
        if stack:
            item = stack.pop()
            if type(item) is dict:
                pattern = item.get("pattern")
                if type(pattern) is str and pattern:
                    return True
                if item.get("patternProperties"):
                    return True
                kind = item.get("type")
                if kind == "grammar" and (item.get("grammar") or item.get("definition")):
                    return True
                # TGI's json grammar, its schema as JSON text (`json`, or its alias `json_object`: TGI's serde reads
                # either as `GrammarType::Json`)
                if kind in ("json", "json_object") and type(item.get("value")) is str:
                    try:
                        stack.append(orjson.loads(item["value"]))  # (TGI parses it: `Value::String(s) => from_str`)
                    except orjson.JSONDecodeError:
                        pass  # (TGI refuses it, 422)
                if _NAMES.isdisjoint(item):  # (in C: most of a schema's objects name nothing)
                    stack.extend(item.values())
                    continue
                for key, child in item.items():
                    if key in _NAMES and type(child) is dict:
                        names.append(child)
                    else:
                        stack.append(child)
            elif type(item) is list:
                stack.extend(item)
        else:
            named = names.pop()
            pattern = named.get("pattern")
            if type(pattern) is str and pattern:  # (no schema: the server refuses it; counted all the same)
                return True
            stack.extend(named.values())
    return False


# the keywords of a JSON schema whose object's keys are names, not keywords (a property's, a definition's), each value a
# schema (a dependency's list of names too): `patternProperties` there names a property, `{"type": "string"}` its schema
# (`patternProperties`' own keys are regular expressions, counted where the keyword stands)
_NAMES: Final = frozenset(
    {"properties", "$defs", "definitions", "dependentSchemas", "dependentRequired", "dependencies"}
)


# (vLLM's `guided_whitespace_pattern`, `structured_outputs.whitespace_pattern`: the regular expression its outlines and
# guidance backends hold the whitespace between a JSON output's tokens to, `(alice@example\.com)?` as well as `[ ]*`;
# SGLang's `custom_logit_processor`, a Python class serialized with dill that its `--enable-custom-logit-processor`
# runs over the logits at each step, with the call's `custom_params`: a program that can write any text, one token
# after another, standing nowhere in the request. Before 2026-12-07 read as text alone, its hex or base64)
_GRAMMAR_STRINGS: Final = frozenset(
    {"grammar", "guided_grammar", "guided_regex", "regex", "ebnf", "guided_whitespace_pattern", "custom_logit_processor"}
)  # fmt: skip
_GRAMMAR_FIELDS: Final = GRAMMARS - {"response_format"}


def _holds_text(value: Any, numbers: bool) -> bool:
    found: list[str] = []
    return not user_strings(value, found, None, None, numbers) or bool(found)  # (one not looked at whole may: said to)


def _text_source(key: str, value: Any) -> bool:
    """A `source` that is text, not a file: a document's (Anthropic: `{"type": "text", "data": ...}` or
    `{"type": "content", "content": [blocks]}`) or a search result's (a string the model reads and cites):
    data to scan, though other sources (objects) are binary or links."""
    if key != "source":
        return False
    return type(value) is str or (type(value) is dict and value.get("type") in ("text", "content"))


# what every digest starts from, copied: a copy is half the time of `hashlib.sha256()`, which looks the
# algorithm up in OpenSSL each time (a call makes three to five)
SHA256: Final = hashlib.sha256()


def text_digest(texts: tuple[str, ...] | list[str]) -> str | None:
    """`sha256:<hex>` of the content: the text pieces in order, each followed by a newline. Hashed as the pieces
    joined (one encode and two updates a call, not two updates a piece: each update is a method called through
    Python): the same bytes, as a newline encodes alone and `surrogatepass` encodes each surrogate alone. An ASCII
    text (most) is encoded by the strict codec, whose bytes are then the same, without looking `surrogatepass` up."""
    if not texts:
        return None
    h = SHA256.copy()
    text = texts[0] if len(texts) == 1 else "\n".join(texts)
    h.update(text.encode() if text.isascii() else text.encode("utf-8", "surrogatepass"))
    h.update(b"\n")
    return "sha256:" + h.hexdigest()


def bytes_digest(*parts: bytes) -> str:
    h = SHA256.copy()
    for part in parts:
        h.update(part)
    return "sha256:" + h.hexdigest()


@dataclass(frozen=True, slots=True, init=False)
class Target:
    """What an adapter's `match` found in the request line: the operation, and what the path names."""

    operation: str
    model: str = ""
    version: str | None = None
    carries_data: bool = True  # False: metadata, health, listings; only the caller's key is checked
    stream: bool = False  # gRPC: a streaming RPC (one stream is one call); HTTP: a path whose reply streams
    listing: bool = False  # the answer is every upstream's listing merged (`Adapter.merge`)
    # a reply that succeeds says the upstream changed what serves (llama.cpp's `POST /lora-adapters`): its metadata
    # is asked again before the reply goes out (`Exchange.recorded`)
    rediscover: bool = False
    # carries no data when it comes without a body (Triton's `POST /v2/repository/index`, a listing, as gRPC's
    # RepositoryIndex): then only the caller's key is checked, as `carries_data=False`; with one, it is as `carries_data`
    bodiless_data_free: bool = False
    # its body may name no model (llama.cpp's native endpoints): then it is the `"*"` route's (`Request.unrouted`)
    model_optional: bool = False
    # a path other servers serve too, with bodies of their own (`POST /`, `/generate`: TGI's, and Ray Serve's, BentoML's,
    # SGLang's, vLLM's old server's): a body not of the adapter's API is passthrough's (`NotItsBody`)
    shared: bool = False
    # what a stream's later messages are read as (`Exchange.readmit`), where that differs: a target whose reading leaves
    # out what only the stream's record needs, which is its first message's (the input's digest)
    later: Target | None = None

    def __init__(
        self, operation: str, model: str = "", version: str | None = None, carries_data: bool = True,
        stream: bool = False, listing: bool = False, rediscover: bool = False, bodiless_data_free: bool = False,
        model_optional: bool = False, shared: bool = False, later: Target | None = None,
    ) -> None:  # fmt: skip
        object.__setattr__(self, "operation", operation)
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "version", version)
        object.__setattr__(self, "carries_data", carries_data)
        object.__setattr__(self, "stream", stream)
        object.__setattr__(self, "listing", listing)
        object.__setattr__(self, "rediscover", rediscover)
        object.__setattr__(self, "bodiless_data_free", bodiless_data_free)
        object.__setattr__(self, "model_optional", model_optional)
        object.__setattr__(self, "shared", shared)
        object.__setattr__(self, "later", later)


class NotItsBody(Exception):
    """Raised by an adapter's `read` for a body that is not of its API, on a path other servers serve too
    (`Target.shared`): the call is passthrough's, its body forwarded unread as any path's no adapter reads
    (`policy.passthrough` decides), as it was before the adapter read the path (`Exchange.admit`)."""


# (a body naming no advisor: `OthersNamed.advisors`)
NO_ADVISORS: Final[Mapping[str | None, tuple[str, str | None]]] = {}


class OthersNamed(Exception):
    """Raised by an adapter's `read` for a request that names other models than its `model` as ones that may serve it
    (a fallback: Anthropic's `fallbacks`, OpenRouter's `models` and `route`, LiteLLM's `fallbacks`: `named_models`),
    before it reads the rest: `models` are those names, None for one the server picks (`"default"`); `again` reads
    the request as the call of its `model` it is. Each model named is held to the rules a call naming it is
    (`Pipeline.judged_for_others`). Raised, not returned beside the Request, so a call naming none costs nothing
    (`named_as_fields`' answer is the branch's test; the ingress' `except` runs only when raised). `batch`: those of
    `models` its `model` names, separated by commas, which LiteLLM proxy runs the call on each of (`batch_models`);
    `advisors`: those an advisor tool names (`advisor_models`). `asked`: the one of `models` its body's `model` names,
    where its path names the call's (`openai.InPathAdapter`)."""

    def __init__(
        self,
        models: tuple[str | None, ...],
        again: Callable[[], Request],
        batch: tuple[str, ...] = (),
        advisors: Mapping[str | None, tuple[str, str | None]] = NO_ADVISORS,
        asked: str = "",
    ) -> None:
        super().__init__(models)
        self.models = models
        self.again = again
        self.batch = batch
        self.advisors = advisors  # (those of `models` an advisor tool names, and where: `advisor_models`)
        self.asked = asked


# the most entries a request body may name models to serve it by (`named_models`: names, objects, a map's keys and
# names, under every key together). Each model is judged as a call naming it is (`Pipeline.judged_for_others`, ~50 us
# interpreted); servers try a few (LiteLLM's router 5 by default, ElectronHub's 3): past this the work was the
# client's to ask for (until 2026-12-07 none was: 100,000 names in 1.1 MB held the event loop 5 s; review
# revfallback13)
NAMED_MODELS_MAX: Final = 32


# LiteLLM proxy's per-request router settings, which its `route_request` lays into the call where the body does not set
# them itself (`_OVERRIDDEN`: fallbacks among them), as its router's own: set by a key's or team's router settings,
# a client's kept where neither has any (named_models reads its fallbacks as the body's; until 2026-12-07 unread:
# helper litellm14)
ROUTER_OVERRIDE: Final = "router_settings_override"
_OVERRIDDEN: Final = ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks")
_ROUNDS: Final = frozenset(_OVERRIDDEN)  # (a fallback object's own: `_target`, one C test)


def _overridden(data: dict[str, Any], override: Any) -> list[tuple[str, Any]]:
    """The fallback keys of `router_settings_override` that LiteLLM proxy lays into a call (`ROUTER_OVERRIDE`): those
    the body does not set itself, where it is an object (LiteLLM's `key in override_settings`: another form sets none
    of them)."""
    if type(override) is not dict:
        return []
    return [(key, override[key]) for key in _OVERRIDDEN if key in override and key not in data]


def named_models(data: dict[str, Any], keys: frozenset[str]) -> tuple[str | None, ...]:
    """The models a request body names under `keys` as ones that may serve it, in body order, each once, None for
    one the server may pick itself: a list's strings (OpenRouter's `models`, LiteLLM's `fallbacks`) and its objects'
    `model` (Anthropic's and LiteLLM's `{"model": ...}`), or their lists' strings and objects' `model` (LiteLLM's
    `{"<model>": [...]}`); `"default"` (Anthropic's: the model's own fallbacks) or `route: "fallback"` with no `models`
    (OpenRouter's: it picks), and anything else not null (a form not known, fail-safe), is None; LiteLLM's
    `router_settings_override`'s fallbacks as the body's (`ROUTER_OVERRIDE`, where among `keys`), and a fallback
    object's own (`_target`). Over `NAMED_MODELS_MAX` entries: an InvalidRequest, before the rest is read; so is a
    fallback object naming a server (`_target`)."""
    found: dict[str | None, None] = {}
    entries = 0
    # (key, value, the body's key it is under: `param`): the override's fallbacks, then fallback objects' (`_target`)
    later: list[tuple[str, Any, str]] = []
    for key, value in data.items():
        if key in keys and value is not None and key != ROUTER_OVERRIDE:
            entries = _named_under(data, key, value, key, found, entries, later)
    if ROUTER_OVERRIDE in data and ROUTER_OVERRIDE in keys:
        later += [(key, value, ROUTER_OVERRIDE) for key, value in _overridden(data, data[ROUTER_OVERRIDE])]
    at = 0
    while at < len(later):
        key, value, param = later[at]
        at += 1
        if key in keys and value is not None:
            entries = _named_under(data, key, value, param, found, entries, later)
    return tuple(found)


def _named_under(
    data: dict[str, Any],
    key: str,
    value: Any,
    param: str,
    found: dict[str | None, None],
    entries: int,
    later: list[tuple[str, Any, str]],
) -> int:
    """`named_models`' reading of `value`, under `key` (in the body under `param`), into `found`: the entries read in
    all, `entries` those before."""
    if key == "route":  # (OpenRouter's: it picks a model only where `models` names none)
        if value == "fallback" and not data.get("models"):
            found[None] = None
        return entries
    if type(value) is not list:
        found[None] = None
        return entries
    for entry in value:
        entries += 1
        if entries > NAMED_MODELS_MAX:
            raise _named_too_many(param)
        if type(entry) is str:
            found[entry] = None
            continue
        if type(entry) is not dict:
            found[None] = None
            continue
        if type(entry.get("model")) is str:
            found[_target(entry, param, later)] = None
            continue
        if not entry:
            found[None] = None
            continue
        entries += len(entry) - 1  # (a map: each key an entry, counted before its values are looked at)
        if entries > NAMED_MODELS_MAX:
            raise _named_too_many(param)
        if not all(type(v) is list for v in entry.values()):
            found[_target(entry, param, later)] = None  # (an object of a call's keys, no `model`: fail-safe)
            continue
        for names in entry.values():
            entries += len(names)
            if entries > NAMED_MODELS_MAX:
                raise _named_too_many(param)
            for name in names:
                if type(name) is dict:
                    found[_target(name, param, later)] = None
                else:
                    found[name if type(name) is str else None] = None
    return entries


def _target(entry: dict[str, Any], param: str, later: list[tuple[str, Any, str]]) -> str | None:
    """The model of a fallback given as an object, which LiteLLM's router lays over the call's keys
    (`run_async_fallback`: `kwargs.update(mg)`), so each of its keys is the call's from then: one naming a server
    (`SENT_ELSEWHERE`) is refused as at the body's top (an InvalidRequest, `param` the body's key), its own fallbacks
    are read as the body's are (appended to `later`: the round after), and no `model` is one the server may pick
    (None). Until 2026-12-07 a fallback `{"model": "claude-fallback", "api_base": ...}` was forwarded, its server
    unread, and `{"model": "b", "fallbacks": ["c"]}` judged `b` alone (review revlitellm14). Its `_SPREAD` objects are
    the call's then, each looked in as the body's are (`refuse_sent_elsewhere`; until review revmodels16 a fallback's
    `{"extra_body": {"api_base": ...}}` went on), a `model` there other than the fallback's own refused too (until
    review revspread17 `{"model": "b", "extra_body": {"model": "z"}}` judged `b` where `z` ran)."""
    _refuse_naming_server(entry, param)
    if not _SPREAD.isdisjoint(entry):
        for key, value in entry.items():
            if key in _SPREAD:
                _refuse_spread(value, param, entry.get("model"))
    if not _ROUNDS.isdisjoint(entry):
        later.extend([(key, entry[key], param) for key in _OVERRIDDEN if key in entry])
    model = entry.get("model")
    return model if type(model) is str else None


# spelt in a body holding an advisor tool (its `type`, `advisor_20260301`: `advisor_models`), or a JSON escape, the one
# other way to spell it (`\u0061dvisor_20260301`, which LiteLLM and Anthropic read as the type itself: until 2026-12-07
# such a tool went unread, review revlitellm15), looked for in C where the body has `tools`
ADVISOR: Final = b"advisor_"
JSON_ESCAPE: Final = b"\\u"


def advisor_models(data: dict[str, Any]) -> Mapping[str | None, tuple[str, str | None]]:
    """The models a body's advisor tools name (Anthropic's `{"type": "advisor_20260301", "model": ...}` in `tools`, on
    the Messages API and LiteLLM proxy's chat completions), each once, None for a tool naming none: the executor model
    calls it with the conversation, which that model then reads (Anthropic runs it; LiteLLM proxy runs it on its router,
    `AdvisorOrchestrationHandler`, for another provider), so each is judged as a call naming it is. A tool naming a
    server (`SENT_ELSEWHERE`: LiteLLM honours its `api_base`) is refused, `param` the body's key holding it (`tools`,
    or an object's: `_tool_lists`); over `NAMED_MODELS_MAX` tools, an InvalidRequest. Until 2026-12-07 unread: the
    advisor read what its route may forbid (helper litellm15). Each model with where its first tool is: the body's key
    holding it and the model calling it, None for the call's own, a fallback object's `model` for its tools ("" where
    it names none), so a refusal says which (until 2026-12-07 one in a fallback object was said to be called by the
    call's own model: helper models17)."""
    found: dict[str | None, tuple[str, str | None]] = {}
    advisors = 0  # (tools counted, not the models they name: 33 naming one model are over the bound too)
    for tools, param, caller in _tool_lists(data):
        for tool in tools:
            kind = tool.get("type") if type(tool) is dict else None
            if type(kind) is not str or not kind.startswith("advisor_"):
                continue
            advisors += 1
            if advisors > NAMED_MODELS_MAX:
                raise _named_too_many(param)
            _refuse_naming_server(tool, param)
            model = tool.get("model")
            found.setdefault(model if type(model) is str else None, (param, caller))
    return found


def advisors_spelt(data: dict[str, Any], body: bytes) -> Mapping[str | None, tuple[str, str | None]]:
    """`advisor_models` of a body whose bytes spell an advisor tool's type (`ADVISOR`) or a JSON escape (searched in C);
    none where they spell neither, its tools not walked. The OpenAI and Messages readers' one guard, each calling it
    where the body has `tools`, or an object LiteLLM spreads into the call (until 2026-12-07 each reader wrote the test
    out twice; a plain call, without either, makes no call: helper fields17)."""
    if ADVISOR in body or JSON_ESCAPE in body:
        return advisor_models(data)
    return NO_ADVISORS


def _tool_lists(data: dict[str, Any]) -> list[tuple[list[Any], str, str | None]]:
    """The lists of tools a body gives the model it calls, each with the body's key holding it (`param`): its own
    `tools`; those of an object LiteLLM proxy lays into the call as the body's keys (`_SPREAD`: `extra_body`, or its
    JSON text, whose keys reach the upstream's body as its own); and those of a fallback object, which LiteLLM's router
    lays over the call's keys (`run_async_fallback`: `kwargs.update(mg)`), so the fallback's model calls its advisor.
    Until 2026-12-07 the two nested ones went unread (helper models16). A fallback object is read wherever
    `named_models` reads one (`_fallback_tools`); until review revmodels16 only in a list under the body's own key. Each
    list with the model calling its tools: None, the call's own; a fallback object's `model` ("" where it names none)."""
    found: list[tuple[list[Any], str, str | None]] = []
    tools = data.get("tools")
    if type(tools) is list:
        found.append((tools, "tools", None))
    if _SPREAD.isdisjoint(data) and _ROUNDS.isdisjoint(data) and ROUTER_OVERRIDE not in data:
        return found
    _spread_tools(data, "", found, None)
    _fallback_tools(data, found)
    return found


def _spread_tools(
    data: dict[str, Any], param: str, found: list[tuple[list[Any], str, str | None]], caller: str | None
) -> None:
    """The `tools` of `data`'s `_SPREAD` objects into `found`, `param` the body's key holding them ("": their own),
    `caller` the model calling them."""
    if _SPREAD.isdisjoint(data):
        return
    for key, value in data.items():
        spread = _spread_object(value) if key in _SPREAD else None
        if spread is not None and type(spread.get("tools")) is list:
            found.append((spread["tools"], param or key, caller))


def _fallback_tools(data: dict[str, Any], found: list[tuple[list[Any], str, str | None]]) -> None:
    """The `tools` of the body's fallback objects, and of their `_SPREAD` objects, into `found`, `param` the body's key
    holding them, each object where `named_models` reads one (`_target`): in a list under a fallback key, in a
    `{"<model>": [...]}` map's lists, in a fallback object's own fallbacks, in `router_settings_override`'s fallbacks the
    body does not set. Over `NAMED_MODELS_MAX` entries, the InvalidRequest `named_models` raises (its count is no
    smaller), before the rest is walked."""
    # (a list of fallbacks, the body's key it is under, whether each object in it is a fallback object: a map's are)
    rounds: list[tuple[Any, str, bool]] = [(value, key, False) for key, value in data.items() if key in _ROUNDS]
    if ROUTER_OVERRIDE in data:
        rounds += [(value, ROUTER_OVERRIDE, False) for _, value in _overridden(data, data[ROUTER_OVERRIDE])]
    entries = 0
    at = 0
    while at < len(rounds):
        value, param, objects = rounds[at]
        at += 1
        if type(value) is not list:
            continue
        for entry in value:
            entries += 1
            if entries > NAMED_MODELS_MAX:
                raise _named_too_many(param)
            if type(entry) is not dict:
                continue
            if objects or type(entry.get("model")) is str or not all(type(v) is list for v in entry.values()):
                tools = entry.get("tools")
                caller = entry.get("model") if type(entry.get("model")) is str else ""
                if type(tools) is list:
                    found.append((tools, param, caller))
                _spread_tools(entry, param, found, caller)
                rounds += [(entry[key], param, False) for key in _OVERRIDDEN if key in entry]
            else:  # (a map: the objects in its lists are fallback objects)
                rounds += [(names, param, True) for names in entry.values()]


# the keys whose object (or its JSON text) LiteLLM proxy lays into the call as the body's own keys are, so one of
# `SENT_ELSEWHERE` there names a server too (its own check looks there: `extra_body`, whose provider-auth fields its
# provider modules take out; `litellm_params_template`, Gemini's and Vertex's agents; `litellm_embedding_config`), and an
# advisor tool in its `tools` is the call's (`_tool_lists`)
_SPREAD: Final = frozenset({"extra_body", "litellm_params_template", "litellm_embedding_config"})


def batch_models(model: str) -> tuple[str, ...]:
    """The models a chat's `model` names separated by commas (`"claude-asked,claude-fallback"`), each once, in order:
    LiteLLM proxy runs such a chat completion as a batch, the call made to each (`route_request`: `model.split(",")`,
    each `.strip()`ped, `abatch_completion`, or `abatch_completion_fastest_response` with `fastest_response`; only its
    `acompletion` route, 2026-12). An empty one is the name `""`, as LiteLLM calls it. Over `NAMED_MODELS_MAX`: an
    InvalidRequest, before any is split out (until 2026-12-07 the whole string was judged as one name, the `"*"`
    route's; helper commas13)."""
    if model.count(",") >= NAMED_MODELS_MAX:
        raise InvalidRequest(f"'model' names over {NAMED_MODELS_MAX} models separated by commas, which LiteLLM proxy "
                             "runs the call on each of (a batch): lineage-proxy judges each as a call naming it, and "
                             f"reads at most {NAMED_MODELS_MAX}", param="model")  # fmt: skip
    return tuple(dict.fromkeys(part.strip() for part in model.split(",")))


# the top-level keys by which a request body names the server its call is sent to, or a router of its own that picks one,
# in place of the upstream's deployments: LiteLLM proxy's `api_base` and `base_url` (overriding the deployment's: its
# router lays the request's keys over the deployment's `litellm_params`), `user_config` (a whole router config:
# `route_request` builds a Router of its `model_list` and runs the call on it), `model_list` (deployments, servers and
# keys, `litellm.completion` picks from), and a provider's endpoint (`aws_bedrock_runtime_endpoint`,
# `sagemaker_base_url`, `deployment_url`, OCI's `oci_endpoint_id` and `oci_serving_mode`). LiteLLM refuses them unless
# its config lets clients choose (`general_settings.allow_client_side_credentials`, a deployment's
# `configurable_clientside_auth_params`); before 2026 it refused `api_base` and `base_url` alone, and let them through
# beside any `api_key`. The server such a key names is none a route or zone describes, so no rule can judge it nor any
# record name it: refused (`refuse_sent_elsewhere`; until 2026-12-07 forwarded, recorded as a call the route's upstream
# served: helper litellm14). And the region a provider's endpoint is in (Bedrock's and SageMaker's `aws_region_name`,
# the host `bedrock-runtime.<region>.amazonaws.com`; Vertex's `vertex_location` or `vertex_ai_location`), which LiteLLM
# lets any client set (its check bans none): the region a zone allows or forbids is the route's upstream's, so a call
# moved to another was judged in a region it was not served in (until 2026-12-07: review revlitellm14). And the keys
# choosing the provider, or the deployed model, in place of the deployment's, which LiteLLM lets any client set (its
# check bans none but the Vertex credentials): `custom_llm_provider` (`get_llm_provider` prefixes the model with it, so
# its provider's API, at its own host where the deployment names no `api_base`, serves the call), `deployment_id` and
# `azure: true` (`completion`: the model becomes the deployment id, the provider Azure), `litellm_credential_name` (a
# credential stored in LiteLLM's DB whose values, its `api_base` and keys among them, `_named_credential_values` lays
# into the call where it sets none), and Vertex's project (`vertex_project`, `vertex_ai_project`, or that of
# `vertex_credentials`, `vertex_ai_credentials` where none is set: the project whose resources serve the call, a tuned
# model's numbered endpoint one of them). Until 2026-12-07 forwarded, recorded as the route's upstream's call (helper
# litellm15). And LiteLLM's names for these on any cloud provider, which `pre_process_optional_params` maps onto each
# provider's own (`region_name`: Bedrock's `aws_region_name`, Vertex's `vertex_location`; `project`: Vertex's
# `vertex_project`), and watsonx's server (`url`, or in `watsonx_credentials`, `wx_credentials`:
# `get_watsonx_credentials`): until 2026-12-07 forwarded, the keys above refused under their other names (review
# revlitellm15). And `s3_endpoint_url`, the S3 server LiteLLM's Bedrock modules upload a call's files to (its newest
# `_BANNED_REQUEST_BODY_PARAMS`: "redirects Bedrock file uploads"): the content goes to a server no route describes
# (until 2026-12-07 forwarded: helper models16). Not its other new bans, `aws_role_name`, `aws_web_identity_token`,
# `aws_sts_endpoint`: credentials and the STS server they are exchanged at, the call still sent to the deployment's
# Bedrock host, region and model, as with the caller's own AWS keys (`api_key`'s kind, forwarded). And watsonx's other
# names for its region (`get_api_params`: `region_name`, else `region`, else `watsonx_region_name`, `watsonx_region`;
# where the deployment sets no URL, `https://{region}.ml.cloud.ibm.com`); not its `project_id`, `watsonx_project`,
# `space_id`, the project or space a foundation model's call is billed to, the same host and `model_id` (a deployed
# model is named by the route's model, `deployment/<id>`, whose payload LiteLLM gives neither), as AWS's keys are
SENT_ELSEWHERE: Final = frozenset({"api_base", "base_url", "user_config", "model_list", "aws_bedrock_runtime_endpoint",
                                   "sagemaker_base_url", "deployment_url", "oci_endpoint_id", "oci_serving_mode",
                                   "aws_region_name", "vertex_location", "vertex_ai_location", "custom_llm_provider",
                                   "deployment_id", "azure", "litellm_credential_name", "vertex_project",
                                   "vertex_ai_project", "vertex_credentials", "vertex_ai_credentials", "region_name",
                                   "project", "url", "watsonx_credentials", "wx_credentials", "s3_endpoint_url", "region",
                                   "watsonx_region_name", "watsonx_region"})  # fmt: skip
# (one C test of a body's keys finds both: `refuse_sent_elsewhere` looks further only then)
ELSEWHERE_KEYS: Final = SENT_ELSEWHERE | _SPREAD


def refuse_sent_elsewhere(data: dict[str, Any]) -> None:
    """Refuse a body naming a server or a router to send its call to in place of the upstream's (`SENT_ELSEWHERE`, at
    its top or in an object LiteLLM spreads into the call: `_SPREAD`): an InvalidRequest, `param` the first such key
    of the body's. A body holding `ELSEWHERE_KEYS` only in `_SPREAD` objects naming none goes on."""
    for key, value in data.items():
        if key in SENT_ELSEWHERE:
            raise _sent_elsewhere(key, key)
        if key in _SPREAD:
            _refuse_spread(value, key, data.get("model"))


def _refuse_spread(value: Any, param: str, model: Any = None) -> None:
    """Refuse a `_SPREAD` object holding a key of `SENT_ELSEWHERE`, or (`model`: the body's, where the object is the
    body's own) a `model` other than the body's, which LiteLLM lays over the body it sends the upstream (`spread_body`),
    whose server runs that model where the proxy judged and recorded the body's (until 2026-12-07 forwarded: helper
    spread17): an InvalidRequest, `param` the body's key holding it."""
    spread = _spread_object(value)
    if spread is not None:
        _refuse_naming_server(spread, param)
        if model is not None and "model" in spread and spread["model"] != model:
            named = spread["model"] if type(spread["model"]) is str else orjson.dumps(spread["model"]).decode()
            raise InvalidRequest(f"'model' in {echoed(param)} names model {echoed(named)} in place of the body's "
                                 "(LiteLLM proxy lays it over the body it sends the upstream, whose server runs that "
                                 "model): lineage-proxy judges and records a call as the body's 'model' names it; "
                                 f"leave 'model' out of {echoed(param)}, or name the model in the body's 'model'",
                                 param=param)  # fmt: skip


def _spread_object(value: Any) -> dict[str, Any] | None:
    """A `_SPREAD` key's value as LiteLLM reads it: an object, or its JSON text read as one; None for anything else."""
    if type(value) is str:
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
    return value if type(value) is dict else None


def spread_body(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """`data` less its `_SPREAD` objects (`_spread_object`: an object, or its JSON text), and `data` as LiteLLM proxy
    hands it on to the upstream: their keys laid over the body's, one level, a spread key replacing the body's of its
    name (LiteLLM keeps the caller's `extra_body` whole as the provider call's, which the openai SDK lays over the body
    it builds, `_merge_mappings`, and its other providers' `transform_request` by `dict.update`). A spread object's own
    `_SPREAD` key is a key of the upstream's body, not spread again: its value read as text alone, as any key the
    upstream does not know (put in a list, which no reading spreads; until review revspread17 dropped, its text read
    nowhere where before 2026-12-07 it was read). None where no `_SPREAD` object holds a key: a reader reads the body
    alone (`spread_reading`)."""
    spreads = {key: spread for key, value in data.items() if key in _SPREAD and (spread := _spread_object(value))}
    if not spreads:
        return None
    own = {key: value for key, value in data.items() if key not in spreads}  # (each JSON text read once, above)
    over = dict(own)
    for spread in spreads.values():
        over.update(spread)
    for key in _SPREAD.intersection(over):
        over[key] = [over[key]]
    return own, over


def spread_bytes(over: dict[str, Any]) -> bytes:
    """`spread_body`'s body as JSON text, for its reader; one holding an integer past 64 bits (read so by
    `load_request_value`), or nested past the 254 levels orjson writes, by Python's `json`. One nested deeper than it
    writes (about 1,000 levels, where orjson reads 1,024) is refused, an InvalidRequest: unread, it would go on read
    as text alone (until review revspread17 a RecursionError, the call failed 500)."""
    try:
        return orjson.dumps(over)
    except TypeError:
        try:
            return json.dumps(over, ensure_ascii=False).encode()
        except RecursionError:
            raise InvalidRequest("request body is nested too deeply to be read as LiteLLM proxy hands it on (the "
                                 "keys of an object it spreads, 'extra_body''s, laid over its own)") from None  # fmt: skip


def spread_reading(own: Request, spread: Request) -> Request:
    """One reading of a body holding a `_SPREAD` object: `own`, the body's less its spread objects, and `spread`, the
    body LiteLLM hands on (`spread_body`), each read by the same reader: every rule of a key at the top applied to one
    arriving in a spread object, and the body's own keys a spread one replaces read too (LiteLLM itself reads the
    call's, and a provider not taking `extra_body` is sent them). Each text once, `own`'s first; unread, a reply it
    builds on, or stored where either is; the version (llama.cpp's `lora`) and the parameters (the span's
    `gen_ai.request.*`) the body's handed on, the weights its server runs and the values it runs them with (until
    review revspread17 the body's own: `lora` id 0 recorded, id 1 run; `temperature` 0.1 recorded, 1.5 run, one in the
    object alone unrecorded); the model (refused where the object names another: `_refuse_spread`) and stream the
    body's own, as LiteLLM routes and answers the call by them."""
    return Request(own.model, own.operation, own.stream, _more(own.texts, spread.texts), spread.params, own.labels,
                   spread.version, own.digest, own.opaque,
                   own.unscanned or spread.unscanned, _more(own.joined, spread.joined),
                   _more(own.decoded, spread.decoded), own.builds_on or spread.builds_on,
                   own.stored or spread.stored, own.sequence, own.starts, own.unrouted, own.names,
                   own.runs_no_weights)  # fmt: skip


def _more(first: tuple[Any, ...], then: tuple[Any, ...]) -> tuple[Any, ...]:
    """`first`, then those of `then` not in it."""
    seen = set(first)
    return first + tuple(item for item in then if item not in seen)


def _refuse_naming_server(value: dict[str, Any], param: str) -> None:
    """Refuse an object LiteLLM lays into the call (a `_SPREAD` object, a fallback object, an advisor tool) that holds
    a key of `SENT_ELSEWHERE`: an InvalidRequest naming its first, `param` the body's key holding it."""
    if not SENT_ELSEWHERE.isdisjoint(value):
        raise _sent_elsewhere(param, next(inner for inner in value if inner in SENT_ELSEWHERE))


def _sent_elsewhere(key: str, named: str) -> InvalidRequest:
    where = echoed(named) if named == key else f"{echoed(named)} in {echoed(key)}"
    return InvalidRequest(f"{where} names a server, provider or router for the call in place of the upstream's (LiteLLM "
                          "proxy sends it there): lineage-proxy judges and records a call as its route's upstream "
                          "serves it, and no route or zone describes that server; leave "
                          f"{echoed(named)} out, and give that server a route of its own", param=key)  # fmt: skip


def _named_too_many(key: str) -> InvalidRequest:
    return InvalidRequest(f"{echoed(key)} and the keys beside it name over {NAMED_MODELS_MAX} models to serve the "
                          "call should its own decline or fail: lineage-proxy judges each as a call naming it, and "
                          f"reads at most {NAMED_MODELS_MAX} (servers try a few)", param=key)  # fmt: skip


# a header by lower-case name, None when absent (HTTP headers, gRPC metadata)
Header = Callable[[str], str | None]

# bytes of a reply passed on as it arrives that is not an event stream (no Content-Length, or over
# `limits.buffer_max_bytes`), kept by its observer to be read whole once it ends, or `buffer_max_bytes` when
# that is larger (`Detectors.keep_max`): past that, the rest passes unread and its output is labelled
# `scan:truncated` (as is an event stream's line past `sse.MAX_LINE`)
WHOLE_MAX = 16 * 1024 * 1024


class Observer:
    """Watches a reply go by and fills the call's Outcome. Observing never fails forwarding: an
    observer ignores what it cannot read.

    A native base class, not a Protocol: every observer derives from it (`sse.SseObserver`, `oip.RestReplyObserver`,
    `oip_grpc.ReplyObserver`), so compiled, a call on an `Observer` is a call through its vtable (on a Protocol it was
    a method looked up by name and called through Python's calling convention, a few hundred instructions each)."""

    # True once the reply's last event went by (SSE `data: [DONE]`): the record can be made before the client has
    # that event, even if the upstream's body has not ended yet
    ended: bool = False

    def head(self, status: int, header: Header) -> None:
        raise NotImplementedError

    def body(self, data: bytes) -> None:
        """The whole reply, read before it is sent."""
        raise NotImplementedError

    def chunk(self, data: bytes) -> None:
        """A piece of a reply passed on as it arrives: an event stream is read as it passes; any other reply
        (no Content-Length, or over `limits.buffer_max_bytes`) is kept, at most `Detectors.keep_max` bytes, and read
        at `finish` as `body` reads a whole one."""
        raise NotImplementedError

    def finish(self) -> None:
        raise NotImplementedError

    def model_held(self) -> bool:
        """Whether the reply's model on the record (`Outcome.response_model`) was named in an event its client's SDK has
        not been given yet (no blank line ended it: `sse.SseObserver`), which may yet be undone: nothing is decided by
        it until then (the checkpoint it names, `Exchange.chunk`)."""
        return False

    def may_end(self, data: bytes) -> bool:
        """Whether reading `data`, the next piece of a reply passed on as it arrives, may set `ended`: False only when
        it cannot, so the piece goes to its client before it is read (`Exchange.may_end`). A false True costs only
        that order; an observer that does not tell says True."""
        return True


class Adapter:
    """One wire protocol as the ingresses see it.

    A native base class, not a Protocol: every adapter derives from it and sets its four attributes in its class body,
    so compiled, a call or an attribute read on an `Adapter` goes through its vtable, as on an `Observer`."""

    name: ProtocolName
    # the span attribute for the reply's status (`http.response.status_code`, ...)
    status_attribute: str
    # `gen_ai.provider.name` when neither the config nor the upstream's metadata names the engine: the GenAI
    # conventions' provider whose API this protocol is (their attributes follow its flavour); None for none
    provider: str | None
    # the upstream protocol (`upstreams[].protocol`) this adapter's calls are served by
    dialect: str

    def match(self, method: str, path: str) -> Target | None:
        raise NotImplementedError

    def read(self, target: Target, body: bytes, header: Header) -> Request:
        """Read one request body; malformed input is an InvalidRequest naming what is wrong."""
        raise NotImplementedError

    def as_utf8_json(self, body: bytes, header: Header) -> bytes | None:
        """A request body `read` refused, as UTF-8 for `read` to read again when it is JSON in a form the servers
        behind read all the same (`request_json_as_utf8`); None where they read it as `read` does (protobuf is no text:
        its bytes read as UTF-16 would be another message)."""
        raise NotImplementedError

    def observer(self, target: Target, outcome: Outcome, detectors: Detectors, capture: bool) -> Observer | None:
        raise NotImplementedError

    def merge(self, listings: list[Any]) -> dict[str, Any]:
        """One listing, as the JSON object answered, from several upstreams' (for `Target.listing`)."""
        raise NotImplementedError


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
        self.what = what


class MetadataIncomplete(Exception):
    """The upstream answered its model list, but not the rest of what names the weights serving its calls (a
    llama-server's LoRA adapters, `/lora-adapters`): it is up (ready), what serves it is not known now. The
    catalog read before is kept, as after a round not answered; the base model alone is never taken for it."""

    def __init__(self, what: str, why: str) -> None:
        super().__init__(f"{what}: {why}")
        self.what = what
        self.why = why


# the engines (`Checkpoint.provider`) that load a LoRA adapter on their one base by name at run time (vLLM's
# `POST /v1/load_lora_adapter`, a resolver plugin; SGLang's `/load_lora_adapter`), listing it from then on as a model
# whose `parent` is the base (`Catalog.loads`, `CheckpointBook.loading`)
LOADERS: Final = frozenset({"vllm", "sglang"})


class Catalog(Protocol):
    """What one upstream serves, as its metadata says."""

    # models asked about whose metadata the upstream answered with an error other than "not found" (OIP: HTTP 400 or
    # 503, what Triton and KServe answer for a model loading or that failed to load): not ready now, asked again soon
    unready: frozenset[str]
    # models asked about whose metadata the upstream answered "not found" (OIP: HTTP 404, gRPC NOT_FOUND; newer Triton
    # for a model not loaded, or unloaded): a name a route names is asked again soon, as an unready one, others are not
    missing: frozenset[str]
    # its server loads and unloads LoRA adapters by name at run time, each listed as a model on its one base (vLLM's,
    # SGLang's `load_lora_adapter`): with workers, a change another relayed is watched for (`CheckpointBook.resolve`)
    loads: bool

    def resolve(self, model: str, version: str | None) -> Checkpoint | None: ...

    def scales_unknown(self) -> Catalog:
        """This catalog once the upstream was told to change what serves its calls and has not been read since (a
        llama-server's LoRA scales set by a `POST /lora-adapters` relayed): what depends on it names it unknown
        (`Checkpoint.unsure`); itself where nothing does."""
        ...

    def twins(self, checkpoint: str) -> tuple[str, ...]:
        """The other checkpoints this upstream's metadata says are the same weights as `checkpoint` (Ollama's tags of
        one digest: `llama3:8b` and `llama3:latest`, an `ollama cp` copy); read when metadata is, never per call."""
        ...


class Dialect(Protocol):
    """What an upstream speaks (`upstreams[].protocol`): how to learn which checkpoints it serves."""

    async def discover(self, upstream: Upstream, fetch: Fetch, models: frozenset[str]) -> Catalog:
        """Read the upstream's metadata (raises when the upstream is unreachable); `models` are the
        model names routes and traffic asked about."""
        ...


# what a key of `OutputText.aside` past the first `_ASIDE_KEYS` costs beside its characters (its slot in the
# dict, the key, its buffer): counted against the room of what is kept, so a reply of many short asides is
# bounded as one of long ones is, and so are the scans at `finish` (one a key)
_ASIDE_KEY = 192
_ASIDE_KEYS = 64


_UNKNOWN: Final = "unknown"  # the `OutputText.aside` key of what no adapter reads (`OutputText.add_unknown`)
_HASH_RUN: Final = 4096  # characters of pieces hashed together (`OutputText.add`)
_CAPTURE_RUN: Final = 256  # captured pieces joined into one string (a str each cost ~50 bytes beside its text)


class OutputText:
    """Incremental digest, detection and (optional) capture of reply text as it passes; and detection of
    the text the model wrote beside it (`aside`)."""

    # the codec of the `charset` the reply's `Content-Type` names (`charsets.codec_of`, set by its observer's `head`:
    # `declare`): None for none, or UTF-8's; "" for one Python does not know (`reply_json` reads a whole reply in it)
    charset: str | None = None
    # a whole reply's readings in that charset that differ from its JSON (`_in_charset`), each a text or a JSON value
    # (whether it is one) under its key: read beside the content at `finish`, after all the reply's own fields
    # (`aside_later`); None while there are none
    _later: list[tuple[Hashable, Any, bool]] | None = None
    # whether those readings were not all read, past the scan limit (`_aside_later_now`): the captured content is
    # withheld then, as when a value is found in them (`finish`)
    _later_cut: bool = False
    # whether an output's element was read in other charsets beside it (`aside_readings`)
    _other_readings: bool = False
    # a whole reply's JSON `reply_json` told cut before its end (`refused_json`): `ends_early` of it is not parsed again
    cut_json: bytes | None = None

    def __init__(self, outcome: Outcome, detectors: Detectors, capture: bool, digests: bool = True) -> None:
        """`digests` False: the output's digest is the observer's own (of the reply's tensors, not its text)."""
        self.outcome = outcome
        self._hash: hashlib._Hash | None = SHA256.copy() if digests else None
        # pieces not hashed yet: a stream's pieces (a token or a few each) are hashed together, `_HASH_RUN`
        # characters at a time or at a piece's end (SHA-256 of the joined text is that of its pieces in turn)
        self._unhashed: list[str] = []
        self._unhashed_size = 0
        self._detectors = detectors if detectors else None  # None: nothing is scanned
        self._scanner: StreamScanner | None = None  # made when text is first fed to it
        # the output read whole (`add_output`) before anything else was: fed to the scanner only if something
        # else is, else read by `Detectors.scan_output` at `finish` (a whole reply's one output, without a scanner)
        self._pending: str | None = None
        self._capture: list[str] | None = [] if capture else None
        self._joined = 0  # the pieces at the front of `_capture` that are joined runs of pieces (`add`)
        self._seen = False
        self._unread = False
        self._asides: dict[Hashable, bytearray] | None = None  # key -> its pieces run together, as UTF-8
        # the strings of the first JSON text no adapter reads, by place (`add_unknown`), until a second comes: then the
        # strings at each place in every such text of the stream are read run together too (`_events`)
        self._first_places: dict[tuple[Any, ...], list[str]] | None = None
        self._events = False
        self._room = detectors.max_chars  # how much of it is kept (with a scanner), at most the scan limit
        # what is captured: what `mask` reads (the scan limit, or a call's CAPTURE_MAX_CHARS), and a character to say it cut
        self._keep = min(detectors.max_chars, CAPTURE_MAX_CHARS) + 1
        # the JSON text `reply_json` read last (a whole reply, or an event; until `finish`): read again only when a
        # value in it is written with a double that may have been an integer past 64 bits (`json_text`)
        self.source: bytes | None = None

    def declare(self, content_type: str | None) -> None:
        """The reply's `Content-Type`: the `charset` it names, when one (`charset`)."""
        if content_type is not None and "charset" in content_type.lower():
            self.charset = codec_of(content_type)

    def add(self, text: str) -> None:
        if text:
            self._add(text, self._detectors is not None)

    def add_output(self, text: str) -> None:
        """A whole output: `add` then `end_piece`. The reply's first, when nothing was read before it, is
        scanned at `finish` (`_found`): as the scanner would read it, but without one when nothing follows."""
        if text:
            if self._detectors is None:
                self._add(text, False)
            elif self._scanner is None and self._pending is None:
                self._pending = text
                self._add(text, False)
            else:
                self._add(text, True)
        self.end_piece()

    def _stream(self) -> StreamScanner:
        """The scanner, made on first use, fed first the output that waited (`add_output`)."""
        scanner = self._scanner
        if scanner is None:
            assert self._detectors is not None
            scanner = self._scanner = self._detectors.stream()
            pending = self._pending
            if pending is not None:
                self._pending = None
                scanner.feed(pending)
                scanner.end_text()
        return scanner

    def _add(self, text: str, scan: bool) -> None:
        self._seen = True
        digest = self._hash
        if digest is not None:
            self._unhashed.append(text)
            self._unhashed_size += len(text)
            if self._unhashed_size >= _HASH_RUN:
                self._hash_pieces(digest)
        if scan:
            scanner = self._scanner
            if scanner is None:
                scanner = self._stream()
            scanner.feed(text)
        capture = self._capture
        if capture is not None:
            if self._keep > 0:
                capture.append(text[: self._keep])
                if len(capture) - self._joined >= _CAPTURE_RUN:  # short pieces (a token a piece): joined, each once
                    capture[self._joined :] = ["".join(capture[self._joined :])]
                    self._joined += 1
            # counted past what is kept too: all the output's characters (`Outcome.content_chars`)
            self._keep -= len(text)

    def _hash_pieces(self, digest: hashlib._Hash) -> None:
        """The pieces not hashed yet, hashed as one text."""
        pieces = self._unhashed
        text = pieces[0] if len(pieces) == 1 else "".join(pieces)
        pieces.clear()
        self._unhashed_size = 0
        digest.update(text.encode("utf-8", "surrogatepass"))

    def aside(self, key: Hashable, text: str) -> None:
        """Output the model wrote beside the reply's content: a tool call's name and arguments, its
        reasoning or thinking, a refusal. Scanned for the output's labels at `finish`, the pieces of one
        `key` run together and apart from the rest (within the same scan limit); not part of the digest
        or the captured content, which are the content's. Kept until then as one buffer a key (a piece
        costs its characters, not an object), at most the scan limit's worth of characters, each key past
        the first `_ASIDE_KEYS` counted `_ASIDE_KEY` more: past that, the rest is not kept and the output is
        labelled `scan:truncated`."""
        if not text or self._detectors is None:
            return
        kept = self._asides.get(key) if self._asides is not None else None
        if kept is not None and len(text) <= self._room:  # (a key's every piece but its first)
            kept += text.encode("utf-8", "surrogatepass")
            self._room -= len(text)
        else:
            self._aside_first(key, text, kept)

    def aside_readings(self, readings: list[str]) -> None:
        """An output's elements read in other charsets (an OIP BYTES element that is not UTF-8: `oip.not_utf8_element`),
        beside the output as it is captured (read replaced), a line each: scanned, neither digested nor captured; a
        detected value in them withholds the captured output (`_WITHHELD_READING`). Before 2026-12-05 they were pieces
        of the output: a span captured an echoed Latin-1 `jörg@exämple.de` unmasked beside its U+FFFD reading."""
        self._other_readings = True
        for text in readings:
            self.aside(_READINGS, text + "\n")

    def aside_later(self, key: Hashable, value: Any, strings: bool) -> None:
        """`aside` of a text (`strings` False) or `aside_strings` of a JSON value, at `finish`: after the reply's own
        fields beside its content (tool calls, reasoning), so a reading of the whole reply in its charset
        (`_in_charset`: UTF-16's in the other byte order, as long as the reply) takes what room they leave. Before
        2026-12-05 it was kept first, and on a reply of 1.2 MB in UTF-16 the address in a tool call's arguments was
        past the scan limit (`scan:truncated` alone)."""
        later = self._later
        if later is None:
            later = self._later = []
        later.append((key, value, strings))

    def _aside_later_now(self) -> None:
        """What waited for `finish` (`aside_later`), read beside the content now, in the order it came."""
        later = self._later
        self._later = None
        if later is not None:
            for key, value, strings in later:
                if strings:
                    self.aside_strings(key, value)
                else:
                    self.aside(key, value)
            # (read last, they are what the limit cuts, if anything is: so `scan:truncated` says they were)
            self._later_cut = self._unread

    def has_aside(self, key: Hashable) -> bool:
        """Whether text was read beside the content under `key` (`aside`): an event that ends what deltas streamed
        carries it again."""
        return self._asides is not None and key in self._asides

    def _aside_first(self, key: Hashable, text: str, kept: bytearray | None) -> None:
        """`aside` of a key's first piece, or of a piece past the room: what of it is kept."""
        asides = self._asides
        if asides is None:
            asides = self._asides = {}
        room = self._room
        if kept is None and len(asides) >= _ASIDE_KEYS:
            room -= _ASIDE_KEY
        if len(text) > room:  # past what a scan reads: not kept
            self._unread = True
            if room <= 0:
                return
            text = text[:room]
        if kept is None:
            kept = asides[key] = bytearray()
        kept += text.encode("utf-8", "surrogatepass")
        self._room = room - len(text)

    def json_text(self, value: Any) -> str | None:
        """A value of the reply's JSON (a tool call's input, arguments as an object) as JSON text, as its client has it:
        written by orjson, which reads an integer past 64 bits as a double (`123456789012345678901234` is written
        `1.2345678901234569e23`) where the Anthropic and OpenAI SDKs (Python's `json`) keep every digit. When orjson
        wrote a double that large (a C search of the text written), the JSON text it came from (`source`) is read again
        by Python's `json` and the value written from that, with the digits the client has. None when it cannot be
        written (nested deeper than a writer writes)."""
        try:
            text = orjson.dumps(value).decode()
        except TypeError:  # too deep for orjson; or an integer past 64 bits, from a reply `_client_json` read
            return _python_json(value)
        if _LARGE_DOUBLE.search(text) is None:  # (every tool call's: a search of its input's text, in C)
            return text
        exact = _exact_value(self.source, value)
        return text if exact is None else _python_json(exact[0])

    def unread(self) -> None:
        """Some of the reply's text was past a read limit: its labels say `scan:truncated`."""
        self._unread = True

    def undigested(self) -> None:
        """Only some of the reply's outputs are read (`oip.read_reply` past `MAX_STRINGS`): no digest is made, as a
        digest of those would stand for the reply (before 2026-12-05 a cut reply of BYTES outputs had their text's)."""
        self._hash = None
        self._unhashed.clear()
        self._unhashed_size = 0

    def add_tensors(self, read: Callable[[list[str], list[str]], bool]) -> None:
        """The strings of a reply's output tensors, each its own piece. `read` fills the first list (and the second
        with its elements' other readings, `aside_readings`) and says whether it read them all; BYTES that are not
        whole elements (InvalidRequest) keep those before."""
        texts: list[str] = []
        beside: list[str] = []
        try:
            whole = read(texts, beside)
        except InvalidRequest:
            whole = False
        self.add_pieces(texts, whole)
        if beside:
            self.aside_readings(beside)

    def add_unknown(self, reply: dict[str, Any]) -> None:
        """A reply, or a streamed event, in which its adapter found none of the fields it reads the output from (a
        server compatible with the API in name only: `{"message": ...}`, `{"result": {"text": ...}}`; an error
        event): its strings as `user_strings` reads a request's (framing values skipped, a chat message's content),
        a line each, scanned for the output's labels as text beside it is (`aside`), so the detectors read what a
        client shows of it; the digest and captured content stay those of the output the adapter read. Each string
        is a text of its own, an event's last apart from the next one's first too (run together, `bob@example.org`
        then `end_turn` read `…orgend_turn`: no address); and the strings that stand at the same place in a
        stream's events (`{"token": {"text": ...}}` an event) also run together, as a stream's pieces do, so a value
        streamed in pieces is found where they meet. At most `MAX_STRINGS` of them, within the scan limit: past
        either, `scan:truncated`."""
        texts: list[str] = []
        if not user_strings(reply, texts, numbers=False):  # (its numbers not counted: a reply's vectors read whole)
            self.unread()
        if not texts or self._detectors is None:
            return
        asides = self._asides
        self.aside(_UNKNOWN, ("\n" if asides is not None and _UNKNOWN in asides else "") + "\n".join(texts))
        places: dict[tuple[Any, ...], list[str]] = {}
        placed_strings(reply, places, len(texts))
        first = self._first_places
        if not self._events:  # a reply's one JSON text, or a stream's first event: its strings are read apart above
            if first is None:
                self._first_places = places  # kept until another comes (a stream), if one does
                return
            self._events = True
            self._first_places = None
            for place, strings in first.items():
                self.aside((_UNKNOWN, place), "\n".join(strings))
        for place, strings in places.items():
            self.aside((_UNKNOWN, place), "\n".join(strings))

    def aside_strings(self, key: Hashable, value: Any, apart: bool = False) -> None:
        """The strings of `value` as `user_strings` reads a request's (framing values skipped), a line each, read
        beside the content under `key` (`aside`): an element of a reply its adapter reads no text from. `apart`:
        each value is whole (an error), not a piece of one (a delta), so it is not run into the key's last one
        (a line between). Past `MAX_STRINGS` of them, `scan:truncated`."""
        texts: list[str] = []
        if not user_strings(value, texts, numbers=False):  # (as `add_unknown`: llama.cpp's embeddings read whole)
            self.unread()
        if texts:
            self.aside_lines(key, texts, apart)

    def aside_lines(self, key: Hashable, texts: list[str], apart: bool = True) -> None:
        """`texts`, strings already (a reply's logprobs alternatives), a line each beside the content under `key`, as
        `aside_strings` reads them: `apart` from the key's last one (a line between)."""
        text = texts[0] if len(texts) == 1 else "\n".join(texts)
        if apart and self._asides is not None and key in self._asides:
            text = "\n" + text
        self.aside(key, text)

    def add_pieces(self, texts: list[str], whole: bool) -> None:
        """Outputs, each its own piece (`add_tensors`, read already); `whole` False: some were not read."""
        if not whole:
            self.unread()
        for text in texts:
            self.add(text)
            self.end_piece()

    def end_piece(self) -> None:
        """Mark the end of one output (a choice); keeps digests of whole and streamed replies equal. Outputs
        are scanned as texts of their own, as a request's texts are."""
        digest = self._hash
        if digest is not None:
            if self._unhashed:
                self._hash_pieces(digest)
            digest.update(b"\n")
        if self._scanner is not None:  # (none yet: nothing fed, or only the output waiting, which it ends)
            self._scanner.end_text()

    def finish(self, masker: Detectors | None = None) -> None:
        self.source = None
        if self._later is not None:  # (a whole reply's readings in its charset: `aside_later`)
            self._aside_later_now()
        digest = self._hash
        if self._seen and digest is not None:
            if self._unhashed:
                self._hash_pieces(digest)
            self.outcome.output_digest = "sha256:" + digest.hexdigest()
        if self._detectors is not None:
            found = self._found()
            self.outcome.output_detected = found | {TRUNCATED} if self._unread else found
        if self._capture:
            text = "".join(self._capture)
            if masker is None:
                self.outcome.content = (text,)
            elif self.charset and self._later_cut:
                self.outcome.content = (_WITHHELD_CHARSET_UNREAD,)
            elif self.charset and self._asides is not None and self._in_charset_found(masker, [text]):
                self.outcome.content = (_WITHHELD_CHARSET,)
            elif (
                self._other_readings
                and self._asides is not None
                and self._in_charset_found(masker, [text], _READINGS[0])
            ):
                self.outcome.content = (_WITHHELD_READING,)
            else:
                self.outcome.content = (masker.mask(text, CAPTURE_MAX_CHARS),)
            if self._keep <= 0:  # not all kept: the output's characters, all that were added (`_add`)
                self.outcome.content_chars = len(text) - self._keep

    def _in_charset_found(self, masker: Detectors, captured: list[str], kind: str = "charset") -> bool:
        """Whether a reading of the reply in its charset read beside the output (`_in_charset`) holds a detected value:
        no captured text (the UTF-8 reading) holds it to mask, so the content is withheld (`_WITHHELD_CHARSET`), as a
        request's is when a value stands only in a reading beside it. Before 2026-12-05 a span captured
        `bob+AEA-example.org`, `bob@example.org` to `requests` under `charset=utf-7`, unmasked. A value the `captured`
        text holds too is masked in it (`Detectors.stands_apart`): before 2026-12-05 it withheld the output too."""
        assert self._asides is not None
        texts = [kept.decode("utf-8", "surrogatepass") for key, kept in self._asides.items()
                 if isinstance(key, tuple) and len(key) == 2 and key[0] == kind]  # fmt: skip
        # (a value the captured text holds too is masked in it: withheld only for one that stands in them alone)
        return bool(texts) and bool(masker.scan_all(texts) - {TRUNCATED}) and masker.stands_apart(texts, captured)

    def _found(self) -> frozenset[str]:
        """The labels of the output and the asides (each a text of its own)."""
        assert self._detectors is not None
        asides = self._asides
        pending = self._pending
        if pending is not None and self._scanner is None and not asides:
            return self._detectors.scan_output(pending)
        if self._scanner is None and pending is None and not asides:
            return frozenset()
        scanner = self._stream()
        if asides:
            for kept in asides.values():
                scanner.cut()
                scanner.feed(kept.decode("utf-8", "surrogatepass"))
        return frozenset(scanner.found)


NOT_JSON: Final = object()  # what `reply_json` gives for bytes that are not JSON
# the first bytes of a large whole reply orjson refused that are read first (`_fails_early`), and how many characters
# before their end an error in them must be to be the whole's: past where a parser fails it has looked at no more
# than a literal's or an escape's characters (`-Infinity`, `\\uXXXX`)
_JSON_HEAD: Final = 64 << 10
_JSON_REACH: Final = 16
VISIBLE: Final = re.compile(rb"[^ \t\r\n]")  # the first byte that is not JSON white space


def reply_json(data: bytes, text: OutputText, whole: bool = False) -> Any:
    """A reply's JSON (whole, or an event's) as its client reads it; `NOT_JSON` when it is none, or nested deeper
    than can be read (orjson's 1,024 levels, then Python's stack), which the caller says was not read. orjson reads
    it; what orjson refuses but a client reads all the same is read as that client reads it (`_client_json`). `text`
    keeps the JSON text (a reference), for a value written with a large double (`json_text`). `whole`: `data` is a
    whole reply's body (not an event's data), which a client may read in UTF-16 or UTF-32 (`_client_json`), or in the
    `charset` its type names (`_in_charset`)."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        return refused_json(data, text, error, whole)
    text.source = data
    if text.charset is not None and whole:  # (one check of a reply that names none)
        return _in_charset(data, text, value)
    return value


def refused_json(data: bytes, text: OutputText, error: orjson.JSONDecodeError, whole: bool = False) -> Any:
    """`reply_json` of `data` orjson has refused (`error`): read as its client reads it (`_client_json`), not parsed by
    orjson again; `NOT_JSON` unread where it is JSON to that client up to its end, where it is cut (`_cut_at_end`),
    which that client's parse fails at too: 16 MiB of vectors so cut, kept as they passed, would hold the loop 0.5-2 s
    in Python's `json`."""
    text.source = None  # (read by Python's `json`: its integers have their digits)
    if not (whole and text.charset is not None) and _cut_at_end(data, error):
        if whole:
            text.cut_json = data
        return NOT_JSON  # (in a charset it names, a reading in it may be other JSON: `_in_charset`)
    value = _client_json(data, text, whole)
    return _in_charset(data, text, value) if text.charset is not None and whole else value


def _in_charset(data: bytes, text: OutputText, value: Any) -> Any:
    """A whole reply whose type names a `charset` other than UTF-8's (`OutputText.charset`), as a client that decodes
    it so reads it too (`requests`' `.json()` and `.text`; the openai SDK reads `value`, UTF-8 or UTF-16 and UTF-32 by
    their zero bytes): each reading in it (`charsets.readings`, as a KServe V1 request body is read) that is other JSON
    than `value` has its strings read beside the output, one that is no JSON its text, each after the reply's own
    fields are (`OutputText.aside_later`); and where `value` is none
    (`NOT_JSON`: Shift_JIS's `\\` second bytes), the first JSON reading is the reply. Bytes that are no text in it, or
    a charset Python does not know (or two that differ), leave the output `scan:truncated`. Before 2026-12-05 a reply
    was read as UTF-8 alone: `alice+AEA-example.com` under `charset=utf-7`, `alice@example.com` to `requests`, was
    clean."""
    charset = text.charset
    if not charset:
        text.unread()
        return value
    # the text orjson read `value` from (`reply_json`): a reading that is that text is that JSON, not parsed again
    # (Python's `json` took 76-155 ms of 15 MiB, in the loop's turn, of a Latin-1 or ASCII reply that is UTF-8's text)
    utf8 = data.decode("utf-8") if text.source is data else None
    for index, (read, whole) in enumerate(readings(data, charset)):
        if not whole:
            text.unread()
        if read == utf8:
            continue
        try:
            # (the reply where the UTF-8 reading is none: `requests`' `.json()` raising at an integer past 4,300 digits
            # makes the call `upstream_error`, as the openai SDK's at the UTF-8 reading does)
            other = _whole_json_text(read, text) if value is NOT_JSON else json.loads(read, parse_int=_parse_int)
            same = other == value
        except (ValueError, RecursionError):
            text.aside_later((_CHARSET, index), read, False)
            continue
        if value is NOT_JSON:
            value = other
            text.source = None  # (read by Python's `json`)
        elif not same:
            text.aside_later((_CHARSET, index), other, True)
    return value


_CHARSET: Final = "charset"  # the `OutputText.aside` key of a reply's reading in its charset (`_in_charset`)
# the captured output of a reply with a detected value in that reading (`OutputText._in_charset_found`)
_WITHHELD_CHARSET: Final = "[withheld: a detected value is read in the charset the reply's type names]"
# the captured output of a reply whose reading in that charset was cut by the scan limit (`OutputText._later_cut`):
# what it holds is not known
_WITHHELD_CHARSET_UNREAD: Final = "[withheld: the reply as read in the charset its type names is past the scan limit]"
# the `OutputText.aside` key of an output's elements read in other charsets (`aside_readings`), and its captured output
# when a detected value stands in them
_READINGS: Final = ("other charsets", 0)
_WITHHELD_READING: Final = "[withheld: a detected value is read in a charset other than UTF-8]"


# a double as orjson writes one of 10^18 or more (`1.2345678901234569e+23`; the `+` optional: it writes integers'
# digits, and doubles under 10^16 without an exponent): one that large may be an integer past 64 bits
_LARGE_DOUBLE: Final = re.compile(r"[0-9]e\+?(?:1[89]|[2-9][0-9]|[0-9]{3})")


def _python_json(value: Any) -> str | None:
    """`value` as compact JSON written by Python's `json` (every digit of an integer); None when too deep."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (ValueError, RecursionError):
        return None


def _exact_value(source: bytes | None, value: Any) -> tuple[Any] | None:
    """`value`, an object or array orjson read from `source`, as Python's `json` reads it there: its integers past 64
    bits with their digits (in a 1-tuple). Found where orjson, reading `source` again, reads a value equal to it (the
    first, in document order); None when none is, or `source` does not read."""
    if source is None:
        return None
    try:
        stack: list[tuple[Any, Any]] = [(orjson.loads(source), json.loads(source, parse_int=_parse_int))]
    except (ValueError, RecursionError):  # (orjson's JSONDecodeError is a ValueError)
        return None
    kind = type(value)
    while stack:
        item, exact = stack.pop()
        if type(item) is kind and item == value:
            return (exact,)
        if type(item) is dict and type(exact) is dict:
            stack.extend((child, exact.get(key)) for key, child in reversed(item.items()))
        elif type(item) is list and type(exact) is list and len(item) == len(exact):
            stack.extend(zip(reversed(item), reversed(exact)))  # noqa: B905 (the lengths are equal)
    return None


def ends_early(data: bytes, told: OutputText | None = None) -> bool:
    """Whether `data`, which no reader read as JSON (`reply_json`), is a JSON text cut before its end: what a reply
    framed by its connection's close holds when the close came before the rest. Only on that failure path: a whole
    reply is parsed once. JSON in UTF-16 or UTF-32 (`_wide_json_text`) is read as its client reads it, to its last
    whole character (read as UTF-8, it breaks off at its first byte, and a cut one would never be said to be).
    `told`: the reply's text, where `reply_json` told it so (`OutputText.cut_json`): not parsed again (16 MiB of vectors
    0.07-0.2 s)."""
    if told is not None and told.cut_json is data:
        return True
    if data.startswith(b"\xef\xbb\xbf"):  # a byte order mark, which a client's decode drops
        data = data[3:]
    else:
        encoding = json.detect_encoding(data)
        if not encoding.startswith("utf-8"):
            unit = 2 if "16" in encoding else 4
            if len(data) > (unit + 1) * _JSON_HEAD:
                # (its first characters first, as UTF-8: no JSON by them, it is none cut, and not decoded and encoded
                # whole, 16 MiB of UTF-16 text 43 ms in one loop turn until 2026-12-05)
                try:
                    decoder = codecs.getincrementaldecoder(encoding)("surrogatepass")
                    head = decoder.decode(data[: unit * _JSON_HEAD]).encode("utf-8", "surrogatepass")
                except UnicodeDecodeError:  # (no text in it: no JSON cut)
                    return False
                if len(head) >= _JSON_HEAD and _fails_early(head, "utf-8", False):
                    return False
            try:
                text = data[: len(data) - len(data) % unit].decode(encoding, "surrogatepass")
            except UnicodeDecodeError:  # (no text in it: no JSON cut)
                return False
            if text and 0xD800 <= ord(text[-1]) <= 0xDBFF:  # (a pair's first half, its second cut off)
                text = text[:-1]
            data = text.encode("utf-8", "surrogatepass")
    if len(data) > _JSON_HEAD and _fails_early(data, "utf-8", False):
        # (no JSON from its first bytes on: not decoded whole, 0.3 s for 15 MB of binary after `{`; as its client's
        # `json` reads them, which reads `NaN`: orjson refuses it, so one there would never be said cut)
        return False
    # (read as its client's `json.loads` has it, bytes that are not UTF-8 each U+FFFD: orjson says where such bytes are,
    # a cut within a character's bytes too, at 0; and where it ends, in characters, which its length in bytes is not
    # where the text holds characters past ASCII)
    text = data.decode("utf-8", "replace")
    # (`NaN`, `Infinity`, a lone surrogate escape, which its client's `json` reads and orjson refuses: read on past
    # them, `_read_on`, else a reply holding one would never be said cut short)
    error = _read_on(text, _orjson_error(text))
    # (orjson's "unexpected end of data", not its error's place: white space alone begins no JSON text, "input data is
    # empty", as the client's `json.loads` raises at an empty body, an OIP reply of `\n` no reply cut; a line's end in
    # a string is a control character there, where both fail, not white space after its end)
    return error is not None and error.msg == _END_OF_DATA


def _orjson_error(text: str) -> orjson.JSONDecodeError | None:
    """Where orjson refuses `text` (its error), None where it reads it."""
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError as error:
        return error
    return None


_END_OF_DATA: Final = "unexpected end of data"  # orjson's error at a JSON text cut before its end
# `NaN`, `Infinity` and `-Infinity`, which Python's `json` reads as numbers (a client's `json.loads`) and orjson refuses,
# each with a finite number of its length orjson reads where it stands (`_finite_copy`): only where the character
# before it could not run on into that number (`1NaN`, `1e-Infinity` are no JSON to `json` either). Each: the word, its
# finite number, the pattern of one that may be so changed and of one that may not (after such a character)
_NON_FINITE: Final = tuple(
    (
        word,
        finite,
        re.compile(rf"{word}(?<![-+.0-9eE]{word})"),
        re.compile(rf"{word}(?<=[-+.0-9eE]{word})"),
    )
    for word, finite in (("-Infinity", "-0       "), ("Infinity", "0       "), ("NaN", "0  "))
)
# one of them cut by the text's end (its last 9 characters searched): read as a number's sign, which orjson reads to
# the end as the rest of a number (`[1, Na` is JSON cut as `[1, -` is; `{"a":1,Na` no JSON, as `{"a":1,-`)
_NON_FINITE_CUT: Final = re.compile(r"(?<![-+.0-9eE])(?:-?I(?:n(?:f(?:i(?:n(?:i(?:t)?)?)?)?)?)?|Na?)\Z")
_NON_FINITE_FIRST: Final = ("N", "I")  # where orjson refuses one of them
# a surrogate escape (a lone one, `"\\ud800"`, Python's `json` reads, as `JSON.parse` does, and orjson refuses), where
# orjson refused one (`_no_surrogates`)
_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
# a number past a double's range (`1e400`, `-1E+999`, 400 digits), which Python's `json` reads (an infinity, or an
# integer with its digits) and orjson refuses, said at its first character (its sign's)
_PAST_RANGE: Final = "number is infinity"
# one's exponent of three digits or more, not negative, after a digit and not within a `\\uXXXX` escape (`\\u0e40`
# then `1`): its sign or first digit as a minus (`1e-00`, `2E-400`), a number of its length orjson reads where it
# stands (`_small_exponents`). Below 10^209, as an integer part of fewer than `_LONG_INTEGER`'s digits is, it is then
# finite: one so written is past the range only with an exponent of 100 or more
_LARGE_EXPONENTS: Final = tuple(
    (
        re.compile(
            rf"{e}(?<=[0-9]{e})(?<!\\u[0-9a-fA-F]{e})(?<!\\u[0-9a-fA-F]{{2}}{e})(?<!\\u[0-9a-fA-F]{{3}}{e})"
            rf"(?:\+(?=[0-9]{{3}})|[0-9](?=[0-9]{{2}}))"
        ),
        e + "-",
    )
    for e in "eE"
)
# where orjson refused one of 210 digits or more before any fraction or exponent (`_short_integers`: 210, so that
# with an exponent under 100 it stays below 10^308)
_LONG_INTEGER: Final = re.compile(r"-?[1-9][0-9]{209}")
_LONG_DIGITS: Final = "0" * 210  # such a run of digits, found in the text with its digits each `0` (`_DIGITS_ZERO`)
_DIGITS_ZERO: Final = str.maketrans("123456789", "000000000")
# where orjson refused one past the range not at such a run: every digit but `0` made `1`, in C (`1e400`, `1E+999`,
# `1.5e400` then finite, where the patterns of `_small_exponents` stepped each, 0.14 s of CPU for 15 MiB of them).
# Digits stay digits, hex digits hex digits, `0` alone `0`: the same JSON to Python's `json` or none, failing where it
# failed (a leading zero's), a surrogate's escape perhaps another's or none, which `json` reads alike. No integer part
# or exponent not negative grows, and a number with a negative one stays below its integer part plus one: a finite
# number stays so where its integer part is of fewer than 210 digits (`_short_integers` reads the others).
# Those it leaves past the range (`1e1000`; 200 digits then `e400`) orjson refuses again: `_small_exponents` then
_DIGITS_ONE: Final = str.maketrans("23456789", "11111111")
_ZEROS: Final = re.compile("0+")
# what orjson says where it refuses one of them (a surrogate escape: "no low surrogate in string", "invalid high
# surrogate in string", "invalid low surrogate in string", or "invalid escape in string" where a high one's low one
# is cut: said at the high one)
_REFUSED_READ_ON: Final = ("unexpected character", "no digit after sign", "no low surrogate", "invalid", _PAST_RANGE)


def _read_on(text: str, error: orjson.JSONDecodeError | None) -> orjson.JSONDecodeError | None:
    """orjson's `error` of `text` where it refused what its client's `json` reads (`NaN`, `Infinity`, a lone surrogate
    escape, a number past a double's range): its error of a copy with those read (`_finite_copy`, `_no_surrogates`,
    `_DIGITS_ONE`, then `_small_exponents` where that leaves one, `_short_integers`), each kind changed only once orjson
    refused one of it. The copies are of the same length, so orjson's positions are the text's: it reads them as far
    as a client's `json` reads `text`, and says where that is (`ends_early`)."""
    finite = escapes = ones = exponents = integers = False
    while error is not None:
        if not finite and text.startswith(_NON_FINITE_FIRST, error.pos):
            text, finite = _finite_copy(text), True
        elif not escapes and _SURROGATE_ESCAPE.match(text, error.pos):
            text, escapes = _no_surrogates(text), True
        elif not error.msg.startswith(_PAST_RANGE):
            return error
        elif not ones and _LONG_INTEGER.match(text, error.pos) is None:
            text, ones = text.translate(_DIGITS_ONE), True  # (`1e400` as `1e100`: below)
        elif not exponents and _LONG_INTEGER.match(text, error.pos) is None:
            text, exponents = _small_exponents(text), True
        elif not integers:
            text, integers = _short_integers(text), True
        else:
            return error
        error = _orjson_error(text)
    return None


def _finite_copy(text: str) -> str:
    """`text` with each `NaN`, `Infinity` and `-Infinity` (and one its end cuts) as a finite number orjson reads. Those
    in strings are changed too, into other characters of a string. Where none stands after a character a number runs
    on from (`1NaN`: every reply a JSON writer writes), by `str.replace`, in C: `re.sub` stepped each, 0.4-0.7 s of a
    kept 15 MiB of vectors `[NaN,Infinity,-Infinity,NaN]` in the loop turn that reads it, until 2026-12-06. Where one
    does, by `str.replace` before the character before the first such (in no word: `-` begins `-Infinity` only, which
    no `Infinity` follows there), the pattern from it: one placed last in 15 MiB cost 18 % more than the pattern
    alone, 159-170 ms of CPU, now 73-75. Not where it stands in the text's first 16th: the copies of the two parts
    joined cost more than the pattern saves there (10 MiB +10 ms)."""
    for word, finite, changed, kept in _NON_FINITE:
        found = kept.search(text)
        if found is None:
            text = text.replace(word, finite)
        elif found.start() <= len(text) >> 4:
            text = changed.sub(finite, text)
        else:
            at = found.start() - 1
            text = text[:at].replace(word, finite) + changed.sub(finite, text[at:])
    cut = _NON_FINITE_CUT.search(text, max(len(text) - 9, 0))
    return text if cut is None else text[: cut.start()] + "-"


def _no_surrogates(text: str) -> str:
    """`text` with each escape of `\\ud800`-`\\udfff` (so each surrogate's) one of `\\u0800`-`\\u0fff`, which orjson
    reads, as `\\ud000`-`\\ud7ff` become `\\u0000`-`\\u07ff`: the same JSON or none as before, of its length. Pairs are
    changed too, and a `\\ud` after an escaped backslash, which is no escape, into other characters of a string. In C,
    no pattern stepping each match: 14 MiB of strings a lone escape each, or of escaped emoji pairs, took 0.24-0.64 s
    by `re.sub` until 2026-12-06, now 0.12-0.17 s (on a loaded machine), in the loop turn that reads such a reply."""
    return text.replace("\\ud", "\\u0").replace("\\uD", "\\u0")


def _small_exponents(text: str) -> str:
    """`text` with each exponent of three digits or more that is not negative made so (`_LARGE_EXPONENTS`): its number
    then finite where its integer part is of fewer than 210 digits, the same JSON or none as before. Those in strings
    are changed too, into other characters of a string. Two passes in C (~0.03-0.15 s for 16 MiB of vectors)."""
    for pattern, negative in _LARGE_EXPONENTS:
        text = pattern.sub(negative, text)
    return text


def _short_integers(text: str) -> str:
    """`text` with each number's integer part of 210 digits or more (`_LONG_DIGITS`: found in a copy with every digit
    `0`) as spaces then a `0`, its sign one of the spaces (`-1234.5e99`, 210 digits or more, as `     0.5e99`):
    finite with an exponent under 100, as `_small_exponents` leaves one. Runs of digits in a fraction or an exponent,
    or after a leading `0`, are left (no number's integer part, or no JSON either way); one in a string after a
    character a number follows becomes other characters of it. Each run is read once, in C, and Python steps one
    run of 210 digits or more at a time, so at most one step per 210 characters."""
    zeros = text.translate(_DIGITS_ZERO)
    pieces: list[str] = []
    kept = 0
    at = zeros.find(_LONG_DIGITS)
    while at >= 0:
        end = cast("re.Match[str]", _ZEROS.match(zeros, at)).end()
        begin = at - 1 if at and text[at - 1] == "-" else at
        if text[at] != "0" and (not begin or text[begin - 1] in _BEFORE_NUMBER):
            pieces += (text[kept:begin], " " * (end - begin - 1), "0")
            kept = end
        at = zeros.find(_LONG_DIGITS, end)
    return "".join(pieces) + text[kept:] if pieces else text


def _cut_at_end(data: bytes, error: orjson.JSONDecodeError) -> bool:
    """Whether `data`, which orjson refused (`error`), is JSON to its client's `json` up to its end, where it is cut:
    orjson's error is at its end, or, where it refused a `NaN`, `Infinity`, lone surrogate escape or number past a
    double's range, in a copy with those read (`_read_on`), asked only where its last byte but white space is not a
    bracket or brace, as a whole reply's is: such a one is read as its client reads it (`_client_json`), which tells,
    orjson not handed it twice. (JSON in UTF-16 or UTF-32, or after a byte order mark, orjson refuses at a zero byte,
    a byte that is no UTF-8 or the mark: never at an end.)"""
    if error.msg == _END_OF_DATA:
        return True
    if error.msg.startswith(_REFUSED_READ_ON) and not data.rstrip(b" \t\r\n").endswith((b"}", b"]")):
        text = data.decode("utf-8", "replace")
        refused = _read_on(text, error)
        return refused is not None and refused.msg == _END_OF_DATA
    return False


def no_json_head(head: bytes) -> bool:
    """Whether a whole reply (no `charset` named) longer than `_JSON_HEAD` bytes that begins with `head` (at least its
    first `_JSON_HEAD` bytes) is no JSON text as its first bytes tell alone (`_fails_early`), to orjson and to a client's
    `json` (UTF-8, no byte order mark): `reply_json` then says `NOT_JSON` (its text's `source` None), and `ends_early`
    False, as read whole. Spares orjson's UTF-8 check of all of it (64 MB 0.15 s in one loop turn) and a kept reply's
    pieces joined first (0.08 s), until 2026-12-05."""
    if head.startswith(codecs.BOM_UTF8) or not json.detect_encoding(head).startswith("utf-8"):
        return False
    return _fails_early(head, "utf-8", True) and _fails_early(head, "utf-8-sig", False)


def _fails_early(data: bytes, encoding: str, strict: bool) -> bool:
    """Whether large `data` is no JSON text as read in `encoding` (bytes that are none each U+FFFD) by Python's `json`
    (`strict`: by orjson), as its first `_JSON_HEAD` bytes tell alone: a syntax error in them at least `_JSON_REACH`
    characters before their end is the whole's, and where it is, as both read left to right and look no further past
    where they fail (but `json`'s unterminated string and orjson's number past a double's range, said where they
    began). False when they cannot tell (JSON so far, or an error near their end). Spares decoding all of it: 15 MB
    of binary after a `{` took 0.13 s (`_client_json`), its `ends_early` 0.3 s more, in one loop turn (until
    2026-12-05)."""
    head = codecs.getincrementaldecoder(encoding)("replace").decode(data[:_JSON_HEAD])  # (a last character cut: held)
    try:
        if strict:
            orjson.loads(head)
        else:
            json.loads(head, parse_int=_parse_int)
    except json.JSONDecodeError as exc:  # (orjson's too, a subclass)
        # (orjson's number past a double's range is said where it began, as is `json`'s unterminated string: digits
        # their end cuts may be the whole's finite number, `1` then 2,000 zeros then `e-1995`)
        late = "number is infinity" if strict else "Unterminated string"
        return exc.pos + _JSON_REACH < len(head) and not exc.msg.startswith(late)
    except (ValueError, RecursionError):  # (nested past a parser's depth: told by the whole)
        return False
    return False


def _client_json(data: bytes, text: OutputText, whole: bool) -> Any:
    """A lone surrogate escape (`JSON.parse`, Python's `json`), a byte order mark before the JSON and, in a `whole`
    reply, an integer of more than 4,300 digits (`fetch().json()`, `upstream_error`: `_whole_json_text`), `NaN`
    (Python's `json`); bytes that are not UTF-8 each as U+FFFD (a browser's `fetch().json()`), `text` then labelled
    `scan:truncated`, as what they stood for was not read (but in a
    `whole` reply whose type names a charset Python knows, read in it too: `_in_charset` says whether it was). JSON in
    UTF-16 or UTF-32 (zero bytes in its first four, or their byte order mark), a `whole` reply's body, as Python's
    `json.loads` of the bytes reads it (httpx's `Response.json()`, so the openai SDK's; tritonclient's rapidjson
    reads UTF-8 only); never an event's data, which SSE clients decode as UTF-8. An event's data that holds an integer
    of more than 4,300 digits is none: the SDKs' `json.loads` raises at it (a success until 2026-12-06)."""
    replaced = False  # bytes that are not UTF-8 read as U+FFFD
    try:
        wide = _wide_json_text(data) if whole else None
    except UnicodeDecodeError:
        return NOT_JSON  # (a client's `json.loads` fails too)
    if wide is not None:
        decoded = wide
    else:
        if len(data) > _JSON_HEAD and _fails_early(data, "utf-8-sig", False):
            return NOT_JSON  # (15 MB of binary after `{`, decoded whole with U+FFFD, held the loop 130 ms: until 2026-12-05)
        try:
            decoded = data.decode("utf-8-sig")  # (a byte order mark dropped, as a client's UTF-8 decode drops it)
        except UnicodeDecodeError:
            decoded = data.decode("utf-8-sig", "replace")
            replaced = True
    try:
        value = _whole_json_text(decoded, text) if whole else json.loads(decoded)
    except (ValueError, RecursionError):
        return NOT_JSON
    if replaced and not (whole and text.charset):
        # (a whole reply in a charset Python knows is read in it too, `_in_charset`, which says whether that reading,
        # `requests`' `.json()`, was whole: before 2026-12-05 a Latin-1 `andré` was `scan:truncated` from this one)
        text.unread()
    return value


def _whole_json_text(decoded: str, text: OutputText) -> Any:
    """A whole reply's JSON text as Python's `json` reads it, its integers read by `int` in C (`_parse_int` is a call
    into Python an integer: a reply of many small ones and a `NaN` paid one each, until 2026-12-06). One holding an
    integer of more digits than `int` reads from text (4,300) is read again, that integer a float as `fetch().json()`
    reads it, for its labels; and the call is `upstream_error`: the openai, Anthropic and ollama SDKs' `.json()`
    (Python's `json`) and tritonclient's rapidjson raise at it (a success until 2026-12-06); so is a reading in the
    charset its type names that is the reply (`_in_charset`), which `requests`' `.json()` raises at."""
    try:
        return json.loads(decoded)
    except json.JSONDecodeError:
        raise
    except ValueError:  # (not the text's syntax: an integer past `int`'s digit limit)
        value = json.loads(decoded, parse_int=_parse_int)
    client_raises(text.outcome)
    return value


def client_raises(outcome: Outcome) -> None:
    """A whole 200 reply its client raises at though the proxy reads it (an integer of more digits than `int` reads):
    the call is `upstream_error`, unless something else ended it first (the error type it already has)."""
    if not outcome.error_type:
        outcome.error_type = STREAM_ERROR


def _wide_json_text(data: bytes) -> str | None:
    """JSON bytes in UTF-16 or UTF-32 as the text Python's `json.loads` of the bytes reads (`json.detect_encoding`: by
    their byte order mark, or the zero bytes in their first four), a lone surrogate as `json` reads it
    (`surrogatepass`); None when they are UTF-8 by that reading. UnicodeDecodeError when they are no text in theirs."""
    encoding = json.detect_encoding(data)
    if encoding.startswith("utf-8"):
        return None
    return data.decode(encoding, "surrogatepass")


def request_json_as_utf8(body: bytes) -> bytes | None:
    """A request body orjson refused, as UTF-8 when it is JSON text in another form Python's `json.loads` reads (so
    FastAPI's `request.json()`, vLLM's, llama-cpp-python's, KServe's V2 and OpenAI endpoints'): after a UTF-8 byte order
    mark, or in UTF-16 or UTF-32 (`_wide_json_text`), the text those servers hand the model, for the adapter to read as
    it reads any body (orjson, MLServer and KServe V1 refuse these forms: read all the same, as reading is safe where
    refusing is not). None when it is UTF-8 without a mark (its refusal stands), or no text in its encoding."""
    if body.startswith(codecs.BOM_UTF8):
        return body[3:]
    try:
        wide = _wide_json_text(body)
    except UnicodeDecodeError:
        return None
    return None if wide is None else wide.encode("utf-8", "surrogatepass")


def _parse_int(digits: str) -> int | float:
    """A JSON integer; one of more digits than Python's `int` reads from text (4,300) as `JSON.parse` reads it."""
    try:
        return int(digits)
    except ValueError:
        return float(digits)


def _tables() -> tuple[dict[ProtocolName, Adapter], tuple[Adapter, ...], tuple[Adapter, ...], Mapping[str, Dialect]]:
    from proxy.protocols import anthropic, kserve, oip, oip_generate, oip_grpc, ollama, openai, passthrough, tgi

    adapters: dict[ProtocolName, Adapter] = {
        "openai": openai.ADAPTER,
        "anthropic": anthropic.ADAPTER,
        "oip": oip.ADAPTER,
        "oip-grpc": oip_grpc.ADAPTER,
        "kserve": kserve.ADAPTER,
        "passthrough": passthrough.ADAPTER,
    }
    # in match order; passthrough matches anything. OIP's LLM paths are OIP's (`oip`, its span attributes `oip.ADAPTER`'s),
    # TGI's and Ollama's native APIs OpenAI's (`openai`, as llama.cpp's native endpoints are: their upstreams are
    # `protocol: openai`)
    # (`openai.IN_PATH`, OpenAI's calls on paths naming their model, LiteLLM proxy's Azure-compatible ones, last
    # before passthrough: the paths the others read pay nothing for it)
    http = (openai.ADAPTER, anthropic.ADAPTER, oip.ADAPTER, oip_generate.ADAPTER, tgi.ADAPTER, ollama.ADAPTER,
            kserve.ADAPTER, openai.IN_PATH, passthrough.ADAPTER)  # fmt: skip
    dialects: dict[str, Dialect] = {
        "openai": openai.DIALECT,
        "oip": oip.DIALECT,
        "kserve": kserve.DIALECT,
        "passthrough": passthrough.DIALECT,
    }
    grpc = (oip_grpc.ADAPTER,)  # methods no adapter matches pass through as bytes
    return adapters, http, grpc, dialects


ADAPTERS, HTTP_ADAPTERS, GRPC_ADAPTERS, DIALECTS = _tables()

"""Server-sent events, read as they pass: the one splitter every streamed JSON API shares.

Read as the WHATWG EventSource reads a stream: lines ended by LF, CRLF or a bare CR, split anywhere across chunks (a
CRLF too); a byte order mark that begins the stream dropped (but where the openai or Anthropic SDK reads it: `_fresh`);
an event's data is its `data:` lines joined by LF, the event ending at a blank line (other lines, `event:` and comments,
are framing). An event's data is one JSON object, most often in one line, which is read as it comes; one that is not a
JSON object alone (pretty-printed JSON, a line each) is read once its event ends, or the reply does. `data: [DONE]`
(OpenAI) marks the end, as does any data that begins so (`[DONE]x`: the openai SDKs, Python and Node, stop at it); APIs
whose end is an event of their own (Responses, Anthropic Messages) set `ended` from `event`. The reply ends with the
blank line that ends that event: a client dispatches no event before it, and the piece that holds it is the last passed
on (`Exchange.chunk`); one the body ends in before it is none to those SDKs, nor its finish or stop reason (`_GIVEN`).
A line, or an event's data, longer than `MAX_LINE` bytes is not kept to its end: the observer stops reading that
reply (which is forwarded as it comes all the same) and its output is labelled `scan:truncated`. So is a reply
holding what the observer does not read: an event's data that is no JSON object, a line that is neither a field
SSE defines (`data`, `event`, `id`, `retry`), a comment nor white space (a page of HTML, plain text; but llama.cpp's
`error: {...}` line, the upstream's error in band); past
`_MOST_REFUSED` events that are no JSON, the rest of the reply is not read, nor past `MAX_STRINGS` events no adapter
reads (`unknown`'s, `data:` lines that open no event); what is not read is still looked at for the upstream's error,
in C (`_late_errors`).

A reply whose Content-Type is `application/x-ndjson` (Ollama's native streams) is JSON lines: each line, ended as an
event stream's are and split anywhere across chunks as they are, one JSON object, read as an event (`event`) as it
comes; a line that is no JSON object is not read (`scan:truncated`), as an event's data that is none.

A reply passed on as it arrives need not be an event stream: a JSON reply without a Content-Length
(chunked, or until close), or over `limits.buffer_max_bytes`. One whose Content-Type is not
`text/event-stream` and whose first byte but white space is `{` (or whose first bytes begin JSON in UTF-16 or UTF-32,
a NUL or a byte order mark's byte first; not a binary reply so begun) is kept as it passes (at most `Detectors.keep_max` bytes; nothing is held back from the client) and read
at `finish` as a whole reply is (`body`): as JSON, else as an event stream.
"""

from __future__ import annotations

import codecs
import json
import re
from array import array
from itertools import accumulate
from typing import Any, Final

import orjson

from proxy.detectors import Detectors
from proxy.flow import Outcome
from proxy.protocols import (
    _JSON_HEAD,
    MAX_STRINGS,
    NOT_JSON,
    STREAM_ERROR,
    VISIBLE,
    Header,
    Observer,
    OutputText,
    ends_early,
    no_json_head,
    reply_json,
)
from proxy.protocols.charsets import codec_of

MAX_LINE = 16 * 1024 * 1024  # bytes of one line kept while it is not yet whole, and of an event's data
_BRACE: Final = ord("{")
_BRACKET: Final = ord("[")
_WIDE: Final = 0xFE  # a byte of it or past it begins a UTF-16 or UTF-32 byte order mark, never UTF-8 text (`_keep`)
_HEAD: Final = 64  # bytes of a reply so begun, or a NUL, that tell whether it is JSON in UTF-16 or UTF-32 (`_keep`)
_PIECE: Final = 64 << 10  # bytes of a whole reply read as an event stream at a time, to a line end (`_read_sliced`)
# bytes of a whole reply past which its first `_JSON_HEAD` are asked first whether it is JSON (`no_json_head`): an
# ordinary reply is read by orjson alone
_HEAD_FIRST: Final = 1 << 20
# bytes of an event's data, or a whole reply, past which it is read by `large_json` (a subclass's: MLServer's replies of
# over `MAX_STRINGS` outputs are read in their first ones, `oip_generate`); as `oip._MANY_TENSORS_FROM`, `{},` an output
_LARGE: Final = 3 * MAX_STRINGS
# b"\r" and b"\n" as ints: `in` is then a memchr (a bytes needle is first tried as an int, and fails with a
# formatted TypeError each time)
_CR: Final = 13
_LF: Final = 10
# a reply's JSON texts that no reader reads (`reply_json`) past which the rest of the reply is not read: a
# well-formed reply has none, and each costs a failed parse or two (16 MiB of `data: {` lines held the loop 5 s);
# the output is labelled `scan:truncated` from the first
_MOST_REFUSED: Final = 16
_JSON_SPACE: Final = b" \t"  # JSON's white space in a line (its LF and CR end it)
_BOM: Final = b"\xef\xbb\xbf"  # a UTF-8 byte order mark: a client's UTF-8 decode drops it before the JSON
# the fields SSE defines but `data` (read apart), with a value and without: framing, as a comment (`:`) is
_FIELDS: Final = (b"event:", b"id:", b"retry:", b":")
_BARE_FIELDS: Final = frozenset({b"data", b"event", b"id", b"retry"})
_ERROR: Final = b"error:"  # llama.cpp's error in a stream (`SseObserver._error_line`)
_NDJSON: Final = "application/x-ndjson"  # a reply of JSON lines, an object a line (Ollama's streams)
# whole lines that change nothing, dropped in C (`_framing_dropped`) before the lines are read one by one in Python:
# comments, lines of white space, `id` and `retry` lines (the proxy reads neither) and `data` without a colon after a
# line end (`\n:...`, `\n  `, `\nid: 7`), and blank lines after a blank line (the first ends the event; those after it
# end none); not `event` without a colon, an `event:` line naming none that replaces the name before it (`_BARE_EVENT`).
# They were a Python step each, whatever their number: 16 MB of `:` comments, one a line, took 1.7 s of the event loop,
# of blank lines 0.4 s, of lines of a space 2.3 s (compiled); of `id: 1` lines 2.0 s (interpreted)
_NO_OP_LINES: Final = re.compile(
    rb"(?:\n(?::[^\n]*|[ \t]+|(?:id|retry)(?::[^\n]*)?|data))+(?=\n)"
)  # (a run of them: one match)
_BLANK_LINES: Final = re.compile(rb"\n\n\n+")
# the same in JSON lines: a line of white space, or none, is no line of the reply (`_json_lines` skips it)
_NO_OP_JSON_LINES: Final = re.compile(rb"(?:\n[ \t]*)+(?=\n)")
# where a read may hold such lines but blank ones (`_framing_dropped`)
_NO_OP_LINE: Final = re.compile(rb"\n(?:[: \t]|(?:id|retry)[:\n]|(?:data|event)\n)")
# where a read may hold any of them (most hold none: no line of the API's begins so): `\ni`, `\nr` for `id`, `retry`,
# a line so begun a needless `_framing_dropped` at most; the search of an ordinary read costs 0-15 % more than of
# `\n[: \t]|\n\n\n` (the whole of `_NO_OP_LINE`'s: 0-45 %); and an `event:` line before a blank line or another
# (`_EVENT_RUNS`, `_LONE_EVENTS`), which an Anthropic or Responses stream's every event line is tried for: a read of
# 32 Anthropic events 3.5 -> 4.2 us, of a chat's or of one event none more (the alternatives after one `\n`)
# A line of one byte too (`_ONE_BYTE_LINE`).
_NO_OP: Final = re.compile(rb"\n(?:[: \tir]|[^\n]\n|\n\n|data(?::[ \t]*)?\n|event(?:\n|:[^\n]*\n(?:\n|event:)))")
# a whole line of one byte (`x`), which the SDK's decoder ignores (a field it does not know, a comment) and the observer
# refuses (`_field`): given a space after it, which changes neither, in the copy the observer reads, so that each is an
# object of its own (CPython's one-byte bytes is one object however many such lines a read is split into) and the line
# the reading stopped at is found by what it is, not by an equal one before it (`_late_after`); no such line in an
# ordinary read: no Python step more there (the search for it is `_NO_OP`'s, in C)
_ONE_BYTE_LINE: Final = re.compile(rb"^[^\n](?=\n)", re.M)
# `event:` lines that name no event, each a Python step (16 MB of `event: x` lines took 0.5-0.8 s of the event loop,
# of `event: x` and a blank line 0.6-0.8 s): all but the last of a run (the last names the event), and one between
# blank lines (no event is open after a blank line, and the next ends the event it would name before any data)
_EVENT_RUN: Final = re.compile(rb"\nevent:[^\n]*\nevent:")  # (searched for first: a literal to look for)
_EVENT_RUNS: Final = re.compile(rb"(?:\nevent:[^\n]*)+(?=\nevent:)")
_LONE_EVENTS: Final = re.compile(rb"\n\n(?:event:[^\n]*\n\n)+")  # (each with the blank line after it)
# `event` without a colon: its value is empty (the SDK's decoder: `event\n` sets the name to ""), so it names no event
# and ends the name an `event: error` line before it gave (dropped as changing nothing before 2026-12-04)
_BARE_EVENT: Final = re.compile(rb"\nevent(?=\n)")
# `data` without a colon: a `data` line whose value is empty (the SDK's decoder: `line.partition(":")`), which the
# Anthropic SDK joins to the event's others (two so: data `\n`, which its `json.loads` raises at; one: `""`, skipped);
# read as `data:` in an Anthropic stream (`typed_by_name`); dropped as framing until 2026-12-05 (helper streams2). A run
# of the lines that change nothing (`_NO_OP_LINES`) and of `data` lines whose value is empty (`data:` too) is read as
# the SDK reads it at once (`_bare_data`): none, one or two `data:` lines, as JSON reads their data alike (white space,
# or a line end in a string: one more changes nothing; two make data `\n`, one `""` or its own white space). Each was
# read as `data:` a Python step, and past `MAX_STRINGS` of them the rest of the reply was not read: an event of them,
# which the SDK raises at, passed as a success (review revstreams2); so were `data:` lines (a colon, a value of white
# space or none: `_EMPTY_DATA_LINE`) until 2026-12-06 (review revstreams2's `empty_data_colon_runs`, helper streams3)
_BARE_DATA: Final = re.compile(
    rb"\n(?::[^\n]*|[ \t]+|(?:id|retry)(?::[^\n]*)?|data(?::[ \t]*)?)"
    rb"(?:\n(?::[^\n]*|[ \t]+|(?:id|retry)(?::[^\n]*)?|data(?::[ \t]*)?))*(?=\n)"
)
_EMPTY_DATA_LINE: Final = re.compile(rb"\ndata(?::[ \t]*)?\n")  # (where a read holds one: `_dropped`)
# one of them that an Anthropic client raises at all the same (its SSE decoder dispatches a named event without data,
# and its `Stream.__stream__` raises at one named `error`, data or none; it skips any other without data: anthropic
# 2.17.0, `if not sse.data: continue`; until 2026-12-05 one of the names it parses was `upstream_error` too)
_LONE_ERROR: Final = re.compile(rb"\n\nevent: ?error\n\n")
_ERROR_NAMES: Final = frozenset({b"event:error", b"event: error"})  # (an `event:` line naming `error`)
# the Anthropic SDK's `Stream.__stream__` (anthropic 2.17.0) skips an event named none (`event:` with no value too, which
# its `ServerSentEvent` makes None) and one named `ping`, whatever its data; it parses the data of any other it does not
# skip for having none (`sse.json()`), and raises at data that is no JSON (its client at JSON that is no object: `_parsed`)
_SKIPPED_NAMES: Final = frozenset({b"event:", b"event: ", b"event:ping", b"event: ping"})
_OTHER_NAMES: Final = _ERROR_NAMES | _SKIPPED_NAMES
_PING: Final = b"ping"
_EMPTY_DATA: Final = (b"data:", b"data: ")  # (a `data` line whose value is empty: one space after the colon dropped)
# past where a reply is read (`_late_errors`): what an event (a JSON line) that is the upstream's error holds
# (`late_words`: a Responses `response.failed` event need hold no `error`), each looked for apart (`bytes.find`: an
# alternation in `re` read 16 MB ten times slower) ...
_LATE_WORDS: Final = (b"error",)
# ... and the lines of such an event, as the SDK's decoder reads them: `data` lines' values (none: an empty one),
# `event` lines (the last names the event; one without a colon names none), llama.cpp's `error:` line
_LATE_DATA: Final = re.compile(rb"^data(?::([^\n]*))?$", re.M)
# the last `event` line of such lines, found at once (a match from where they begin): each found, a list of them,
# was an object a line, and 16 MB of `event: error` lines in an event never ended took 3.1 s of the event loop
_LATE_NAME: Final = re.compile(rb"(?s:.*)^(event(?::[^\n]*)?)$", re.M)
_LATE_ERROR_LINE: Final = re.compile(rb"^error:", re.M)
_JSON_LINES_NO_OP: Final = re.compile(rb"\n[\n \t]")
# what the openai SDK's SSE decoder dispatches without data, at which its `json.loads` raises (`json_every_event`,
# `_sdk_events`): it dispatches an event at a blank line once the event has a name (its last `event` line's value, one
# space after the colon dropped), a `data` line, or a retry (a `retry` line whose value `int` reads), or once an id was
# given (the last `id` line's value holding no NUL: kept from event to event, until an empty one); data that is white
# space alone is none to `json.loads`. A line that may make it so: `id`, `retry`, `event`, a `data` line with no value;
# not an `event` line right before a `data:` line with one, whose event the SDK dispatches with data (a Responses
# stream names each of its events: each was looked at in Python, +~315 instructions an event; helper revsse)
# and a `data:` line with a value followed in its event by another (`_SDK_JOINED`)
_SDK_LINE: Final = re.compile(
    rb"^(?:id|retry|event(?![^\n]*\ndata:[ \t]*[^ \t\n])|data(?::[ \t]*)?$"
    rb"|data:[ \t]*[^ \t\n][^\n]*\n(?:[^\n]+\n)*?data:[ \t]*[^ \t\n])",
    re.M,
)
_SDK_CONTENT: Final = re.compile(rb"^data:[ \t]*[^ \t\n]", re.M)
# where a read may hold such a line (`_sdk_line`): after a line end, an `id`, `retry` or `event` line, one of `data` with
# no value, or a `data:` line after a line that is not blank (the second of an event's data lines, after the first line
# too); the first line's own (`_SDK_MAY_FIRST`). `_SDK_LINE` alone tries its `^` alternation at every byte (1.7-4.9 us
# an ordinary read of 259 bytes, 10-17 us one of five events); these look for a line end first, in C, and find none of
# them in an ordinary read
_SDK_MAY: Final = re.compile(rb"\n(?:id|retry|event|data(?::[ \t]*)?\n|data:(?<=[^\n]\ndata:))")
_SDK_MAY_FIRST: Final = re.compile(rb"id|retry|event|data(?::[ \t]*)?\n")
# a retry as `int` reads it: ASCII white space around it (not `\x1c`-`\x1f`, which `str.isspace` counts and `int`
# refuses: an empty event the SDK never raised at was `upstream_error`), at most 4,300 digits (`_INT_DIGITS`: `int` raises
# past them, and a line of more was a retry, an empty event after it `upstream_error` where the SDK read on, until
# 2026-12-06); a line past ASCII is read by `int` (`_wide_retry`)
_SDK_RETRY: Final = re.compile(rb"^retry:[ \t\x0b\x0c]*[+-]?[0-9](?:_?[0-9]){0,4299}[ \t\x0b\x0c]*$", re.M)
_SDK_WIDE_RETRY: Final = re.compile(rb"^retry:([^\n]*[\x80-\xff][^\n]*)$", re.M)
_SDK_ID: Final = re.compile(rb"(?s:.*)^id(?::([^\n\x00]*))?$", re.M)  # (the last without a NUL)
# `[DONE]` as the SDK reads it: the event's data begins so (one space after the colon dropped); it stops there
_DONES: Final = (b"data:[DONE]", b"data: [DONE]")  # (`_data_line`)
_DONE_LINE: Final = re.compile(rb"^data: ?\[DONE\]", re.M)
# what the event the SDK's decoder has open holds (`_sdk_events`): a name, a `data` line, one with a value, a retry,
# `[DONE]`; and whether an id was given (kept across events); -1 once nothing more need be looked at
_SDK_NAMED: Final = 1
_SDK_DATA: Final = 2
_SDK_CONTENT_LINE: Final = 4
_SDK_RETRIES: Final = 8
_SDK_DONE: Final = 16
_SDK_ID_GIVEN: Final = 32
# the event's data so far is one JSON object, read alone (`_data_line`), in an earlier read; a value came after it in
# the event (`data: {...}` then `data: {...}`): the SDK joins its lines by LF, and its `json.loads` raises at them
# ("Extra data", as at any JSON text with more than white space after it; helper sse2)
_SDK_ALONE: Final = 64
_SDK_JOINED: Final = 128
_SDK_DISPATCHES: Final = _SDK_NAMED | _SDK_DATA | _SDK_RETRIES | _SDK_ID_GIVEN
# an ordinary event open at a read's end (a read ending at its `data:` line, with a value, not `[DONE]`; its blank line
# in the next): known in C, as its blank line is (each was two Python steps, +~300 instructions an event; helper revsse)
_SDK_OPEN: Final = _SDK_DATA | _SDK_CONTENT_LINE
# (matched at the last line's start, after a blank line or at the read's: `_open_data`; searched for, Python's `re` tried
# the pattern at every byte, 5.9 us a 259-byte read; helper ssefast)
_SDK_OPEN_DATA: Final = re.compile(rb"data:(?! ?\[DONE\])[ \t]*[^ \t\n][^\n]*\n\Z")
# an Anthropic event's data so far as `_parsed` says its SDK parses it, seeding `_LateEvents` (`_give_up`): one object,
# no JSON, data `""`, white space that is data (`\n`); until 2026-12-06 none, and an object then a line past `MAX_LINE`
# then another object in a named event, `{...}\n{...}`, which the SDK raises at, passed as a success (helper streams3)
_PARSED_DATA: Final = {1: [b"{}"], 2: [b"x"], 4: [b""], 8: [b"", b""]}
# the first bytes of a line too long to keep, past where a reply is read (`_LateEvents`): its field, and whether its
# value begins `[DONE]`
_LATE_HEAD: Final = 16
# the piece of an event (a JSON line) kept across reads, past where a reply is read (`_late_errors`), to be looked at
# whole: an error's event is short
_MOST_TAIL: Final = 65_536
# `SseObserver._ending`: the event being read holds the API's last event (`ended` at its blank line), or the upstream's
# error (`in_band_error`), which its client's SDK sees only once the event is dispatched, at that blank line: one the
# reply ends in before it is none (the SDK's decoder dispatches no event at the body's end; `finish`)
_ENDS: Final = 1
_HELD: Final = 2
# ... or `[DONE]` to a client that stops there (`json_every_event`: the openai SDK breaks out of its events at it, in
# the piece that holds it too): past its blank line nothing is the upstream's error (`_past_done`)
_STOPS: Final = 4
# ... or a finish or stop reason (`_given`), which the SDK's client has only once the event is dispatched: one the reply
# ends in before its blank line gives none, nor is its last event (`_unseen`)
_GIVEN: Final = 8
# ... or the reply's model or id, first named (`identify`): none to that client either, where no blank line ends the
# event (`_unseen`); set once a stream, not held as `_given` holds the rest (+94 instructions an ordinary stream)
_MODEL: Final = 16
_ID: Final = 32
# ... or a field of the record a subclass keeps of its own, changed (the openai adapter's `system_fingerprint`): restored
# by its `_unseen`, as the model is
_OWN: Final = 64
# what the record holds from the open event that its SDK has only at its blank line (`_unseen`)
_UNSEEN: Final = _GIVEN | _MODEL | _ID | _OWN
# ... or the upstream's error set by its data's truthy `error` alone (`in_band_error`'s `keyed`), which the openai SDK
# yields without raising in an event named `thread.*` (legacy mode's Assistants events): undone at its blank line
# (`_thread_event`); until 2026-12-06 `upstream_error`
_KEYED: Final = 128
# what an event holds that ends no stream
_KEPT: Final = _HELD | _UNSEEN | _KEYED
# the openai SDK's prefix of an Assistants event's name, whose data it parses and yields, its `error` not looked at
_THREAD: Final = b"thread."
# the data of such an event, past where the reply is read (`_seed`)
_KEYED_DATA: Final = b'{"error": 1}'


# distinct alternative tokens read from a reply's logprobs (`SseObserver.alternatives`): a model's vocabulary is some
# 32,000 to 260,000 tokens, and a reply asking for 20 alternatives a token meets a few thousand of them
_MOST_ALTERNATIVES: Final = 65_536


def _alternative_tokens(entries: Any, seen: set[str], found: list[str]) -> bool:
    """Into `found`, each token of `entries`' `top_logprobs` that is not the entry's own `token` nor in `seen`; llama.cpp's
    native `completion_probabilities` entries too: their `top_probs` (`post_sampling_probs`), or, from servers before
    2025, `{"content": <the token written>, "probs": [{"tok_str": <an alternative>, "prob": ...}]}`. False when a new
    one came past `_MOST_ALTERNATIVES` (it and the rest not read)."""
    for entry in entries if type(entries) is list else ():
        if type(entry) is not dict:
            continue
        chosen = entry.get("token")
        top = entry.get("top_logprobs")
        field = "token"
        if top is None:  # (a Responses or chat reply has it: one lookup more only where it has not)
            top = entry.get("top_probs")
            if top is None and "probs" in entry:
                top, field, chosen = entry["probs"], "tok_str", entry.get("content")
        for alternative in top if type(top) is list else ():
            token = alternative.get(field) if type(alternative) is dict else None
            if type(token) is str and token and token != chosen and token not in seen:
                if len(seen) >= _MOST_ALTERNATIVES:
                    return False
                seen.add(token)
                found.append(token)
    return True


def _wide_retry(data: bytes, start: int, end: int) -> bool:
    """Whether a `retry` line in `data[start:end]` holding bytes past ASCII is a retry to the openai SDK's decoder, its
    `int` of the value (digits and white space past ASCII too: `retry: \u0665`, `retry: 5\u00a0`; helper revsse)."""
    for found in _SDK_WIDE_RETRY.finditer(data, start, end):
        try:
            int(found[1].decode("utf-8"))
        except ValueError:  # (no number; no UTF-8, at which the SDK's decode of the line raises)
            continue
        return True
    return False


def _sdk_line(data: bytes) -> bool:
    """Whether whole lines ending in a line end (`data`) hold one `_SDK_LINE` finds: looked for where `_SDK_MAY` or
    `_SDK_MAY_FIRST` finds a line that may be one (most reads hold none), as searched for before (helper ssefast)."""
    if _SDK_MAY.search(data) is None and _SDK_MAY_FIRST.match(data) is None:
        return False
    return _SDK_LINE.search(data) is not None


def _open_data(data: bytes) -> bool:
    """Whether the last line of `data` (ending in a line end) is an ordinary event's `data:` line, after a blank line or
    as the read's first (`_SDK_OPEN_DATA`)."""
    start = data.rfind(b"\n", 0, len(data) - 1) + 1  # (the last line's start, the line end it ends in not counted)
    if start > 1 and data[start - 2] != _LF:  # (the line before it is not blank: `\A\n?` or `\n\n` before it)
        return False
    return _SDK_OPEN_DATA.match(data, start) is not None


def _json_text(data: bytes | bytearray) -> bool:
    """Whether `data` is a JSON text as the openai SDK reads one (UTF-8, Python's `json.loads`)."""
    try:
        json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):  # (UnicodeDecodeError and JSONDecodeError are ValueErrors)
        return False
    return True


def _json_may_begin(data: bytes | bytearray) -> bool:
    """Whether some JSON text, as the SDKs' `json.loads` reads one, begins with `data` (what is kept of an event's data,
    more not kept after it): Python's parser fails at the first byte past which no text can go on, which is the end of
    `data` (or the token it cuts) only where one can. Runs of numbers (integers or floats) past `_NUMBER_RUN` bytes are
    read as two numbers (`_fewer_numbers`), so that a line of a megabyte of numbers is not an object built a number in
    the event loop's turn."""
    data = _fewer_numbers(data)
    text = data.decode("utf-8", "replace")  # (a character cut at the end: none outside a string either way)
    try:
        json.loads(text)
    except json.JSONDecodeError as error:
        rest = text[error.pos :]
        message = error.msg
        if message.startswith("Unterminated string"):
            return True
        if message.startswith("Invalid \\u"):  # (`\u` and up to 4 hex digits at the end, the string's end not yet)
            return len(rest) <= 5 and all(c in _HEX for c in rest[1:])
        if message == "Expecting value":
            return any(word.startswith(rest) for word in _JSON_WORDS)
        if message in _JSON_AFTER_VALUE and rest:  # (a number the end cuts: `1.`, `1e-`)
            number = _JSON_NUMBER_END.search(text, 0, error.pos)
            return number is not None and _JSON_NUMBER_START.fullmatch(number.group() + rest) is not None
        return not rest and message.startswith("Expecting")
    except RecursionError:  # (nested deeper than it parses: it raises whatever follows, as at `_json_text`)
        return False
    except ValueError:  # (an integer of more digits than `int` reads: `_cut_integer`)
        return _cut_integer(text)
    return True


def _cut_integer(text: str) -> bool:
    """`_json_may_begin` of `text`, at which Python's parser raised at an integer of more digits than `int` reads from
    text (4,300), which the SDKs' `json.loads` raises at too: some JSON text begins with `text` only where that integer
    is the number its end cuts (`1111...1`, `1111...1.`, `-1111...1e+`: more of it may make it a float), judged then as
    that number with a single digit before its point."""
    start = len(text.rstrip(_NUMBER_CHARS))
    digits = _LONG_INTEGER.match(text, start)
    if digits is None:  # (the integer it raised at ends before the number the end cuts: an integer whatever follows)
        return False
    cut = text[: digits.start(1) + 1] + text[digits.end(1) :]
    return _json_may_begin(cut.encode("utf-8", "surrogatepass"))


def _fewer_numbers(data: bytes | bytearray) -> bytes | bytearray:
    """`data` with each run of more than `_NUMBER_RUN` bytes of numbers (digits, signs, points, exponents, commas, spaces:
    `_NUMBER_MARKS`) made two numbers from its middle on, where orjson reads that middle as numbers: the same to Python's
    parser (in an array; after an object's comma, where a key goes, it fails at the run's first number, kept; in a
    string, plain characters; orjson refuses a `0` that begins more digits and a number past what a double holds, as
    `1e400` or 310 digits, where Python's `int` may refuse at 4,300). In C, an object a number in orjson's parse, several
    times faster than Python's. Floats are numbers of a run too (embeddings, log probabilities: a run ending at their
    `-`, `.` or `e` would leave such a line unbounded), and a run's end is matched (`_MARKED`, ~1 ms a MiB), not
    searched for (~6 ms)."""
    marks = data.translate(_NUMBER_MARKS)
    at = marks.find(_NUMBER_SPAN)
    if at < 0:
        return data
    pieces: list[bytes | bytearray] = []
    kept = 0
    while at >= 0:
        marked = _MARKED.match(marks, at)  # (`#*`, never None: a loop in C over one byte, ~1 ms a MiB)
        end = marked.end() if marked is not None else at
        start = data.find(b",", at + _RUN_KEPT, end) + 1
        stop = data.rfind(b",", start, end - _RUN_KEPT) + 1
        if start and stop > start and _numbers(data[start:stop]):
            pieces += (data[kept:start], b"0,0,")
            kept = stop
        at = marks.find(_NUMBER_SPAN, end)
    if not pieces:
        return data
    pieces.append(data[kept:])
    return b"".join(pieces)


def _numbers(middle: bytes | bytearray) -> bool:
    """Whether `middle` (a run's bytes, `_NUMBER_MARKS`, a comma last) is JSON numbers each followed by a comma, to
    orjson."""
    try:
        orjson.loads(b"[" + middle + b"0]")
    except orjson.JSONDecodeError:
        return False
    return True


def _in_string(data: bytes | bytearray) -> bool:
    """Whether `data`, a JSON text's first bytes (`_json_may_begin`), ends in a string, to Python's parser."""
    text = data.decode("utf-8", "replace")
    try:
        json.loads(text)
    except json.JSONDecodeError as error:
        return error.msg.startswith("Unterminated string") or (
            error.msg.startswith("Invalid \\u") and len(text) - error.pos <= 5
        )
    except (ValueError, RecursionError):  # (an integer past the digits `int` reads: out of a string)
        return False
    return False


def _ends_in_string(data: bytes | bytearray) -> bool:
    """Whether whole lines of an event's data, `data`, end in a string (a line end, or the data's end, in it: no JSON
    whatever follows): its first `_MOST_TAIL` bytes read by `_in_string`, the quotes past them not escaped counted in C
    (`_Past.feed`). False where a backslash ends those bytes (not told)."""
    head = bytes(data[:_MOST_TAIL])
    if head.endswith(b"\\"):
        return False
    rest = bytes(data[_MOST_TAIL:])
    if _BACKSLASH in rest:
        rest = _ESCAPES.sub(b"", rest)
    return _in_string(head) != (rest.count(b'"') & 1 == 1)


def _bare_data(run: re.Match[bytes]) -> bytes:
    """A run of lines (`_BARE_DATA`) as the Anthropic SDK reads it: its `data` lines, each with a value of white space
    or none; one alone as it is (`data:`, `data: `: data `""`, which the SDK skips; `data:  `: white space, which it
    raises at), two or more as two empty ones (data `\n` or more white space, which it raises at)."""
    lines = run.group()
    count = lines.count(b"\ndata")  # (each of its lines begins `\n`, and holds no other)
    if count != 1:
        return b"\ndata:\ndata:" if count else b""
    at = lines.index(b"\ndata")
    end = lines.find(b"\n", at + 1)
    line = lines[at:end] if end >= 0 else lines[at:]
    return line if len(line) > 5 else b"\ndata:"  # (`data` without a colon: `data:`)


def _line_end(data: bytes, line: bytes, equal: int) -> int:
    """Where the line `line` of `data` ends (its line end after it), past `equal` lines equal to it; -1 if none does."""
    at = 0
    while True:
        at = data.find(line, at)
        if at < 0:
            return -1
        end = at + len(line)
        if (at == 0 or data[at - 1] == _LF) and (end == len(data) or data[end] == _LF):
            if not equal:
                return min(end + 1, len(data))
            equal -= 1
        at += 1


def _event_name(line: bytes) -> bytes:
    """An `event:` line's name (`event: x` or `event:x`), as the SDKs' decoders read it."""
    return line[7:] if line[6:7] == b" " else line[6:]


def _as_erred(event: dict[str, Any], name: bytes) -> dict[str, Any]:
    """An openai event's data as `erred` is asked of it past where the reply is read: without its `error` in an event
    named `name` `thread.*`, which the SDK yields whatever its `error` (`SseObserver._thread_event`)."""
    if name.startswith(_THREAD) and "error" in event:
        return {key: value for key, value in event.items() if key != "error"}
    return event


# what `_LateEvents.feed` says of a piece: the SDK reads on, stopped cleanly (`[DONE]`), or raised
_READS: Final = 0
_STOPPED: Final = 1
_RAISES: Final = 2
# past `MAX_STRINGS` events judged one by one: the rest looked at for the upstream's error alone (`_late_errors`)
_BOUND: Final = 3
_COLON: Final = ord(":")
# the Anthropic SDK's name of an error event (`event: error`, one space after the colon dropped)
_ERROR_NAME: Final = b"error"
_JSON_WHITE: Final = b" \t\n\r"
# what `_json_may_begin` reads past where Python's parser stops: a word a value may begin (a number's sign), what stops
# it after a value, a number ending there and what a number's first characters may be
_JSON_WORDS: Final = ("true", "false", "null", "NaN", "Infinity", "-Infinity")
_JSON_AFTER_VALUE: Final = frozenset({"Expecting ',' delimiter", "Extra data"})
_JSON_NUMBER_END: Final = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?\Z")
_JSON_NUMBER_START: Final = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.(?:[0-9]+(?:[eE][-+]?[0-9]*)?)?|[eE][-+]?[0-9]*)?")
_HEX: Final = "0123456789abcdefABCDEF"
# a number the end of a JSON text's first bytes may cut, and its integer part where of more digits than Python's `int`
# reads from text (4,300, `sys.get_int_max_str_digits()`'s default): `_cut_integer`
_NUMBER_CHARS: Final = "0123456789.eE+-"
_LONG_INTEGER: Final = re.compile(r"-?([0-9]{4301,})")
# runs of numbers `_json_may_begin` reads as two (`_fewer_numbers`): bytes of a run (digits, signs, points, exponents,
# commas, spaces) marked `#`, a run's marks, a run's least length, the bytes of its ends kept as they stand
_NUMBER_MARKS: Final = bytes.maketrans(b"0123456789-+.eE, ", b"#" * 17)
_MARKED: Final = re.compile(rb"#*")
_NUMBER_RUN: Final = 4096
_NUMBER_SPAN: Final = b"#" * _NUMBER_RUN
_RUN_KEPT: Final = 32
# a JSON escape's backslash and the byte it escapes (`_Past.feed`)
_BACKSLASH: Final = ord("\\")
_ESCAPES: Final = re.compile(rb"\\[\s\S]")
# an integer of more digits than `int` reads from text (`_LONG_INTEGER`) past the bytes kept of a long line
# (`_LateEvents._integers`): digits marked, a run of so many found with `find`; a run's digits, as `match` reads them;
# what after an integer's digits makes it a float's (or may: the piece ends there), which `float` reads whatever its
# digits; and the bytes before a run's first digit that make it no integer's (a fraction's, an exponent's)
_INT_DIGITS: Final = 4300
_DIGITS: Final = b"0123456789"
_DIGIT_MARKS: Final = bytes.maketrans(_DIGITS, b"#" * 10)
_LONG_RUN: Final = b"#" * (_INT_DIGITS + 1)
_DIGIT_RUN: Final = re.compile(rb"[0-9]*")
_FLOAT_PART: Final = re.compile(rb"\.(?:[0-9]|\Z)|[eE][-+]?(?:[0-9]|\Z)")
_NO_INTEGER_BEFORE: Final = (b".", b"e", b"E", b"+")
_EXPONENT: Final = (b"e", b"E")
# a JSON string's quotes and inside on one line (an unended one to the line's end), dropped before brackets are counted
# outside strings (`_nesting`)
_STRING_SPAN: Final = re.compile(rb'"[^"\n]*"?')
_NOT_BRACKETS: Final = bytes(sorted(set(range(256)) - set(b"[]{}")))
# a bracket that opens as 1, one that closes as -1 (a signed byte), for their running count (`_lowest`)
_BRACKET_SIGNS: Final = bytes.maketrans(b"{[}]", b"\x01\x01\xff\xff")
# a run of the white space `int` reads around a number (`_SDK_RETRY`), in a `retry` line too long to keep (`_spaces`)
_WHITE_RUN: Final = re.compile(rb"[ \t\x0b\x0c]+")
# a `data` line's value past `_MOST_TAIL` bytes, as JSON reads it (`_Elided`): a string's inside kept up to
# `_STRING_KEPT` bytes, a longer one's as `_ELIDED` (the same to JSON's parser: valid characters, no quote, no
# backslash); one no JSON reads (a control character, a bad escape) as `_BAD_STRING`, which none reads either; past
# `_MOST_TAIL` bytes kept or `_MOST_STRINGS` strings stepped over (a Python step each), its quotes alone counted (`_Past`)
_STRING_KEPT: Final = 256
_ELIDED: Final = b"..."
_BAD_STRING: Final = b"\x01"
_MOST_STRINGS: Final = 1024
_QUOTE: Final = ord('"')
# a string's inside as Python's json reads it (strict: no control character), to its end or a byte that is none of it
_STRING_BODY: Final = re.compile(rb'[^"\\\x00-\x1f]*(?:\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})[^"\\\x00-\x1f]*)*')
# an escape a piece's end may cut (`\`, `\u12`): read with the next piece
_ESCAPE_CUT: Final = re.compile(rb"\\(?:u[0-9a-fA-F]{0,3})?")
# whole events of one `data` line each, an `event` line before it or none (`_LateEvents._plain`): most reads are only
# these, judged a read at a time in C; and the field names that begin their lines, one space after the colon
_PLAIN_EVENTS: Final = re.compile(rb"(?:(?:event:[^\n]*\n)?data:[^\n]*\n\n)+")
_PLAIN_HEADS: Final = re.compile(rb"^(?:event:[^\n]*\n)?data: ?", re.M)
_ERROR_EVENTS: Final = (b"event:error\n", b"event: error\n")
# a block of more lines than this, none blank, is read in C (`_LateEvents._bulk`): the values of its `data` lines (one
# space after the colon dropped)
_BULK_LINES: Final = 16
_BULK_DATA: Final = re.compile(rb"^data(?::(?: ?)([^\n]*))?$", re.M)
# values of white space run together in such data, with more than white space in it: one line end for them all changes
# nothing the SDKs make of it (`_LateEvents._data`)
_WHITE_VALUES: Final = re.compile(rb"\n[ \t]*(?:\n[ \t]*)+")
# lines past an event's kept bytes whose brackets are counted together (`_LateEvents._closed`)
_NEST_LINES: Final = 64
# the most brackets of such lines whose running count is followed (`_lowest`: a Python int each, in C); past them, a line
# at a time where their closing ones may close all those open
_MOST_BRACKETS: Final = 4096


class _Elided:
    """A `data` line's value, given a piece at a time, as JSON's parser reads it, its strings' insides past
    `_STRING_KEPT` bytes kept as `_ELIDED` (and one no JSON reads as `_BAD_STRING`): kept so, a line past `_MOST_TAIL`
    bytes is judged whole (`_LateEvents`), a string closed past those bytes then what cannot follow it (`data: {` then
    `data: "xxx..."` then `data: }`) no JSON, where its quotes alone were counted until 2026-12-06 and it passed as a
    success (helper streams7). In C but a Python step a string: `find` outside one, `_STRING_BODY` inside."""

    def __init__(self) -> None:
        self.kept: list[bytes] = []
        self.size = 0
        self.strings = 0
        self.in_string = False
        self.inside = b""  # (the open string's inside so far, up to `_STRING_KEPT` bytes; `long` past them)
        self.long = False
        self.cut = b""  # (an escape the piece before ended in: `_ESCAPE_CUT`)
        self.bad = False  # (a string no JSON reads: nothing after it changes that)

    def feed(self, piece: bytes) -> bytes | None:
        """None, or, past `_MOST_TAIL` bytes kept or `_MOST_STRINGS` strings, the rest of `piece` from where it stopped
        (out of a string): its quotes are counted (`_Past.feed`)."""
        if self.bad:
            return None
        if self.cut:
            piece = self.cut + piece
            self.cut = b""
        at = 0
        size = len(piece)
        while at < size:
            if not self.in_string:
                quote = piece.find(b'"', at)
                stop = size if quote < 0 else quote + 1
                if self.size + stop - at > _MOST_TAIL or self.strings >= _MOST_STRINGS:
                    # (kept up to `_MOST_TAIL` bytes, out of a string: its first bytes are judged, `_json_may_begin`)
                    cut = min(at + max(_MOST_TAIL - self.size, 0), stop - 1 if quote >= 0 else size)
                    self.kept.append(piece[at:cut])
                    self.size += cut - at
                    return piece[cut:]
                self.kept.append(piece[at:stop])
                self.size += stop - at
                if quote < 0:
                    return None
                self.in_string = True
                self.strings += 1
                at = stop
                continue
            found = _STRING_BODY.match(piece, at)
            end = found.end() if found is not None else at
            if not self.long:
                if len(self.inside) + end - at > _STRING_KEPT:
                    self.long = True
                    self.inside = b""
                else:
                    self.inside += piece[at:end]
            if end == size:
                return None
            if piece[end] == _QUOTE:
                self._close()
                at = end + 1
            elif _ESCAPE_CUT.fullmatch(piece, end) is not None:  # (the next piece's first bytes end it)
                self.cut = piece[end:]
                return None
            else:  # (a control character, a bad escape)
                self.kept += (self.inside, _BAD_STRING)
                self.bad = True
                return None
        return None

    def _close(self) -> None:
        inside = _ELIDED if self.long else self.inside
        self.kept += (inside, b'"')
        self.size += len(inside) + 1
        self.in_string = self.long = False
        self.inside = b""

    def value(self) -> bytes:
        """The value so far as kept (a string open at its end: its inside so kept, and an escape cut, as they are)."""
        if self.in_string and not self.bad:
            return b"".join(self.kept) + (_ELIDED if self.long else self.inside) + self.cut
        return b"".join(self.kept)


def _elided_whole(value: bytes) -> bytes:
    """A whole `data` line's value as `_Elided` keeps it, or as it is where that is past its bounds."""
    elided = _Elided()
    return value if elided.feed(value) is not None else elided.value()


def _brackets(data: bytes, quoted: bool) -> bytes:
    """The brackets of `data` out of a string (`quoted`: it begins in one), its escapes dropped (`_Past.feed`,
    `_unescaped`), in C: one pass, leaving few bytes to count (`_nesting`, `_lowest`)."""
    if quoted:
        start = data.find(b'"') + 1
        if not start:
            return b""
        data = data[start:]
    if _QUOTE in data:
        data = _STRING_SPAN.sub(b"", data)
    return data.translate(None, _NOT_BRACKETS)


def _nesting(data: bytes, quoted: bool) -> int:
    """The brackets `data` opens less those it closes, out of a string (`_brackets`): a JSON text's value has ended
    where that count over its bytes so far is 0 after it began (`_LateEvents._closed`)."""
    brackets = _brackets(data, quoted)
    return len(brackets) - 2 * (brackets.count(b"}") + brackets.count(b"]"))


def _lowest(brackets: bytes) -> int:
    """The least count of brackets opened less closed after any of `brackets` (`_brackets`), from 0, in C: where it
    and those open before stay above 0, no line of them ends the value (`_LateEvents._closed`). A bracket closed right
    after it opened changes no least count: those pairs dropped first, and past `_MOST_BRACKETS` left (a Python int
    each), their number less, which no count goes below."""
    brackets = brackets.replace(b"[]", b"").replace(b"{}", b"")
    if len(brackets) > _MOST_BRACKETS:
        return -len(brackets)
    return min(accumulate(array("b", brackets.translate(_BRACKET_SIGNS))), default=0)


def _unescaped(data: bytes) -> bytes:
    """Whole lines of an event's data without their escapes (a backslash and the byte it escapes), for `_nesting`."""
    return _ESCAPES.sub(b"", data) if _BACKSLASH in data else data


class _Past:
    """A line past the bytes kept of it, a piece at a time (`_LateEvents`; its first bytes kept out of a string): in a
    string at its end or not (`quoted`), and whether it holds an integer of more digits than `int` reads from text
    (`big`), which the SDKs' `json.loads` raises at. Bounded state: the run of digits a piece ends in is carried as its
    count, so that a line is told alike whatever the size of its pieces."""

    def __init__(self) -> None:
        self.quoted = False
        self.escaped = False
        # the digits of the integer the bytes so far end in, out of a string, at most one past `_INT_DIGITS`; their last
        # two bytes, which say whether digits after them begin one; a point or an exponent after such an integer where
        # a piece ended (`_integer_end`); whether such an integer ended in the line, out of a string: no JSON
        self.digits = 0
        self.before = b""
        self.after = b""
        self.big = False
        self.nul = False  # (a NUL in it: an `id` line the SDK's decoder ignores)
        self.depth = 0  # (the brackets it opens less those it closes, out of a string: `_nesting`)
        # in the piece `_integers` looks at: up to where its quotes are counted, and whether it is in a string there
        self.counted = 0
        self.opened = False

    def feed(self, piece: bytes) -> None:
        """A piece of the line past its bytes kept: whether the quotes in it not escaped are odd in number (`quoted`), a
        backslash that ends it escaping the next piece's first byte (`escaped`), the brackets it opens less those it
        closes out of a string (`depth`: `_LateEvents._closed`), and its integers (`_integers`); in C,
        a few steps a piece. (A backslash outside a string is no JSON whatever this says.)"""
        if not self.nul and b"\x00" in piece:
            self.nul = True
        if self.escaped:
            piece = piece[1:]
            self.escaped = False
        if _BACKSLASH in piece:
            piece = _ESCAPES.sub(b"", piece)
            self.escaped = piece.endswith(b"\\")
        quoted = self.quoted
        if piece.count(b'"') & 1:
            self.quoted = not quoted
        self.depth += _nesting(piece, quoted)
        if self.digits or self.after or piece[-1:].isdigit() or len(piece) > _INT_DIGITS:
            self._integers(piece, quoted)
        # (every piece's, that says what digits the next begins with are: until review revstreams8 a piece skipped here,
        # `1.` or `5, ` alone, left those of the piece before, and the digits after them were read as another's)
        self.before = (self.before + piece)[-2:] if len(piece) < 2 else piece[-2:]

    def _integers(self, piece: bytes, quoted: bool) -> None:
        """A piece of the line (`feed`: its escapes dropped, `quoted` whether it begins in a string): whether an integer
        of more digits than `int` reads ends in it out of a string (`big`), at which the SDKs' `json.loads` raises
        whatever surrounds it; the integer a piece ends in is carried as its count of digits (`digits`), so that it is
        told alike whatever the pieces' size (until 2026-12-06 one of 70,000 digits in pieces of 1,000 bytes, each fewer
        digits than the bound, read on where the SDK raises). In C but a step a run of more digits than the bound."""
        size = len(piece)
        at = 0
        self.counted = 0
        self.opened = quoted
        if self.after:  # (such an integer, then a point or an exponent the piece before ended in: a float's, or none)
            after = self.after + piece[:3]
            self.after = b""
            self._integer_end(_INT_DIGITS + 1, after, 0)
        if self.digits:  # (the integer the piece before ended in goes on)
            found = _DIGIT_RUN.match(piece)
            at = found.end() if found is not None else 0
            if at == size:
                self.digits = min(self.digits + at, _INT_DIGITS + 1)
                return
            self._integer_end(self.digits + at, piece, at)
            self.digits = 0
        if size - at > _INT_DIGITS:  # (runs of more digits than the bound within it)
            marks = piece.translate(_DIGIT_MARKS)
            start = marks.find(_LONG_RUN, at)
            while start >= 0:
                marked = _MARKED.match(marks, start)
                end = marked.end() if marked is not None else start
                if end == size:  # (the run it ends in: below)
                    break
                if self._integer_at(piece, start):
                    self._integer_end(end - start, piece, end)
                start = marks.find(_LONG_RUN, end)
        if piece[-1:].isdigit():  # (the run it ends in, which the next piece may go on)
            start = len(piece.rstrip(_DIGITS))
            if start >= at and self._integer_at(piece, start):
                self.digits = min(size - start, _INT_DIGITS + 1)

    def _integer_at(self, piece: bytes, start: int) -> bool:
        """Whether the run of digits at `start` in `piece` (past those `_integers` asked of before) is an integer's, out
        of a string: not a fraction's or an exponent's (`1.5`, `1e5`, `1e-5`). Its quotes are counted from the run
        asked of before (`counted`): until review revstreams8 from the piece's start at each run, a 16 MiB line of
        4,301-digit floats in reads of 4 MiB took 2.5 s."""
        if piece.count(b'"', self.counted, start) & 1:
            self.opened = not self.opened
        self.counted = start
        if self.opened:
            return False
        before = (self.before + piece[:start])[-2:] if start < 2 else piece[start - 2 : start]
        last = before[-1:]
        if last == b"-":
            return before[:-1] not in _EXPONENT
        return last not in _NO_INTEGER_BEFORE and not last.isdigit()

    def _integer_end(self, digits: int, piece: bytes, end: int) -> None:
        """An integer's `digits` ended at `end` in `piece`: past the bound, no JSON (`big`), unless a fraction or an
        exponent follows (a float's); where the piece ends before that is told, what it ends in is carried (`after`)."""
        if digits <= _INT_DIGITS:
            return
        found = _FLOAT_PART.match(piece, end)
        if found is None:
            self.big = True
        elif not piece[found.end() - 1 : found.end()].isdigit():  # (`.`, `e`, `e-` the piece ends in)
            self.after = piece[end:]

    def ended(self) -> None:
        """The line's end: an integer it ends in has ended (`big` past the bound, as one a point then a line end ends)."""
        if self.digits > _INT_DIGITS or self.after:
            self.big = True


def _long_integer(data: bytes) -> bool:
    """Whether whole lines of an event's data, `data`, hold an integer of more digits than `int` reads out of a string
    (`_Past`): no JSON to the SDKs' `json.loads`, whatever surrounds it. Data of no more bytes than such an integer's
    digits holds none, told without a step: each of an event's short lines past its kept bytes is asked (`_data`), and
    until review revstreams8 each took some forty steps in `_Past`, four times those of the rest of its reading."""
    if len(data) <= _INT_DIGITS:
        return False
    past = _Past()
    past.feed(data)
    past.ended()
    return past.big


class _BracketCount:
    """The brackets of an event's data past its kept bytes, where they are counted (`_LateEvents.nesting`): those left
    open so far (`depth`), whether a value has begun (more than white space: `begun`), and the lines whose brackets were
    counted one by one (`stepped`: at most `_MOST_STRINGS` an event, `_LateEvents._closed`)."""

    def __init__(self, depth: int, begun: bool) -> None:
        self.depth = depth
        self.begun = begun
        self.stepped = 0


class _LateEvents:
    """Past where a reply is read (`SseObserver._give_up`), its events as the client's SDK decodes them, a line at a
    time (its line ends made LF): the openai SDK's `SSEDecoder` and `Stream.__stream__` (`stops`), or the Anthropic
    SDK's (anthropic 2.17.0). Each line is decoded as UTF-8 (bytes that are none raise, where the SDK reads
    that far); `data` lines are joined by LF, the last `event` line names the event, an `id` without a NUL is kept from
    event to event, a `retry` `int` reads counts; at a blank line the event is dispatched when it has data, a name, a
    retry or an id given. The openai SDK then stops at data that begins `[DONE]`, and raises at any other that is no
    JSON text or is the API's error (`erred`); the Anthropic SDK raises at an event named `error`, skips one named none
    or `ping` and one without data, and parses the data of the others (no JSON object raises), to the body's end.
    An event's data is kept as JSON reads it, its strings' insides past `_STRING_KEPT` bytes made short (`_Elided`);
    past `_MOST_TAIL` bytes so kept (a short string's inside counted), or `_MOST_STRINGS` strings in a line, it is not
    judged: its first bytes still say whether it begins `[DONE]` or is no JSON, its quotes whether a line ends in a
    string. Until 2026-12-05 this was looked for in the events holding `error` alone, and
    `[DONE]` apart (`_late_done`): 168 of 2,000 fuzzed openai streams and 72 of 2,000 Anthropic ones were recorded
    otherwise than their SDK read them (an event no JSON, an id then a blank line, a name alone; helper sselate)."""

    def __init__(self, stops: bool, words: tuple[bytes, ...]) -> None:
        self.stops = stops
        self.words = words  # (what the API's error holds: `late_words`, looked for before `erred` is asked)
        self.utf8: codecs.IncrementalDecoder | None = codecs.getincrementaldecoder("utf-8")()
        self.pending = False  # (the decoder holds the first bytes of a sequence cut between pieces)
        self.line = b""  # the line not yet whole (its first `_LATE_HEAD` bytes once past `_MOST_TAIL`: `long`)
        self.long = False
        # in such a line, past those bytes: its quotes and integers (`past`); and whether the open event's data, its
        # first bytes kept, has a line end in a string, where the line ended in one, or such an integer (`_data`): no
        # JSON, whatever follows
        self.past = _Past()
        self.broken = False
        # past those bytes, the brackets of its data so far, where they are counted (from its first bytes, a value begun
        # in them; None where not): a line of it with more than white space after they were all closed is no JSON
        # (`_closed`)
        self.nesting: _BracketCount | None = None
        # a `data` line's so: its value kept as JSON reads it (`_Elided`), its head in `line`; None past its bounds
        self.elided: _Elided | None = None
        # a `retry` line's so: kept in `line` with its white space made short (`_spaces`)
        self.spaced = False
        self.data: list[bytes] = []  # the open event's `data` values
        self.size = 0
        self.unknown = False  # the open event's data is not all in `data` (past `_MOST_TAIL`, or read before)
        # its data began in a read before (`SseObserver._late_reread`'s first event): its first value kept is none of its
        # data's first, nothing said of its head (`_verdict`)
        self.headless = False
        # a `data` line beginning `[DONE]` after another in the open event: joined (`...\n[DONE]`), its data is no JSON
        # text whatever the lines before held (`D` is none outside a string, and a line end none inside one)
        self.joined = False
        self.name = b""
        self.retry = False
        self.id = False  # (kept across events)
        # events judged one by one (`_dispatch`, or holding what the API's error holds): past `MAX_STRINGS` of them, the
        # rest is not (each a Python step or more: a stream of 16 MB of them held the event loop seconds)
        self.judged = 0
        # of them, those holding what the API's error holds (`_late_errors`'s count, where it reads on past the bound)
        self.worded = 0
        # the open event holds what the record has from it only once its SDK gives it (the observer's `_UNSEEN`): its
        # next dispatch (or none, at its blank line) says whether the SDK gave it (`_judge`, `_dispatch`: the observer's
        # `_late_given`)
        self.held = False

    def feed(self, observer: SseObserver, data: bytes, last: bool = False) -> None:
        """A piece of the reply (`last`: its end); once the SDK stopped in it or raised (the upstream's error), nothing
        more is read (`SseObserver._events`)."""
        bad = -1  # (where the first byte no UTF-8 is, in `data`)
        decoder = self.utf8
        if decoder is not None and (last or self.pending or not data.isascii()):
            try:
                decoder.decode(data, last)
                self.pending = decoder.getstate()[0] != b""
            except UnicodeDecodeError as error:
                # (its bytes from the piece before, kept by the decoder, counted in `error.start`)
                bad = max(error.start - len(decoder.getstate()[0]), 0)
                self.utf8 = None
        if self.long:  # (in a line too long to keep: to its end)
            end = data.find(b"\n")
            if end < 0 or 0 <= bad < end:
                if bad >= 0:
                    self._over(observer, _RAISES)
                else:
                    self._elide(data)
                return
            self._elide(data[:end])
            elided = self.elided
            if elided is not None:  # (kept whole as JSON reads it: as a line kept)
                self.elided = None
                self._field(self.line + elided.value(), False)
            elif self.spaced:  # (a `retry` line: judged whole, but past `_MOST_TAIL` bytes so kept)
                self.spaced = False
                self._field(self.line, len(self.line) > _MOST_TAIL)
            else:
                self.past.ended()
                self._field(self.line, True)
            self.line = b""
            self.long = False
            data = data[end + 1 :]
            bad = bad - end - 1 if bad >= 0 else -1
        text = self.line + data if self.line else data
        if bad < 0:
            whole = text.rfind(b"\n") + 1
        else:
            bad += len(text) - len(data)
            whole = text.rfind(b"\n", 0, bad) + 1
        if whole and bad < 0 and (self.data or self.name or self.unknown):
            # (the event open before this piece, to its blank line: read a line at a time; the events after it, as
            # any others (`_plain`): a read of them all after it was a Python step or more an event, helper sselate2)
            end = text.find(b"\n\n", 0, whole)
            if end >= 0:
                verdict = (self._lines(observer, text[:end]) if end else _READS) or self._dispatch(observer)
                if verdict:
                    self._over(observer, verdict, text[end + 2 :])
                    return
                text = text[end + 2 :]
                whole -= end + 2
        if whole and (
            bad >= 0 or self.data or self.name or self.unknown or self.held or not self._plain(observer, text, whole)
        ):
            # (the whole lines, an event a block: all but the last end at a blank line; an ordinary event, a `data`
            # line opening it, judged at once)
            blocks = text[:whole].split(b"\n\n")
            open_lines = blocks.pop()  # (none, or lines ending in a line end)
            at = 0  # (where the block after starts, in `text`)
            for block in blocks:
                at += len(block) + 2
                # (`data: ...` alone, or after `event: ...`, nothing open before: as `_lines` and `_dispatch` read it)
                cut = block.find(b"\n")
                name = b""
                if self.data or self.name or self.unknown:
                    line = b""
                elif cut < 0:
                    line = block if block.startswith(b"data:") else b""
                elif (
                    block.startswith(b"event:")
                    and block.startswith(b"data:", cut + 1)
                    and block.find(b"\n", cut + 1) < 0
                ):
                    line = block[cut + 1 :]
                    name = block[7:cut] if block[6:7] == b" " else block[6:cut]
                else:
                    line = b""
                if line:
                    self.retry = False
                    verdict = self._judge(observer, line[6:] if line[5:6] == b" " else line[5:], name, False)
                else:
                    verdict = self._lines(observer, block) or self._dispatch(observer)
                if verdict:
                    self._over(observer, verdict, text[at:])
                    return
            if open_lines:
                verdict = self._lines(observer, open_lines[:-1])
                if verdict:
                    self._over(observer, verdict, text[whole:])
                    return
        if bad >= 0:
            self._over(observer, _RAISES)
            return
        rest = text[whole:]
        if len(rest) > _MOST_TAIL:
            self.long = True
            self.past = _Past()
            if rest.startswith(b"data:"):  # (its value kept as JSON reads it, `_Elided`)
                start = 6 if rest[5:6] == b" " else 5
                self.line = rest[:start]
                self.elided = _Elided()
                self._elide(rest[start:])
            elif rest.startswith(b"retry:"):
                self.spaced = True
                self.line = b""
                self._spaces(rest)
            else:
                self.line = rest[:_LATE_HEAD]
                self.past.feed(rest[_LATE_HEAD:])
        else:
            self.line = rest

    def _elide(self, piece: bytes) -> None:
        """A piece of a `data` line too long to keep (`long`): kept as JSON reads it (`_Elided`), or, past its bounds,
        its quotes counted from there (`_Past`, out of a string there: `quoted` says whether the line ends in one)."""
        elided = self.elided
        if elided is None:
            if self.spaced:
                self._spaces(piece)
            else:
                self.past.feed(piece)
            return
        rest = elided.feed(piece)
        if rest is not None:
            self.elided = None
            kept = elided.value()
            self.line += kept
            self.past.feed(kept)  # (out of a string at its end: for the integer it may end in, `_Past._integers`)
            self.past.feed(rest)

    def _spaces(self, piece: bytes) -> None:
        """A piece of a `retry` line too long to keep (`long`), kept with each run of white space made one space, which
        `int` reads alike (white space around a number; none in one), up to `_MOST_TAIL` bytes (an `int`'s digits are
        at most 4,300, so that one past them is none): a line of spaces and a number is a retry to the openai SDK's
        decoder at any read size (until 2026-12-06 one past `_MOST_TAIL` bytes was none)."""
        if len(self.line) > _MOST_TAIL:
            return
        piece = _WHITE_RUN.sub(b" ", piece)
        if piece[:1] == b" " and self.line[-1:] == b" ":
            piece = piece[1:]
        self.line += piece

    def _plain(self, observer: SseObserver, text: bytes, whole: int) -> bool:
        """Whether the whole lines of `text` (to `whole`), nothing open before them, are events of one `data` line each
        that the SDK reads on at (`_PLAIN_EVENTS`): each one JSON text (an object, to the Anthropic SDK), no `[DONE]`, no
        Anthropic `error` event, none the API's error (`erred`, asked of those holding what it holds, `words`): judged
        in C, a few steps a read, not one an event. False when not so known: they are read a line at a time."""
        if _PLAIN_EVENTS.fullmatch(text, 0, whole) is None:
            return False
        body = text[:whole]
        if self.stops:
            if b"[DONE]" in body:
                return False
        elif _ERROR_EVENTS[0] in body or _ERROR_EVENTS[1] in body:
            return False
        values = _PLAIN_HEADS.sub(b"", body).split(b"\n\n")
        values.pop()
        try:
            parsed = list(map(orjson.loads, values))
        except orjson.JSONDecodeError:
            return False
        if not self.stops:
            return set(map(type, parsed)) == {dict}
        held: list[Any] = []
        for word in self.words:
            if word in body:
                if self.judged >= MAX_STRINGS:  # (past the bound: `_judge` stops at once)
                    return False
                # (the objects of those holding it, found in C, counted toward `MAX_STRINGS`)
                held += [one for value, one in zip(values, parsed, strict=True) if word in value and type(one) is dict]
        if held:
            # (one erred, or past the bound: read one by one, as `_judge` reads them; a stream of decoys holding the word
            # was a Python step or more an event, helper sselate2)
            if self.judged + len(held) > MAX_STRINGS or any(map(observer.erred, held)):
                return False
            self.judged += len(held)
            self.worded += len(held)
        self.retry = False
        return True

    @staticmethod
    def _over(observer: SseObserver, verdict: int, rest: bytes = b"") -> None:
        """The SDK stopped (`_STOPPED`) or raised (`_RAISES`): nothing more is read. Past `MAX_STRINGS` events judged
        (`_BOUND`), the rest from `rest` (from an event's start) is looked at for the upstream's error alone, in C, as
        before 2026-12-05 (`_late_errors`): an error event after 65,536 events holding a comment or an `id` line each
        passed as a success where the SDK raised at it (helper revsselate2); those judged holding what the API's error
        holds count toward its bound (`_late`), so that a stream of decoys is looked at no longer than before."""
        events = observer._events
        observer._events = None
        if verdict == _BOUND:
            if events is not None:
                observer._late = events.worded
            observer._watching = True
            observer._skipping = False
            observer._name = None
            observer._tail = b"\n"
            observer._late_errors(rest)
            return
        observer._watching = False  # (nor looked at for errors: `_late_errors`)
        if verdict == _RAISES:
            observer._stream_error()

    def _lines(self, observer: SseObserver, block: bytes) -> int:
        """Whole lines, without the line end after the last."""
        # (an event's lines past its kept bytes too, however few: each is looked at only for what ends its data's JSON,
        # `_closed`, which a block's lines are together)
        if (
            (block.count(b"\n") >= _BULK_LINES or (self.nesting is not None and block))
            and block[:1] != b"\n"
            and b"\n\n" not in block
        ):
            return self._bulk(block)
        for line in block.split(b"\n"):
            if line.startswith(b"data:"):
                self._data(line[6:] if line[5:6] == b" " else line[5:], False)
            elif line.startswith(b"event:"):
                self.name = line[7:] if line[6:7] == b" " else line[6:]
            elif line.startswith(
                _ERROR
            ):  # (llama.cpp's error, the upstream's as where the reply is read: `_error_line`)
                return _RAISES
            elif not line:  # (a blank line: the event ends)
                verdict = self._dispatch(observer)
                if verdict:
                    return verdict
            elif line[0] != _COLON:  # (a comment changes nothing)
                self._field(line, False)
        return _READS

    def _bulk(self, block: bytes) -> int:
        """Many lines of one event, none blank (`_lines`), read in C as `_lines` reads them one by one: the last `event`
        line names it, the last `id` without a NUL is kept, a `retry` `int` reads counts, its `data` values joined (a
        `[DONE]` one after another: `joined`), kept up to `_MOST_TAIL` bytes. A read of 16 MB of `data: x` or `event: x`
        lines of an event never ended was a Python step a line (and an object), helper sselate2."""
        if block.startswith(_ERROR) or b"\n" + _ERROR in block:  # (llama.cpp's error: `_lines`)
            return _RAISES
        if b"data" in block:
            values = _BULK_DATA.findall(block)
            if values and not b"\n".join(values).strip(_JSON_WHITE):  # (white space alone: two at most change the data)
                for value in values[:2]:
                    self._data(value, False)
            elif values:
                joined = b"\n".join(values)
                if b"\n[DONE]" in joined or (self.data and joined.startswith(b"[DONE]")):
                    self.joined = True
                if self.unknown and self.data:  # (past the kept bytes: an integer too long is looked for, `_data`)
                    self.broken = self.broken or _long_integer(joined) or self._closed(values)
                else:
                    if self.size + len(joined) >= _MOST_TAIL:  # (kept as JSON reads it, as `_data` keeps a value)
                        joined = _elided_whole(joined)
                    before = b"\n".join(self.data)
                    if self.data:
                        joined = before + b"\n" + joined
                    joined = _WHITE_VALUES.sub(b"\n", joined)  # (values of white space: `_data`)
                    self.data = [joined[:_MOST_TAIL]]
                    self.size = len(joined) + 1
                    if self.size > _MOST_TAIL:
                        self.unknown = True
                        # (as `_data`: its lines whole, one ending in a string is no JSON; until review revstreams5 an
                        # event of 16 lines or more read on at it, where one of fewer was judged so. Judged at the line
                        # past `_MOST_TAIL`, as `_data` judges it: at the last, a string closed on the next line would be
                        # read on, its quotes then even)
                        past = joined.find(b"\n", _MOST_TAIL)
                        self.broken = _ends_in_string(joined if past < 0 else joined[:past]) or _long_integer(joined)
                        self.broken = self._nest(before, 0, b"") or self._closed(values) or self.broken
        if b"event" in block:
            found = _LATE_NAME.match(block)
            if found is not None:
                self.name = _event_name(found[1]) if len(found[1]) > 6 else b""
        if b"id" in block:
            found = _SDK_ID.match(block)
            if found is not None:
                value = found[1] or b""
                self.id = value not in (b"", b" ") and self.stops
        if b"retry" in block and (_SDK_RETRY.search(block) is not None or _wide_retry(block, 0, len(block))):
            self.retry = True
        return _READS

    def _field(self, line: bytes, long: bool) -> None:
        """A line that is no comment nor blank (`long`: its first bytes alone), as `_lines` reads it: `data`, `event`,
        `id`, `retry`, or a field the SDK ignores."""
        field, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if field == b"data":
            self._data(value, long)
        elif field == b"event":
            self.name = value
        elif field == b"id":
            if b"\x00" not in value and not (long and self.past.nul):  # (a NUL past its first bytes too)
                self.id = value != b"" and self.stops  # (to the Anthropic SDK, an event it ignores)
        elif field == b"retry" and not long:
            try:
                int(value.decode("utf-8"))
            except ValueError:
                return
            self.retry = True

    def _data(self, value: bytes, long: bool) -> None:
        if self.data and value.startswith(b"[DONE]"):
            self.joined = True
        if self.unknown and self.data:
            # (a line after the kept bytes: not kept, but an integer of more digits than `int` reads in it is no JSON
            # whatever else the data holds (a line a string is open at the start of is none either); until 2026-12-06 a
            # pretty-printed event's line of one past 64 KiB of lines was read on)
            if not self.broken:
                if long:
                    self.broken = self.past.big or self._closed_line(value, self.past.depth)
                else:
                    self.broken = _long_integer(value) or self._closed([value])
            return
        if len(self.data) > 1 and not long and not value.strip(_JSON_SPACE):
            # (white space after two values changes nothing either SDK makes of the data: JSON's white space outside a
            # string, a line end more inside one, which has one already; data of white space alone is none to both. Kept,
            # 100,000 `data:` lines were data past `_MOST_TAIL`, not judged: a success where the SDK raises)
            return
        if not long and self.size + len(value) >= _MOST_TAIL:  # (a line whole in a read: kept as JSON reads it)
            value = _elided_whole(value)
        self.size += len(value) + 1
        self.data.append(value)
        if long or self.size > _MOST_TAIL:
            self.unknown = True
            if not long:  # (its line's end, judged with it: a number it ends in has ended, `_json_may_begin`)
                self.data.append(b"")
            # (a line past `_MOST_TAIL` ending in a string, or in a backslash: until 2026-12-06 read on, an unended string
            # as `data: {"a": "xxx...` the SDK raises at; its value kept as JSON reads it up to where its quotes were
            # counted (`_elide`), from out of a string)
            if long:
                past = self.past
                self.broken = past.quoted or past.escaped or past.big
                self.broken = self._nest(b"\n".join(self.data[:-1]), past.depth, value) or self.broken
            else:  # (its lines whole, the last past `_MOST_TAIL`)
                joined = b"\n".join(self.data)
                self.broken = self._nest(joined, 0, b"") or _ends_in_string(joined)

    def _nest(self, lines: bytes, depth: int, head: bytes) -> bool:
        """The open event's data has gone past its kept bytes (`unknown`): its brackets left open so far counted, its
        whole `lines` (`_nesting`) and the `depth` of a line past them whose first bytes are `head` (`_Past`), and
        whether they hold more than white space (a value begun: `_closed`). Whether more are closed than opened: no
        JSON."""
        begun = bool(lines.strip(_JSON_WHITE) or head.strip(_JSON_WHITE)) or depth != 0
        self.nesting = nesting = _BracketCount(_nesting(_unescaped(lines), False) + depth, begun)
        return nesting.depth < 0

    def _closed(self, values: list[bytes]) -> bool:
        """Whether `data` values past the open event's kept bytes (whole lines) make its data no JSON by its brackets
        (`nesting`): a value with more than white space after a line end at which all were closed once one began (its
        JSON text ended: both SDKs' `json.loads` raise `Extra data`), or more closed than opened. Until 2026-12-06 such
        data, `{...}` past 64 KiB then `data: {...}`, was read on where both SDKs raise. In C `_NEST_LINES` lines at a
        time, line by line only where their count falls to 0 (`_lowest`: once in valid data, at its end), for
        `_MOST_STRINGS` lines an event (its brackets not counted past them). Until review revstreams9 line by line
        wherever they closed as many as were open: a pretty-printed array of objects, then `data: 1`, 1,024 lines past
        its kept bytes, read on."""
        nesting = self.nesting
        if nesting is None:
            return False
        depth, begun = nesting.depth, nesting.begun
        if depth <= 0 and begun:
            return depth < 0 or bool(b"".join(values).strip(_JSON_WHITE))
        at = 0
        while at < len(values):
            some = values[at : at + _NEST_LINES]
            at += _NEST_LINES
            brackets = _brackets(_unescaped(b"\n".join(some)), False)
            closing = brackets.count(b"}") + brackets.count(b"]")
            if depth > 0 and (closing < depth or depth + _lowest(brackets) > 0):  # (none of them ends with all closed)
                depth += len(brackets) - 2 * closing
                continue
            nesting.stepped += len(some)
            if nesting.stepped > _MOST_STRINGS:
                self.nesting = None
                return False
            for value in some:
                if value.strip(_JSON_WHITE):
                    if depth <= 0 and begun:
                        return True
                    begun = True
                depth += _nesting(_unescaped(value), False)
                if depth < 0:
                    return True
        nesting.depth, nesting.begun = depth, begun
        return False

    def _closed_line(self, head: bytes, depth: int) -> bool:
        """`_closed` of a `data` line too long to keep, its first bytes `head`, its brackets' `depth` (`_Past`)."""
        nesting = self.nesting
        if nesting is None:
            return False
        content = bool(head.strip(_JSON_WHITE))
        if nesting.depth <= 0 and nesting.begun:
            if content:
                return True
            self.nesting = None  # (white space first: whether more follows it not told)
            return nesting.depth < 0
        nesting.begun = nesting.begun or content or depth != 0
        nesting.depth += depth
        return nesting.depth < 0

    def _dispatch(self, observer: SseObserver) -> int:
        """A blank line: the event it ends, when the SDK dispatches it (or its data may have begun before: not judged),
        judged (`_judge`)."""
        data = self.data
        name = self.name
        unknown = self.unknown
        if not data and not name and not self.retry and not self.id and not unknown:
            if self.held:  # (the held event not dispatched: none to the SDK)
                self.held = False
                observer._late_given(False)
            return _READS
        if name or self.retry or unknown:
            self.name = b""
            self.retry = False
            self.unknown = False
        broken = self.broken
        self.broken, self.nesting = False, None
        if data:
            self.data = []
            self.size = 0
        if broken and unknown and not data[0].startswith(b"[DONE]"):  # (no JSON, whatever follows: as data `x`)
            data = [b"x"]
        joined = self.joined
        if joined:
            self.joined = False
            unknown = False  # (judged: never JSON)
            data = [data[0][:_LATE_HEAD], b"[DONE]"]  # (its first bytes still say whether it begins `[DONE]`)
        return self._judge(observer, data[0] if len(data) == 1 else b"\n".join(data), name, unknown)

    def _judge(self, observer: SseObserver, text: bytes, name: bytes, unknown: bool) -> int:
        """What the SDK makes of an event it dispatches, its data `text` (`unknown`: more than that), named `name`; past
        `MAX_STRINGS` of them, nothing more is judged (`_BOUND`). The held event (`held`) is given where the SDK reads
        on at it, but for an Anthropic one it skips (named none, `ping`, or no data): `SseObserver._late_given`."""
        if self.held:
            self.held = False
            verdict = self._verdict(observer, text, name, unknown)
            skipped = not self.stops and (not name or name == _PING or not (text or unknown))
            observer._late_given(verdict == _READS and not skipped)
            return verdict
        return self._verdict(observer, text, name, unknown)

    def _verdict(self, observer: SseObserver, text: bytes, name: bytes, unknown: bool) -> int:
        self.judged += 1
        # (the first event dispatched alone, whatever judges it: an Anthropic one unnamed in the read, its name before
        # it, kept it set until the review of 2026-12-06, and the next event unknown was read on where the SDK raises)
        headless, self.headless = self.headless, False
        if self.judged > MAX_STRINGS:
            return _BOUND
        if self.stops:
            if text.startswith(b"[DONE]"):
                return _STOPPED
        elif name == _ERROR_NAME:
            return _RAISES
        elif not name or name == _PING or not (text or unknown):  # (skipped: `_SKIPPED_NAMES`, or no data)
            return _READS
        if unknown:  # (not judged: but data that no JSON text begins so is none, whatever follows)
            if headless:
                # (begun in a read before, read already where the reply was read: its head is none of what is kept; a
                # pretty-printed event cut between reads, then a line past `MAX_LINE` in the next read after its blank
                # line, was `upstream_error` from its last line's `:` or `1` (a JSON text, then more) until review
                # revstreams4b)
                return _READS
            if not self.stops and text.lstrip(_JSON_WHITE)[:1] not in (b"", b"{"):  # (no object: its client fails)
                return _RAISES
            # (no JSON text begins so, whatever follows: `{...}\nx`, a JSON text then more, as a line past `MAX_LINE` after
            # an object in its event (until review revstreams3 read on, judged by its head alone); a line no token
            # begins (until helper streams4, 2026-12-06); a token a line past `MAX_LINE` begins where none can go, as
            # `{"a": 1,` then `{...`, or `[DONE]` in an Anthropic event (until 2026-12-06, helper streams5's fuzz))
            return _READS if _json_may_begin(text) else _RAISES
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:  # (what orjson refuses, Python's `json`, the SDK's, may read: `NaN`, ...)
            try:
                parsed = json.loads(text.decode("utf-8"))
            except (ValueError, RecursionError):
                return _RAISES
        if type(parsed) is not dict:
            return _READS if self.stops else _RAISES
        if self.stops:
            for word in self.words:
                if word in text:
                    self.worded += 1
                    return _RAISES if observer.erred(_as_erred(parsed, name)) else _READS
        return _READS


class SseObserver(Observer):
    """Base of the observers of SSE-streamed JSON replies: subclasses read one event (`event`) and a
    whole reply (`body`), and say at `done` what they kept for the end."""

    # a whole reply read as an event stream a slice at a time (`_read_sliced`), and where its next slice begins: read
    # on by `more`, a slice a loop turn (`Exchange.more`); None once read to its end (class defaults: no work a call)
    rest: bytes | None = None
    _rest_at: int = 0
    # a reply kept whole read so from its pieces as they came, not joined (`_read_kept`): `rest` is the one at
    # `_piece`, the next read after it
    _pieces: list[bytes] | None = None
    _piece = 0
    # a reply kept whole (`_keep`) read at its end by `ending`, the rest of it by `more`: told cut, or not, as one read
    # at `unfinished` or `cut_short` is (by its JSON alone: `_ended_early`)
    _kept_read = False
    # past where the reply is read (`_give_up`), its events as the client's SDK reads them (`_LateEvents`): None but
    # with `json_every_event` or `typed_by_name`, and once the SDK stopped or raised (a class default: no work a call)
    _events: _LateEvents | None = None
    # the read `_framing_dropped` was given last and what it gave (`_late_reread`)
    _raw = b""
    _framed = b""
    # `_sdk` at the start of the read `_sdk_events` last looked at, and that read (`_late_reread`, which reads it again
    # from its start; class defaults: no work a call, nor an ordinary read, which leaves `_sdk` 0)
    _sdk_start = 0
    _sdk_read = b""
    # the open event as `_give_up` had it where the reading stopped at a line in a read, not its last (`_seed`'s `event`,
    # `size`, `ending`), for `_late_after`; a class default
    _stop: tuple[bytearray | None, int, int] | None = None
    # with `typed_by_name`, the open event's data as the Anthropic SDK parses it at the blank line that ends it, when
    # named (not `_SKIPPED_NAMES`): 0 none, 1 one JSON object, 2 none or no object, 4 one empty `data` line (data `""`:
    # skipped as none), 8 white space that is data (`data:  `, two empty lines: `\n`), which `json.loads` raises at (2, 8:
    # the SDK raises; helper streams); a class default (no work a call)
    _parsed = 0
    # the finish reasons, `stopped` and the token counts before the open event gave some (`_given`), restored where no
    # blank line ends it (`_unseen`); a class default (no work a call)
    _before: tuple[tuple[str, ...], bool, int | None, int | None] | None = None
    # a line of an event stream was read whose SDK dispatches an event at the blank line that ends it (the openai and
    # Anthropic SDKs': `json_every_event`, `typed_by_name`; not JSON lines, which have no blank lines): what an event
    # gives is held till then (`_given`, `identify`); a whole reply's never is; a class default
    _in_stream = False

    def __init__(self, outcome: Outcome, detectors: Detectors, capture: bool) -> None:
        self.outcome = outcome
        self.detectors = detectors
        self.ended = False
        self._text = OutputText(outcome, detectors, capture)
        # the pieces of a line not yet whole, joined once it is (a line in many reads was copied at each);
        # None once a line past MAX_LINE made the observer stop reading
        self._partial: list[bytes] | None = []
        self._partial_size = 0
        # a reply passed on as it arrives that is not an event stream: its pieces, kept to be read whole at
        # `finish` (`_keep`); `_sniff` while its first bytes may yet say it is one
        self._sniff = False
        self._kept: list[bytes] | None = None
        self._kept_size = 0
        # the first bytes of a reply whose first byte but white space is a NUL or a byte order mark's, while too few
        # to tell whether they begin JSON in UTF-16 or UTF-32 (`_keep`); else None
        self._head: bytes | None = None
        # a reply kept whole (`_kept`) that begins as no JSON does, for its text in the `charset` its type names
        # (`OutputText.charset`), which `requests`' `.text` reads: read in it at its end, then as an event stream
        self._plain = False
        self._refused = 0  # JSON texts no reader reads (`reply_json`)
        self._unknown = 0  # events holding none of the fields the API writes output in (`unknown`)
        self._ended_early = False  # a reply kept whole whose JSON ends before its value does (`_read_kept`)
        self._arrays = False  # a reply that is a JSON array is the API's, read whole (`array`)
        # no line read yet: a byte order mark that begins the stream is dropped (WHATWG), but where the openai or Anthropic
        # SDK reads it (`json_every_event`, `typed_by_name`): their decoders keep it, and the line it begins is a field
        # they ignore (`\ufeffdata`, `\ufeffevent`), as is one a mark begins later (until 2026-12-05 an error event
        # so begun at the stream's start was `upstream_error`, the SDKs raising at nothing)
        self._fresh = True
        self._after_cr = False  # the last piece ended in CR: a LF that begins the next is that line end's
        self._ending = 0  # `_ENDS`, `_HELD`: what the event being read holds, known at its blank line
        self.stopped = False  # the model said it finished in an event with no finish reason (llama.cpp's `stop`)
        # the data of an event whose first `data:` line was no JSON text alone: its lines joined by LF, read once
        # the event ends (a blank line, or the reply's end); None while no such event is open
        self._event: bytearray | None = None
        self._event_lines = 0
        # the open event's `event:` line, until the blank line that ends it; read only by an observer whose API's
        # clients dispatch an event by its name (`typed_by_name`: Anthropic's SDK, which skips or raises by it)
        self._name: bytes | None = None
        self.typed_by_name = False
        # the distinct tokens a reply's logprobs gave as the model's alternatives, read once each (`alternatives`);
        # None until a reply gives some (most ask for no logprobs)
        self._alternatives: set[str] | None = None
        self._lines = False  # a reply of JSON lines (`_NDJSON`), not an event stream
        # the API's client parses every event it is given as JSON, and raises at one that is none (the openai SDK:
        # `sse.json()` for each but `[DONE]`): such an event is the upstream's error (`_dispatch`, `_sdk_events`)
        self.json_every_event = False
        # what the SDK's decoder holds at the last line end read (`_SDK_NAMED` ...), for `_sdk_events`; and how many
        # events it dispatched none at that were looked at
        self._sdk = 0
        self._sdk_quiet = 0
        # past the blank line that ends `[DONE]` (`_STOPS`), which its client's SDK reads nothing after: what follows
        # (in the piece that holds it, a sized reply's rest) is read for the record's labels, but no error in it is the
        # upstream's (an event no JSON, an empty one, `data: {"error": ...}`: until 2026-12-05 `upstream_error`), nor
        # is a finish reason, token counts or `stopped` the record's (`_GIVEN` kept from event to event past it, undone
        # at the end: `_unseen`; until 2026-12-05 recorded, review revstreams)
        self._past_done = False
        # past where the reply is read (`_give_up`), its events holding `error` are looked at (`_late_errors`): the
        # open event's text from its first line, at most `_MOST_TAIL` bytes (a JSON line's); `_skipping` to its end, in
        # an event (a line) not looked at, of which `_tail` holds from its last line end on; how many were looked at
        self._watching = False
        self._tail = b""
        self._skipping = True
        self._late = 0

    def head(self, status: int, header: Header) -> None:
        kind = header("content-type")
        if kind is None:
            self._sniff = True
            return
        lowered = kind.lower()
        self._sniff = not lowered.startswith("text/event-stream")
        # a whole reply is read in the charset its type names too (`reply_json`); an event stream's events are UTF-8
        # to every SSE client, whatever it names
        if self._sniff and "charset" in lowered:
            self._text.charset = codec_of(kind)
        if self._sniff and lowered.startswith(_NDJSON):
            self._sniff = False
            self._lines = True

    def body(self, data: bytes) -> None:
        if not self._read_whole(data):  # not a JSON object: an event stream, whatever its Content-Type says, as
            self._sniff = False  # a reply passed on as it arrives is read (`_keep`)
            self._read_sliced(data)

    def _read_sliced(self, data: bytes) -> None:
        """A whole reply (or one kept whole) that is no JSON object, read as an event stream: its first slice, the rest
        by `more` (a slice a loop turn: `Exchange.more`), or at its end (`_drain`). In one `chunk` call, 15 MiB of a
        binary reply held the event loop 0.7-1 s in the framing's substitutions over all of it (badffd4, until
        2026-12-05)."""
        if len(data) <= _PIECE:
            self.chunk(data)
            return
        self.rest = data
        self._rest_at = 0
        self.more()

    def more(self) -> bool:
        """Read the next slice of a whole reply (`_read_sliced`): at most `_PIECE` bytes, ending at a line end (a line
        longer than that: a slice of it, as a piece of a line streamed is read), so that its lines are read as the whole's
        would be. Whether slices remain."""
        data = self.rest
        if data is None:
            return False
        at = self._rest_at
        end = len(data)
        if end - at > _PIECE:
            stop = at + _PIECE
            cut = max(data.rfind(b"\n", at, stop), data.rfind(b"\r", at, stop)) + 1
            # (before 2026-12-05 a line longer than a slice was read to its end: 64 MB without a line end in one turn)
            end = cut if cut > at else stop
        if self._partial_size + (end - at) > MAX_LINE:  # (rare: a line near `MAX_LINE` open)
            data, at, end = self._line_past_max(data, at, end)
        if end < len(data):
            self._rest_at = end
        elif self._pieces is None:
            self.rest = None
        else:
            self._next_piece()
        self.chunk(data[at:end] if at or end < len(data) else data)
        return self.rest is not None

    def _line_past_max(self, data: bytes, at: int, end: int) -> tuple[bytes, int, int]:
        """The slice `data[at:end]` (`more`) that would take the line open past `MAX_LINE`, to the line's end when the
        reply holds one: a whole reply's lines are whole, and one past it that ends is read, as read whole (to its end in
        one turn, pieces kept apart joined up to it). A slice holding a line end, or a line that never ends (not read
        then: `_give_up`), as it is. Until 2026-12-05 (0325842) a slice past it ended the reading: the line's address
        and the finish reason after it were not on the record."""
        if data.find(_LF, at, end) >= 0 or data.find(_CR, at, end) >= 0:
            return data, at, end
        lf = data.find(_LF, end)
        cr = data.find(_CR, end, lf if lf >= 0 else len(data))
        if cr >= 0 or lf >= 0:
            return data, at, cr + 1 if cr >= 0 else lf + 1
        pieces = self._pieces
        if pieces is None:  # (no line end in the rest of the reply)
            return data, at, end
        last = self._piece + 1
        while last < len(pieces) and _LF not in pieces[last] and _CR not in pieces[last]:
            last += 1
        if last == len(pieces):
            return data, at, end
        joined = b"".join([data[at:], *pieces[self._piece + 1 : last + 1]])
        for index in range(self._piece, last):
            pieces[index] = b""
        pieces[last] = self.rest = joined
        self._piece = last
        lf = joined.find(_LF, len(data) - at)
        cr = joined.find(_CR, len(data) - at, lf if lf >= 0 else len(joined))
        return joined, 0, cr + 1 if cr >= 0 else lf + 1

    def _next_piece(self) -> None:
        """The piece of a kept reply after the one read to its end (`_pieces`), those after it joined up to a slice's
        size (a reply that came in many small pieces is read in few turns); None after the last."""
        pieces = self._pieces
        if pieces is None:
            return
        index = self._piece
        if index >= 0:
            pieces[index] = b""  # (read: not held on)
        index += 1
        if index >= len(pieces):
            self.rest = self._pieces = None
            return
        last = index
        size = len(pieces[index])
        while last + 1 < len(pieces) and size + len(pieces[last + 1]) <= _PIECE:
            last += 1
            size += len(pieces[last])
        if last > index:
            joined = b"".join(pieces[index : last + 1])
            for other in range(index, last):
                pieces[other] = b""
            pieces[last] = joined
        self.rest = pieces[last]
        self._rest_at = 0
        self._piece = last

    def _drain(self) -> None:
        """The slices of a whole reply not read yet (`more`), read now: at its end, or where what it says is asked."""
        while self.more():
            pass

    def _read_whole(self, data: bytes) -> bool:
        """Read a whole reply; False when it is not a JSON object (then read as an event stream, which says what of
        it was not read)."""
        if len(data) > _HEAD_FIRST and self._text.charset is None and no_json_head(data[:_JSON_HEAD]):
            self._text.source = None  # (as `reply_json` leaves it)
            self._refused += 1
            return False
        reply = reply_json(data, self._text, True) if len(data) < _LARGE else self.large_json(data, True)
        if isinstance(reply, dict):
            self.whole(reply)
            return True
        if self._arrays and type(reply) is list:
            self.array(reply)
            return True
        self._refused += 1
        return False

    def chunk(self, data: bytes) -> None:
        if self._sniff or self._kept is not None:  # not an event stream, or not yet known to be one
            self._keep(data)
            return
        if self._after_cr:  # a CRLF split between two pieces is one line end
            self._after_cr = False
            if data[:1] == b"\n":
                data = data[1:]
        if _CR in data:  # CRLF, or a bare CR, ends a line too (WHATWG EventSource)
            self._after_cr = data[-1] == _CR
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        partial = self._partial
        if partial is None:  # gave up on this reply
            events = self._events
            if events is not None:
                events.feed(self, data)
            elif self._watching:
                self._late_errors(data)
            return
        if _LF not in data:  # a piece of a line
            partial.append(data)
            self._partial_size += len(data)
            if self._partial_size > MAX_LINE:
                self._give_up()
            return
        if partial:
            partial.append(data)
            data = b"".join(partial)
            partial.clear()
        # (the openai SDK's branch last: its ordinary read runs no jump past the other's)
        if not self.json_every_event:
            if self.typed_by_name and not data.isascii():  # (the Anthropic SDK's decoder decodes each line too)
                try:
                    data.decode("utf-8")
                except UnicodeDecodeError as error:
                    self._undecodable(data, error.start)
        else:
            if not data.isascii():  # (the SDK's decoder decodes each line as UTF-8: `_undecodable`)
                try:
                    data.decode("utf-8")
                except UnicodeDecodeError as error:
                    self._undecodable(data, error.start)
            # (an ordinary read, `data:` lines with values ending at a blank line, holds no line that may make the SDK
            # dispatch an event without data, and leaves none open)
            if self._sdk or not data.endswith(b"\n\n") or _sdk_line(data):
                self._sdk_events(data)
        if (_JSON_LINES_NO_OP if self._lines else _NO_OP).search(data) is not None:  # (one search in C a read)
            data = self._framing_dropped(data)
        lines = data.split(b"\n")
        last = lines.pop()
        if last:
            partial.append(last)
        self._partial_size = len(last)
        if self._fresh:
            self._fresh = False
            self._in_stream = (self.json_every_event or self.typed_by_name) and not self._lines
            if lines[0].startswith(_BOM) and not (self.json_every_event or self.typed_by_name):
                lines[0] = lines[0][3:]
        if self._lines:
            if not self._json_lines(lines):
                self._skipping = False  # (the read's lines again)
                self._late_errors(data)
            elif self._partial_size > MAX_LINE:
                self._give_up()
            return
        over = self.ended  # (before this piece, or at a blank line in it)
        for line in lines:
            if line.startswith(b"data:"):
                if not self._data_line(line):
                    self._late_after(lines, line, last, data)
                    break
                if self.ended and not over:  # the last event: the reply ends with the blank line that ends it
                    self.ended = False
                    self._ending |= _ENDS
            elif line:
                if not self._field(line):
                    self._late_after(lines, line, last, data)
                    break
            else:  # a blank line ends the event
                ending = self._ending
                if ending:  # (an error it held is now the SDK's: it stays, but in a `thread.*` event)
                    if ending & _KEYED:
                        self._thread_event()
                    if ending & _STOPS:
                        self._past_done = True
                    if ending & ~_KEPT:
                        self.ended = True
                    # (past `[DONE]`, what an event gives is none the SDK has: kept to be undone at the end, `_given`)
                    self._ending = ending & _UNSEEN if self._past_done else 0
                if self._event is not None and not self._dispatch():
                    # (the event ended: named `error`, the upstream's; the read's events again from its first blank
                    # line, the one that ended this event or one before it)
                    if self._name is not None and self.typed_by_name:
                        self._named_end(ending, over)
                    self._name = None
                    self._tail = b"\n"
                    if self._events is not None:
                        self._late_reread(data)
                    else:
                        self._late_errors(data)
                    break
                if self._name is not None:  # (an event named: the name ends with it)
                    # with `typed_by_name`, an event named `error` is the upstream's error whatever its data: the SDK's
                    # decoder dispatches a named event at its blank line, data or none, and raises at one named `error`
                    # (none, data that is no JSON, or read before the name came: each passed as a success before
                    # 2026-12-04); so is one whose data is no JSON (`_named_end`)
                    if self.typed_by_name:
                        self._named_end(ending, over)
                    self._name = None
                elif self._parsed:  # (an event not named, which the Anthropic SDK skips: its data is no later event's)
                    self._parsed = 0
                    self._skipped(ending, over)
                over = self.ended
        if self._partial_size > MAX_LINE:
            self._give_up()

    def may_end(self, data: bytes) -> bool:
        """Whether reading `data` may end the reply (`ended`): True when a line or an event is open (a marker may be
        split across pieces, or an event's data across lines), a last event waits for its blank line (`_ENDS`), the
        reply is not yet known to be an event stream (`_keep` may read it as one), or `data` holds an end's marker
        (`_ends_in`). Once the reply is not read (`_give_up`), nothing sets `ended` again."""
        if self._partial is None:
            return self.ended
        return (
            self.ended
            or self._ending & _ENDS != 0
            or len(self._partial) != 0
            or self._event is not None
            or self._sniff
            or self._kept is not None
            or self._ends_in(data)
        )

    def _ends_in(self, data: bytes) -> bool:
        """Whether `data` holds what may be the reply's last event: `[DONE]` (`_data_line`: any observer's, never
        escaped, as it is no JSON). An observer whose `event` sets `ended` adds its API's last events' types, and JSON's
        `\\u` escape, in which any of their letters may be written."""
        return b"[DONE]" in data

    def _sdk_events(self, data: bytes) -> None:
        """A read's whole lines (from a line's start; line ends made LF), as the openai SDK's decoder reads them: an event
        it dispatches at a blank line without data (`_SDK_LINE`) is the upstream's error (its `json.loads` raises),
        unless it stopped at `[DONE]` before it. What its decoder holds at the read's last line end is kept for the next
        (`_sdk`), so that where the reads are cut changes nothing. An event with data is read where its lines are
        (`_data_line`). Looked at in C but for the events that hold such a line (each a Python step: past `MAX_STRINGS`
        of them at which the SDK dispatches nothing, the rest is not looked at) or that follow an id. Before 2026-12-05
        an empty event was found only whole in a read, after a blank line, and the id an earlier event gave not kept."""
        state = self._sdk_start = self._sdk
        self._sdk_read = data
        if state == _SDK_OPEN and data[0] == _LF:  # (an ordinary event's blank line: dispatched with data)
            state = self._sdk = 0
            if len(data) == 1:
                return
        # (an error `_thread_event` may undo: not yet the SDK's, what follows it in its event still looked at)
        if state < 0 or (self.outcome.error_type and not self._ending & _KEYED) or self._past_done:
            self._sdk = -1
            return
        if not state and _open_data(data) and not _sdk_line(data):
            self._sdk = _SDK_OPEN  # (no line that may make an event dispatched without data; one open, ordinary)
            return
        if state & _SDK_CONTENT_LINE and self._event is None:
            # (the open event's data so far one JSON object, read alone: `_SDK_JOINED` at a value after it)
            state |= _SDK_ALONE
        end = data.rfind(b"\n") + 1
        pos = 0
        while pos < end:
            if not state:  # (nothing open, no id: on to the first line that may change that)
                found = _SDK_LINE.search(data, pos, end)
                at = found.start() if found is not None else end
                cut = data.rfind(b"\n\n", pos, at)
                start = cut + 2 if cut >= 0 else pos + 1 if data[pos] == _LF else pos  # (the event it is in)
                if _DONE_LINE.search(data, pos, start) is not None:  # (the SDK stops there)
                    state = -1
                    break
                if found is None:  # (what the event open at the end holds)
                    state = self._sdk_lines(data, start, end, 0) if start < end else 0
                    break
                pos = start
            if data[pos] == _LF:
                blank = pos
            else:
                cut = data.find(b"\n\n", pos, end)
                blank = cut + 1 if cut >= 0 else end
                state = self._sdk_lines(data, pos, blank, state)
                if blank == end:  # (the event goes on in the next read)
                    break
            if state & _SDK_DONE:
                state = -1
                break
            if (state & _SDK_DISPATCHES and not state & _SDK_CONTENT_LINE) or state & _SDK_JOINED:
                self._stream_error()
                state = -1
                break
            if not state & (_SDK_DISPATCHES | _SDK_CONTENT_LINE):
                self._sdk_quiet += 1
                if self._sdk_quiet > MAX_STRINGS:  # (the rest not looked at: said to be, since 2026-12-05)
                    self._text.unread()
                    state = -1
                    break
            state &= _SDK_ID_GIVEN
            pos = blank + 1
        self._sdk = state

    @staticmethod
    def _sdk_lines(data: bytes, start: int, end: int, state: int) -> int:
        """`state` (`_sdk`) past `data[start:end]`, lines of one event (none blank), as the SDK's decoder reads them."""
        if data.find(b"event", start, end) >= 0:
            found = _LATE_NAME.match(data, start, end)
            if found is not None:
                line = found[1]  # (`event`, `event:`, `event: `: no name; no slice past its end, which mypyc refuses)
                named = len(line) > 7 or (len(line) == 7 and line[6:7] != b" ")
                state = state | _SDK_NAMED if named else state & ~_SDK_NAMED
        if data.find(b"data", start, end) >= 0:
            found = _LATE_DATA.search(data, start, end)
            if found is not None:
                before = state & _SDK_DATA  # (a `data` line earlier in the event, in an earlier read)
                if not before:  # (its first `data` line: the SDK stops at an event whose data begins so)
                    first = found[1] or b""
                    if (first[1:] if first[:1] == b" " else first).startswith(b"[DONE]"):
                        state |= _SDK_DONE
                    state |= _SDK_DATA
                if not state & _SDK_CONTENT_LINE:
                    content = _SDK_CONTENT.search(data, found.start(), end)
                    if content is not None:
                        state |= _SDK_CONTENT_LINE
                        # (`[DONE]` after a `data` line with no value: the data is `\n[DONE]`, no `[DONE]` to the SDK,
                        # no JSON to its `json.loads`, where the observer would take the line for the end: `_data_line`)
                        if (before or content.start() > found.start()) and _DONE_LINE.match(data, content.start()):
                            state |= _SDK_JOINED
                        stop = data.find(b"\n", content.end(), end)
                        stop = end if stop < 0 else stop
                        # (a value after it in the event: its data joined is JSON only if this one is none alone)
                        if _SDK_CONTENT.search(data, stop, end) is not None:
                            value = data[content.end() - 1 : stop]
                            if value[0] == _BRACE and _json_text(value):
                                state |= _SDK_JOINED
                elif state & _SDK_ALONE and _SDK_CONTENT.search(data, start, end) is not None:
                    state |= _SDK_JOINED
        if data.find(b"retry", start, end) >= 0 and (
            _SDK_RETRY.search(data, start, end) is not None or _wide_retry(data, start, end)
        ):
            state |= _SDK_RETRIES
        if data.find(b"id", start, end) >= 0:
            found = _SDK_ID.match(data, start, end)
            if found is not None:
                value = found[1] or b""
                given = len(value) > 1 or (len(value) == 1 and value != b" ")  # (one space after the colon dropped)
                state = state | _SDK_ID_GIVEN if given else state & ~_SDK_ID_GIVEN
        return state

    def _undecodable(self, data: bytes, at: int) -> None:
        """A read's whole lines (from a line's start; line ends made LF) that are not UTF-8 from `at` on: the openai SDK's
        decoder decodes each line as UTF-8 as it comes (`raw_line.decode("utf-8")`), and raises `UnicodeDecodeError` at
        one that is not, a comment too, unless it stopped at `[DONE]` before it (at its event's blank line): the
        upstream's error. A line not yet whole is looked at once it is. Before 2026-12-05 none was (helper sse2)."""
        # (an error held in the open event (`_HELD`), which the reply's end without a blank line drops, is no error: the
        # decode raises whether a blank line comes or not; `data: x`, then `\xff` a read after it, and the body's end
        # passed as a success until 2026-12-05, helper revsse3)
        held = self._ending & _HELD
        if (self.outcome.error_type and not held) or self._past_done or data.find(b"\n", at) < 0:
            return  # (`data.find`: in the line not yet whole)
        done = _DONE_LINE.search(data, 0, at) if self.json_every_event else None  # (no end to the Anthropic SDK)
        # (the blank line of `[DONE]`'s event before it: the SDK stopped there)
        begin = done.start() if done is not None else 0 if self._ending & _STOPS else -1
        if begin < 0 or (b"\n" + data[:at]).find(b"\n\n", begin) < 0:
            if held:
                self._ending &= ~(_HELD | _KEYED)
            else:
                self._stream_error()

    def _framing_dropped(self, data: bytes) -> bytes:
        """`data`, whole lines from its first line end on, without those that change nothing (`_NO_OP_LINES`): each
        would be a Python step. Its last line end is kept, so the line after it is still a line's start."""
        if self._lines:
            return _NO_OP_JSON_LINES.sub(b"", data)
        self._raw = data
        self._framed = data = self._dropped(data)
        return data

    def _dropped(self, data: bytes) -> bytes:
        # (data, to the Anthropic SDK: `_BARE_DATA`)
        if self.typed_by_name and _EMPTY_DATA_LINE.search(data) is not None:
            data = _BARE_DATA.sub(_bare_data, data)
        elif _NO_OP_LINE.search(data) is not None:  # (blank lines alone: not searched for the others)
            data = _NO_OP_LINES.sub(b"", data)
        if b"\nevent\n" in data:  # (an `event:` line naming none, read as one)
            data = _BARE_EVENT.sub(b"\nevent:", data)
        if b"\nevent:" in data:  # (runs first: a run between blank lines is then one line between them)
            if _EVENT_RUN.search(data) is not None:
                data = _EVENT_RUNS.sub(b"", data)
            if self.typed_by_name and _LONE_ERROR.search(data) is not None:  # (as a blank line ends one, below)
                self._stream_error()
            data = _LONE_EVENTS.sub(b"\n\n", data)
        if b"\n\n\n" in data:  # (first: a run of blank lines is searched for one-byte lines no more)
            data = _BLANK_LINES.sub(b"\n\n", data)
        return _ONE_BYTE_LINE.sub(b"\\g<0> ", data)

    def _json_lines(self, lines: list[bytes]) -> bool:
        """Whole lines of a reply of JSON lines (`_NDJSON`): each one's object read as an event, a blank line skipped,
        any other line not read (`_refuse`), one holding an integer of more digits than `int` reads `upstream_error`
        too. False once the rest of the reply is not read."""
        for line in lines:
            if VISIBLE.search(line) is None:
                continue
            reply = reply_json(line, self._text)
            if isinstance(reply, dict):
                self.event(reply)
                if self._partial is None:  # past `unknown`'s bound: the rest is not read
                    return False
                continue
            if reply is NOT_JSON and _long_integer(line):
                # (an integer of more digits than `int` reads: the `ollama` SDK's `json.loads(line)` raises, as Ollama's
                # error line makes it; a success until 2026-12-06)
                self._stream_error()
            if not self._refuse():
                return False
        return True

    def _keep(self, data: bytes) -> None:
        """A piece of a reply that is not an event stream (as its Content-Type says), kept to be read whole
        at `finish`: unless its first byte but white space says otherwise (not `{`: an event stream's field
        or comment, which is then read as one from its start). Past `Detectors.keep_max` bytes nothing more is kept,
        and the reply is labelled `scan:truncated`."""
        kept = self._kept
        if kept is None:
            kept = self._kept = []
        if self._sniff:
            head = self._head
            stream = False
            if head is None:
                found = VISIBLE.search(data, 3 if not kept and data.startswith(_BOM) else 0)
                if found is not None:
                    self._sniff = False
                    first = data[found.start()]
                    # (a NUL, or a UTF-16 or UTF-32 byte order mark's first byte: JSON in UTF-16 or UTF-32 may begin so,
                    # which a whole reply is read as too, `reply_json`; before 2026-12-05 one in big-endian, with a mark
                    # or white space first, was read as an event stream: `scan:truncated` where read whole it was not)
                    if first == 0 or first >= _WIDE:
                        head = b"".join(kept)[:_HEAD] + data[:_HEAD] if kept else data[:_HEAD]
                    elif first != _BRACE and not (first == _BRACKET and self._arrays):
                        stream = True
            else:  # (fewer than `_HEAD` bytes: `_wide_json_start` could not tell)
                head += data[: _HEAD - len(head)]
            if head is not None:
                # kept only when the reply begins as such JSON does (a binary reply, an MP3's `\xff\xfb` or a gRPC-web
                # frame's `\x00`, is read as before 2026-12-05: kept whole it held 16 MiB, a 2 MB one 0.2 s at its end)
                wide = _wide_json_start(head, self._arrays)
                if wide is None and len(head) < _HEAD:  # (too few of its bytes yet to tell)
                    self._head = head
                    self._sniff = True
                else:
                    self._head = None
                    self._sniff = False
                    stream = wide is False
            if stream and self._text.charset:
                # text in the charset its type names (`text/plain; charset=utf-16`): kept, to be read in it as a whole
                # reply is (`body`); before 2026-12-05 one passed on as it arrives was read as an event stream alone,
                # its UTF-8 lines no fields, and an address `requests`' `.text` reads in it was missed
                self._plain = True
                stream = False
            if stream:
                self._kept = None
                if kept:
                    kept.append(data)
                    data = b"".join(kept)
                self.chunk(data)
                return
        size = self._kept_size = self._kept_size + len(data)
        if size > self.detectors.keep_max:
            self._kept = None
            self._sniff = False
            if self._plain:  # (its reading in its charset not whole: read as an event stream from its start)
                self._plain = False
                self._text.unread()
                kept.append(data)
                # a piece at a time, as they came: joined, 16 MiB of a binary reply held the event loop 1-2 s in the
                # framing's substitutions and took 4-6 times `keep_max` at once (until 2026-12-05)
                for piece in kept:
                    self.chunk(piece)
                kept.clear()
                return
            self._give_up(False)
            return
        kept.append(data)

    def _give_up(self, watch: bool = True) -> None:
        """A line or an event's data past MAX_LINE, or a reply past `Detectors.keep_max`: the rest of the reply is not
        read (it passes all the same), and what it held is content the proxy did not read. `watch`: an event stream's
        (or JSON lines'), whose rest is looked at for the upstream's error all the same (`_late_errors`), from the end
        of the event (the line) it stopped in."""
        partial = self._partial
        if watch and partial is not None and (self.json_every_event or self.typed_by_name):
            # (the SDK reads on: from the line not yet whole, which begins at a line's start, in the event open there as
            # its decoder holds it)
            self._events = events = _LateEvents(self.json_every_event, self.late_words())
            event = self._event
            if self._partial_size <= MAX_LINE:
                # (at a line in the read, not its last: the decoder's state at the read's end is a later event's where a
                # blank line follows in the read, `_late_after`'s to tell; the open event as the observer has it kept)
                self._stop = (event, len(event or b""), self._ending)
            if self._ending & _HELD:  # (its error, no JSON, `erred`: the SDK's only if it dispatches the event)
                self.outcome.error_type = None
            self._seed(events, self._sdk, event, len(event or b""), self._ending)
            # (what the open event gave the record, its SDK has only if it gives the event: settled at its end)
            events.held = self._ending & _UNSEEN != 0 and not (self._past_done or self._ending & _STOPS)
            watch = False
            if self._partial_size > MAX_LINE or self._lines:
                # (at a line in a read, the read is read again from its start, its last line too (`_late_reread`): fed
                # here, past the read's events, a byte no UTF-8 in it was `upstream_error` where the SDK stopped at
                # `[DONE]` before it, until review revstreams5)
                for piece in partial:
                    self._late_read(piece)
        self._partial = None
        self._partial_size = 0
        self._event = None
        # (an error the event being read held stands: its blank line is not looked for; what it gave the record is kept
        # as held, `_UNSEEN`, undone at the end unless its SDK gives it (`_late_given`); past `[DONE]`, what was given
        # after it is still none. Until 2026-12-06 it was dropped as held, not undone: a finish reason in the last
        # event, then a line past `MAX_LINE` the body ended in, stood, review revstreams2's `give_up_keeps_unseen`)
        self._ending &= _ENDS | _UNSEEN
        self._text.unread()
        self._watching = watch

    def _seed(self, events: _LateEvents, sdk: int, event: bytes | bytearray | None, size: int, ending: int) -> None:
        """`events` (`_give_up`'s) as the SDK's decoder holds the event the reading stopped in: its data so far (`event`,
        of `size` bytes; `ending`, `_ending` there), a retry, an id, a name (`sdk`: `_sdk` there)."""
        events.data = []
        events.unknown = events.joined = events.broken = False
        if sdk > 0 and sdk & _SDK_DONE:  # (its first `data` line `[DONE]`'s: the SDK stops, whatever follows)
            events.data.append(b"[DONE]")
            events.unknown = True
        elif sdk > 0 and sdk & _SDK_JOINED:  # (a value, then another: `x\n[DONE]` too, no JSON joined)
            events.data += (b"{}", b"{}")
        elif ending & _STOPS:  # (`[DONE]`'s, read: its blank line not yet)
            events.data.append(b"[DONE]")
            events.unknown = True
        elif ending & _HELD:  # (no JSON so far, or the API's error: `in_band_error`; the SDK raises at either)
            # (but at an `error` alone in an event it names `thread.*`: one that `_verdict` so judges, `_KEYED`)
            events.data.append(_KEYED_DATA if ending & _KEYED else b"x")
        elif event is not None:  # (an event whose data is not one JSON text alone, so far)
            if self._parsed == 1:  # (an Anthropic event's object before it: `{...}\n{...`, no JSON)
                events.data.append(b"{}")
            # (its lines whole: one a string is open at the end of is no JSON whatever follows, a line past `MAX_LINE` in
            # one read as `data: {"a": "xxx...`; until 2026-12-06 read on, helper streams5's fuzz)
            # (past `_MOST_TAIL` bytes, kept as JSON reads it where that is within `_Elided`'s bounds: judged whole)
            kept = _elided_whole(bytes(event)) if size > _MOST_TAIL else b""
            if kept and len(kept) <= _MOST_TAIL:
                events.data.append(kept)
            else:
                broken = _ends_in_string(event) or (size > _MOST_TAIL and _long_integer(bytes(event)))
                events.data.append(b"x" if broken else bytes(event[:_MOST_TAIL]))
                events.unknown = size > _MOST_TAIL and not broken
                if events.unknown:  # (its brackets, for the lines after it: `_LateEvents._closed`)
                    events.broken = events._nest(bytes(event), 0, b"")
        elif sdk > 0 and sdk & (_SDK_ALONE | _SDK_CONTENT_LINE):
            # (a value, no `_event`: one JSON object read alone, as `_sdk_events` has it; one is as good as another)
            events.data.append(b"{}")
        elif sdk > 0 and sdk & _SDK_DATA:
            # (`data` lines whose values are white space or none, no other: data that is white space, which the SDK's
            # `json.loads` raises at unless a value follows; two, as `_PARSED_DATA`'s white space, so that the reread
            # (`_late_reread`) keeps them known. Until 2026-12-06 seeded unknown: an event of 100,000 `data:` lines
            # passed as a success, review revstreams3)
            events.data += (b"", b"")
        elif self._parsed:  # (an Anthropic event's data so far, as its SDK parses it: one object, none, `""`, `\n`)
            events.data += _PARSED_DATA[self._parsed]
        events.id = sdk > 0 and sdk & _SDK_ID_GIVEN != 0
        events.retry = sdk > 0 and sdk & _SDK_RETRIES != 0
        events.name = b"?" if sdk > 0 and sdk & _SDK_NAMED else b""
        if self._name is not None:
            events.name = _event_name(self._name)

    def _late_read(self, data: bytes, last: bool = False) -> None:
        """A piece of a reply past where it is read, its line ends made LF (`last`: its end), as the client's SDK reads
        it (`_LateEvents`): the upstream's error where it raises."""
        events = self._events
        if events is None:
            return
        events.feed(self, data, last)

    def _late_given(self, given: bool) -> None:
        """Past where the reply is read (`_give_up`), the event it stopped in, which gave the record a finish or stop
        reason, token counts, the model or id (`_UNSEEN`), has ended: kept where its SDK gave it (`given`), else undone
        (`_unseen`), as where the reply is read (a blank line, `_skipped`)."""
        ending = self._ending
        if not ending & _UNSEEN:
            return
        if given:
            self._ending = ending & ~_UNSEEN
            self._before = None
        else:
            self._unseen(ending)

    def _late_reread(
        self, data: bytes, named: bool = False, stop: bytes = b"", equal: int = 0, line: bytes = b""
    ) -> None:
        """The reading stopped in the read `data` (framed: `_framing_dropped`): the SDK's reading of it again from its
        start as it came, the event open there not judged (its data may have begun before), the events before the
        stop read already judged again (as they were), `[DONE]`'s blank line passed before it stopped nothing after.
        `named`: the event open at the read's start is the one the reading stopped in (no blank line before the stop),
        its name so far (`_name`, perhaps from a read before) its name unless a line in the read names it otherwise.
        `stop`: the line it stopped at, past `_MOST_TAIL` bytes, the `equal` lines before it in the read equal to it, its
        event's data so far to its end kept whole as JSON reads it (`_seed`): the lines after it are read into it, so that
        `data: {`, `data: "xxx..."`, `data: }` in a read is judged whole as where it is cut between reads (helper
        streams7). `line`: the line it stopped at otherwise, the `equal` lines before it equal to it: where its event's
        brackets are counted (`_LateEvents.nesting`, from its data to that line's end), they are counted from there on."""
        self._stop = None
        if self._past_done:
            self._events = None
            return
        seed = self._events
        events = self._events = _LateEvents(self.json_every_event, self.late_words())
        events.unknown = True
        events.headless = not (named and seed is not None)
        if named and seed is not None:
            # (as `_give_up` seeded it: its name, its data so far (`[DONE]`'s first bytes too), its lines joined
            # where the SDK raises at them, `retry`; the read's `data` lines before the stop, again, then change nothing
            # but a `[DONE]` line after another: a `[DONE]` event cut at a line past `MAX_LINE` in one read, the error
            # event after it was `upstream_error` where the SDK stopped, helper sselate2)
            events.name = seed.name
            events.retry = seed.retry
            # (with an Anthropic event's object before it: `_give_up`; until 2026-12-06 its first alone)
            events.data = seed.data
            if seed.data and not seed.unknown and len(seed.data) > 1:  # (`_SDK_JOINED`)
                events.unknown = False
            events.held = seed.held
        # (the id the SDK's decoder had at the read's start: `_sdk` is at its end, an `id` line after the stop in it
        # counted, and an extra blank line before that was an empty event dispatched, `upstream_error` where the SDK read
        # on, until review revstreams4b)
        raw = self._raw if self._framed is data else data
        sdk = self._sdk_start if self._sdk_read is raw else 0  # (a read it did not look at: `_sdk` 0 before and after)
        events.id = sdk > 0 and sdk & _SDK_ID_GIVEN != 0
        end = _line_end(raw, stop, equal) if stop and events.data and named and seed is not None else -1
        if end >= 0 and seed is not None and not seed.unknown:
            self._late_read(raw[:end])  # (its lines to the stop's end again: in its data so far, unknown)
            if self._events is events:
                events.unknown = False
                self._late_read(raw[end:])
            return
        end = _line_end(raw, line, equal) if line and named and seed is not None and seed.nesting is not None else -1
        if end >= 0 and seed is not None:  # (its lines to the stop's end again, counted already: not counted)
            self._late_read(raw[:end])
            if self._events is events:
                events.nesting = seed.nesting  # (the seed's count goes on in it: the seed is read no more)
                self._late_read(raw[end:])
            return
        self._late_read(raw)

    def _late_after(self, lines: list[bytes], line: bytes, last: bytes, data: bytes) -> None:
        """The reading stopped at `line`, one of a read's `lines` (`last`: its line not yet whole; `data`: the read):
        the rest of the read is looked at, from the end of the event `line` is in, which is not (its data not read
        whole); the name it has so far (`_name`) is its name unless an `event` line after it says another; to an SDK
        the proxy reads as it does (`_LateEvents`), the read again (`_late_reread`)."""
        # `line` itself, not the first line equal to it (until 2026-12-04): from an event before it, read already,
        # whose end was then taken for its own, its `event: error` the upstream's error though no blank line ended it
        # (a line of one byte, one object however many there are, is one no more: `_ONE_BYTE_LINE`)
        at = 0
        while lines[at] is not line:
            at += 1
        if self._events is not None:
            named = b"" not in lines[:at]
            held = self._events.held and not named
            stop = self._stop
            self._stop = None
            if named and stop is not None and b"" in lines[at + 1 :]:
                # (a blank line after it in the read: `_give_up` seeded the event from the decoder's state at the read's
                # end, a later event's (until 2026-12-06: a pretty event with a line past `MAX_LINE`, `[DONE]` after it
                # in the read, stopped as at `[DONE]` where the SDK raises); its state at the read's start, this event's)
                raw = self._raw if self._framed is data else data
                self._seed(self._events, self._sdk_start if self._sdk_read is raw else 0, *stop)
            # (a `data` line past `_MOST_TAIL` that its event's data, as `_give_up` seeded it, ends in: read whole)
            event = stop[0] if stop is not None else None
            if len(line) > _MOST_TAIL and event is not None and event.endswith(line[6 if line[5:6] == b" " else 5 :]):
                self._late_reread(data, named, line, lines[:at].count(line))
            else:
                self._late_reread(data, named, b"", lines[:at].count(line), line)
            if held:
                # (its event the reread read after others: given where a blank line ends it in the read, as the SDK
                # gives an event with data, but for an Anthropic one named none or `ping` at that line, which its SDK
                # skips (a bare `event` line after the stop kept `end_turn` until 2026-12-06, review revstreams3's
                # min679); else the next event the SDK dispatches is it)
                if b"" in lines[at + 1 :]:
                    name = self._name
                    if self.typed_by_name:
                        found = _LATE_NAME.match(b"\n".join(lines[at + 1 : lines.index(b"", at + 1)]))
                        if found is not None:
                            name = found[1]
                    self._late_given(
                        not self.typed_by_name or (name is not None and _event_name(name) not in (b"", _PING))
                    )
                elif self._events is not None:
                    self._events.held = True
            return
        self._tail = b"\n"
        self._late_errors(b"\n".join([*lines[at + 1 :], last]))

    def _late_errors(self, data: bytes) -> None:
        """A piece of a reply past where it is read (`_give_up`), its line ends made LF: an error the upstream sends in
        it is one its client sees all the same (the SDK raises it), so the call's outcome is `upstream_error`
        (`in_band_error`). An event is looked at once it ends (a blank line), as the SDK's decoder dispatches it then,
        and only one holding `error` or `response.failed` (found in C: no step a line or an event; `_LATE_WORDS`),
        for `MAX_STRINGS` of them a reply (`_late_event`); an event longer than `_MOST_TAIL` bytes across pieces, or
        the one the reading stopped in, is not. Before 2026-12-04 nothing past that point was looked at."""
        if self.outcome.error_type or self._late >= MAX_STRINGS:
            self._watching = False
            return
        if self._lines:
            self._late_json_lines(data)
            return
        data = self._tail + data
        start = 0
        if self._skipping:  # (`_tail`: from its last line end, or none when in a line longer than `_MOST_TAIL`)
            blank = data.find(b"\n\n")
            first = data.find(b"\n")
            end = blank if blank >= 0 else len(data)
            # (the name of the event not looked at: the SDK raises at `error`; an `event` line looked for first, with `find`)
            if self.typed_by_name and first >= 0 and data.find(b"\nevent", first, end) >= 0:
                found = _LATE_NAME.match(data, first + 1, end)
                if found is not None:
                    self._name = found[1]
            if blank < 0:  # (still in it)
                end = data.rfind(b"\n")
                self._tail = data[end:] if end >= 0 and len(data) - end <= _MOST_TAIL else b""
                return
            self._skipping = False
            if self._name in _ERROR_NAMES and self.typed_by_name:
                self._stream_error()
                self._watching = False
                return
            self._name = None
            start = blank + 2
        cut = data.rfind(b"\n\n")
        for word in self.late_words() if cut >= start else ():  # (an event holding two is looked at twice)
            at = data.find(word, start, cut)
            while at >= 0 and self._late < MAX_STRINGS:
                begin = data.rfind(b"\n\n", start, at)  # (the event holding it: from the blank line before)
                stop = data.find(b"\n\n", at)
                self._late += 1
                if self._late_event(data[begin + 2 if begin >= 0 else start : stop], True):
                    self._stream_error()
                    self._watching = False
                    return
                at = data.find(word, stop, cut)
        if self._late >= MAX_STRINGS:
            self._watching = False
            return
        rest = data[cut + 2 :] if cut >= start else data[start:]
        if len(rest) <= _MOST_TAIL:
            self._tail = rest
            return
        self._skipping = True  # (an event too long to look at: to its end)
        end = rest.rfind(b"\n")
        self._tail = rest[end:] if end >= 0 and len(rest) - end <= _MOST_TAIL else b""
        if self.typed_by_name:
            found = _LATE_NAME.match(rest)
            self._name = found[1] if found is not None else None

    def _late_end(self) -> None:
        """The reply's last event (line) past where it is read, which no blank line (line end) ended: a JSON line is
        read as where the reply is read; of an event, only llama.cpp's `error:` line (`_error_line`): its data and its
        name are not the upstream's error, as where the reply is read (the SDK's decoder dispatches no event at the
        body's end; until 2026-12-05 its data was read as one)."""
        tail = self._tail
        if self.outcome.error_type or self._skipping or not tail or self._late >= MAX_STRINGS:
            return
        if self._lines:
            self._late_json_lines(b"\n")
        elif _LATE_ERROR_LINE.search(tail) is not None:
            self._stream_error()

    def _late_event(self, event: bytes, ended: bool) -> bool:
        """Whether an event past where the reply is read (its lines, without the blank line that ends it) is the
        upstream's error, as its client reads it (the SDK's SSE decoder: its `data` lines joined by LF, its name the
        last `event` line's, one without a colon naming none): its data, read as JSON, an event `erred` says is one
        (an openai event named `thread.*` asked without its `error`, `_as_erred`: with it until 2026-12-06, review
        revthreads), an Anthropic event named `error` (`typed_by_name`: the SDK raises at it, whatever its data) once
        it `ended`, or one holding llama.cpp's `error:` line (`_error_line`)."""
        if _LATE_ERROR_LINE.search(event) is not None:
            return True
        if ended and self.typed_by_name:
            found = _LATE_NAME.match(event)
            if found is not None and found[1] in _ERROR_NAMES:
                return True
        payload = b"\n".join(_LATE_DATA.findall(event)).strip()  # (one value: itself)
        if payload[:1] != b"{":
            return False
        # (read as an event is, `reply_json`: what orjson refuses and the client reads, a lone surrogate escape, NaN)
        reply = reply_json(payload, self._text)
        if type(reply) is not dict or not self.erred(reply):
            return False
        if self.json_every_event and ended and b"event" in event:  # (an openai event named `thread.*`: `_as_erred`)
            found = _LATE_NAME.match(event)
            if found is not None:
                return self.erred(_as_erred(reply, _event_name(found[1])))
        return True

    def _late_json_lines(self, data: bytes) -> None:
        """`_late_errors` of JSON lines (`_NDJSON`): each whole line holding `error` read as an event is, one past
        `_MOST_TAIL` bytes across pieces not looked at."""
        if self._skipping:  # (in a line too long to look at: to its end)
            start = data.find(b"\n")
            if start < 0:
                return
            data = data[start:]
            self._skipping = False
        else:
            data = self._tail + data
        end = data.rfind(b"\n") + 1
        rest = self._tail = data[end:]
        self._skipping = len(rest) > _MOST_TAIL
        at = data.find(b"error", 0, end)
        while at >= 0:
            stop = data.find(b"\n", at)
            self._late += 1
            reply = reply_json(data[data.rfind(b"\n", 0, at) + 1 : stop].strip(), self._text)
            if type(reply) is dict and self.erred(reply):
                self._stream_error()
                self._watching = False
                return
            if self._late >= MAX_STRINGS:
                self._watching = False
                return
            at = data.find(b"error", stop, end)

    def _data_line(self, line: bytes) -> bool:
        """A `data:` line; False once the rest of the reply is not read. An event's data is its `data:` lines joined
        by LF (WHATWG EventSource; pretty-printed JSON comes so): a line that is a JSON object alone is read as the
        event at once (an event in one line, as most are), one that is not opens an event whose lines are kept to be
        read joined at its end (`_dispatch`), up to `MAX_LINE` bytes and `MAX_STRINGS` lines."""
        event = self._event
        if event is None:
            # (JSON's white space in a line, as its clients' `json.loads` reads it: not `\x0b`, `\x0c`, which `strip()`
            # drops too; `data: {...}\x0b` was read as the event, `data: \x0b` as none, each passed as a success where
            # the SDK raised, until 2026-12-05)
            payload = line[5:].strip(_JSON_SPACE)
            if not payload or payload[0] != _BRACE:
                if self.typed_by_name:
                    if payload:
                        # (no object, joined or not: the Anthropic SDK fails at one it parses, `json.loads` raising at no
                        # JSON, and an array, a number, a string, `null` no event: `MessageStream`'s `accumulate_event`
                        # raises `TypeError`, a client reading `event.type` `AttributeError`; an array, a JSON text alone
                        # were not judged until 2026-12-05, helper sse4)
                        self._parsed = 2
                    elif not self._parsed & 3:  # (white space alone so far: data `""` is none to the SDK, else no JSON)
                        self._parsed = 4 if not self._parsed and line in _EMPTY_DATA else 8
                # (`[DONE]x` too: the openai SDKs stop at any data so begun; to them, past one space after the colon
                # (`data:  [DONE]`) it is data that is no JSON, which they raise at: `_DONES`; until 2026-12-05 the end)
                if payload.startswith(b"[DONE]") and (not self.json_every_event or line.startswith(_DONES)):
                    self.ended = True
                    if self.json_every_event:
                        self._ending |= _STOPS
                else:
                    if payload:  # no object, which an event is: not read (nor parsed), and said to be
                        self._text.unread()
                        # no JSON text: the SDK raises at the event once its blank line dispatches it (`_HELD`); an
                        # array's first line is read joined to the event's others, as an object's is (`_dispatch`),
                        # and so is a JSON text (`1`: `data: 1`, `data: 2` is `1\n2`, no JSON text, until 2026-12-05
                        # passed as a success)
                        if self.json_every_event and not self.outcome.error_type:
                            if payload[0] == _BRACKET or _json_text(payload):
                                self._event = bytearray(payload)
                                self._event_lines = 1
                                return True
                            self.in_band_error()
                    # an event no adapter reads, as one `unknown` does not (a Python step each: 16 MB of `data: x`
                    # lines took 0.8 s of the event loop); the events after them are read, up to the bound
                    return self._unread_event()
                return True
            reply = reply_json(payload, self._text) if len(payload) < _LARGE else self.large_json(payload, False)
            if isinstance(reply, dict):
                self._read_event(reply)
                return self._partial is not None  # (None: past `unknown`'s bound, the rest is not read)
            self._event = bytearray(payload)
            self._event_lines = 1
            return True
        event += b"\n"
        event += line[6:] if line[5:6] == b" " else line[5:]  # (one space after the colon is no part of the value)
        self._event_lines += 1
        # (past MAX_STRINGS lines too: each is a Python step, and 16 MB of `data: x` lines after `data: {` took 3.2 s)
        if len(event) > MAX_LINE or self._event_lines > MAX_STRINGS:
            self._give_up()
            return False
        return True

    def _dispatch(self, ended: bool = True) -> bool:
        """The end of an event whose data did not read alone: its lines joined, read as one JSON text; False once
        the rest of the reply is not read (`_refuse`). Not `ended` by a blank line (the reply's end): an error it holds
        is none (`_HELD`)."""
        event = self._event
        self._event = None
        if event is None:
            return True
        if self._event_lines > 1:  # (one line was read already, and was no JSON object)
            joined = bytes(event)
            reply = reply_json(joined, self._text) if len(joined) < _LARGE else self.large_json(joined, False)
            if isinstance(reply, dict):
                over = self.ended
                self._read_event(reply)
                if ended:  # (an error it held is the SDK's: the blank line came; past `[DONE]`, nothing it gave)
                    if self._ending & _KEYED:
                        self._thread_event()
                    if self.typed_by_name and (self._name is None or self._name in _SKIPPED_NAMES):
                        self._skipped(self._ending, over)
                    self._ending = self._ending & _UNSEEN if self._past_done else 0
                return self._partial is not None
        if self.typed_by_name:  # (its first line `{`: no object joined is no JSON)
            self._parsed = 2
        if self.json_every_event:
            if not _json_text(event):  # the SDK's `json.loads` raises at its data
                self.in_band_error()
                if ended:  # (past `[DONE]`, what an event gave kept to be undone at the end: until 2026-12-06 dropped)
                    self._ending = self._ending & _UNSEEN if self._past_done else 0
            elif self._event_lines == 1:  # (a JSON text alone, `data: 1`: passed as one that opens no event is)
                return self._unread_event()
        return self._refuse()

    def _named_end(self, ending: int, over: bool) -> None:
        """The blank line that ends an event of an Anthropic stream (`typed_by_name`) that is named (`ending`, `over`: as
        `_skipped` takes them): one named `error` is the upstream's error whatever its data; one named `ping` or none
        (`event:`) the SDK skips (`_skipped`); any other whose data is no JSON object, white space that is data too
        (`_parsed`), the SDK raises at (`json.loads`), or its client: `event: content_block_delta` with `data: x`, or
        with two objects, was a success until 2026-12-05 (helper revsse3); one whose data is none (`event:
        message_delta` then a blank line) it skips (anthropic 2.17.0: `upstream_error` until 2026-12-05, helper
        streams), and so one of a name 0.121.0 did not parse, whose data is no JSON, was a success (`event: x`)."""
        parsed = self._parsed
        self._parsed = 0
        if self._name in _OTHER_NAMES:  # (`error`, or a name the SDK skips: one lookup an ordinary event)
            if self._name in _ERROR_NAMES:
                self._stream_error()
            else:
                self._skipped(ending, over)
        elif parsed & 10:
            self._stream_error()

    def _skipped(self, ending: int, over: bool) -> None:
        """The blank line that ends an event of an Anthropic stream that its SDK skips, named none or `ping` (anthropic
        2.17.0's `Stream.__stream__`: `if sse.event is None: continue`): its data was read for its labels, as it passed,
        but its stop reason and token counts (`ending`: `_ending` before that line, `_GIVEN`) and its end (`message_stop`:
        `ended` since `over`) are none its client has. Until 2026-12-05 they were recorded (review revstreams: data
        `{"type": "message_delta", ...}` unnamed gave its stop reason)."""
        if ending & _UNSEEN:
            self._unseen(ending)
        if self.ended and not over:
            self.ended = False

    def _read_event(self, reply: dict[str, Any]) -> None:
        """An event's data, read as its API's clients read it: with `typed_by_name`, data without a `type` has none
        (anthropic 2.17.0 gives it type None, not the name its `event:` line says, which 0.x SDKs gave it: until
        2026-12-05 so read, its stop reason recorded; helper streams2), its strings read as an unknown event's. Whether
        the event is the upstream's error is told by its name at the blank line that ends it (`_named_end`), the last
        `event:` line's: an `event: error` line a later one renames is none (it was `upstream_error`, read at the
        data, until 2026-12-05; helper ssenormal)."""
        if self.typed_by_name:
            self._parsed = 2 if self._parsed & 3 else 1  # (a second object in the event: joined, no JSON)
        self.event(reply)

    def _refuse(self) -> bool:
        """An event that is no JSON (or nested deeper than can be read): not read, nor, past `_MOST_REFUSED` of
        them, the rest of the reply (False), which the label already says was not read."""
        self._text.unread()
        self._refused += 1
        if self._refused < _MOST_REFUSED:
            return True
        self._give_up()
        return False

    def _field(self, line: bytes) -> bool:
        """A line that is no `data:` field: framing when a field SSE defines, a comment or white space; llama.cpp's
        error (`_error_line`); anything else (a page of HTML, plain text) passed unread, as a client that reads the
        body as text has it, and counted as an event that is no JSON is (`_refuse`: False once the rest of the reply
        is not read; 16 MB of `x` lines took 4 s, a Python step each)."""
        if line.startswith(b"event:"):
            self._name = line
        elif line == b"event":  # (an empty name: `_BARE_EVENT`)
            self._name = b"event:"
        elif line == b"data" and self.typed_by_name:  # (an empty value, a read's first line: `_BARE_DATA`)
            return self._data_line(b"data:")
        elif not line.startswith(_FIELDS) and line not in _BARE_FIELDS and VISIBLE.search(line) is not None:
            if not line.startswith(_ERROR):
                return self._refuse()
            self._error_line(line[len(_ERROR) :].strip())
        return True

    def _error_line(self, payload: bytes) -> None:
        """llama.cpp's server sends an error in a stream it has begun as a line of its own, `error: {...}` (then `data:
        [DONE]`): no field SSE defines, so its clients ignore it and see a stream that ended well. It is the
        upstream's error in band (`in_band_error`), its strings read as an error event's are."""
        self._stream_error()
        reply = reply_json(payload, self._text) if payload[:1] == b"{" else None
        if isinstance(reply, dict):
            self.unknown(reply)
        else:
            self._text.unread()

    def ending(self) -> bool:
        """A reply passed on as it arrives has ended: one kept whole (`_keep`, not for its charset) is read, as JSON, and
        when it is none as an event stream, its first slice; True while slices remain, which its caller reads a slice a
        loop turn (`more`). Before 2026-12-05 all of it in the loop turn that read its end: 15 MB of binary after a `{`,
        chunked, 0.5 s (`unfinished`)."""
        if self._kept is None or self._plain:
            return False
        self._kept_read = True
        self._read_kept(False)
        return self.rest is not None

    @staticmethod
    def _kept_head(kept: list[bytes]) -> bool:
        """Whether a large kept reply is no JSON by its first `_JSON_HEAD` bytes alone (`no_json_head`)."""
        size = 0
        count = 0
        for piece in kept:
            size += len(piece)
            count += 1
            if size >= _JSON_HEAD:
                break
        head = kept[0] if count == 1 else b"".join(kept[:count])
        return size >= _JSON_HEAD and no_json_head(head[:_JSON_HEAD])

    def _read_kept(self, drain: bool = True) -> None:
        """Read a reply kept whole (`_keep`), once its end has come; as an event stream, all of it (`drain`), or its first
        slice."""
        kept = self._kept
        if kept is not None:
            self._kept = None
            if self._head is not None:  # (too short to tell: read whole, as JSON, else as an event stream)
                self._head = None
                self._sniff = False
            if kept and not self._sniff:
                if self._kept_size > _HEAD_FIRST and self._text.charset is None and self._kept_head(kept):
                    # no JSON by its first bytes, as read whole: read as an event stream from its pieces, not joined
                    # (64 MB 0.08 s), a slice a loop turn (`more`)
                    self._text.source = None
                    self._refused += 1
                    if self.outcome.error_type:
                        self._text.unread()
                        return
                    self._pieces = kept
                    self._piece = -1
                    self._next_piece()
                    self.more()
                    if drain:
                        self._drain()
                    return
                data = kept[0] if len(kept) == 1 else b"".join(kept)
                kept.clear()
                if not self._read_whole(data):
                    if self.outcome.error_type:
                        self._text.unread()  # cut short (`Exchange.finish` says why): what passed was not read
                    elif not self._told_no_json and ends_early(data, self._text):
                        # its JSON broke off: not read, and said to be (`cut_short`)
                        self._ended_early = True
                        self._text.unread()
                    else:  # no JSON object: an event stream after all, as a whole reply is read (`body`)
                        self._read_sliced(data)
                        if drain:
                            self._drain()

    def finish(self) -> None:
        if self.rest is not None:
            self._drain()
        self._read_kept()
        if self._partial:
            last = b"".join(self._partial)
            self._partial.clear()
            self._in_stream = (self.json_every_event or self.typed_by_name) and not self._lines
            if self._fresh and last.startswith(_BOM) and not (self.json_every_event or self.typed_by_name):
                last = last[3:]
            if (
                self.json_every_event or self.typed_by_name
            ) and not last.isascii():  # (the SDK's decoder decodes it at the body's end)
                try:
                    last.decode("utf-8")
                except UnicodeDecodeError as error:
                    self._undecodable(last + b"\n", error.start)
            if self._lines:  # the last line, without its line end
                self._json_lines([last])
            elif last.startswith(b"data:"):
                self._data_line(last)
            elif last:
                self._field(last)
        elif self._watching:  # the last event (line), past where the reply is read
            self._late_end()
        if self._events is not None:  # (a sequence the body ends in, cut: its last line's decode raises)
            self._late_read(b"", True)
        if self._event is not None:  # an event the reply ended in (before its blank line): read, as it passed
            self._dispatch(False)
        if self._error_unended():
            # the upstream's error in an event the reply ended in: the SDK's decoder never dispatches it (no blank line
            # ended it), and the client sees none (until 2026-12-05 it was recorded `upstream_error`); the stream's first
            # line too, where the body holds no line end (`_in_stream`; not a whole reply's error, `_fresh`: until
            # 2026-12-06 one `data:` line cut before its end was `upstream_error`, review revstreams' fuzz)
            self._ending &= _ENDS | _UNSEEN
            if self.outcome.error_type == STREAM_ERROR:
                self.outcome.error_type = None
        if self._ending & _UNSEEN:  # (its finish or stop reason too, model, id: read at its line or at the body's end)
            self._unseen(self._ending)
        self.done()
        self._text.finish(self.detectors)

    def cut_short(self) -> bool:
        """At the end of a reply framed by its connection's close (which HTTP cannot tell from a cut): whether it was an
        event stream that closed before its API's last event (`ended`, or its data read without the blank line after it,
        but where an SDK's decoder reads it, which dispatches no event the body ends in), before the model said it
        finished (a finish or stop reason, `stopped`, given in an event a blank line ended, to such an SDK) and before
        any error the upstream sent in it. Not a reply the observer stopped reading (`_give_up`: past what is kept, or a
        line past `MAX_LINE`): where it ended was not read, and it is labelled `scan:truncated` already. A reply kept to
        be read whole (JSON, not an event stream) is read now: cut short when its JSON ends before its value does."""
        if self.rest is not None:
            self._drain()
        if self._kept is not None or self._kept_read:
            plain = self._plain
            self._read_kept()
            if not plain or self._ended_early:  # (a plain one is read as an event stream then: below)
                return self._ended_early
        outcome = self.outcome
        if self._ending & _UNSEEN:  # (a finish or stop reason in an event no blank line ended: none to the SDK)
            self._unseen(self._ending)
        # (an error an event the reply ended in held is none, an NDJSON line's is: `finish`; so is the API's last event
        # there, to an SDK's decoder, which dispatches no event at the body's end; an API whose streams have no last
        # event, `ends_with_event`: the close is its end, as far as can be told)
        ends = self._ending & _ENDS and not (self.json_every_event or self.typed_by_name)
        return (not self.ended and not ends and not self.stopped and not self._sniff
                and self._kept is None and self._partial is not None and not outcome.finish_reasons
                and (not outcome.error_type or self._error_unended())
                and self.ends_with_event())  # fmt: skip

    def _error_unended(self) -> bool:
        """Whether the upstream's error the record holds is in an event the body ended in before its blank line, or in
        the stream's first line with no line end after it (`_in_stream`; not a whole reply's, `_fresh`): one the SDK's
        decoder never dispatches (`finish` drops it; `cut_short` reads such a body as cut)."""
        return self._ending & _HELD != 0 and not self._lines and (not self._fresh or self._in_stream)

    def ends_with_event(self) -> bool:
        """Whether the API's streams end with an event of their own (`data: [DONE]`, `message_stop`,
        `response.completed`), so that a stream its upstream ends in good order without it, or a finish or stop reason,
        is incomplete (`unfinished`); not Triton's `generate_stream`, which just ends."""
        return False

    def unfinished(self) -> bool:
        """At the end of a reply its upstream ended in good order (a chunked reply's last chunk): whether it was an
        event stream of an API whose streams end with an event (`ends_with_event`) that ended before it, as
        `cut_short` tells (no finish or stop reason, no error in band, read to its end); or a reply kept to be read whole
        (JSON) whose JSON ends before its value does, as one framed by its close is cut (`cut_short`: until 2026-12-05
        that one alone was said to be). A plain-text reply kept for its charset is read now, then as an event stream."""
        if self.rest is not None:
            self._drain()
        if self._plain and self._kept is not None:  # (kept for its charset, read now: then as an event stream)
            self._read_kept()
        if self._kept is not None or self._kept_read:
            return self.cut_short()
        return self.ends_with_event() and self.cut_short()

    def unfinished_whole(self) -> bool:
        """At the end of a reply read whole (sized, `body`): whether it was JSON lines (`_NDJSON`: Ollama's stream, sent
        with a `Content-Length`) that ended before its API's last line, as `unfinished` tells of one passed on as it
        arrives (until 2026-12-05 recorded as a call that ended well)."""
        return self._lines and self.unfinished()  # (`unfinished` reads what `more` has not)

    # -- shared by the subclasses

    def identify(self, reply: dict[str, Any]) -> None:
        """The reply's model and id, as first named."""
        outcome = self.outcome
        if outcome.response_model is None and isinstance(reply.get("model"), str):
            outcome.response_model = reply["model"]
            if self._in_stream:  # (none to an SDK till the blank line that ends its event: `_unseen`)
                self._ending |= _MODEL
        if outcome.response_id is None and isinstance(reply.get("id"), str):
            outcome.response_id = reply["id"]
            if self._in_stream:
                self._ending |= _ID

    def model_held(self) -> bool:
        return self._ending & _MODEL != 0

    def alternatives(self, key: tuple[Any, ...], logprobs: Any) -> None:
        """The tokens a reply's logprobs give as the model's alternatives to the token it wrote (`top_logprobs`: a
        chat or Responses reply's `[{"token", "top_logprobs": [{"token"}]}]`, a chat reply's under `content` and
        `refusal`; a completion's `{"top_logprobs": [{token: logprob}]}`): text the model produced that a client
        shows and the content does not hold (the token it wrote is the content's). Each distinct one is read once,
        a line of its own, beside the content under `key` (`OutputText.aside`); once `_MOST_ALTERNATIVES` distinct ones
        were read, the logprobs that come after them are not, and the output is labelled `scan:truncated`."""
        seen = self._alternatives
        if seen is None:
            seen = self._alternatives = set()
        elif len(seen) >= _MOST_ALTERNATIVES:  # what comes after them is not read
            self._text.unread()
            return
        found: list[str] = []
        whole = True
        if type(logprobs) is dict:  # a chat choice's (`content`, `refusal`), a completion choice's (`top_logprobs`)
            for field in ("content", "refusal"):
                whole = whole and _alternative_tokens(logprobs.get(field), seen, found)
            top = logprobs.get("top_logprobs")
            for alternatives in top if type(top) is list and whole else ():  # a completion's: a token -> logprob map
                if type(alternatives) is dict:
                    for token in alternatives:
                        if type(token) is str and token and token not in seen:
                            if len(seen) >= _MOST_ALTERNATIVES:
                                whole = False
                                break
                            seen.add(token)
                            found.append(token)
        else:  # a Responses output text's; llama.cpp's native `completion_probabilities`
            whole = _alternative_tokens(logprobs, seen, found)
        if not whole:
            self._text.unread()
        # tokens, each a string already: read as they are, their bound `_MOST_ALTERNATIVES`, not `MAX_STRINGS`
        if found:
            self._text.aside_lines(key, found)

    def unknown(self, event: dict[str, Any]) -> None:
        """A streamed event holding none of the fields its API writes output in (an error; a server compatible with
        the API in name only): its strings read as `OutputText.add_unknown` reads them, for `MAX_STRINGS` such events a
        reply. Each costs a walk of its own (a million `{}` lines of an Ollama stream, 3 MB, held the loop 10 s); past
        them the rest of the reply is not read (`_give_up`), as past `_MOST_REFUSED` events that are no JSON."""
        if self._unread_event():
            self._text.add_unknown(event)

    def _unread_event(self) -> bool:
        """One more event no adapter reads (`unknown`'s, or a `data:` line that opens no event: no JSON object, or
        empty); False past `MAX_STRINGS` of them a reply, when the rest of the reply is not read (`_give_up`)."""
        self._unknown += 1
        if self._unknown > MAX_STRINGS:
            self._give_up()
            return False
        return True

    def first_chunk(self) -> None:
        """Output the model wrote came, streamed: its content, or what it wrote beside it first (reasoning, a tool
        call, a refusal), each a chunk of its reply (`gen_ai.response.time_to_first_chunk`)."""
        if not self.outcome.first_token_ns:
            self.outcome.first_token_ns = self.outcome.now_ns()

    def array(self, reply: list[Any]) -> None:
        """A whole reply that is a JSON array, where `_arrays` says the API answers so."""

    def in_band_error(self, keyed: bool = False) -> None:
        """An error the upstream sent in the stream: the call is recorded with `error.type` `STREAM_ERROR`, unless
        something else ended it (`Exchange.finish`). Read in an event's data, it is the SDK's once a blank line ends the
        event (`_HELD`): not when the reply ends before it (`finish`). Nor in an event whose data begins `[DONE]`
        (`_STOPS`), which the SDK never parses: `data: [DONE]`, then `data: x` (or, since 2026-12-05, `data: \x0b`) in
        its event was `upstream_error` where the SDK stopped, until 2026-12-05 (helper revsse3). `keyed`: the error is
        the event's truthy `error` alone, which the openai SDK raises at but in an event named `thread.*`
        (`_thread_event`); any other error in the event stands."""
        if not self.outcome.error_type and not self._past_done and not self._ending & _STOPS:
            self.outcome.error_type = STREAM_ERROR
            self._ending |= (_HELD | _KEYED) if keyed else _HELD
        elif not keyed:
            self._ending &= ~_KEYED

    def _thread_event(self) -> None:
        """The blank line of an event whose error is its truthy `error` alone (`_KEYED`): named `thread.*` (its last
        `event` line), the openai SDK in legacy mode (chat, Responses) parses its data and yields it without looking at
        its `error` (`Stream.__stream__`'s Assistants branch), so the record has no error from it."""
        self._ending &= ~_KEYED
        if self._name is not None and _event_name(self._name).startswith(_THREAD):
            self.outcome.error_type = None

    def _given(self) -> bool:
        """A streamed event's finish or stop reason, or token counts, about to be recorded: the record as it was before
        it is kept until the blank line that ends the event (`_GIVEN`), where an SDK's decoder dispatches it (the openai
        and Anthropic SDKs', `_in_stream`; not JSON lines, which have no blank lines; nor a whole reply's). Past `[DONE]` (its own event too), where the openai SDK stops, kept to the end: the record is
        then as the SDK had it at `[DONE]`. Whether it was kept now (the event's first)."""
        if not self._in_stream or self._ending & _GIVEN:
            return False
        self._ending |= _GIVEN
        outcome = self.outcome
        self._before = (outcome.finish_reasons, self.stopped, outcome.input_tokens, outcome.output_tokens)
        return True

    def _unseen(self, ending: int) -> None:
        """The reply ended in an event that gave a finish or stop reason, or token counts (`ending`: `_GIVEN`), or first
        named the reply's model or id (`_MODEL`, `_ID`), before its blank line came (`_given`): the SDK's decoder never
        dispatched it, and its client had none of them, so the record has none (until 2026-12-05 it had them, and the
        stream was not said to end early: `data: {... "finish_reason": "stop"}` with no blank line after it, then the
        body's end, recorded `stop` and no error; the SDK gave no finish reason; and a usage chunk so sent gave
        `gen_ai.usage.*`, and its model and id `gen_ai.response.*`, review revstreams)."""
        self._ending &= ~_UNSEEN
        before = self._before
        if ending & _GIVEN and before is not None:
            outcome = self.outcome
            outcome.finish_reasons, self.stopped, outcome.input_tokens, outcome.output_tokens = before
            self._before = None
        if ending & (_MODEL | _ID):  # (set where `_given` holds: `identify`)
            if ending & _MODEL:
                self.outcome.response_model = None
            if ending & _ID:
                self.outcome.response_id = None

    def _stream_error(self) -> None:
        """`in_band_error` where the event it is in has ended (or is no event: llama.cpp's `error:` line); an error the
        open event's `error` set (`_KEYED`) then stands."""
        self._ending &= ~_KEYED
        if not self.outcome.error_type and not self._past_done:
            self.outcome.error_type = STREAM_ERROR

    def usage(self, usage: Any, input_key: str = "input_tokens", output_key: str = "output_tokens") -> None:
        """The reply's token counts (in a streamed event, held until its blank line: `_given`). A count is a JSON
        integer: `true` is none (`type`, not `isinstance`: compiled, an `int` field would store it as 1)."""
        if isinstance(usage, dict):
            if type(usage.get(input_key)) is int:
                if self._in_stream and not self._ending & _GIVEN:  # (its first in the event; none in a whole reply)
                    self._given()
                self.outcome.input_tokens = usage[input_key]
            if type(usage.get(output_key)) is int:
                if self._in_stream and not self._ending & _GIVEN:
                    self._given()
                self.outcome.output_tokens = usage[output_key]

    def read_waiting(self, later: dict[int, list[str]] | dict[int, bytearray]) -> int:
        """Text of later outputs that waited for the one being read (an output that streams while an
        earlier one is still open): the output read so far is over, then each output's waiting text is read
        as a piece of its own, in index order (bytes kept as UTF-8). Returns the last index read, the
        output now open."""
        text = self._text
        text.end_piece()
        indices = sorted(later)
        for index in indices:
            if index != indices[0]:
                text.end_piece()
            waiting = later[index]
            if isinstance(waiting, bytearray):
                text.add(waiting.decode("utf-8", "surrogatepass"))
            else:
                for piece in waiting:
                    text.add(piece)
        return indices[-1]

    # -- what a subclass reads

    def large_json(self, data: bytes, whole: bool) -> Any:
        """A large event's data, or whole reply (`whole`), of `_LARGE` bytes or more, read as JSON (`reply_json`); a subclass
        may read less of it where its client would read what it reads the same."""
        return reply_json(data, self._text, whole)

    # a whole reply `large_json` told no JSON unparsed (`no_json`): not parsed at its end either, to be told whether
    # it was cut short (`_read_kept`); a class default (no work a call)
    _told_no_json = False

    def no_json(self, whole: bool) -> Any:
        """What `large_json` gives for data a subclass tells no JSON without parsing it (`oip.NO_JSON`: a bracket past
        the values read closes a brace, or a brace a bracket): `NOT_JSON`, as `reply_json` leaves it (its text's
        `source` None); a `whole` reply's JSON so ends before its end, not cut short (`ends_early`, not asked)."""
        self._text.source = None
        if whole:
            self._told_no_json = True
        return NOT_JSON

    def whole(self, reply: dict[str, Any]) -> None:
        """A reply that was not streamed."""

    def erred(self, event: dict[str, Any]) -> bool:
        """Whether an event (its data read as JSON) is the upstream's error, as `event` would say (`in_band_error`):
        asked of an event past where the reply is read (`_late_event`)."""
        return False

    def late_words(self) -> tuple[bytes, ...]:
        """What an event `erred` says is an error holds, one of them at least, as its JSON text (`_late_errors`)."""
        return _LATE_WORDS

    def event(self, event: dict[str, Any]) -> None:
        """One streamed event."""

    def done(self) -> None:
        """The stream is over: read what was kept for the end, in order."""


def _wide_json_start(head: bytes, arrays: bool) -> bool | None:
    """Whether a reply's first bytes `head`, its first byte but white space a NUL or a byte order mark's, begin JSON in
    UTF-16 or UTF-32 as Python's `json.loads` of the bytes reads them (`json.detect_encoding`): an object, or an array
    where the API answers so (`arrays`), after white space. None when they are too few to tell (or white space alone)."""
    if len(head) < 4:  # (`json.detect_encoding` tells UTF-32 from UTF-16 by four)
        return None
    encoding = json.detect_encoding(head)
    if encoding.startswith("utf-8"):
        return False
    text = head.decode(encoding, "ignore").lstrip(" \t\r\n")  # (a last unit cut off dropped)
    if not text:
        return None
    return text[0] == "{" or (arrays and text[0] == "[")

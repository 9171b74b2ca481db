"""HTTP/1.1 replies parsed without a socket: fed bytes, a `ReplyParser` gives the head, body pieces, the end.

The parsing is llhttp's (through httptools), the C parser of Node.js and uvicorn, in its strict mode: it
frames the body (Content-Length, chunked, or until the connection closes), drops chunk extensions and
trailer fields, and refuses what is not HTTP/1.1 — bare-LF lines, a repeated Content-Length, one beside
Transfer-Encoding, a malformed chunk size or chunk end — which becomes `UpstreamProtocolError`. Here is
only what llhttp does not know or do:

- a reply to HEAD has no body whatever its head says, and llhttp cannot be told the request was HEAD
  (httptools ignores what `on_headers_complete` returns), so that reply is given to it a head at a time
  and is complete at its head;
- a reply with neither Content-Length nor Transfer-Encoding ends with the connection, which `feed_eof` says
  (httptools has no `llhttp_finish`); a Transfer-Encoding other than `chunked` alone (`gzip, chunked`, `gzip`)
  is refused, as the body is passed on framed anew and the field dropped: its client would get coded bytes
  undeclared;
- interim replies (100 Continue, 103 Early Hints) are skipped, and refused where llhttp would read a body
  after one; a 101 (no upgrade is ever asked for), a version other than 1.0 and 1.1 and a status outside
  100-599 are refused;
- a head over `MAX_HEAD` bytes, and over `MAX_CHUNK_LINE` bytes of chunked framing with no body in them (a
  chunk size line, extensions, a trailer field), are refused, as llhttp sets no limit;
- bytes after a complete reply end keep-alive (empty lines, which llhttp skips between replies, aside).

Nothing here does I/O: `connection.py` feeds it from a socket, tests by hand.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any, Final

from httptools import HttpParserCallbackError, HttpParserError, HttpParserUpgrade, HttpResponseParser
from multidict import CIMultiDict

from proxy.transport import UpstreamProtocolError

MAX_HEAD: Final = 64 * 1024
MAX_CHUNK_LINE: Final = 4096


def keep(table: dict[Any, Any], key: bytes | str, value: object, longest: int, most: int) -> None:
    """`table[key] = value` in a table of what peers send again and again (field names, reasons, Connection
    values), bounded: a key longer than `longest` (rare) is not kept, and a table of `most` entries is emptied
    first (a peer sending ever new keys makes none grow)."""
    if len(key) <= longest:
        if len(table) >= most:
            table.clear()
        table[key] = value


def utf8_text(value: bytes) -> str:
    """`value.decode("utf-8", "surrogateescape")`, decoded strictly first: compiled, a strict UTF-8 decode is CPython's
    decoder called at once, where naming an error handler has the codec looked up by its name (~400 machine
    instructions a short field value against ~150, callgrind, 2026-12-05). A value that is not UTF-8 (rare) is decoded
    again with the handler: the same text."""
    try:
        return value.decode()
    except UnicodeDecodeError:
        return value.decode("utf-8", "surrogateescape")


_LOWER_NAME_MAX: Final = 64  # bytes of a field name (or reason) kept in the tables by name


class ReplyFields:
    """A reply's header fields as received, read by name as a `CIMultiDict` reads them (`get`, `getall`, `in`,
    `[]`; names case-insensitive, values decoded UTF-8 with surrogateescape): a value is decoded only when asked
    for, as a reply's readers ask for a few of its fields (a CIMultiDict of every field decoded was 2.5 % of the
    CPU a proxied call). Names are ASCII tokens (llhttp refuses any other), so matching lower-case bytes is
    matching case-insensitively. A name is looked up in `index`, a dict, not searched for in `names`: a reply's
    readers ask for about seven names a call, most of which it does not have, and a search of the list compared
    the name with each field's in turn (a generic comparison each, ~3 % of a proxied call's instructions)."""

    def __init__(self, raw: list[tuple[bytes, bytes]], names: list[bytes]) -> None:
        self.raw = raw  # the fields as received (values less trailing whitespace)
        self.names = names  # their names, lower-case, in the same order
        self.index = first_places(names)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first field named `name`, or `default`."""
        at = self.index.get(_KEYS.get(name) or _key(name))  # (a name asked for before: its key without a call)
        return utf8_text(self.raw[at][1]) if at is not None else default

    def getall(self, name: str, default: Sequence[str] | None = None) -> Sequence[str]:
        """Every field named `name`, in order; `default` when there is none (KeyError without one, or with None,
        where a CIMultiDict would give None)."""
        key = _key(name)
        if key not in self.index:
            if default is None:
                raise KeyError(name)
            return default
        names, raw = self.names, self.raw
        return [raw[i][1].decode("utf-8", "surrogateescape") for i in range(len(names)) if names[i] == key]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and _key(name) in self.index

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __len__(self) -> int:
        return len(self.raw)

    def __iter__(self) -> Iterator[str]:
        """The fields' names, as a CIMultiDict of them decoded iterates them (nothing on a call's path does)."""
        return iter(self.decoded())

    def items(self) -> list[tuple[str, str]]:
        return [(name.decode("latin-1"), value.decode("utf-8", "surrogateescape")) for name, value in self.raw]

    def decoded(self) -> CIMultiDict[str]:
        """Every field decoded, as a CIMultiDict."""
        return CIMultiDict(self.items())

    def __eq__(self, other: object) -> bool:
        """Equal as the CIMultiDicts of the fields decoded are; to a CIMultiDict of them too, when this is the left
        operand (a CIMultiDict compares only with mappings)."""
        if isinstance(other, ReplyFields):
            return self.decoded() == other.decoded()
        return self.decoded() == other

    def __repr__(self) -> str:
        return f"ReplyFields({self.items()!r})"


def first_places(names: list[bytes]) -> dict[bytes, int]:
    """Each name's first place in `names` (set from the last place back: a repeated name's first place is set last,
    one dict write a name and no lookup)."""
    index: dict[bytes, int] = {}
    for at in range(len(names) - 1, -1, -1):
        index[names[at]] = at
    return index


def _key(name: str) -> bytes:
    """A field name as `ReplyFields` matches it: lower-case bytes. Kept by name: readers ask for the same few."""
    key = _KEYS.get(name)
    if key is None:
        key = name.lower().encode("utf-8", "surrogateescape")
        keep(_KEYS, name, key, _LOWER_NAME_MAX, 64)
    return key


_KEYS: Final[dict[str, bytes]] = {}


def lower_name(name: bytes) -> bytes:
    """A field name as received, lower-case. Kept by the name as sent: a peer sends the same few names on every
    message, so the lower-case bytes are made (and their hash computed, for the skip sets' lookups) once, not for
    every field of every message."""
    lower = _LOWER.get(name)
    if lower is None:
        lower = name.lower()
        keep(_LOWER, name, lower, _LOWER_NAME_MAX, 256)
    return lower


_LOWER: Final[dict[bytes, bytes]] = {}


def _reason(reason: bytes) -> str:
    """A status line's reason, decoded; kept by its bytes, as an upstream says the same few on every reply."""
    text = _REASONS.get(reason)
    if text is None:
        text = reason.decode("latin-1")
        keep(_REASONS, reason, text, _LOWER_NAME_MAX, 64)
    return text


_REASONS: Final[dict[bytes, str]] = {}


# A final reply's (status, reason, headers, content_length); content_length is None when the body's end is
# not known ahead (chunked, or until the connection closes), 0 when the reply has no body. A plain tuple, as
# before the split: a NamedTuple cost 2,700 more instructions per reply (cachegrind), 0.5% of a proxied call.
Head = tuple[int, str, ReplyFields, int | None]

_STATUS_LINE: Final = "not an HTTP/1.x status line:"
_STATUS_CODE: Final = "bad status code in"

# llhttp's reasons for refusing a reply, by what they are about (the first key found in the reason, lowercased),
# for messages in the proxy's words; the status-line kinds quote the line.
_KINDS: Final = (
    ("version", _STATUS_LINE),
    ("chunk data", "chunk data is not followed by CRLF"),
    ("chunk size", "bad chunk size"),
    ("chunk extension", "bad chunk extension"),
    ("content-length", "bad Content-Length"),
    ("transfer-encoding", "bad Transfer-Encoding"),
    ("expected cr", "a head line ends in a bare LF, not CRLF"),
    ("expected lf", "a head line ends in a bare CR, not CRLF"),
    ("status", _STATUS_CODE),
    ("header", "malformed header line"),
)

# llhttp reads a body after a 1xx other than 100, 102 and 103 when its head frames one (RFC 9110 §15.2: a
# 1xx has none); such a reply is refused instead.
_BODY_FIELDS: Final = frozenset({b"content-length", b"transfer-encoding"})


class ReplyParser:
    """The replies on one connection, one at a time: `start(method)` as each request is sent, then `feed`.

    After each `feed`: `head` once the final reply's head is in; the body received and not yet taken in
    `pieces` (`buffered` bytes; whoever takes the pieces clears both); `done` once the reply is complete;
    `keep_alive` while the connection may carry another request afterwards.

    The `on_*` methods are llhttp's callbacks (this object is its httptools protocol).
    """

    _head_only: bool
    _llhttp: HttpResponseParser | None
    _raised: UpstreamProtocolError | None
    done: bool
    keep_alive: bool

    def __init__(self, method: str = "GET") -> None:
        self.done = False
        self._raised = None  # what a callback refused (`_refusing`)
        self.pieces: deque[bytes] = deque()
        self.start(method)

    def start(self, method: str) -> None:
        """Expect the reply to a request with this method (HEAD's reply has no body)."""
        # llhttp is ready for the next reply only after one it completed itself on a kept-alive connection;
        # otherwise a new one is made when the first bytes come
        if not (self.done and self.keep_alive and not self._head_only):
            self._llhttp = None
        self._head_only = method == "HEAD"
        self._head_start = b""  # the start of the head being read (60 bytes or more), to quote its status line
        self._from_start = True  # `_head_start` begins with the reply's first byte (not so after an interim reply)
        self._tail = b""  # HEAD: the last bytes given to llhttp, for a head's end split across packets
        # the head's fields as received (values less trailing whitespace); `head` reads them by name
        self.raw_fields: list[tuple[bytes, bytes]] = []
        self._reason = b""
        self._idle = 0  # bytes fed since the last head or body byte came out (the MAX_HEAD, MAX_CHUNK_LINE limits)
        self.until_close = False  # the body ends with the connection (neither Content-Length nor chunked)
        self.head: Head | None = None
        self.keep_alive = True
        self.done = False
        self.pieces.clear()  # one deque for all the connection's replies: whoever takes its pieces empties it
        self.buffered = 0

    def let_go(self) -> None:
        """The reply was read to its end and its connection goes back to the pool: what the parser kept of it (the
        head, its fields, the reply's first bytes, held for messages) is let go now, with the call that used it,
        rather than when the connection carries its next request. With many calls in flight that is many calls
        later: each idle connection held its last reply's objects and first packet (~1.3 KB for a small chat reply)
        while other calls' objects were made and freed around them. Replaced, never emptied: a Response made from
        them keeps reading them."""
        self.head = None
        self.raw_fields = []
        self._head_start = b""
        self._reason = b""
        self._tail = b""

    def close(self) -> None:
        """The connection ended: llhttp, which holds this parser (each callback a bound method of it), is let go, so
        that the parser, and the reply it holds, is freed by reference counting with its call and connection. Before
        2026-12-05 (helper records) the two were a reference cycle that only the cyclic collector freed."""
        self._llhttp = None

    def feed(self, data: bytes) -> None:
        """The next bytes from the connection; raises UpstreamProtocolError when they are not HTTP/1.1."""
        if self.done:  # bytes after a complete reply: the connection cannot be trusted again
            if data.strip(b"\r\n"):
                self.keep_alive = False
        elif self._head_only:
            self._feed_heads(data)
        else:
            self._execute(data)

    def feed_eof(self) -> None:
        """The connection ended cleanly: that completes a close-delimited body, and nothing else."""
        if self.until_close:
            self.done = True

    def _feed_heads(self, data: bytes) -> None:
        """A reply to HEAD: llhttp is given up to each head's end only, as it would read the body announced."""
        while data:
            seen = self._tail + data
            end = seen.find(b"\r\n\r\n")  # where a head ends, llhttp being strict about CRLF
            if end < 0:
                self._tail = seen[-3:]
                self._execute(data)
                return
            cut = end + 4 - len(self._tail)
            self._tail = b""
            self._execute(data[:cut])
            data = data[cut:]
            if self.done:
                self.feed(data)
                return

    def _execute(self, data: bytes) -> None:
        buffered = self.buffered
        self._idle += len(data)
        if self.head is None and len(self._head_start) < 60:
            self._head_start = self._head_start + data[:60] if self._head_start else data
        llhttp = self._llhttp
        if llhttp is None:
            llhttp = self._llhttp = HttpResponseParser(self)
        try:
            llhttp.feed_data(data)
        except (HttpParserError, HttpParserUpgrade) as exc:
            if self.done:  # llhttp was stopped at (or refused) bytes after the complete reply
                self.keep_alive = False
                return
            # what a callback refused, kept by it (`_refusing`): not the error's __context__, which Python sets
            # to whatever exception is being handled when llhttp raises (wire.py's `_refusing` says more)
            # (raised as taken, not from a variable of this frame, which its traceback holds: a reference cycle)
            if isinstance(exc, HttpParserCallbackError) and self._raised is not None:
                raise self._taken() from None
            self._raised = None
            raise self._refusal(str(exc), data) from None
        if self.buffered != buffered or self.done:
            self._idle = 0
        elif self.head is None:
            if self._idle > MAX_HEAD:
                raise UpstreamProtocolError(f"reply head is over {MAX_HEAD} bytes")
        elif self._idle > MAX_CHUNK_LINE:
            raise UpstreamProtocolError(f"chunk framing without data is over {MAX_CHUNK_LINE} bytes")

    def _refusal(self, reason: str, data: bytes) -> UpstreamProtocolError:
        """llhttp's reason for refusing the reply (`data` the bytes it was given), in the proxy's words."""
        lowered = reason.lower()
        kind = next((kind for key, kind in _KINDS if key in lowered), _STATUS_LINE)
        if kind is _STATUS_LINE or kind is _STATUS_CODE:
            kind = f"{kind} {self._status_line(data)!r}"
        return UpstreamProtocolError(f"{kind} (llhttp: {reason})")

    def _refusing(self, error: UpstreamProtocolError) -> UpstreamProtocolError:
        """A callback's refusal, kept for `_execute`: llhttp stops and raises its own error."""
        self._raised = error
        return error

    def _taken(self) -> UpstreamProtocolError:
        """The callback's refusal `_execute` raises, no longer kept."""
        refused, self._raised = self._raised, None
        assert refused is not None
        return refused

    def _status_line(self, data: bytes = b"") -> bytes:
        """The status line being read, for messages (at most 60 bytes)."""
        return (self._head_start or data).lstrip(b"\r\n").split(b"\n", 1)[0].rstrip(b"\r")[:60]

    # -- llhttp's callbacks

    def on_message_begin(self) -> None:
        if self.done:
            raise self._refusing(
                UpstreamProtocolError("bytes after the reply")
            )  # stops llhttp; _execute ends keep-alive

    def on_status(self, reason: bytes) -> None:
        self._reason += reason  # in pieces when split across packets

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.head is None:  # not a trailer field
            self.raw_fields.append((name, value.rstrip(b" \t")))

    def on_headers_complete(self) -> None:
        llhttp = self._llhttp
        assert llhttp is not None  # it is calling
        self._idle = 0
        # the version from the status line llhttp has checked, when it is at hand: `get_http_version` formats a
        # new string for each reply
        start = self._head_start
        version = "1.1" if self._from_start and start.startswith(b"HTTP/1.1 ") else llhttp.get_http_version()
        if version != "1.1" and version != "1.0":
            raise self._refusing(UpstreamProtocolError(f"{_STATUS_LINE} {self._status_line()!r} (HTTP/{version})"))
        status = llhttp.get_status_code()
        if not 100 <= status <= 599:
            raise self._refusing(UpstreamProtocolError(f"{_STATUS_CODE} {self._status_line()!r} (not 100-599)"))
        if status < 200:
            if status == 101:  # the proxy never asks to switch protocols (it drops Upgrade): not an answer
                raise self._refusing(UpstreamProtocolError("101 Switching Protocols, though no upgrade was asked for"))
            if status not in (100, 102, 103) and any(name.lower() in _BODY_FIELDS for name, _ in self.raw_fields):
                raise self._refusing(UpstreamProtocolError(f"interim reply {status} frames a body"))
            self.raw_fields = []  # interim reply (100 Continue, 103 Early Hints): the real one follows
            self._reason = b""
            self._head_start = b""
            self._from_start = False
            return
        fields = self.raw_fields
        lower = _LOWER  # (a name seen before, as most are: its lower case without a call)
        names = [lower.get(name) or lower_name(name) for name, _ in fields]
        headers = ReplyFields(fields, names)
        index = headers.index
        self.keep_alive = llhttp.should_keep_alive()
        content_length: int | None
        if self._head_only:
            content_length = 0
            self.done = True  # llhttp, not told, would wait for the body the head announces
        elif status == 204 or status == 304:
            content_length = 0  # llhttp ends these itself
        elif (at := index.get(b"content-length")) is not None:  # llhttp has checked it: digits, once, no
            content_length = int(fields[at][1])  # Transfer-Encoding
        else:
            content_length = None  # chunked, or until the connection closes
            codings = (
                [fields[i][1] for i in range(len(names)) if names[i] == b"transfer-encoding"]
                if b"transfer-encoding" in index
                else []
            )
            if codings and (len(codings) > 1 or codings[0].strip(b" \t").lower() != b"chunked"):
                # a coding beside (or instead of) chunked: the proxy frames the body its own way and drops the field
                # (hop-by-hop), so its client would get the coded bytes with nothing saying so
                coding = b", ".join(codings).decode("latin-1")
                raise self._refusing(UpstreamProtocolError(f"Transfer-Encoding {coding!r}: only chunked alone is read"))
            self.until_close = not codings
        self.head = (status, _reason(self._reason), headers, content_length)

    def on_body(self, body: bytes) -> None:
        self.pieces.append(body)
        self.buffered += len(body)

    def on_message_complete(self) -> None:
        if self.head is not None:  # not an interim reply
            self.done = True

"""HTTP/1.1 replies parsed without a socket: fed bytes, a `ReplyParser` gives the head, body pieces, the end.

As in h11's `_readers.py`, the head (status line, header fields, at most `MAX_HEAD` bytes) is parsed
here and the body is read by one small reader per framing, picked from `READERS`:

- `ContentLengthReader`: exactly Content-Length bytes;
- `ChunkedReader`: chunked transfer coding, handed on de-chunked (extensions and trailer fields dropped);
- `UntilCloseReader`: no length given, so the body ends with the connection;
- `NoBodyReader`: replies to HEAD, and 101, 204 and 304 replies.

Interim replies (100 Continue, 103 Early Hints) are skipped. Bytes that are not HTTP/1.1 raise
`UpstreamProtocolError`. Nothing here does I/O: `connection.py` feeds it from a socket, tests by hand.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from typing import Final

from multidict import CIMultiDict

MAX_HEAD: Final = 64 * 1024
MAX_CHUNK_LINE: Final = 4096
_HEX: Final = re.compile(rb"[0-9A-Fa-f]{1,16}")


class UpstreamProtocolError(ConnectionError):
    """The upstream's reply is not valid HTTP/1.1."""


# A final reply's (status, reason, headers, content_length); content_length is None when the body's end is
# not known ahead (chunked, or until the connection closes), 0 when the reply has no body. A plain tuple, as
# before the split: a NamedTuple cost 2,700 more instructions per reply (cachegrind), 0.5% of a proxied call.
Head = tuple[int, str, CIMultiDict[str], int | None]


class BodyReader:
    """Reads one framing of a body; `done` once the body is complete.

    `feed(data, buf, out)` is given the bytes that just arrived and `buf`, the parser's buffer of earlier
    bytes not yet used (body or framing). It moves the body found at their front to `out`, leaves what
    it cannot use yet (and anything past the body's end) in `buf`, and returns how many body bytes it
    moved. A packet that is all body, with `buf` empty, goes to `out` as it is: no copy.
    """

    __slots__ = ("done",)

    def __init__(self, length: int) -> None:  # the Content-Length, for the framings that use it
        self.done = False

    def feed(self, data: bytes, buf: bytearray, out: deque[bytes]) -> int:
        raise NotImplementedError

    def eof(self) -> None:
        """The connection ended; that completes only a close-delimited body."""


class NoBodyReader(BodyReader):
    """No body: replies to HEAD, and 101, 204 and 304 replies."""

    __slots__ = ()

    def __init__(self, length: int) -> None:
        self.done = True

    def feed(self, data: bytes, buf: bytearray, out: deque[bytes]) -> int:
        buf += data
        return 0


class ContentLengthReader(BodyReader):
    """Exactly `length` bytes."""

    __slots__ = ("remaining",)

    def __init__(self, length: int) -> None:
        self.remaining = length
        self.done = not length

    def feed(self, data: bytes, buf: bytearray, out: deque[bytes]) -> int:
        taken = len(data)
        if buf or taken > self.remaining:
            buf += data
            data = bytes(buf[: self.remaining])
            del buf[: self.remaining]
            taken = len(data)
        if taken:
            out.append(data)
            self.remaining -= taken
            if not self.remaining:
                self.done = True
        return taken


_SIZE, _DATA, _CRLF, _TRAILERS = range(4)


class ChunkedReader(BodyReader):
    """Chunked transfer coding: one piece per chunk (or part of one); extensions and trailer fields are dropped."""

    __slots__ = ("remaining", "state")

    def __init__(self, length: int) -> None:
        self.done = False
        self.state = _SIZE
        self.remaining = 0  # of the current chunk's data

    def feed(self, data: bytes, buf: bytearray, out: deque[bytes]) -> int:
        if self.state == _DATA and not buf and 0 < len(data) <= self.remaining:
            out.append(data)
            self.remaining -= len(data)
            if not self.remaining:
                self.state = _CRLF
            return len(data)
        buf += data
        moved = 0
        while buf:
            state = self.state
            if state == _SIZE:
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > MAX_CHUNK_LINE:
                        raise UpstreamProtocolError("chunk size line is too long")
                    break
                line = bytes(buf[:end]).split(b";", 1)[0].strip()
                del buf[: end + 2]
                if _HEX.fullmatch(line) is None:  # int(x, 16) would take "0x3", "1_0" and "-1"
                    raise UpstreamProtocolError(f"bad chunk size {line[:20]!r}")
                size = int(line, 16)
                self.remaining = size
                self.state = _DATA if size else _TRAILERS
            elif state == _DATA:
                take = min(self.remaining, len(buf))
                out.append(bytes(buf[:take]))
                del buf[:take]
                moved += take
                self.remaining -= take
                if not self.remaining:
                    self.state = _CRLF
            elif state == _CRLF:
                if len(buf) < 2:
                    break
                if buf[:2] != b"\r\n":
                    raise UpstreamProtocolError("chunk data is not followed by CRLF")
                del buf[:2]
                self.state = _SIZE
            else:  # _TRAILERS: fields are dropped; an empty line ends the body
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > MAX_CHUNK_LINE:
                        raise UpstreamProtocolError("trailer line is too long")
                    break
                del buf[: end + 2]
                if end == 0:
                    self.done = True
                    break
        return moved


class UntilCloseReader(BodyReader):
    """No length given: everything until the connection closes (so the connection is not reused)."""

    __slots__ = ()

    def feed(self, data: bytes, buf: bytearray, out: deque[bytes]) -> int:
        if buf:
            buf += data
            data = bytes(buf)
            buf.clear()
        if data:
            out.append(data)
        return len(data)

    def eof(self) -> None:
        self.done = True


NO_BODY: Final = "no-body"
CONTENT_LENGTH: Final = "content-length"
CHUNKED: Final = "chunked"
UNTIL_CLOSE: Final = "until-close"

READERS: Final[dict[str, Callable[[int], BodyReader]]] = {
    NO_BODY: NoBodyReader,
    CONTENT_LENGTH: ContentLengthReader,
    CHUNKED: ChunkedReader,
    UNTIL_CLOSE: UntilCloseReader,
}


def framing(method: str, status: int, chunked: bool, length: int | None) -> str:
    """How a final reply's body is delimited (RFC 9112 §6.3), as a key of `READERS`."""
    if method == "HEAD" or status in (204, 304) or status == 101:
        return NO_BODY
    if chunked:
        return CHUNKED
    if length is not None:
        return CONTENT_LENGTH
    return UNTIL_CLOSE


class ReplyParser:
    """The replies on one connection, one at a time: `start(method)` as each request is sent, then `feed`.

    After each `feed`: `head` once the final reply's head is in; the body received and not yet taken in
    `pieces` (`buffered` bytes; whoever takes the pieces clears both); `done` once the reply is complete;
    `keep_alive` while the connection may carry another request afterwards.
    """

    __slots__ = ("_buf", "_method", "_reader", "buffered", "done", "head", "keep_alive", "pieces")

    def __init__(self, method: str = "GET") -> None:
        self.start(method)

    def start(self, method: str) -> None:
        """Expect the reply to a request with this method (HEAD's reply has no body)."""
        self._method = method
        self._buf = bytearray()
        self._reader: BodyReader | None = None  # None until the final head is in
        self.head: Head | None = None
        self.keep_alive = True
        self.done = False
        self.pieces: deque[bytes] = deque()
        self.buffered = 0

    def feed(self, data: bytes) -> None:
        """The next bytes from the connection; raises UpstreamProtocolError when they are not HTTP/1.1."""
        reader = self._reader
        buf = self._buf
        if reader is None:  # the head is not in yet
            buf += data
            reader = self._read_head(buf)
            if reader is None:
                return
            data = b""
        if reader.done:
            buf += data
        else:
            try:
                self.buffered += reader.feed(data, buf, self.pieces)
            except UpstreamProtocolError:
                self.buffered = sum(map(len, self.pieces))  # the pieces before the error are kept
                raise
            if not reader.done:
                return
        self.done = True
        if buf:  # bytes after a complete reply: the connection cannot be trusted again
            self.keep_alive = False
            buf.clear()

    def feed_eof(self) -> None:
        """The connection ended cleanly: that completes a close-delimited body, and nothing else."""
        reader = self._reader
        if reader is not None:
            reader.eof()
            self.done = reader.done

    def _read_head(self, buf: bytearray) -> BodyReader | None:
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    raise UpstreamProtocolError(f"reply head is over {MAX_HEAD} bytes")
                if b"\n\n" in buf:  # a head ended by bare LFs: not HTTP/1.1 as the proxy speaks it
                    raise UpstreamProtocolError("reply head lines end in a bare LF, not CRLF")
                return None
            head = bytes(buf[:end])
            del buf[: end + 4]
            reader = self._parse_head(head)
            if reader is not None:
                self._reader = reader
                return reader

    def _parse_head(self, head: bytes) -> BodyReader | None:
        """The body's reader, after setting `head` and `keep_alive`; None for an interim reply."""
        if b"\n" in head.replace(b"\r\n", b""):
            raise UpstreamProtocolError("a reply head line ends in a bare LF, not CRLF")
        lines = head.split(b"\r\n")
        status_line = lines[0].split(b" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/1."):
            raise UpstreamProtocolError(f"not an HTTP/1.x status line: {lines[0][:60]!r}")
        code = status_line[1]
        if len(code) != 3 or not code.isdigit() or not 100 <= int(code) <= 599:
            raise UpstreamProtocolError(f"bad status code in {lines[0][:60]!r}")  # three digits, 100 to 599
        status = int(code)
        if status == 101:  # the proxy never asks to switch protocols (it drops Upgrade): not an answer
            raise UpstreamProtocolError("101 Switching Protocols, though no upgrade was asked for")
        if 100 <= status < 200:
            return None  # interim reply (100 Continue, 103 Early Hints): the real one follows
        headers: CIMultiDict[str] = CIMultiDict()
        length: int | None = None
        chunked = False
        keep_alive = status_line[0] == b"HTTP/1.1"
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not name or name[-1:] in (b" ", b"\t") or line[:1] in (b" ", b"\t"):
                raise UpstreamProtocolError(f"malformed header line {line[:60]!r}")
            key = name.decode("latin-1")
            text = value.strip().decode("utf-8", "surrogateescape")
            lower = key.lower()
            if lower == "content-length":
                if not (text.isascii() and text.isdigit()) or (length is not None and int(text) != length):
                    raise UpstreamProtocolError(f"bad Content-Length {text[:20]!r}")
                length = int(text)
            elif lower == "transfer-encoding":
                chunked = text.lower().rsplit(",", 1)[-1].strip() == "chunked"
            elif lower == "connection":
                tokens = {t.strip().lower() for t in text.split(",")}
                if "close" in tokens:
                    keep_alive = False
                elif "keep-alive" in tokens:
                    keep_alive = True
            headers.add(key, text)
        kind = framing(self._method, status, chunked, length)
        self.keep_alive = keep_alive and kind != UNTIL_CLOSE
        reason = status_line[2].decode("latin-1") if len(status_line) > 2 else ""
        content_length = 0 if kind == NO_BODY else length if kind == CONTENT_LENGTH else None
        self.head = (status, reason, headers, content_length)
        return READERS[kind](length or 0)

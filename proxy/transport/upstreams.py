"""HTTP/1.1 to the upstreams: one keep-alive pool per upstream, written on asyncio's Protocol API.

The proxy's upstream traffic is narrow — one request at a time per connection, a body already in
memory, a reply that is either read whole or passed on chunk by chunk — so this client does only that,
without a general client's per-request machinery (against aiohttp's ClientSession it cut the proxy's
CPU per call by about a sixth on the benchmark). What it does:

- replies framed by Content-Length, by chunked transfer coding (handed on de-chunked), or by the end of
  the connection; HEAD, 1xx, 204 and 304 replies carry no body;
- `timeout_s` bounds the wait for the reply's head and for each chunk after it (a long generation that
  keeps streaming is never cut off); `connect_timeout_s` bounds the connect;
- at most `max_connections` per upstream; further requests wait for a free connection;
- a connection is reused only when its reply was read to the end and neither side said `close`; idle
  connections are dropped after `IDLE_S` (under the 5 s keep-alive of uvicorn, llama.cpp and Node, so
  the proxy does not reuse a connection the server is closing); a request on a reused connection that
  fails before any byte of the reply arrives is retried once on a new one, for idempotent methods only;
- back-pressure: reading from the upstream pauses while `HIGH_WATER` bytes wait for a slow client;
- abandoning a reply (client gone, cancelled) closes the connection, so the upstream sees it at once.
- a reload that changes an upstream retires its pool: calls in flight finish, no connection is kept.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

import orjson
from multidict import CIMultiDict

from proxy.checkpoints import MetadataStatus
from proxy.config import Upstream

IDLE_S = 4.0
HIGH_WATER = 1 << 20
LOW_WATER = 1 << 18
MAX_HEAD = 64 * 1024
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})

_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_CRLF, _TRAILERS, _UNTIL_CLOSE, _DONE = range(8)


class UpstreamProtocolError(ConnectionError):
    """The upstream's reply is not valid HTTP/1.1."""


class UpstreamClosed(ConnectionError):
    """The upstream closed the connection before the reply was complete."""


class _Connection(asyncio.Protocol):
    """One upstream connection: parses replies as bytes arrive and hands them to one reader."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.lost: BaseException | None = None  # set once the connection is gone
        self.reused = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self._reset(b"GET")

    def _reset(self, method: bytes) -> None:
        self.method = method
        self.state = _HEAD
        self.buf = bytearray()
        self.received = False  # any byte of this reply
        self.head: tuple[int, str, CIMultiDict[str], int | None] | None = None
        self.keep_alive = True
        self.remaining = 0
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's TCPTransport is not registered as one

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self._feed(data)
        except UpstreamProtocolError as exc:
            self._fail(exc)
            return
        if self.buffered > HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if self.state == _UNTIL_CLOSE and exc is None:
            self.state = _DONE
        if self.lost is None:  # a protocol error that aborted the connection stays the reason
            self.lost = exc or UpstreamClosed("the upstream closed the connection")
        self._wake()

    # -- parsing

    def _feed(self, data: bytes) -> None:
        if self.state == _LENGTH and not self.buf and len(data) <= self.remaining:  # common case: no copy
            self._body(data)
            self.remaining -= len(data)
            if self.remaining == 0:
                self.state = _DONE
            return
        self.buf += data
        while self.buf:
            state = self.state
            if state == _HEAD:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.buf) > MAX_HEAD:
                        raise UpstreamProtocolError(f"reply head is over {MAX_HEAD} bytes")
                    return
                head = bytes(self.buf[:end])
                del self.buf[: end + 4]
                self._parse_head(head)
            elif state == _LENGTH:
                take = min(self.remaining, len(self.buf))
                self._body(bytes(self.buf[:take]))
                del self.buf[:take]
                self.remaining -= take
                if self.remaining == 0:
                    self.state = _DONE
            elif state == _CHUNK_SIZE:
                end = self.buf.find(b"\r\n")
                if end < 0:
                    if len(self.buf) > 4096:
                        raise UpstreamProtocolError("chunk size line is too long")
                    return
                line = bytes(self.buf[:end]).split(b";", 1)[0].strip()
                del self.buf[: end + 2]
                try:
                    size = int(line, 16)
                except ValueError:
                    raise UpstreamProtocolError(f"bad chunk size {line[:20]!r}") from None
                if size < 0:
                    raise UpstreamProtocolError(f"bad chunk size {line[:20]!r}")
                self.remaining = size
                self.state = _CHUNK_DATA if size else _TRAILERS
            elif state == _CHUNK_DATA:
                take = min(self.remaining, len(self.buf))
                self._body(bytes(self.buf[:take]))
                del self.buf[:take]
                self.remaining -= take
                if self.remaining == 0:
                    self.state = _CHUNK_CRLF
            elif state == _CHUNK_CRLF:
                if len(self.buf) < 2:
                    return
                if self.buf[:2] != b"\r\n":
                    raise UpstreamProtocolError("chunk data is not followed by CRLF")
                del self.buf[:2]
                self.state = _CHUNK_SIZE
            elif state == _TRAILERS:  # trailer fields are dropped; an empty line ends the reply
                end = self.buf.find(b"\r\n")
                if end < 0:
                    return
                del self.buf[: end + 2]
                if end == 0:
                    self.state = _DONE
            elif state == _UNTIL_CLOSE:
                self._body(bytes(self.buf))
                self.buf.clear()
            else:  # _DONE: bytes after a complete reply; the connection cannot be trusted again
                self.keep_alive = False
                self.buf.clear()

    def _parse_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        status_line = lines[0].split(b" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/1."):
            raise UpstreamProtocolError(f"not an HTTP/1.x status line: {lines[0][:60]!r}")
        try:
            status = int(status_line[1])
        except ValueError:
            raise UpstreamProtocolError(f"bad status code in {lines[0][:60]!r}") from None
        if 100 <= status < 200 and status != 101:
            return  # interim reply (100 Continue, 103 Early Hints): the real one follows
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
                if not text.isdigit() or (length is not None and int(text) != length):
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
        self.keep_alive = keep_alive
        if self.method == b"HEAD" or status in (204, 304) or status == 101:
            self.state = _DONE
            body_length: int | None = 0
        elif chunked:
            self.state = _CHUNK_SIZE
            body_length = None
        elif length is not None:
            self.state = _LENGTH if length else _DONE
            self.remaining = length
            body_length = length
        else:
            self.state = _UNTIL_CLOSE
            self.keep_alive = False
            body_length = None
        self.head = (status, status_line[2].decode("latin-1") if len(status_line) > 2 else "", headers, body_length)

    def _body(self, data: bytes) -> None:
        if data:
            self.chunks.append(data)
            self.buffered += len(data)

    # -- waiting

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        self.lost = exc
        self.keep_alive = False
        if self.transport is not None:
            self.transport.abort()
        self._wake()

    async def wait(self, timeout: float) -> None:
        """Until more of the reply (or its end, or a failure) is here; TimeoutError after `timeout`."""
        waiter = self.loop.create_future()
        self._waiter = waiter
        timer = self.loop.call_later(timeout, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def take(self) -> bytes:
        """All the body bytes received and not yet taken."""
        chunks = self.chunks
        data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self.buffered = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data

    def send(self, method: str, head: bytes, body: bytes) -> None:
        self._reset(method.encode("latin-1"))
        assert self.transport is not None
        if len(body) < 65536:
            self.transport.write(head + body)
        else:
            self.transport.writelines((head, body))


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class Response:
    """An upstream reply: its head at once, its body read whole or chunk by chunk; then `release()`."""

    __slots__ = ("_conn", "_pool", "content_length", "headers", "reason", "status")

    def __init__(self, pool: _Pool, conn: _Connection) -> None:
        assert conn.head is not None
        self.status, self.reason, self.headers, self.content_length = conn.head
        self._pool = pool
        self._conn: _Connection | None = conn

    async def readany(self) -> bytes:
        """The next body bytes; b"" at the end. Raises UpstreamClosed/TimeoutError if the reply breaks off."""
        conn = self._conn
        if conn is None:
            return b""
        while not conn.chunks:
            if conn.state == _DONE:
                self.release()
                return b""
            if conn.lost is not None:
                raise _broken(conn.lost)
            await conn.wait(self._pool.upstream.timeout_s)
        return conn.take()

    async def read(self) -> bytes:
        parts = []
        while chunk := await self.readany():
            parts.append(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def release(self) -> None:
        """Give the connection back when the reply was read to its end; otherwise close it."""
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool.put(conn, conn.state == _DONE and not conn.chunks and conn.keep_alive and conn.lost is None)


def _broken(exc: BaseException) -> BaseException:
    if isinstance(exc, UpstreamProtocolError | UpstreamClosed):
        return exc
    return UpstreamClosed(f"the upstream connection broke: {type(exc).__name__}: {exc}")


class _Pool:
    """The connections to one upstream."""

    def __init__(self, upstream: Upstream) -> None:
        assert upstream.url is not None
        self.upstream = upstream
        parts = urlsplit(upstream.url)
        self.host = parts.hostname or "127.0.0.1"
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        self.prefix = parts.path.rstrip("/")
        default = parts.port is None or parts.port == (443 if self.tls else 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = (host if default else f"{host}:{self.port}").encode("latin-1")
        self.idle: list[_Connection] = []
        self.open = 0
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self.closed = False
        self.retired = False  # replaced by a reload: calls in flight finish, no connection is kept
        self._ssl: ssl.SSLContext | None = None

    async def request(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> Response:
        """Send one request; returns once the reply's head is in (its body follows through the Response)."""
        head = self._head(method, target, headers, body)
        for attempt in (0, 1):
            conn = await self._acquire()
            try:
                conn.send(method, head, body)
                while conn.head is None:
                    if conn.lost is not None:
                        raise _broken(conn.lost)
                    await conn.wait(self.upstream.timeout_s)
            except BaseException as exc:
                self.put(conn, False)
                stale = conn.reused and not conn.received and isinstance(exc, ConnectionError)
                if attempt == 0 and stale and method in IDEMPOTENT:
                    continue
                raise
            return Response(self, conn)
        raise AssertionError("unreachable")

    def _head(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
        lines = [f"{method} {self.prefix}{target} HTTP/1.1\r\nHost: ".encode("latin-1"), self.host_header, b"\r\n"]
        for name, value in headers:
            lines.append(f"{name}: {value}\r\n".encode("utf-8", "surrogateescape"))
        if body or method not in IDEMPOTENT:
            lines.append(b"Content-Length: %d\r\n" % len(body))
        lines.append(b"\r\n")
        return b"".join(lines)

    async def _acquire(self) -> _Connection:
        if self.closed:
            raise UpstreamClosed("the proxy is shutting down")
        now = time.monotonic()
        while self.idle:
            conn = self.idle.pop()
            if conn.lost is None and conn.keep_alive and now - conn.idle_since < IDLE_S:
                conn.reused = True
                return conn
            self._discard(conn)
        while self.open >= self.upstream.max_connections:
            waiter = asyncio.get_running_loop().create_future()
            self.waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if not waiter.cancelled() and waiter.done():  # woken but leaving: pass the turn on
                    self._wake_one()
                raise
            if self.idle:
                conn = self.idle.pop()
                if conn.lost is None and conn.keep_alive:
                    conn.reused = True
                    return conn
                self._discard(conn)
        self.open += 1
        try:
            return await self._connect()
        except BaseException:
            self.open -= 1
            self._wake_one()
            raise

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        if self.tls and self._ssl is None:
            self._ssl = ssl.create_default_context()
        async with asyncio.timeout(self.upstream.connect_timeout_s):
            _, conn = await loop.create_connection(
                lambda: _Connection(loop),
                self.host,
                self.port,
                ssl=self._ssl,
                server_hostname=self.host if self.tls else None,
            )
        return conn

    def put(self, conn: _Connection, reusable: bool) -> None:
        if reusable and not self.closed and not self.retired:
            conn.idle_since = time.monotonic()
            self.idle.append(conn)
        else:
            self._discard(conn)
        self._wake_one()

    def _discard(self, conn: _Connection) -> None:
        self.open -= 1
        if conn.transport is not None and conn.lost is None:
            conn.transport.abort()

    def _wake_one(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def retire(self) -> None:
        self.retired = True
        while self.idle:
            self._discard(self.idle.pop())

    def close(self) -> None:
        self.closed = True
        while self.idle:
            self._discard(self.idle.pop())
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_exception(UpstreamClosed("the proxy is shutting down"))


class UpstreamPool:
    """Connection pools by upstream name; created on first use, closed together."""

    def __init__(self) -> None:
        self._pools: dict[str, _Pool] = {}
        self._retired: list[_Pool] = []

    def pool(self, upstream: Upstream) -> _Pool:
        pool = self._pools.get(upstream.name)
        if pool is not None:
            if pool.upstream is upstream:
                return pool
            if pool.upstream == upstream:  # an identical upstream after a reload keeps its pool
                pool.upstream = upstream
                return pool
            pool.retire()  # changed on reload: a new pool; the old one lets its calls in flight finish
            self._retired.append(pool)
        pool = self._pools[upstream.name] = _Pool(upstream)
        return pool

    async def request(
        self, upstream: Upstream, method: str, target: str, headers: list[tuple[str, str]], body: bytes = b""
    ) -> Response:
        return await self.pool(upstream).request(method, target, headers, body)

    async def get_json(self, upstream: Upstream, path: str) -> Any:
        """A metadata GET for checkpoint discovery and readiness; MetadataStatus on non-2xx."""
        headers = [("Authorization", f"Bearer {upstream.api_key}")] if upstream.api_key else []
        async with asyncio.timeout(min(upstream.timeout_s, 10.0)):
            resp = await self.request(upstream, "GET", path, headers)
            try:
                body = await resp.read()
            finally:
                resp.release()
        if resp.status >= 300:
            raise MetadataStatus(resp.status, path)
        try:
            return orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            return None

    async def close(self) -> None:
        for pool in [*self._pools.values(), *self._retired]:
            pool.close()
        self._pools.clear()
        self._retired.clear()

"""HTTP/1.1 to the upstreams: one keep-alive pool of connections per upstream, a reply as a `Response`.

The proxy's upstream traffic is narrow — one request at a time per connection, a body already in
memory, a reply that is either read whole or passed on chunk by chunk — so this client does only that,
without a general client's per-request machinery (against aiohttp's ClientSession it cut the proxy's
CPU per call by about a sixth on the benchmark). One connection is `connection.py`, the reply's framing
`http11.py`. What the pool promises:

- `timeout_s` bounds the wait for the reply's head, whole (interim replies and a head in pieces get no more time),
  and for each chunk after it (a long generation that keeps streaming is never cut off); `connect_timeout_s` bounds
  the connect;
- at most `max_connections` per upstream; further requests wait for a free connection;
- a connection is reused only when its reply was read to the end and neither side said `close`; idle
  connections are dropped after `IDLE_S` (under the 5 s keep-alive of uvicorn, llama.cpp and Node, so
  the proxy does not reuse a connection the server is closing); a request on a reused connection that
  fails before any byte of the reply arrives is retried once on a new one, for idempotent methods only;
- an idle connection the upstream closes, or sends anything on, is closed and dropped at once: late bytes
  after a reply never become the next request's reply (bytes the loop has not read yet when the
  connection is taken again cannot be told from that request's reply: HTTP/1.1 has no request ids);
- abandoning a reply (client gone, cancelled) closes the connection, so the upstream sees it at once;
- a reply whose call ended before the reply did (a stream's last event, with the upstream's body still open) is
  read off apart from the call (`Response.read_off`): the client is not kept waiting for bytes no one is given, and
  the connection is kept if the reply ends within `timeout_s` and `READ_OFF_MAX` bytes, and closed if not, or as
  soon as a call waits for a connection (`max_connections` reached);
- a reload that changes or removes an upstream retires its pool: calls in flight finish, no connection is kept;
- a metadata GET (checkpoint discovery, readiness, a merged model list) takes a free pooled connection, and
  when calls hold every one (`max_connections`), a connection of its own outside that budget, one at a time,
  closed after its reply: a busy upstream answers its metadata and is not reported down, while one that
  does not answer (down, hung) is, however full its pool. So an upstream sees at most `max_connections` + 1.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import ssl
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Final, cast
from urllib.parse import urlsplit

import orjson

from proxy.checkpoints import METADATA_TIMEOUT_S, MetadataStatus
from proxy.config import Upstream
from proxy.config.loader import token_hidden
from proxy.errors import Overloaded
from proxy.tls import client_context_in_thread
from proxy.transport import MetadataTooLarge, UpstreamClosed, UpstreamConnectTimeout, UpstreamProtocolError
from proxy.transport.connection import Connection
from proxy.transport.http11 import keep

log = logging.getLogger("lineage_proxy")
_monotonic: Final = time.monotonic  # compiled, a C static: not looked up in the time module at each use

IDLE_S = 4.0
# bytes of a metadata reply read whole (`ConnectionPool.get`: discovery, readiness, a merged `/v1/models`); past them
# it is cut: read whole without a bound, an upstream answering with gigabytes (or a body that never ends) had all of
# it held, for up to the metadata request's 10 s, at every discovery round and every client's listing
METADATA_MAX_BYTES: Final = 16 << 20
READ_OFF_MAX: Final = 1 << 20  # bytes of a reply past its call's end read off to keep its connection (`read_off`)
# a request's header fields; or their block already encoded, whole or in pieces (`forward_fields`: joined once, with
# the request line, and the list emptied)
Fields = list[tuple[str, str]] | list[bytes] | bytes
IDEMPOTENT: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
# the request lines a pool keeps (`ConnectionPool._request_line`): of targets up to 256 characters, at most 64 of them
_TARGET_KEPT_MAX: Final = 256
_TARGETS_KEPT: Final = 64


class Response:
    """An upstream reply: its head at once, its body read whole or chunk by chunk; then `release()`."""

    def __init__(self, pool: ConnectionPool, conn: Connection) -> None:
        head = conn.parser.head
        assert head is not None
        self.status, self.reason, self.headers, self.content_length = head
        self.raw_headers = conn.parser.raw_fields  # the same fields as sent (bytes), to pass on without re-encoding
        self.until_close = conn.parser.until_close  # the body ends with the connection: its end may be a cut
        self._pool = pool
        self._conn: Connection | None = conn

    async def readany(self) -> bytes:
        """The next body bytes; b"" at the end. Raises UpstreamClosed/TimeoutError if the reply breaks off."""
        conn = self._conn
        if conn is None:
            return b""
        parser = conn.parser
        while not parser.pieces:
            if parser.done:
                self.release()
                return b""
            if conn.lost is not None:
                raise _broken(conn.lost)
            await conn.wait(self._pool.upstream.timeout_s)
        return conn.take()

    def more(self) -> asyncio.Future[None] | None:
        """`readany`'s wait without its coroutine (a stream waits before its every event): None at the reply's
        end (the connection released, as `readany` leaves it); else what to await before `buffered` has more
        (or this says the end): the connection's future, done already when body bytes are here. Raises as
        `readany` does when the reply broke off."""
        conn = self._conn
        if conn is None:
            return None
        parser = conn.parser
        if parser.pieces:
            here = conn.loop.create_future()
            here.set_result(None)
            return here
        if parser.done:
            self.release()
            return None
        if conn.lost is not None:
            raise _broken(conn.lost)
        return conn.wait(self._pool.upstream.timeout_s)

    def buffered(self) -> bytes:
        """The body bytes already received, without waiting; b"" when none have come yet."""
        conn = self._conn
        if conn is None or not conn.parser.pieces:
            return b""
        return conn.take()

    def complete(self) -> bytes | None:
        """The whole body, when the reply is already complete (no wait), the connection released as `read`
        leaves it; None while more of it is to come (then `read`). A small reply comes with its head."""
        conn = self._conn
        if conn is None or not conn.parser.done:
            return None
        data = conn.take() if conn.parser.pieces else b""
        self.release()
        return data

    def read_off(self) -> None:
        """The rest of the reply is no one's: the call ended at its last event, and its client has its body's end
        (`HttpIngress._streamed_reply`). Read off and dropped apart from the call, the connection given back once
        the reply ends (`ConnectionPool.read_off`); at once when it is over already, or cannot be kept."""
        conn = self._conn
        if conn is None:
            return
        parser = conn.parser
        if parser.pieces:
            conn.take()
        if parser.done or conn.lost is not None or not parser.keep_alive:
            self.release()
            return
        self._conn = None
        self._pool.read_off(conn)

    async def read(self) -> bytes:
        parts = []
        while chunk := await self.readany():
            parts.append(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def release(self) -> None:
        """Give the connection back when the reply was read to its end; otherwise close it."""
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool.put(conn, _read_whole(conn))


class _Aside(Response):
    """A reply on a connection of its own, outside the pool's budget (`ConnectionPool.get`): read as any reply,
    but never given to the pool; closed after its reply, cut when left before its end."""

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            _close_aside(conn)


def _close_aside(conn: Connection) -> None:
    """An aside connection is used once: closed after its reply, cut when left before its end (timed out,
    broken off, cancelled)."""
    if conn.transport is not None:
        if conn.parser.done and conn.lost is None:
            conn.transport.close()
        else:
            conn.transport.abort()


async def _whole(resp: Response) -> tuple[int, bytes]:
    """The reply's status and its body read whole, up to `METADATA_MAX_BYTES` (past them MetadataTooLarge); the
    connection released however the read ends (closed when the reply was not read to its end)."""
    parts: list[bytes] = []
    size = 0
    try:
        if resp.content_length is not None and resp.content_length > METADATA_MAX_BYTES:
            raise MetadataTooLarge(f"a metadata reply of {resp.content_length} bytes: over {METADATA_MAX_BYTES}")
        while chunk := await resp.readany():
            size += len(chunk)
            if size > METADATA_MAX_BYTES:
                raise MetadataTooLarge(f"a metadata reply over {METADATA_MAX_BYTES} bytes")
            parts.append(chunk)
    finally:
        resp.release()
    return resp.status, parts[0] if len(parts) == 1 else b"".join(parts)


def _read_whole(conn: Connection) -> bool:
    """Whether a connection's reply was read to its end, every byte taken, and the connection may carry another."""
    parser = conn.parser
    return parser.done and not parser.pieces and parser.keep_alive and conn.lost is None


def _reusable(conn: Connection) -> bool:
    """Whether an idle connection may carry a request: not lost, kept alive, and not closing (its transport closes
    itself on the upstream's FIN, and `connection_lost`, which drops it from the pool, comes a turn of the loop
    later: a request sent in that turn is never sent at all)."""
    transport = conn.transport
    return conn.lost is None and conn.parser.keep_alive and transport is not None and not transport.is_closing()


def _abandon(made: list[Connection]) -> None:
    """The connect that made these connections failed, or was cancelled (its call's client left, the connect timeout)
    once its socket was: uvloop then closes the socket's transport without telling its connection (no
    `connection_lost`), and the two hold each other (and the connection its reply's parser) in a reference cycle that
    only the cyclic collector freed (before 2026-12-05, helper records). Let go of here."""
    for conn in made:
        conn.abandon()


def _broken(exc: BaseException) -> BaseException:
    """What a call raises for its connection's `lost`: a copy of the proxy's own errors, not the one the connection
    keeps, whose traceback would hold the raising frames, which hold the connection (a reference cycle that kept
    the call's frames and the body it forwarded for the collector)."""
    if isinstance(exc, UpstreamProtocolError | UpstreamClosed):
        return type(exc)(*exc.args)
    return UpstreamClosed(f"the upstream connection broke: {type(exc).__name__}: {exc}")


def _token_hidden_in(exc: OSError, url: str) -> None:
    """A failed connect's words with what may be a token in `url` hidden (`token_hidden`), in place, for every reader
    of them (a call's error reply and record, the metadata's warning, a traceback): a TLS handshake that met a
    certificate not for the url's host names it, "Hostname mismatch, certificate is not valid for 'gw'", and such a
    host is the token's first piece. Until 2026-12-06 quoted."""
    if isinstance(exc.strerror, str):
        exc.strerror = token_hidden(exc.strerror, url)
    exc.args = tuple(token_hidden(arg, url) if isinstance(arg, str) else arg for arg in exc.args)
    if isinstance(exc, ssl.SSLCertVerificationError) and isinstance(exc.verify_message, str):
        exc.verify_message = token_hidden(exc.verify_message, url)


class ConnectionPool:
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
        # a target's request line and the Host field's name, encoded, with its method (`_request_line`)
        self.lines: dict[str, tuple[str, bytes]] = {}
        # a url whose host may be a token's first piece (`token_hidden`): hidden in the words of a failed connect
        self._token_url = upstream.url if token_hidden(upstream.url, upstream.url) != upstream.url else None
        self.idle: list[Connection] = []
        self.open = 0
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        # waiters woken (out of `waiters`) that have not run yet: still waiting, so counted against max_queue; a call
        # that takes the connection one was woken for first (a free connection is taken at once) leaves it queued
        self.woken = 0
        self.closed = False
        self.retired = False  # replaced by a reload: calls in flight finish, no connection is kept
        self._ssl: ssl.SSLContext | None = None
        # the context being made (`_context`), which the connections opened meanwhile wait for
        self._making: asyncio.Future[ssl.SSLContext] | None = None
        self._aside: asyncio.Lock | None = None  # the one metadata GET outside max_connections at a time
        self.reading_off: set[asyncio.Future[bool]] = set()  # replies read off past their call's end (`read_off`)

    async def request(
        self, method: str, target: str, headers: Fields, body: bytes, aside: bool = False,
        sent: Callable[[], None] | None = None,
    ) -> Response:  # fmt: skip
        """Send one request; returns once the reply's head is in (its body follows through the Response).
        `headers`: (name, value) pairs, or a header block already encoded (`Name: value\r\n` lines), whole or as a
        list of pieces (taken: the list is emptied once they are in the head).
        `aside`: on a new connection outside `max_connections`, closed after its reply (`get` only).
        `sent`: called once the request is written (to the transport, or, with several calls in flight, to
        the loop's outbox, which sends it with the turn's other writes: `proxy.transport.batch`), before the
        wait for the reply (work that need not delay the request runs there, while the upstream computes); what it
        raises fails the request. Called once, after the send that went out: a send that may yet be retried
        (an idempotent request on a reused connection, which the upstream may have closed) calls it once
        the reply's first byte is in, or leaves it to the retry's send."""
        head, body = self._head(method, target, headers, body)
        for attempt in (0, 1):
            if aside:
                conn = await self._connect()
            else:
                idle = self._idle_one()
                conn = idle if idle is not None else await self._acquire()
            try:
                conn.send(method, head, body)
                later = sent if attempt == 0 and conn.reused and method in IDEMPOTENT else None
                if sent is not None and later is None:
                    sent()
                parser = conn.parser
                # one deadline for the whole head: what comes before it (an interim 103 Early Hints, a byte of the
                # head) wakes the wait but gives the upstream no more time, or it could hold the call for good
                deadline = conn.loop.time() + self.upstream.timeout_s
                while parser.head is None:
                    if conn.lost is not None:
                        raise _broken(conn.lost)
                    await conn.wait(deadline - conn.loop.time())
                    if later is not None and conn.received:  # the upstream has the request: it is not retried
                        later()
                        later = None
            except BaseException as exc:
                if aside:  # new, so never stale
                    _close_aside(conn)
                    raise
                self.put(conn, False)
                stale = conn.reused and not conn.received and isinstance(exc, ConnectionError)
                if attempt == 0 and stale and method in IDEMPOTENT:
                    continue
                raise
            return _Aside(self, conn) if aside else Response(self, conn)
        raise AssertionError("unreachable")

    async def get(self, target: str, headers: Fields) -> tuple[int, bytes]:
        """A metadata GET, read whole: on a pooled connection when one is free (or may be opened), else on a
        connection of its own outside `max_connections`, so calls holding the pool never make the upstream
        look down (see the module docstring). The caller bounds the time it takes."""
        if self.closed or self.idle or self.open < self.upstream.max_connections:
            return await _whole(await self.request("GET", target, headers, b""))
        if self._aside is None:
            self._aside = asyncio.Lock()
        async with self._aside:
            return await _whole(await self.request("GET", target, headers, b"", True))

    def _head(self, method: str, target: str, headers: Fields, body: bytes) -> tuple[bytes, bytes]:
        """The request's head, with its body when small (under 64 KiB: sent with the head, joined once); and what
        is left to send after it (a large body, not copied to be joined; else nothing)."""
        lines = [self._request_line(method, target), self.host_header, b"\r\n"]
        if isinstance(headers, bytes):
            lines.append(headers)
        elif headers and isinstance(headers[0], bytes):  # a block in pieces: joined once, here, and let go
            lines.extend(headers)
            headers.clear()
        else:
            for name, value in cast(list[tuple[str, str]], headers):
                lines.append(f"{name}: {value}\r\n".encode("utf-8", "surrogateescape"))
        if body or method not in IDEMPOTENT:
            lines.append(b"Content-Length: %d\r\n" % len(body))
        lines.append(b"\r\n")
        if len(body) < 65536:
            lines.append(body)
            body = b""
        return b"".join(lines), body

    def _request_line(self, method: str, target: str) -> bytes:
        """The request line and the Host field's name, encoded. Kept by target: calls to an upstream go to the same
        few paths (`/v1/chat/completions`), so the line is made once, not formatted and encoded again for each."""
        kept = self.lines.get(target)
        if kept is not None and kept[0] == method:
            return kept[1]
        line = f"{method} {self.prefix}{target} HTTP/1.1\r\nHost: ".encode("latin-1")
        keep(self.lines, target, (method, line), _TARGET_KEPT_MAX, _TARGETS_KEPT)
        return line

    def _idle_one(self) -> Connection | None:
        """An idle connection fit for reuse, taken from the pool (those too old or broken are dropped); None
        when there is none, or the pool is closed (`_acquire` then waits, connects, or raises). No coroutine
        for the usual case, a free connection."""
        if self.closed:
            return None
        now = _monotonic()
        while self.idle:
            conn = self.idle.pop()
            if _reusable(conn) and now - conn.idle_since < IDLE_S:
                conn.reused = True
                conn.idle = False
                return conn
            self._discard(conn)
        return None

    async def _acquire(self) -> Connection:
        if self.closed:
            raise UpstreamClosed("the proxy is shutting down")
        idle = self._idle_one()
        if idle is not None:
            return idle
        queued = False  # woken once already: its turn is kept (`woken`)
        while self.open >= self.upstream.max_connections:
            if self.reading_off:  # a reply read off past its call's end is no one's: its connection goes to this call
                self.reading_off.pop().cancel()  # (closed: `_read_off_done`; out of the set now, no other call counts on it)
            elif not queued and len(self.waiters) + self.woken >= self.upstream.max_queue:
                # (a call freeing one waits for it, whatever max_queue)
                raise Overloaded(
                    f"upstream {self.upstream.name!r} is saturated: {self.upstream.max_connections} calls in "
                    f"flight and {self.upstream.max_queue} waiting (upstreams[].max_queue); retry shortly"
                )
            waiter = asyncio.get_running_loop().create_future()
            if queued:  # a call that took the connection it was woken for went first: this one waits at the head
                self.waiters.appendleft(waiter)
            else:
                self.waiters.append(waiter)
            queued = True
            try:
                await waiter
            except BaseException:
                if not waiter.cancelled() and waiter.done():  # woken but leaving: pass the turn on
                    if waiter.exception() is None:
                        self.woken -= 1
                    self._wake_one()
                else:  # left while waiting: no longer counts against max_queue
                    with contextlib.suppress(ValueError):
                        self.waiters.remove(waiter)
                raise
            self.woken -= 1
            if self.idle:
                conn = self.idle.pop()
                if _reusable(conn):
                    conn.reused = True
                    conn.idle = False
                    return conn
                self._discard(conn)
        self.open += 1
        try:
            return await self._connect()
        except BaseException:
            self.open -= 1
            self._wake_one()
            raise

    async def _connect(self) -> Connection:
        loop = asyncio.get_running_loop()
        settings = self.upstream.tls
        context = self._ssl
        made: list[Connection] = []  # the connection made for the socket, once it is (`_made_for`)
        try:
            async with asyncio.timeout(self.upstream.connect_timeout_s):
                if self.tls and context is None:  # (its files on a hung mount: no connection within the timeout)
                    context = await self._context()
                _, conn = await loop.create_connection(
                    functools.partial(self._made_for, loop, made),
                    self.host,
                    self.port,
                    ssl=context,
                    server_hostname=(settings.server_name if settings else None) or self.host if self.tls else None,
                )
        except TimeoutError:  # not the reply's `timeout_s`: the upstream is not reached (502, /readyz), as over gRPC
            _abandon(made)
            what = "TCP connect and TLS handshake" if self.tls else "TCP connect"
            raise UpstreamConnectTimeout(
                f"no connection within connect_timeout_s {self.upstream.connect_timeout_s:g} ({what})"
            ) from None
        except BaseException as exc:
            _abandon(made)
            if self._token_url is not None and isinstance(exc, OSError):
                _token_hidden_in(exc, self._token_url)
            raise
        return conn

    def _made_for(self, loop: asyncio.AbstractEventLoop, made: list[Connection]) -> Connection:
        """A connection for the socket being connected, kept in `made` (`_abandon`, should the connect not end)."""
        conn = Connection(loop, self._idle_lost)
        made.append(conn)
        return conn

    async def _context(self) -> ssl.SSLContext:
        """The upstream's CA and the proxy's client certificate, read in a thread: the system's CAs (no `ca` of its
        own) take ~40 ms of CPU to load, for which the event loop, and every call on it, would stand still. Made once
        for the connections opened meanwhile (each made its own: a burst of calls at start loaded the CAs once a
        connection), and kept for the next ones (`_made`). Made on a daemon thread (`client_context_in_thread`): a file
        that never comes (a hung mount) holds neither the stop nor, past its connect timeout, the calls."""
        making = self.context_soon()
        assert making is not None
        return await asyncio.shield(making)  # (a call that leaves does not cancel it for the others)

    def context_soon(self) -> asyncio.Future[ssl.SSLContext] | None:
        """The TLS context being made for the next connections (begun now unless it is already), None when there is
        none to make (plain HTTP, or made already): at start, so that the first connection's connect_timeout_s
        covers its connect and not the loading of the system's CAs (`UpstreamPool.prepare_tls`)."""
        if not self.tls or self._ssl is not None:
            return None
        making = self._making
        if making is None:
            making = self._making = client_context_in_thread(self.upstream.tls)
            making.add_done_callback(self._made)
        return making

    def has_context(self) -> bool:
        """Whether its TLS context is made or being made (`context_soon`, a reload's `adopt_context`)."""
        return self._ssl is not None or self._making is not None

    def adopt_context(self, making: asyncio.Future[ssl.SSLContext]) -> None:
        """The TLS context a reload began making off the loop for this pool's upstream before it applied
        (`UpstreamPool.contexts_to_make`), made or being made, for its next connections, which would make one in
        their connect_timeout_s (one it had, or was making, read the files as they were before)."""
        if not self.tls:
            return
        self._ssl = None
        self._making = making
        making.add_done_callback(self._made)

    def _made(self, making: asyncio.Future[ssl.SSLContext]) -> None:
        """A context made is kept unless a reload asked for the files to be read again meanwhile (`reread_tls`: it
        was read before they were renewed); one that could not be made is tried again by the next connection."""
        if making is not self._making:
            return
        self._making = None
        if not making.cancelled() and making.exception() is None:
            self._ssl = making.result()

    def put(self, conn: Connection, reusable: bool) -> None:
        if reusable and not self.closed and not self.retired:
            conn.parser.let_go()  # its reply is its call's: freed with it, not when the connection is next used
            conn.idle_since = _monotonic()
            conn.idle = True
            self.idle.append(conn)
        else:
            self._discard(conn)
        self._wake_one()

    def read_off(self, conn: Connection) -> None:
        """Read the rest of `conn`'s reply and drop it, then give the connection back; closed when the reply does not
        end within the upstream's `timeout_s` from now, or holds more than `READ_OFF_MAX` bytes, or breaks off, or
        when a call waits for a connection (`_acquire` cancels the reading, begun or not)."""
        reading = asyncio.ensure_future(self._read_off(conn))
        self.reading_off.add(reading)
        reading.add_done_callback(functools.partial(self._read_off_done, conn))

    def _read_off_done(self, conn: Connection, reading: asyncio.Future[bool]) -> None:
        """The reading is over: the connection given back, kept when the reply ended whole; closed when it did not, or
        the reading was cancelled (a task cancelled before it began never runs its coroutine, so this does it)."""
        self.reading_off.discard(reading)
        self.put(conn, not reading.cancelled() and reading.exception() is None and reading.result())

    async def _read_off(self, conn: Connection) -> bool:
        """Whether the reply was read to its end and the connection may carry another request."""
        parser = conn.parser
        loop = conn.loop
        deadline = loop.time() + self.upstream.timeout_s
        dropped = 0
        try:
            while conn.lost is None and dropped <= READ_OFF_MAX:
                if parser.pieces:
                    dropped += len(conn.take())
                elif parser.done:
                    break
                else:
                    await conn.wait(deadline - loop.time())
        except TimeoutError:
            pass
        return _read_whole(conn)

    def _idle_lost(self, conn: Connection) -> None:
        """An idle connection ended (the upstream closed it, or sent bytes nobody asked for): out of the pool."""
        log.debug("upstream %s: idle connection dropped: %s", self.upstream.name, conn.lost)
        self.idle.remove(conn)
        self._discard(conn)
        self._wake_one()

    def _discard(self, conn: Connection) -> None:
        conn.idle = False
        self.open -= 1
        if conn.transport is not None and conn.lost is None:
            conn.transport.abort()

    def _wake_one(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self.woken += 1
                return

    def reread_tls(self) -> None:
        """Its next connection makes its TLS context again, reading the upstream's TLS files as they are then
        (a reload: a client certificate, key or CA renewed in place); connections open keep theirs. One with no
        files of its own (`tls:` unset: the system's CAs, ~50 ms to load, in the call that connects next) keeps
        its context."""
        if self.upstream.tls is not None:
            self._ssl = None
            self._making = None  # one being made read the files before: not kept

    def retire(self) -> None:
        self.retired = True
        while self.idle:
            self._discard(self.idle.pop())

    def close(self) -> None:
        self.closed = True
        while self.idle:
            self._discard(self.idle.pop())
        for reading in self.reading_off:  # a reply past its call's end is no one's: not waited for
            reading.cancel()
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_exception(UpstreamClosed("the proxy is shutting down"))


class UpstreamPool:
    """Connection pools by upstream name; created on first use, closed together."""

    def __init__(self) -> None:
        self._pools: dict[str, ConnectionPool] = {}
        self._retired: list[ConnectionPool] = []
        self._names: frozenset[str] | None = None  # the config in force's upstreams, once told (`use`)

    def use(self, upstreams: Iterable[Upstream]) -> None:
        """The config in force (at start and on every reload): the pool of an upstream it no longer names (removed
        or renamed) is retired as a changed one's is, its idle connections closed at once. Kept, it would hold them
        open for as long as the upstream does (Go's net/http without an IdleTimeout: for good), a reload a deploy."""
        self._names = frozenset(upstream.name for upstream in upstreams)
        for name in [name for name in self._pools if name not in self._names]:
            self._retire(self._pools.pop(name))

    def pool(self, upstream: Upstream) -> ConnectionPool:
        pool = self._pools.get(upstream.name)
        if pool is not None:
            if pool.upstream is upstream:
                return pool
            if pool.upstream == upstream:  # an identical upstream after a reload keeps its pool
                pool.upstream = upstream
                return pool
        for old in self._retired:  # a call decided before the reload: the pool it was decided for, retired
            if old.upstream is upstream:
                return old
        if self._names is not None and upstream.name not in self._names:
            # decided before a reload removed its upstream: a pool of its own, retired, that keeps no connection
            pool = ConnectionPool(upstream)
            self._retire(pool)
            return pool
        if pool is not None:  # changed on reload: a new pool; the old one lets its calls in flight finish
            self._retire(pool)
        pool = self._pools[upstream.name] = ConnectionPool(upstream)
        return pool

    def _retire(self, pool: ConnectionPool) -> None:
        """`pool` takes no new connection and keeps none; it is kept while calls are in flight on it (those idle or
        done before are let go: a reload a minute over days would otherwise keep every pool it replaced)."""
        pool.retire()
        self._retired = [old for old in self._retired if old.open or old.waiters]
        self._retired.append(pool)

    def request(
        self, upstream: Upstream, method: str, target: str, headers: Fields, body: bytes = b"",
        sent: Callable[[], None] | None = None,
    ) -> Coroutine[Any, Any, Response]:  # fmt: skip
        """`ConnectionPool.request` on `upstream`'s pool: its coroutine, to await (not one awaiting it: a frame less
        a call)."""
        return self.pool(upstream).request(method, target, headers, body, sent=sent)

    def reread_tls(self) -> None:
        """A reload: each pool's next connection reads its upstream's TLS files again, as gRPC channels do."""
        for pool in self._pools.values():
            pool.reread_tls()

    def prepare_tls(self, upstreams: Iterable[Upstream]) -> list[asyncio.Future[ssl.SSLContext]]:
        """Begin making the TLS context of each HTTPS upstream of `upstreams` that has none yet, off the event loop
        (`ConnectionPool.context_soon`): made by its first connection, within its connect_timeout_s, the system's CAs
        (no `ca` of its own: ~40 ms of CPU, seconds on a busy host) failed that connection (502) under a short one.
        What is being made, for the start to wait for."""
        making = (self.pool(upstream).context_soon() for upstream in upstreams if upstream.url is not None)
        return [future for future in making if future is not None]

    def contexts_to_make(self, upstreams: Iterable[Upstream]) -> dict[str, asyncio.Future[ssl.SSLContext]]:
        """A reload's config: begin making, off the event loop, the TLS context of each HTTPS upstream of `upstreams`
        whose next connection would make one once it applies (a new or changed upstream: a new pool; one with TLS
        files of its own: read again, `reread_tls`), by upstream name, for `adopt_contexts` once it applies. Made by
        that connection, the system's CAs (~40 ms of CPU, seconds on a busy host) took its connect_timeout_s, as at
        start (`prepare_tls`)."""
        making: dict[str, asyncio.Future[ssl.SSLContext]] = {}
        for upstream in upstreams:
            if upstream.url is None or urlsplit(upstream.url).scheme != "https":
                continue
            pool = self._pools.get(upstream.name)
            if pool is not None and pool.upstream == upstream and upstream.tls is None and pool.has_context():
                continue  # its pool and context stay
            future = making[upstream.name] = client_context_in_thread(upstream.tls)
            future.add_done_callback(_retrieved)  # (one a refused reload drops is not said as never retrieved)
        return making

    def adopt_contexts(self, upstreams: Iterable[Upstream], making: dict[str, asyncio.Future[ssl.SSLContext]]) -> None:
        """The reload applied (after `use` and `reread_tls`): each upstream's pool takes the context begun for it
        (`contexts_to_make`)."""
        for upstream in upstreams:
            future = making.get(upstream.name)
            if future is not None:
                self.pool(upstream).adopt_context(future)

    async def get_json(self, upstream: Upstream, path: str) -> Any:
        """A metadata GET for checkpoint discovery and readiness; MetadataStatus on non-2xx."""
        headers = [("Authorization", f"Bearer {upstream.api_key}")] if upstream.api_key else []
        async with asyncio.timeout(min(upstream.timeout_s, METADATA_TIMEOUT_S)):
            status, body = await self.pool(upstream).get(path, headers)
        if status >= 300:
            raise MetadataStatus(status, path)
        try:
            return orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            return None

    async def close(self) -> None:
        pools = [*self._pools.values(), *self._retired]
        for pool in pools:
            pool.close()
        self._pools.clear()
        self._retired.clear()
        reading = [task for pool in pools for task in pool.reading_off]
        if reading:
            await asyncio.wait(reading)


def _retrieved(future: asyncio.Future[ssl.SSLContext]) -> None:
    """Its error read (a pool that takes the future reads it again: `ConnectionPool._made`)."""
    if not future.cancelled():
        future.exception()

"""HTTP/1.1 on the wire: an `asyncio.Protocol` per connection, requests parsed by httptools (llhttp).

Sockets and bytes only; what a request means is the handler's business (`http.py`). Per connection:

- requests are parsed as they arrive and served one at a time, in order (keep-alive and pipelining);
  what follows a request that closes the connection (`Connection: close`, HTTP/1.0 without keep-alive) is
  dropped unread (RFC 9112 §9.6), neither served nor refused;
  a malformed request is answered after the ones before it, with 400 (414, 431) in the error shape, and
  the connection is closed; it is recorded as every refusal is (`HttpServer.record_refusal`);
- the request line is capped at `MAX_TARGET` bytes (414), the head at `limits.max_header_bytes` and
  `limits.max_headers` fields (431), the body at `limits.max_body_bytes` (413, then the connection is
  closed: the rest is not read);
- a connection idle for `limits.idle_timeout_s`, or whose request head is not complete within
  `limits.header_timeout_s` of its first byte, is closed: slow clients cannot pin connections;
- back-pressure both ways: reading pauses while requests queue up unserved (a TLS connection reads on, holding up to
  `HELD_BYTES` unparsed, so a client's close_notify is heard), and the handler's writes wait while the client is not
  reading (`drain`);
- a connection that closes right after the drain's answer, or on a head late behind one, shuts its writing side and
  reads on, dropping what comes, until its client closes (at most `LINGER_S`): bytes left unread would reset it, and
  the client lose what of the answer it had not read (RFC 9112 §9.6); an idle one, or one whose request closed it
  (its client sends no more), closes outright;
- a client that leaves cancels its request's handler, which is how the upstream hears of it;
- past `limits.max_connections`, a new connection's first request gets 503 `overloaded` and the
  connection is closed, so the calls in flight keep their file descriptors;
- `shutdown` stops accepting, closes idle connections, lets requests in flight finish (their replies
  say `Connection: close`; one pipelined behind a reply that had gone out saying keep-alive is served too, as
  its client awaits it; what is pipelined behind a reply saying close is recorded `drain_timeout`, unserved)
  and aborts what is left after the drain timeout.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import email.utils
import errno
import http
import logging
import re
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final
from urllib.parse import unquote

import httptools

from proxy.config import Limits
from proxy.errors import (  # the connection's own refusals: in errors.py, where a class's status is its own
    BodyTimeout,
    HeaderTooLarge,
    InvalidRequest,
    Overloaded,
    ProxyError,
    RequestTooLarge,
    TargetTooLong,
    echoed,
)
from proxy.flow import KeyMemo
from proxy.tls import handshake_failure, identities_from_peercert
from proxy.transport.batch import outbox
from proxy.transport.http11 import keep, lower_name, utf8_text

log = logging.getLogger("lineage_proxy.http")

_VERSION_TAIL: Final = 9  # len(b"HTTP/1.1\r"): what may follow a request line's target and spaces before its line end
MAX_TARGET: Final = 8192  # request-target bytes, as nginx's and Node's default line limits
SEND_TIMEOUT_S: Final = 60.0  # a client that reads nothing of its reply this long is cut off (nginx's send_timeout)
LINGER_S: Final = 2.0  # how long a connection closed on a client still sending reads and drops its bytes
PIPELINE_DEPTH: Final = 8  # parsed requests waiting to be served before reading pauses
# request bytes a TLS connection reads on, unparsed, while its reading is paused (`_Held`), so a client's close_notify
# behind them is heard; past them its transport pauses (the read that passes them kept whole: its TLS layer hands over
# what one read of its socket brought, up to 256 KiB, at once; 80-96 KiB held so seen, review revwire12), and the TCP
# state tells its leaving (`hear_leaving`)
HELD_BYTES: Final = 65536
# a socket's TCP state (`struct tcp_info`'s first byte, Linux): the client's FIN or reset came, whatever it sent before
# is still unread (TCP_CLOSE_WAIT, TCP_CLOSE); 0 where the platform has no TCP_INFO
_TCP_INFO: Final[int] = getattr(socket, "TCP_INFO", 0)
_PEER_GONE: Final = (7, 8)
CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
HANDSHAKE_LOG_S: Final = 10.0  # at most one warning line this often about failed TLS handshakes (each one counted)
# connections waiting to be accepted (`listen`): asyncio's and uvloop's `create_server` listen again with 100 unless
# told, fewer than a burst of a fleet's clients reconnecting at once
LISTEN_BACKLOG: Final = 1024
ACCEPT_RETRY_S: Final = 1.0  # a TLS listener out of file descriptors (or memory) tries again after this long
# what a client using the proxy as its HTTP proxy (a CONNECT or an absolute-form target) is told to do instead
FORWARD_PROXY_HINT: Final = (
    ": point the client's base URL at it (http://HOST:PORT/v1), not its proxy setting (HTTP_PROXY, curl -x)"
)
# what a client does to its own connection before the proxy accepts it: the next one is taken at once
_ACCEPT_SKIPPED: Final = frozenset((errno.ECONNABORTED, errno.ECONNRESET, errno.EPROTO, errno.EPERM, errno.EAGAIN))
_REASONS: Final = {status.value: status.phrase.encode("latin-1") for status in http.HTTPStatus}


_NO_FIELDS: dict[str, str] = {}  # a request's fields before its head is in
# the parser of a connection not yet made, or over (`HttpConnection._let_go`): one that calls nothing back, so holds none
_NO_PARSER: Final = httptools.HttpRequestParser(object())
_NO_FIELD: Final[Callable[[str], str | None]] = _NO_FIELDS.get  # made once, not a bound method a request


class Request:
    """One parsed request: its line, its header fields as sent (bytes), its body once read."""

    def __init__(self) -> None:
        self.method = ""
        self.target = ""
        # the path prefix taken off the target before it was read (KServe's OpenAI data plane's `/openai`:
        # `http._kserve_openai`), for an upstream that serves the call under it; "" for most calls
        self.base = ""
        self.version = "1.1"
        self.headers: list[tuple[bytes, bytes]] = []
        self.keep_alive = True
        self.content_length: int | None = None
        self.expects = False  # `Expect: 100-continue` (`list_members`), not yet answered
        self.complete = False  # the whole body is in
        self.too_large = False
        self.failed: ProxyError | None = None  # the body's framing was malformed
        self.size = 0
        self.held = 0  # bytes of its body counted in `HttpServer.held` (`HttpConnection._keep`)
        self.head_size = 0
        self._body: list[bytes | bytearray] = []  # the pieces as they came, small ones joined (`_add`)
        # a field by lower-case name, decoded; a field sent on several lines is one, its values joined with
        # ',' (RFC 9110 §5.3), so a second `x-data-labels` line adds labels and a second `x-purpose` is
        # refused, the same as over gRPC: never "first (or last) one wins". Set once the head is in
        # (`HttpConnection.on_headers_complete`): `RequestFields.get`, a value decoded when read.
        self.header: Callable[[str], str | None] = _NO_FIELD
        self._waiter: asyncio.Future[None] | None = None

    @property
    def path(self) -> str:
        """The target's path, percent-decoded, without the query."""
        path = self.target.partition("?")[0]
        return unquote(path) if "%" in path else path

    def received(self) -> bytes | None:
        """The body, when all of it is in and nothing refused it; None otherwise, for `HttpConnection.body`
        to wait for it or raise what failed. The usual case, a body that came with its head, takes no
        coroutine."""
        if not self.complete or self.failed is not None or self.too_large:
            return None
        return _whole(self._body)


class RequestFields:
    """A request's header fields by lower-case name, read with `get` (`Request.header`): a value is decoded
    (`utf8_text`: UTF-8, surrogateescape) when it is asked for, not every value as the head completes: the proxy
    reads a few of a call's fields (its purpose, labels, credentials), seldom Host, Content-Length, Content-Type or
    Accept-Encoding (4 of the 6 values of the benchmark's call were decoded for nothing), as a reply's fields are read
    (`ReplyFields`). Not kept decoded: a call reads each value it has once (10 reads a call, the repeats of absent
    names), and writing the text back cost a dict store a value read (~265 machine instructions, callgrind)."""

    def __init__(self, values: dict[str, bytes]) -> None:
        self.values = values  # the values as sent

    def get(self, name: str) -> str | None:
        """The field named `name` (lower-case), decoded; None when the request has none."""
        value = self.values.get(name)
        return None if value is None else utf8_text(value)


class _Held(asyncio.Protocol):
    """What a TLS connection's transport hands what it reads to while the connection's reading is paused
    (`HttpConnection._pause`): its bytes kept unparsed, until past HELD_BYTES (then the transport pauses), read when
    reading goes on (`HttpConnection._resume`); the rest of its events are the connection's. So its TLS layer reads
    on, and a client's close_notify is heard (its transport closes on it, `connection_lost`)."""

    def __init__(self, conn: HttpConnection) -> None:
        self.conn = conn
        self.pieces: list[bytes] = []
        self.size = 0
        self.paused = False  # its transport is paused (HELD_BYTES held)

    def data_received(self, data: bytes) -> None:
        self.pieces.append(data)
        self.size += len(data)
        transport = self.conn.transport
        if self.size >= HELD_BYTES and not self.paused and transport is not None:
            self.paused = True
            transport.pause_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.connection_lost(exc)

    def pause_writing(self) -> None:
        self.conn.pause_writing()

    def resume_writing(self) -> None:
        self.conn.resume_writing()


class HttpConnection(asyncio.Protocol):
    """One client connection. The parser calls the `on_*` methods as bytes arrive (httptools' protocol)."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        # its own once its socket is (`connection_made`): a TLS connection whose handshake fails is made and dropped
        # without one, and a parser made here held it in a cycle the collector alone freed (before 2026-12-05, review
        # revrecords: a client that did not trust the certificate, a scan)
        self.parser = _NO_PARSER
        self.queue: collections.deque[Request | ProxyError] = collections.deque()
        self.parsing: Request | None = None
        self.serving: Request | None = None
        self.peer: tuple[str, ...] = ()  # what the client's certificate proves (TLS with client certs)
        # what the upstream is told of the client, made once for the connection (`forwarded_pieces`)
        self.forwarded: tuple[bytes, bytes, bytes] = NO_PEER
        self.client: tuple[str, int] | None = None  # the peer's address and port, for the record (`client_of`)
        # its calls' last key and digest (`Pipeline.key_digest`): hashed once for the connection, not on each call
        self.key_memo = KeyMemo()
        # the field names of its last head in order, as sent, their keys (`_field_values`) and their lower case
        # (`field_lower`)
        self._names: list[bytes] = []
        self._keys: list[str] = []
        self._lowers: list[bytes] = []
        self.lost = False
        self.closing = False  # close once the request being served is answered
        self.cut = False  # closed by the drain (SIGTERM) with a request still being served
        self.draining = False  # the drain (SIGTERM) closes it (`shutdown`), not an internal error
        # not the drain but a reload that changed `listen.tls` client authentication closes it (`shutdown(reload=True)`):
        # what it cuts unserved is recorded with the reload's reason, not SIGTERM's (`HttpServer.record_unserved`)
        self.reloaded = False
        # the connection was closing already when the drain (or that reload) began: the reply being served closes it
        # itself (a stream to an HTTP/1.0 client, framed by its close; an upgrade request's answer, its head out or
        # not: the request closes it; or the one the drain owes its client, asking to upgrade, `_serve`), so what is
        # behind that reply is recorded as behind it, not as the drain's cut, unless the drain's time runs out (`cut`)
        self.closed_first = False
        # the drain began as the reply to the request being served was going out, saying keep-alive: its client,
        # which may have pipelined the next request already, is owed that one's reply (`shutdown`)
        self._owed = False
        # what closed the connection before the requests pipelined behind the one served (a refusal of its own, an
        # internal error): the class of their record's error (`HttpServer.record_unserved`)
        self.closed_by: type[ProxyError] | None = None
        self.over_cap = False
        self.replying = False  # the reply to the request being served has started
        self._broken = False  # the parser failed or the client's body was refused: read no more
        # a body refused whose framing llhttp still reads (over limits.max_body_bytes, or past the bodies' budget): what
        # comes is read on, its bytes dropped, for the requests pipelined behind it, each recorded refused as it was
        # (`_unserved`), as it arrives once that one is answered, PIPELINE_DEPTH at most (`_behind_room`). Before
        # 2026-12-07 only those in the read that held the refused body's head were: one that came a read later, as the
        # bytes' segments fell, was dropped unrecorded (a CI run: the client's 70 KB send read in two)
        self._behind = False
        self._behind_left = PIPELINE_DEPTH  # requests read behind a refused body still kept (`_behind_room`)
        # the path of a head refused before it was parsed whole (`_refuse`), when its target was read whole: all its
        # answer keeps of it, for the error shape of its API (`error`), not read by its record; "" when none was
        self.refused_path = ""
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._deadline: float | None = None  # loop time past which an idle or slow connection is closed
        # the timer that cuts a connection closed on a client still sending (`_linger`): cancelled when it is lost,
        # which would otherwise hold the connection, and the request it was reading, LINGER_S past its client's leaving
        self._lingering: asyncio.TimerHandle | None = None
        self._head_started = 0.0  # when the request head being read began (its header timeout runs from then)
        self._head_fed = 0  # bytes fed while one request head stayed open (llhttp buffers a header line itself)
        # the request line of the head left open by the last read came whole (its line end read): kept as each read
        # leaves a head open, for the record of one the drain cuts (`_head_cut`), which has no other way to know it
        # (llhttp hands a field over only as the next begins, the target in pieces; nothing per ordinary call)
        self._line_in = False
        self._upgrade_body: Request | None = None  # a request that asked to upgrade, its body still coming
        # a request asking to upgrade was read (`data_received`): the connection closes once it is answered, and what
        # is pipelined behind it is read until then, with a parser of its own, and recorded unserved (`_unserved`)
        self.upgraded = False
        # that request was answered (its reply said `Connection: close` itself, `closing`): what is behind it is
        # recorded as behind it, not as behind a reply framed by the connection's close (`HttpServer.record_unserved`)
        self.upgrade_answered = False
        self._raised: ProxyError | None = None  # what a parser callback refused (`_refusing`)
        self._line_11 = False  # the request whose head is being read began this read with an HTTP/1.1 line
        self._closes = False  # the last request read closes the connection (`Connection: close`, or HTTP/1.0)
        # the method of the last request head read if it had neither Content-Length nor Transfer-Encoding, else ""
        self._unframed = ""
        # the connection's loop, kept: `asyncio.get_running_loop()` costs as much as the future it would make
        self._loop = asyncio.get_running_loop()
        self._outbox = outbox(self._loop)  # every write goes through it, in order (`proxy.transport.batch`)
        self.closed: asyncio.Future[None] = self._loop.create_future()  # set when the socket is
        self._reading = True
        self._tls = False  # over the TLS listener (`_pause`)
        # what a TLS connection's transport hands its bytes to while its reading is paused (`_pause`), else None
        self._held: _Held | None = None

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio's classes
        self.parser = httptools.HttpRequestParser(self)
        server = self.server
        server.connections.add(self)
        if len(server.connections) > server.max_connections:
            self.over_cap = True  # answered once its request is read (closing now resets the client)
            server.refused += 1
            if server.refused in (1, 100) or server.refused % 10_000 == 0:
                log.warning("connection cap (limits.max_connections %d) reached: refusing new connections with "
                            "503 (%d so far)", server.max_connections, server.refused)  # fmt: skip
        tls = transport.get_extra_info("sslcontext") is not None
        self._tls = tls
        if tls:
            self.peer = identities_from_peercert(transport.get_extra_info("peercert"))
        peername = transport.get_extra_info("peername")
        self.forwarded = forwarded_pieces(peername, tls)
        self.client = client_of(peername)
        self._arm(server.idle_timeout_s)
        # its serve loop begun now, waiting for the first request as it waits for a kept-alive connection's next one: made
        # between the connection's accept and its first bytes, not after the request is read, on the way to the upstream
        self._task = self._loop.create_task(self._serve())
        if server.draining:
            # accepted before the drain began, made after it woke the connections it had (the loop calls
            # `connection_made` a step after the accept): closed as those idle are, not left waiting for a first request,
            # and the drain for it (review revidle: for all of limits.drain_timeout_s; before 2026-12-06 left open, unswept)
            self.shutdown()

    def data_received(self, data: bytes) -> None:
        if self._upgrade_body is not None:
            rest = self._take_upgrade_body(data)
            if not rest:
                return
            data = rest  # what follows its body: requests pipelined behind it
        if self._broken and not self._behind:
            return
        parsing = self.parsing
        open_head = parsing if parsing is not None and not parsing.method else None
        if parsing is None:  # a request starts this read: its line says its version (`on_headers_complete`)
            end = data.find(b"\r\n")
            self._line_11 = end > 0 and data.endswith(b" HTTP/1.1", 0, end)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            # the client asks to switch protocols (`Upgrade: h2c`); the proxy does not, and serves the request as
            # it is (RFC 9110 §7.8), then closes the connection. llhttp stops at its head as if it had no body:
            # a Content-Length body is taken here; a chunked one is refused. What follows it is read with a new parser
            # until it is answered, the requests in it recorded unserved (`upgraded`); before 2026-12-05 none was read
            # after it (`_broken`), a request pipelined behind it dropped with no record
            # a request before it in this read was refused (its body: `_drop`): no read after this one is read, as
            # with no upgrade request behind it (before 2026-12-05 that request cleared `_broken`: reading went on
            # behind the refusal, and its bodies counted against limits.bodies_max_bytes until it was answered)
            refused = self._broken
            self._broken = True
            self._behind = False  # (what is behind it is read as behind it, `upgraded`)
            last = self.queue[-1] if self.queue else None  # llhttp stops right after the upgrade request's head
            rest = b""
            # (one pipelined behind another: not read past; nor one behind a refused body once PIPELINE_DEPTH were
            # kept, `_behind_room`: the last kept, or one before it, the upgrade request dropped)
            if isinstance(last, Request) and not self.upgraded and self._behind_left > 0:
                last.keep_alive = False
                if any(name.lower() == b"transfer-encoding" for name, _ in last.headers):
                    last.failed = InvalidRequest("a request asking to upgrade its connection may not carry a "
                                                 "chunked body (lineage-proxy does not switch protocols)")  # fmt: skip
                else:
                    self.upgraded = True
                    # behind a refused body, the rest of this read is read as behind it (`_behind`): its requests kept
                    # to PIPELINE_DEPTH, their bodies not (before 2026-12-07 with no bound but the read's, those bodies
                    # counted in `HttpServer.held` until they were recorded)
                    self._broken = refused
                    self._behind = refused
                    self.parser = httptools.HttpRequestParser(self)
                    if last.content_length:
                        last.complete = False
                        self._upgrade_body = last
                        taken = self._take_upgrade_body(data[upgrade.args[0] :])
                        if taken is None and refused:  # never served: the rest of its body is not read
                            self._upgrade_body = None
                        elif taken is None:  # more of it to come
                            self._resume()
                        else:
                            rest = taken
                    else:
                        rest = data[upgrade.args[0] :]
            if rest:
                self.data_received(rest)
            if refused:
                self._broken = True
                self._behind = False
        except httptools.HttpParserError as exc:
            # what a callback refused, kept by it: not the error's __context__, which Python sets to whatever
            # exception was being handled when llhttp's error was raised (in the compiled build, one an
            # awaiting coroutine's `except` block still holds: an upstream's 502 answered a 414)
            cause, self._raised = self._raised, None
            self._behind = False  # (llhttp reads nothing more)
            if cause is not None:
                # without its traceback, whose frames (the callback's, this one's, which holds it) hold this connection
                # in a reference cycle (before 2026-12-05, helper records: freed by the collector alone)
                cause = cause.with_traceback(None)
            if self.upgraded:
                # what follows a request asking to upgrade is no request (the protocol it asked for, sent before the
                # answer): not read, nor refused; the requests read before it are recorded unserved (and no head is
                # being read: not one cut when that one is answered, `_head_cut`)
                self._broken = True
                self.parsing = None
            elif cause is None and self.parsing is None and self._closes:
                # bytes after a request that closes the connection (llhttp's "Data after `Connection: close`") are
                # no request, nor a malformed one: not read (RFC 9112 §9.6), that request answered, the connection
                # then closed. Reading goes on, what comes dropped, so a client leaving is still heard of (the upstream
                # call cancelled) while that request is served
                self._broken = True
            else:
                # (bytes read as a request line, a target read, are a request of their own: not the body of the one before)
                parsing = self.parsing
                unframed = self._unframed if parsing is None or not parsing.target else ""
                self._refuse(cause if cause is not None else _malformed(exc, data, unframed))
        else:
            parsing = self.parsing
            if parsing is not None and not parsing.method:  # a head still open
                over = self._head_over(parsing)
                line_read = False
                if parsing is open_head:
                    self._head_fed += len(data)  # llhttp may be buffering one long line
                    # (a line end in what the parser took of a head whose line was not whole ends that line)
                    self._line_in = self._line_in or b"\n" in data
                else:  # it began in this read: its bytes in it (before 2026-12-05 not counted until the next read)
                    self._line_in = self._line_ended(data)
                    self._head_fed = self._head_read(parsing, data, self._line_in)
                if self._head_fed > self.server.max_header_bytes + MAX_TARGET:
                    over = HeaderTooLarge(
                        f"the request head is over limits.max_header_bytes ({self.server.max_header_bytes})")  # fmt: skip
                    # its line is read: a target past MAX_TARGET is refused (414) as it comes, and the rest of a
                    # line (a method llhttp knows, its version) is a few bytes, not max_header_bytes (>= 1024)
                    line_read = True
                if over is not None and self.upgraded:
                    # behind a request asking to upgrade nothing is refused, never answered: dropped, not counted
                    # malformed, as a head over the limits that completes in the read (before 2026-12-05 counted)
                    self._broken = True
                    self.parsing = None  # (nor recorded as a head cut, `_head_cut`)
                elif over is not None:
                    self._refuse(over, line_read)
        if self._broken and self.queue and self._task is not None and self._task.done():
            # read behind a refused body once it was answered (`_behind`), up to PIPELINE_DEPTH (`_behind_room`), the
            # last in a read that ended the reading, a head refused (`_refuse`) or one asking to upgrade (`upgraded`),
            # among them: never served, recorded refused as it was. Before 2026-12-07 (since they were read on behind
            # its answer, that day) dropped with no record in the two last cases
            self._unserved()
            return
        # paused while requests queue up unserved, but not behind a refused body (`_broken`): nothing read there is
        # served, and at most PIPELINE_DEPTH requests are kept (`_behind_room`), so reading goes on, and a client that
        # leaves is heard of while a request before the refused one is served, its upstream call cancelled (before
        # 2026-12-07, since they were read on that day, it paused with PIPELINE_DEPTH of them queued, until the serve
        # loop ended)
        if len(self.queue) >= PIPELINE_DEPTH and self._reading and not self._broken:
            self._pause()
        self._kick()

    def _pause(self) -> None:
        """Reading pauses while PIPELINE_DEPTH requests queue up unserved. A TLS connection reads on, its bytes held
        unparsed (`_Held`, until past HELD_BYTES, then its transport pauses), so a client that leaves is heard of: a
        TLS transport paused decrypts nothing, and a client's close_notify behind the bytes it holds went unheard until
        its FIN, which an asyncio client sends up to 30 s later, waiting for the proxy's close_notify (its
        ssl_shutdown_timeout); the upstream's call ran on for a client gone (before 2026-12-07). A plain connection's
        leaving is heard from its socket's TCP state (`hear_leaving`)."""
        self._reading = False
        transport = self.transport
        assert transport is not None
        if self._tls:
            held = self._held = _Held(self)
            transport.set_protocol(held)
        else:
            transport.pause_reading()

    def _resume(self) -> None:
        """Reading goes on (`_pause`): what a TLS connection held is read now, as one read."""
        self._reading = True
        transport = self.transport
        assert transport is not None
        held = self._held
        if held is None:
            transport.resume_reading()
            return
        self._held = None
        transport.set_protocol(self)
        if held.paused:
            transport.resume_reading()
        if held.pieces and not self.lost:
            self.data_received(b"".join(held.pieces))

    def _behind_room(self) -> bool:
        """Whether a request whose head was read behind a refused body (`_broken`), never served, is kept, to be
        recorded unserved (`_unserved`): PIPELINE_DEPTH of them are, before its answer or after it; with the last,
        nothing more is read (`_behind`), and those after it in the same read are dropped unrecorded, as the
        connection closes (a client may not hold one open to make records, nor a queue of them while a request before
        the refused one is served: reading does not pause for them)."""
        left = self._behind_left - 1
        if left <= 0:
            self._behind = False
        if left < 0:
            return False
        self._behind_left = left
        return True

    @staticmethod
    def _head_read(request: Request, data: bytes, line_in: bool) -> int:
        """The bytes of a request head still open that began in the read `data`: those llhttp holds past the fields it
        handed over (`head_size`, with the target) are the ones after the last line end, once its request line is
        whole (`line_in`: `_line_ended`, the one decision of it). Else only its target is held, counted by `on_url`
        (414): what comes before it in the read (a request before it, pipelined, its body) is not counted. (Before
        2026-12-05 this decided apart, a line of the method, one space, the target and the version: a line with more
        spaces after its method, "GET  /v1/models HTTP/1.1", was taken as not whole, the fields after it in the read
        not counted, and a head over the limits refused 431 one read later, if one came.)"""
        end = data.rfind(b"\n")
        if end < 0 or not line_in:
            return 0
        return request.head_size + len(data) - end - 1

    def _line_ended(self, data: bytes) -> bool:
        """Whether the request line of the head left open, which began in the read `data`, ended in it. The last space
        and target in the read are the head's own (it is the read's end: a request pipelined before it in the read, its
        body, come first), or in a field of it, its line whole: a line end after them, or no method before them (llhttp
        takes any number of spaces after the method, "GET  /v1/models"). A field that ends the read with the method
        and target is taken for the line, not whole. (Before 2026-12-05 the method, one space and the target were
        looked for: a line with more spaces was taken as not whole, or as whole from an earlier request's line in the
        read, "GET /v1/models ..." then "GET   /"; its head cut recorded without, or with, its method and path.)"""
        request = self.parsing
        if request is None or not request.target:
            return False
        if request.head_size > len(request.target):  # a field of it was handed over: its line is whole
            return True
        target = b" " + request.target.encode("latin-1")
        at = data.rfind(target)
        if at < 0:
            return False
        if data.find(b"\n", at + len(target)) >= 0:
            return True
        # a line still open ends the read: its target, spaces (llhttp takes several), a piece of its version ("HTTP/1.1\r"
        # at most). More after it is a field's, its line whole (before 2026-12-05 an open field "X-Big: GET /v1/models
        # aaaa...", its method and target in it, was taken for the line: its bytes not counted, a head over the limits
        # refused 431 only once another read came)
        end = at + len(target)
        while end < len(data) and data[end] == 32:
            end += 1
        if len(data) - end > _VERSION_TAIL:
            return True
        start = at
        while start > 0 and data[start - 1] == 32:  # (the spaces after the method)
            start -= 1
        return not data.endswith(self.parser.get_method(), 0, start)

    def _take_upgrade_body(self, data: bytes) -> bytes | None:
        """The Content-Length body of a request that asked to upgrade (llhttp does not read it): None while more of it
        is to come, else what `data` holds after it (requests pipelined behind it), b"" when that is dropped (the body
        refused). (A return value, not `_upgrade_body` read again by the caller: mypy keeps the attribute
        narrowed across this call, and the compiled build checks that type, None or not.)"""
        request = self._upgrade_body
        assert request is not None and request.content_length is not None
        need = request.content_length - request.size
        if data and need > 0:
            piece = data[:need]
            request.size += len(piece)
            if request.too_large:  # answered with 413 (as `on_body`): nothing of it is kept
                self._drop(request)
                self._upgrade_body = None
                return b""
            if not self._keep(request, piece):
                self._upgrade_body = None
                return b""
            if request._waiter is not None:
                self._arm(self.server.header_timeout_s)
        if request.size < request.content_length:
            return None
        self._upgrade_body = None
        request.complete = True
        _wake(request._waiter)
        return data[need:] if 0 < need < len(data) else b""

    def _refuse(self, error: ProxyError, line_read: bool = False) -> None:
        """Malformed framing, or a head over the limits: answered after the requests before it, then the
        connection closes. A request whose head was read has a malformed body: it fails. `line_read`: a head's request
        line is known to be whole, though none of its fields was read whole (its first one over the limits)."""
        self.server.framing_error(self, error)
        request = self.parsing
        if request is not None and request.method:
            request.failed = error
            _wake(request._waiter)
        else:
            if request is not None:  # a head refused: the fields it got so far are never read
                request.headers.clear()
                if line_read or request.head_size > len(request.target):  # a field came after it: the target is whole
                    self.refused_path = request.path
                # no head is being read: recorded as its refusal once answered, not as one cut (`_head_cut`, which
                # before 2026-12-05 told it by `_broken`, also set by a body refused with a head read after it)
                self.parsing = None
            self.queue.append(error)
        # no request is read after it: what still comes is dropped as it arrives (`_broken`). Reading goes on, not
        # paused, so a client that leaves is heard of while a request before the refused one is served, and its
        # upstream call is cancelled
        self._broken = True
        self._behind = False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._behind and self._task is not None and self._task.done():
            # a head only partly come behind a refused body, answered (`_behind`), its connection now closed: recorded
            # as behind that answer (before `lost`, which would say the proxy cut it)
            self._head_cut()
        self.lost = True
        self._held = None  # (it holds the connection)
        self.server.connections.discard(self)
        for request in (self.serving, self.parsing, *self.queue):  # bodies cut short, requests never served
            if isinstance(request, Request):
                self._release(request)
        self._disarm()
        lingering = self._lingering
        if lingering is not None:  # (until 2026-12-05, helper records, held to its end: 2 s)
            lingering.cancel()
            self._lingering = None
        if self._task is not None and not self._task.done() and self.serving is not None:
            self._task.cancel()  # the client left: its handler (and so its upstream request) is cancelled
        else:
            _wake(self._wake)
        _wake(self._drained)  # whoever waits sees `lost` and raises
        if self.serving is not None:
            _wake(self.serving._waiter)
        _wake(self.closed)
        task = self._task
        if task is None or task.done():  # (else the serve loop, as it ends)
            self._let_go()

    def _let_go(self) -> None:
        """The connection is over, its socket closed and its serving ended: its parser, which holds it (each callback a
        bound method of it), is let go, so that the connection, and the request it was part-way reading, is freed now
        by reference counting. Before 2026-12-05 (helper records) the two were a reference cycle that only the cyclic
        collector freed, which a serving process runs rarely (`gc.freeze()`, `workers.GC_THRESHOLDS`)."""
        self.parser = _NO_PARSER
        self._broken = True  # (nothing is read after it)
        self._behind = False
        self._upgrade_body = None

    def pause_writing(self) -> None:
        if self._drained is None or self._drained.done():
            self._drained = self._loop.create_future()

    def resume_writing(self) -> None:
        _wake(self._drained)

    # -- httptools callbacks

    def on_message_begin(self) -> None:
        self.parsing = Request()
        self._head_fed = 0
        self._head_started = self.server.now()
        if self.serving is None and not self.queue and not self._broken:  # (not behind a refused body, `_behind`)
            self._deadline = self._head_started + self.server.header_timeout_s

    def on_url(self, url: bytes) -> None:
        request = self.parsing
        assert request is not None
        request.head_size += len(url)
        if request.head_size > MAX_TARGET:
            raise self._refusing(TargetTooLong(f"the request target is over {MAX_TARGET} bytes"))
        request.target += url.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        request = self.parsing
        assert request is not None
        request.head_size += len(name) + len(value) + 4
        if not request.method:  # its limits are checked once the head is in, or after each read while it is open
            request.headers.append((name, value))
        elif request.head_size > self.server.max_header_bytes:  # a trailer field of a chunked body: counted, not kept
            raise self._refusing(
                HeaderTooLarge(f"the request head is over limits.max_header_bytes ({self.server.max_header_bytes})")
            )

    def _refusing(self, error: ProxyError) -> ProxyError:
        """A callback's refusal, kept for `data_received`: llhttp stops and raises its own error."""
        self._raised = error
        return error

    def _head_over(self, request: Request) -> HeaderTooLarge | None:
        """Whether a request head is over `limits.max_header_bytes` or `limits.max_headers`. Checked as a
        head completes and after each read while one is open, not per field: at most one read's fields
        are kept past a limit until the request is refused, which drops them."""
        server = self.server
        if request.head_size > server.max_header_bytes:
            return HeaderTooLarge(f"the request head is over limits.max_header_bytes ({server.max_header_bytes})")
        if len(request.headers) > server.max_headers:
            return HeaderTooLarge(f"the request has over limits.max_headers ({server.max_headers}) header fields")
        return None

    def on_headers_complete(self) -> None:
        request = self.parsing
        assert request is not None
        over = self._head_over(request)
        if over is not None:
            raise self._refusing(over)
        parser = self.parser
        request.method = _method(parser.get_method())
        if self._line_11:  # llhttp has checked the line; its `get_http_version` formats a new string each call
            self._line_11 = False
            request.version = "1.1"
        else:
            request.version = parser.get_http_version()
        request.keep_alive = parser.should_keep_alive()
        # names are tokens (llhttp has checked their characters): latin-1 is exact
        raw = request.headers
        values = self._field_values(raw)
        hosts = 1 if "host" in values else 0
        if len(values) != len(raw):  # a field sent on several lines
            values, hosts = _joined(raw)
        fields = RequestFields(values)
        request.header = fields.get
        if request.keep_alive and request.version == "1.0" and "close" in list_members(fields.get("connection") or ""):
            # RFC 9112 §9.3: `close` ends the connection whatever else the field lists (llhttp reads an HTTP/1.0
            # request's `keep-alive` alone)
            request.keep_alive = False
        length = values.get("content-length")  # (its digits read as they came: no text made of them)
        if length is not None:
            request.content_length = int(length)  # llhttp has checked it is one number (a second is refused)
            self._unframed = ""
        elif "transfer-encoding" in values or request.method == "GET" or request.method == "HEAD":
            self._unframed = ""
        else:  # RFC 9112 §6.3: no body; bytes sent as one are the next request (`_malformed` says so of them)
            self._unframed = request.method
        expect = fields.get("expect")
        if expect is not None:
            request.expects = list_members(expect) == _CONTINUE
        if request.content_length is not None and request.content_length > self.server.max_body_bytes:
            request.too_large = True
            self._behind = not self.upgraded  # (its body is read on, dropped: `_behind`)
        if request.version != "1.1" and request.version != "1.0":  # llhttp reads `HTTP/2.0` (and 0.9) lines too
            request.failed = InvalidRequest(f"HTTP/{request.version}: lineage-proxy speaks HTTP/1.1 (and 1.0) here")
        elif request.version == "1.0" and "transfer-encoding" in values:
            # RFC 9112 §6.1: the framing of an HTTP/1.0 message with Transfer-Encoding is faulty; an intermediary
            # before the proxy may have read its body otherwise (HTTP/1.0 has no chunked coding), and the next request
            # with it
            request.failed = InvalidRequest("HTTP/1.0 with Transfer-Encoding: its framing is faulty (RFC 9112 §6.1); "
                                            "send HTTP/1.1, or a Content-Length")  # fmt: skip
        elif request.method == "CONNECT":
            request.failed = InvalidRequest("CONNECT: lineage-proxy is not a forward proxy" + FORWARD_PROXY_HINT)
        elif request.method == "TRACE":
            # its final recipient answers with the request as it got it (RFC 9110 §9.3.8): with the upstream's
            # `api_key`, which the proxy adds and no caller may see
            request.failed = InvalidRequest("TRACE: lineage-proxy does not forward it (its reply echoes the request "
                                            "the upstream got, with the credentials the proxy adds)")  # fmt: skip
        elif (coding := fields.get("transfer-encoding")) is not None and coding.strip(" \t").lower() != "chunked":
            # llhttp undoes the last coding, `chunked`, and leaves the others (`gzip, chunked`) on the body: forwarded
            # without the field naming them, the upstream would read it as plain bytes (RFC 9112 §6.1: not understood)
            request.failed = InvalidRequest(f"Transfer-Encoding {echoed(coding)}: lineage-proxy reads `chunked` alone")
        elif hosts != 1 and request.version == "1.1":  # RFC 9112 §3.2
            request.failed = InvalidRequest(f"an HTTP/1.1 request must have one Host header field, not {hosts}")
        self._head_fed = 0
        if self._broken and not self._behind_room():
            return
        self.queue.append(request)
        if self.serving is None and len(self.queue) == 1:
            self._disarm()

    def _field_values(self, raw: list[tuple[bytes, bytes]]) -> dict[str, bytes]:
        """A head's values by lower-case name (of a field sent on several lines, its last: `_joined` joins them). A
        name's key is looked up at the name's place in the connection's last head first (`_names`): a client sends
        the same names in the same order on each request, and comparing two names (a length and a memcmp) costs less
        than hashing the fresh name llhttp made to find its key in `field_key`'s table (~450 machine instructions a
        name, 8,560 a call for the openai SDK's 18 fields, callgrind, 2026-12-06)."""
        names = self._names
        keys = self._keys
        values: dict[str, bytes] = {}
        for at, (name, value) in enumerate(raw):
            if at < len(names) and names[at] == name:
                key = keys[at]
            else:
                key = field_key(name)
                if at < _KEPT_PLACES:
                    self._remember(at, name, key)
            values[key] = value
        return values

    def _remember(self, at: int, name: bytes, key: str) -> None:
        """Keep `name`, its key and its lower case at its place `at` in the connection's last head (`_field_values`);
        a name past the length `field_key` keeps is not kept (b"", which no name is), nor its key nor its lower case
        (up to `limits.max_header_bytes` each); only the first _KEPT_PLACES places are, so an idle connection holds at
        most 32 names of 64 bytes, their keys and their lower case (~10 KB; the keys and lower cases are most often
        the tables' own, `field_key`'s and `lower_name`'s), not `limits.max_headers`' 100 (~23 KB, ~90 MiB over 4096
        idle connections)."""
        if len(name) > _FIELD_KEY_MAX:
            name, key, lower = b"", "", b""
        else:
            lower = lower_name(name)
        if at < len(self._names):
            self._names[at] = name
            self._keys[at] = key
            self._lowers[at] = lower
        else:
            self._names.append(name)
            self._keys.append(key)
            self._lowers.append(lower)

    def field_lower(self, at: int, name: bytes) -> bytes:
        """The lower case of `name`, a field name at its place `at` in one of this connection's request heads, for
        `proxy.ingress.http.forward_fields`: the kept one when the connection's last head has the same name there (a
        length and a memcmp, ~130 machine instructions with the call), not looked up in `lower_name`'s table, which
        hashes the fresh name llhttp made (~460 a name, 8,250 a call for the openai SDK's 18 fields, callgrind,
        2026-12-07). Compared, not taken by place alone: a request pipelined behind this one may have changed the
        kept head since."""
        names = self._names
        if at < len(names) and names[at] == name:
            return self._lowers[at]
        return lower_name(name)

    def on_body(self, body: bytes) -> None:
        request = self.parsing
        assert request is not None
        request.size += len(body)
        if request.too_large or request.size > self.server.max_body_bytes:
            request.too_large = True
            self._drop(request)  # answered with 413, then the connection closes: the rest is dropped unparsed
            return
        # refused (`_keep`): the rest of the body is not kept; nor one read behind a refused body (`_behind`), never
        # served: before 2026-12-07 counted in `HttpServer.held`, and what came after its record (`_unserved`) kept
        # there for the process's life
        if request.failed is not None or self._broken:
            return
        if not self._keep(request, body):
            return
        if request._waiter is not None:  # the handler waits for this body: it is still coming
            self._arm(self.server.header_timeout_s)

    def _keep(self, request: Request, piece: bytes) -> bool:
        """Keep a piece of `request`'s body, counted in `HttpServer.held`; False when that would take the
        bodies held past `limits.bodies_max_bytes`: the request fails with 503 (`Overloaded`), its body is
        dropped, and the connection closes once it is answered."""
        refused = self._count(request, len(piece))
        if refused is not None:
            request.failed = refused
            self._drop(request)
            return False
        _add(request._body, piece)
        return True

    def hold(self, request: Request, size: int) -> None:
        """Count `size` bytes more held for `request` while it is served (its body decompressed to be read: the
        budget counted the compressed bytes), given back with its body; past `limits.bodies_max_bytes` the request
        is refused with 503 (`Overloaded`, raised), as a body that would pass it is."""
        if not self.hold_if_room(request, size):
            # made as it is raised: kept in a variable of this frame, which its traceback holds, the refusal would hold
            # the frame, and so the request and its callers' frames, in a reference cycle (before 2026-12-05)
            raise self.server.over_budget()

    def hold_if_room(self, request: Request, size: int) -> bool:
        """Count `size` bytes as held for `request` (and in `HttpServer.held`), given back with its body once its reply
        is sent (`_serve`): its body's, or an upstream reply's read whole for it (`HttpIngress._forward`); False,
        nothing counted, when that would take the bodies held past `limits.bodies_max_bytes` (a reply is then passed
        on as it arrives, with back-pressure: no refusal)."""
        server = self.server
        if server.held + size > server.bodies_max_bytes:
            return False
        request.held += size
        server.held += size
        return True

    async def sent(self) -> None:
        """Wait until what was written is taken by the client but for the transport's low-water mark (`drain`): a
        reply held in memory stays counted until then."""
        self._outbox.flush()
        if self.must_drain():
            await self.drain()

    def _count(self, request: Request, size: int) -> Overloaded | None:
        """`size` bytes of `request`'s body counted as held (`hold_if_room`), or, past the budget, the refusal returned."""
        return None if self.hold_if_room(request, size) else self.server.over_budget()

    def _drop(self, request: Request) -> None:
        """`request`'s body is refused: what was kept of it is given back, the rest not read."""
        request._body.clear()
        self._release(request)
        self._read_on()
        _wake(request._waiter)

    def _read_on(self) -> None:
        """Nothing more is served (`_broken`): what comes is read on, bodies dropped, the requests in it recorded
        refused as the one answered (`_behind`), while the connection lingers after that answer (`_close`)."""
        self._broken = True
        # (behind one asking to upgrade the connection reads its body itself, and nothing behind it is read after; nor
        # after PIPELINE_DEPTH kept behind a refused body, `_behind_room`)
        self._behind = not self.upgraded and self._upgrade_body is None and self._behind_left > 0

    def _keep_behind(self) -> None:
        """The requests read with a head refused whole, before the answer that closes the connection (parsed as
        pipelined requests to serve, not behind a refusal): PIPELINE_DEPTH of them are kept, to be recorded refused as
        it was (`_unserved`), counted as those read behind a refused body are (`_behind_room`), the rest given back
        and dropped unrecorded. Before 2026-12-07 each one in the read was recorded (~8,000 in one read of 256 KiB),
        for one refusal, and for each connection past limits.max_connections."""
        if self.upgraded:  # (what is behind one asking to upgrade is recorded as behind it, `upgraded`)
            return
        kept: collections.deque[Request | ProxyError] = collections.deque()
        for item in self.queue:
            if isinstance(item, Request) and self._behind_room():
                kept.append(item)
            elif isinstance(item, Request):
                self._release(item)
        self.queue = kept

    def _release(self, request: Request) -> None:
        held = request.held
        if held:
            request.held = 0
            self.server.held -= held

    def on_message_complete(self) -> None:
        request = self.parsing
        assert request is not None
        request.complete = True
        self.parsing = None
        self._closes = not request.keep_alive
        _wake(request._waiter)

    # -- what the handler uses

    def write(self, data: bytes) -> None:
        if self.lost:
            raise ConnectionResetError("the client closed the connection")
        self.replying = True
        self._outbox.write(self.transport, data)  # type: ignore[arg-type]

    def must_drain(self) -> bool:
        """Whether `drain` has anything to wait for (the client is not reading) or to raise (it left): when
        not, the await is skipped, and with it a coroutine a reply (a stream's every chunk)."""
        drained = self._drained
        return self.lost or (drained is not None and not drained.done())

    async def drain(self) -> None:
        """Wait while the client is not reading what was written (the transport's buffer is full); a
        client that reads nothing for `SEND_TIMEOUT_S` is cut off (it would hold an upstream connection)."""
        drained = self._drained
        if drained is not None and not drained.done():
            try:
                await asyncio.wait_for(asyncio.shield(drained), SEND_TIMEOUT_S)
            except TimeoutError:
                self.abort()
                raise ConnectionResetError(f"the client read nothing for {SEND_TIMEOUT_S:g}s") from None
        if self.lost:
            raise ConnectionResetError("the client closed the connection")

    async def body(self, request: Request) -> bytes:
        """The request's body, once all of it is in; `Expect: 100-continue` is answered first. A body
        that stops coming for `limits.header_timeout_s` fails with 408 (slow clients cannot pin it)."""
        if not (request.complete or request.failed or request.too_large):
            if request.expects:
                request.expects = False
                if request.version == "1.1" and not self.lost:
                    self._outbox.write(self.transport, CONTINUE)  # type: ignore[arg-type]  # interim: not the reply
            request._waiter = self._loop.create_future()
            self._arm(self.server.header_timeout_s)
            try:
                await request._waiter
            finally:
                self._disarm()
            if self.lost:
                raise ConnectionResetError("the client closed the connection")
        if request.failed is not None:
            raise request.failed
        if request.too_large:
            raise _too_large(request, self.server.max_body_bytes)
        return _whole(request._body)

    def unsent(self) -> int:
        """Bytes written and not yet sent, those waiting for the turn's end included (0 once the connection is
        gone)."""
        if self.lost or self.transport is None:
            return 0
        return self.transport.get_write_buffer_size() + self._outbox.waiting(self.transport)

    def abort(self) -> None:
        """Cut the connection without a clean end (an upstream that failed mid-reply). What was written before
        is handed to the socket first, as it was when each write went out at once."""
        if self.transport is not None and not self.lost:
            self._outbox.flush()
            self.transport.abort()
        self.lost = True

    # -- serving

    def _kick(self) -> None:
        # (the serve loop, begun at `connection_made`, waits for a request: made here until 2026-12-06, helper idle)
        _wake(self._wake)

    async def _serve(self) -> None:
        server = self.server
        answered = True  # the loop ends right after an answer, not waiting for a request (`_close`, below)
        while not self.lost:
            if not self.queue:
                if self._broken or self.closing:
                    answered = False
                    break
                self._wake = self._loop.create_future()
                await self._wake
                continue
            item = self.queue.popleft()
            # (an upgrade request's body, which the connection reads itself, is read after the requests before it)
            if (
                not self._reading
                and len(self.queue) < PIPELINE_DEPTH // 2
                and (not self._broken or self._upgrade_body is not None)
            ):
                self._resume()
            if isinstance(item, ProxyError):  # a head refused: nothing of it was kept
                with contextlib.suppress(ConnectionError):
                    await self._refused(Request(), item)
                break
            self.serving = item
            self.replying = False
            box = self._outbox
            box.busy += 1
            stop = True  # no `break` inside the try: mypyc cannot compile one there
            try:
                refusal = item.failed if item.failed is not None and item.complete else None
                if self.over_cap:
                    refusal = Overloaded("lineage-proxy is at its connection limit; retry shortly")
                if refusal is not None:
                    self.closed_by = type(refusal)
                    await self._refused(item, refusal)
                    # its body may still come: dropped while closing. Not set back when it came whole, refused as it
                    # came (past limits.bodies_max_bytes, `_keep`): the connection lingers, reading on behind it
                    # (`_behind`); before 2026-12-07 it was closed outright with the answer, what came after unrecorded
                    self._broken = self._broken or not item.complete
                else:
                    await server.handler(item, self)
                    if self.queue:  # a pipelined request waits: is the client reading its replies? (written now)
                        box.flush()
                    if self.must_drain():
                        await self.drain()  # a client that pipelines and does not read gets no more replies buffered
                    stop = False
            except (ConnectionError, asyncio.CancelledError):
                pass
            except Exception:
                self.closed_by = ProxyError
                log.exception("internal error serving %s %s", item.method, item.target)
            finally:
                self.serving = None
                box.busy -= 1
                self._release(item)
                if self._upgrade_body is item:  # answered before its body was all in: the rest is dropped unkept
                    self._upgrade_body = None
                    self._broken = True
            if stop:
                break
            if not item.keep_alive or item.too_large or not item.complete:
                if not item.complete and not self._broken and self.closed_by is not None:
                    # refused before its body was all in (a GET carrying one, 400; a head refused as it was parsed,
                    # `failed`, two Host fields: its framing is read all the same): the rest of that body is dropped as
                    # it comes, read on for the requests pipelined behind it, recorded refused as it was (`_behind`),
                    # as behind a body over the limit. Before 2026-12-07 nothing more was read: one whose bytes came
                    # after the answer was dropped with no record. (Not once `_broken`: its framing failed, or its
                    # body was dropped already, `_drop`, or stopped coming, 408)
                    self._drop(item)
                self._broken = self._broken or not item.complete  # a body still coming is dropped while closing
                # (nothing is read behind one that closes the connection itself but one asking to upgrade)
                if self.upgraded:
                    self.upgrade_answered = not item.keep_alive
                break
            if self.closing:  # its reply said `Connection: close`, but for one that went out before the drain
                if not self._owed:
                    break
                self._owed = False
                # the one owed closes the connection itself (one asking to upgrade, read before its turn): what is
                # behind it is recorded as behind it, as when the drain begins while it is served (`shutdown`), not as
                # the drain's cut (until 2026-12-05, review revrecords' probe, `drain_timeout`)
                owed = self.queue[0] if self.queue else None
                if isinstance(owed, Request) and not owed.keep_alive:
                    self.closed_first = True
            if not self.queue:
                open_head = self.parsing is not None and not self.parsing.method
                if open_head:  # a pipelined head still coming: its header timeout runs from its first byte
                    self._deadline = self._head_started + server.header_timeout_s
                else:
                    self._arm(server.idle_timeout_s)
        if self.closed_by is not None and not self._broken and not self.lost:
            # an answer that closes the connection to a request that came whole (a head refused as it was parsed:
            # TRACE, two Host fields, an HTTP/2.0 line; past limits.max_connections; an internal error): what comes
            # after it is read on and recorded as behind a refused body while the connection lingers (`_close`).
            # Before 2026-12-07 it closed outright: bytes unread in its socket reset it, and a client still sending
            # got ECONNRESET, its answer with it (its send failed before it read one). (Not once its client left: a head
            # it left part-way is recorded as cut behind that answer, `_head_cut`, below)
            self._keep_behind()
            self._read_on()
        # (`closing` alone: its reply closed the connection itself, a stream to an HTTP/1.0 client framed by its close)
        if self.queue and (self.lost or self.closing or self.closed_by is not None or self.upgraded):
            self._unserved()
        # a head partly read behind the reply that closed the connection: the drain's, an upgrade request's, a refusal's
        # or an internal error's (`closed_by`), a reply framed by the connection's close (`closing`, an HTTP/1.0 stream);
        # before 2026-12-05 dropped unrecorded behind the last two (and behind an upgrade request, before that date)
        # Not behind a refused body whose framing is read on (`_behind`): the connection lingers, reading it whole
        # (recorded as it is, `data_received`), or cut when it ends (`connection_lost`); before 2026-12-07 cut here,
        # its fields unread
        if (self.draining or self.upgraded or self.closing or self.closed_by is not None) and not self._behind:
            self._head_cut()
        if self.upgraded:
            # the request asking to upgrade was answered: nothing more is read, its body neither (never served, it
            # was given back by `_unserved`: before 2026-12-05 the rest of it was counted again, for the process's life)
            self._broken = True
            self._upgrade_body = None
        if answered and not self._broken and self.draining:
            # the connection closes right after the drain's answer (SIGTERM): it lingers, what comes dropped unread (RFC
            # 9112 §9.6), as after a refusal. Before 2026-12-07 it closed outright: bytes its client sent after its
            # request (one pipelined behind it, or the next, sent as the answer went out) reset the connection, and what
            # of that answer the client had not yet read was lost to the reset (a slow reader of a large reply:
            # ECONNRESET part-way). Not when it closes while waiting for a request (the drain's close of an idle
            # connection): nothing is owed there. Nor after a request that closed it itself (`Connection: close`,
            # HTTP/1.0): its client sends no more (it MUST NOT, RFC 9112 §9.6; what it sent with it is read, `_closes`,
            # and the connection lingers), and closes once it has read the answer: lingering for that close held the
            # connection's slot (limits.max_connections) a round trip longer, and clients that connect anew for each
            # call got 503 at the cap (review revwire12, h-wire12: 88 of 2,800 calls with 4 clients at a cap of 4),
            # and cost each such call 12.4-13.1k instructions more
            self._broken = True
        self._close()
        if self.closed.done():  # its socket closed already (else `connection_lost`, to come)
            self._let_go()

    def _unserved(self) -> None:
        """The requests pipelined behind the one served when its client left, or behind the reply that closed the
        connection for the drain, or for a refusal or an internal error (`closed_by`), or by its framing (each one's
        head read, some whole): never served, each recorded as a call its client left, the drain cut, or refused as
        the one before it was (`HttpServer.record_unserved`): the call had begun."""
        record = self.server.record_unserved
        queue, self.queue = self.queue, collections.deque()
        for item in queue:
            if not isinstance(item, Request):  # (a head refused, unanswered, made no call)
                continue
            # what was read of its body is given back (`HttpServer.held`): taken off the queue here, `connection_lost`
            # never saw it, and before 2026-12-05 it stayed counted for the process's life (a budget that shrank with
            # each such request, until every body was refused 503)
            self._release(item)
            if record is not None:
                try:
                    record(item, self, True)
                except Exception:
                    log.exception("could not record a request its client left unserved (%s %s)", item.method,
                                  item.target)  # fmt: skip

    def _head_cut(self) -> None:
        """A request head only partly arrived when the drain (SIGTERM) closes the connection (the client's bytes were
        read, the call had begun): recorded `drain_timeout`, unserved (`HttpServer.record_unserved`), as a head
        refused unread is, its method and path when its request line came whole, nothing of its fields read (a
        client that left meanwhile made no call). Before 2026-12-05 it was dropped with no record. So too one only
        partly arrived when the request asking to upgrade before it is answered (`upgraded`: the connection closes),
        or the answer that closes the connection goes out (a refusal, an internal error: `closed_by`; a reply framed by
        its close: `closing`), recorded refused as behind that one (before 2026-12-05 dropped with no record). A head
        refused (`_refuse`), or dropped behind an upgrade request, is no longer `parsing`: recorded as its refusal when
        answered (before 2026-12-05 a second time here, `drain_timeout`), or not at all."""
        request = self.parsing
        record = self.server.record_unserved
        # (not `_broken`, as before 2026-12-05: a body refused, 413 or 503, sets it too, and a head read after that body
        # in the same read, pipelined, was dropped unrecorded). `lost` with `closed_by`: the proxy cut the connection (a
        # reply its upstream broke off, `_broke`), not its client (before 2026-12-05, helper revrecords4, dropped so)
        if (
            request is None
            or request.method
            or (self.lost and not self.cut and self.closed_by is None)
            or record is None
            or self._behind_left <= 0  # (past the PIPELINE_DEPTH kept behind a refused body, `_behind_room`)
        ):
            return
        if self.upgraded and (not request.target or self.parser.get_method() == b"PRI"):
            # behind one asking to upgrade: the protocol it asked for, sent before its answer, is no request (the HTTP/2
            # preface is one to llhttp until its last line, "PRI * HTTP/2.0", RFC 9113 §3.4), nor a head with no target
            # yet ("PR"); before 2026-12-05 (helper revrecords3) recorded as a request cut, PRI "*", or with no path
            return
        request.headers.clear()  # not whole: no field of it is read, its key neither
        self._behind = False  # (the rest of it, still to come, is no request's: nothing more is read)
        # its request line came whole (`_line_in`, kept as each read left it open). Before 2026-12-05 only once a field
        # had been handed over (`head_size`), which llhttp does as the next one begins: a head cut after its line, or
        # its one field, was recorded with no method or path
        if self._line_in or request.head_size > len(request.target):
            request.method = _method(self.parser.get_method())
        else:
            request.target = ""
        self.parsing = None
        # said by the drain's warning (`HttpServer.shutdown`); not one behind an answer that closed the connection
        # (`closed_by`), or behind a reply that closed it before the drain began (`closed_first`), recorded with its
        # cause, unless the drain's time ran out first (`cut`)
        if self.draining and (self.cut or (not self.reloaded and self.closed_by is None and not self.closed_first)):
            self.server.heads_cut += 1
        try:
            record(request, self, False)
        except Exception:
            log.exception("could not record a request head the drain cut (%s %s)", request.method, request.target)

    def keeps_alive(self, request: Request) -> bool:
        """Whether the reply to `request` leaves the connection open (else it says `Connection: close`)."""
        return (
            request.keep_alive and not self.closing and request.complete and not request.too_large
            and request.failed is None
        )  # fmt: skip

    def reply(self, request: Request, status: int, content_type: bytes, body: bytes, fields: bytes = b"") -> None:
        """A whole reply of the proxy's own to `request` (admin, listings), framed for it."""
        self.write(simple_reply(status, body, content_type, fields, keep_alive=self.keeps_alive(request),
                                head=request.method == "HEAD", http10=request.version == "1.0"))  # fmt: skip

    def error(self, request: Request, error: ProxyError, lineage: list[tuple[str, str]], *,
              keep_alive: bool = True) -> None:  # fmt: skip
        """The contract's error reply to `request` (`keep_alive=False`: and the connection closes); to a head refused
        (`request` empty), in the error shape of its target's API when that was read whole (`_refuse`)."""
        keep_alive = keep_alive and self.keeps_alive(request)
        if not keep_alive and request.keep_alive and not self.closing and self.closed_by is None:
            # the connection closes with this answer (a body over the limit, one refused before it was all in): what is
            # pipelined behind it is recorded refused as this one (`HttpServer.record_unserved`); before 2026-12-05
            # behind a 413 it was dropped with no record. Not when the request closes it itself: one asking to upgrade
            # (`upgraded`), the one behind it recorded as behind that (before 2026-12-05 refused with this one's code)
            self.closed_by = type(error)
        self.write(error_reply(error, lineage, keep_alive=keep_alive,
                               head=request.method == "HEAD", http10=request.version == "1.0",
                               path=request.path or self.refused_path))  # fmt: skip

    async def _refused(self, request: Request, error: ProxyError) -> None:
        """Answer a request the connection refuses itself, then close: recorded first by the server's
        `record_refusal` (its trace id and decision go in the answer), as every refusal is."""
        fields: list[tuple[str, str]] = []
        record = self.server.record_refusal
        if record is not None:
            try:
                fields = await record(request, error, self)
            except (ConnectionError, asyncio.CancelledError):
                raise
            except Exception:  # the answer goes out all the same
                log.exception("could not record a refused request (%s)", error.message)
        if self.over_cap:
            fields.append(("Retry-After", "1"))
        self.error(request, error, fields, keep_alive=False)

    def _close(self) -> None:
        """Close after what was written is sent. When the client may still be sending (a refused body,
        malformed framing), close the writing side only and drop what still comes for up to
        `LINGER_S`: closing a socket with unread bytes resets it, and the client could lose the answer."""
        self._disarm()
        transport = self.transport
        # closed already (its reply said `Connection: close`, then a drain): asyncio's TLS transport, closed twice,
        # drops its protocol, and `unsent` (its `get_write_buffer_size`) raised in the drain
        if transport is None or self.lost or transport.is_closing():
            return
        if self._lingering is not None:
            # lingering already, closed again (the drain's `shutdown`, or a reload's): its timer is the one, cancelled
            # when it is lost. Before 2026-12-07 a second one replaced it uncancelled, which held the connection, and
            # the request it was reading, until it fired (LINGER_S after the answer, the connection long gone)
            return
        self._outbox.flush()  # what waits for the turn's end goes first
        if not self._broken or not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        if not self._reading:  # (a plain connection: a TLS transport cannot write_eof)
            self._resume()
        self._lingering = self._loop.call_later(LINGER_S, self._linger, transport.get_write_buffer_size())

    def _linger(self, unsent: int) -> None:
        """`LINGER_S` after a closing connection's answer: cut it, unless the client is still reading
        it (what was unsent then has shrunk since), in which case look again later."""
        if self.lost or self.transport is None:
            return
        left = self.transport.get_write_buffer_size()
        if left and left < unsent:
            self._lingering = self._loop.call_later(LINGER_S, self._linger, left)
            return
        if self._behind:
            # a head partly come behind the answer, read on (`_behind`): recorded as behind that answer, before the cut
            # (`lost` would say the proxy cut a reply), as the drain does when its time ends first (`HttpServer.shutdown`),
            # which since 2026-12-07 waits for a connection lingering
            self._head_cut()
        self.abort()

    def shutdown(self, reload: bool = False) -> None:
        """Stop after the request being served (and the next one, when its reply had gone out saying keep-alive: its
        client awaits that one's; its own says `Connection: close`); an idle connection closes now. `reload`: a reload
        that changed `listen.tls` client authentication closes it, not the drain (SIGTERM), which may follow."""
        if not self.draining:
            self.reloaded = reload  # (what closed it first: the drain after a reload finds it closing already)
            # (or the request being served closes it, one asking to upgrade, whose answer's head has not gone out yet:
            # until 2026-12-05, review revrecords, what was behind it was the drain's cut, `drain_timeout`)
            serving = self.serving
            self.closed_first = self.closing or (serving is not None and not serving.keep_alive)
        # (not when that reply closes the connection itself, `closing` already: a stream to an HTTP/1.0 client, its
        # body ending with the connection, which a next reply written after it would have joined)
        self._owed = self.serving is not None and self.replying and not self.closing
        self.closing = True
        self.draining = True
        if self.serving is None and not self.queue:
            task = self._task
            if task is not None and not task.done():  # waiting, or yet to run its first step (`connection_made`)
                _wake(self._wake)  # the serve loop closes
            else:
                self._head_cut()
                self._close()

    def hear_leaving(self) -> None:
        """Reading paused behind PIPELINE_DEPTH requests queued unserved (`data_received`): a client leaving then sends
        its FIN (or reset) behind bytes not read, so its leaving is heard of from its socket's TCP state, at the
        server's sweep (`HttpServer._expire`), and the connection is cut as its client's leaving cuts it
        (`connection_lost`): the call being served cancelled, its upstream's with it, those queued recorded unserved.
        Before 2026-12-07 not until the queue drained: the upstream's calls ran on for a client gone."""
        transport = self.transport
        if self._reading or self.lost or transport is None or not _TCP_INFO:
            return
        sock = transport.get_extra_info("socket")
        try:
            info: bytes = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, 1)
        except (OSError, AttributeError):  # (no TCP socket: nothing to ask)
            return
        if info and info[0] in _PEER_GONE:
            transport.abort()

    # -- timers

    # A deadline per connection, checked by the server's sweep (`HttpServer._sweep`): no timer is made
    # and cancelled per request.

    def _arm(self, delay: float) -> None:
        self._deadline = self.server.now() + delay

    def _disarm(self) -> None:
        self._deadline = None

    def expire(self, now: float) -> None:
        """Past the deadline: close a connection waiting for a request (head); fail a request whose
        body stopped coming (408)."""
        deadline = self._deadline
        if deadline is None or now < deadline:
            return
        self._deadline = None
        serving = self.serving
        if serving is not None:
            if serving._waiter is not None and not serving._waiter.done():
                serving.failed = BodyTimeout(
                    f"the request body stopped coming for limits.header_timeout_s ({self.server.header_timeout_s:g}s)"
                )
                self._broken = True  # the rest of that body is not read
                _wake(serving._waiter)
            return
        if not self.queue and self.transport is not None:
            self._outbox.flush()  # a reply written this turn (a pipelined head came late after it) goes first
            if self.parsing is None:  # idle: nothing came since its last answer, nothing is unread
                self.lost = True
                self.transport.close()
                return
            # a head late (limits.header_timeout_s): its client may be sending still, and may not have read the answer
            # before it (pipelined): the connection lingers (`_close`), what comes dropped. Before 2026-12-07 it closed
            # outright, and bytes sent after the close reset it, that answer lost if not yet read. The late head is no
            # call (as before): let go, not recorded as one the drain cut when the drain comes while the connection
            # lingers (`shutdown`, `HttpServer.shutdown`; review revwire12: it was, `drain_timeout`, counted in
            # `heads_cut`)
            self._broken = True
            self._behind = False
            self.parsing = None
            self._close()
            _wake(self._wake)  # (the serve loop ends)


def forwarded_pieces(peername: Any, tls: bool) -> tuple[bytes, bytes, bytes]:
    """What the upstream is told of a connection's client, as the three endings of its header block
    (`proxy.ingress.http.forward_fields`): `X-Forwarded-For` whole, for a caller that sent none; what follows the
    caller's own list: the peer's address (as nginx's `$remote_addr`: an IPv6 one bare, no brackets or port; `unknown`
    when the socket has none), then `X-Forwarded-Proto` the listener's scheme; and that last field alone, for an
    upstream whose model is handed the fields (`Upstream.fields_to_model`)."""
    host = str(peername[0]) if isinstance(peername, tuple) and peername and peername[0] else "unknown"
    address = host.encode("ascii", "replace")
    proto = b"X-Forwarded-Proto: https\r\n" if tls else b"X-Forwarded-Proto: http\r\n"
    return b"X-Forwarded-For: " + address + b"\r\n" + proto, b", " + address + b"\r\n" + proto, proto


NO_PEER: Final = forwarded_pieces(None, False)


def client_of(peername: Any) -> tuple[str, int] | None:
    """A connection's client as its call's record names it (`Outcome.client`): the TCP peer's address (an IPv6 one
    bare, as nginx's `$remote_addr`) and port; None for a socket that has none (a Unix socket's peer is '')."""
    if isinstance(peername, tuple) and len(peername) >= 2 and peername[0] and isinstance(peername[1], int):
        return str(peername[0]), peername[1]
    return None


def _address(peer: Any) -> str:
    """A peer's address as `host:port` (`[host]:port` for IPv6)."""
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = str(peer[0])
        return f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}"
    return str(peer)


async def _first_bytes(loop: asyncio.AbstractEventLoop, conn: socket.socket, deadline: float) -> bytes | None:
    """The first bytes a new connection sent, peeked (left to be read again); None when it closed or reset first.
    Raises TimeoutError when none came by `deadline` (the loop's clock). Waits on the socket's readiness only when
    they are not there yet (a client speaks first on TLS, and its ClientHello is most often in by the accept)."""
    conn.setblocking(False)
    try:
        return conn.recv(_PEEK, socket.MSG_PEEK) or None
    except (BlockingIOError, InterruptedError):
        pass
    except OSError:
        return None
    await _readable(loop, conn, deadline)
    try:
        return conn.recv(_PEEK, socket.MSG_PEEK) or None
    except OSError:
        return None


async def _readable(loop: asyncio.AbstractEventLoop, conn: socket.socket, deadline: float) -> None:
    """Until `conn` has bytes to read (or its end); TimeoutError past `deadline` (the loop's clock)."""
    ready: asyncio.Future[None] = loop.create_future()
    loop.add_reader(conn, _wake, ready)
    try:
        async with asyncio.timeout_at(deadline):
            await ready
    finally:
        loop.remove_reader(conn)


async def _method_rest(
    loop: asyncio.AbstractEventLoop, conn: socket.socket, first: bytes, deadline: float
) -> bytes | None:
    """The bytes that decide whether a connection whose first bytes, `first` (peeked), are capitals only (an HTTP
    method's start, no TLS record's: `_METHOD_START`) speaks plain HTTP: read, not peeked (a socket whose bytes are
    left unread stays readable, and a wait on it would spin), until they are no method's start any more. None when
    it closed or reset first; TimeoutError past `deadline` (the loop's clock)."""
    try:
        got = conn.recv(len(first))
    except OSError:
        return None
    while _METHOD_START.fullmatch(got) is not None:
        await _readable(loop, conn, deadline)
        try:
            more = conn.recv(_PEEK)
        except (BlockingIOError, InterruptedError):
            continue
        except OSError:
            return None
        if not more:
            return None
        got += more
    return got


# reads of 64 KiB of a plain HTTP request's bytes before its answer (`_plain_http`), on the loop's turn: the rest is
# read after the answer, a read a turn, for at most LINGER_S. Not until none is waiting: a client that kept sending
# (a large upload to http://) held the event loop, every other connection's calls with it, as long as it did
_DRAIN_READS: Final = 16
_PEEK: Final = 1024  # bytes peeked at the start of a TLS connection: a request line's method and path, most often
# a plain HTTP request's first bytes (a method, then a space); a TLS connection's start with 0x16 (a handshake record)
_PLAIN_HTTP: Final = re.compile(rb"[A-Z]{3,16} ")
# first bytes that could still begin one (sent in pieces: `G`, then `ET / ...`): the bytes after them decide
_METHOD_START: Final = re.compile(rb"[A-Z]{1,16}")
# its reason and words as `handshake_failure` gives them for OpenSSL's own HTTP_REQUEST (what it said before the peek)
_PLAIN_HTTP_FAILURE: Final = ("http_request", "a plain HTTP request: the client speaks http:// to the TLS listener "
                                              "(answered with 400: use https://)")  # fmt: skip


def _not_tls() -> ssl.SSLError:
    """What OpenSSL says of a connection's first bytes that are not a TLS record (its reason, for the count)."""
    exc = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    exc.reason = "WRONG_VERSION_NUMBER"
    return exc


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


def _malformed(exc: Exception, data: bytes, unframed: str = "") -> ProxyError:
    """`unframed`: the method of the request before, when it had neither Content-Length nor Transfer-Encoding: RFC 9112
    section 6.3 gives it no body, so a body sent behind it is read as this request. It is answered (as the RFC has it,
    whatever the method: a DELETE's, an OPTIONS' too; not said after a GET or HEAD, whose body has no meaning), then
    this one is refused, saying why (before 2026-12-05 the second answer, and its record, named llhttp's complaint
    alone)."""
    if data.startswith(b"\x16\x03"):  # a TLS handshake record: llhttp's "Invalid method encountered" named no cause
        return InvalidRequest("malformed HTTP request: a TLS handshake (ClientHello) where HTTP was expected: the client "
                              "speaks https:// to a listener serving plain HTTP (no listen.tls)")  # fmt: skip
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else "bad framing"
    if unframed:
        text += (f" (after a {unframed} sent with neither Content-Length nor Transfer-Encoding, which has no body by "
                 "RFC 9112 section 6.3: bytes sent as its body are read as the next request; send a Content-Length)")  # fmt: skip
    return InvalidRequest(f"malformed HTTP request: {text}")


def _too_large(request: Request, limit: int) -> RequestTooLarge:
    length = request.content_length
    if length is not None and length > limit:
        return RequestTooLarge(f"request body of {length} bytes is over the limit of {limit} bytes")
    return RequestTooLarge(f"request body is over the limit of {limit} bytes")


_date: list[object] = [0, b""]


def date_header() -> bytes:
    """`Date: ...\\r\\n` for the proxy's own replies, formatted once a second."""
    now = int(time.time())
    if _date[0] != now:
        _date[0], _date[1] = now, b"Date: " + email.utils.formatdate(now, usegmt=True).encode() + b"\r\n"
    return _date[1]  # type: ignore[return-value]


def status_line(status: int, reason: bytes | None = None) -> bytes:
    return b"HTTP/1.1 %d %s\r\n" % (status, reason if reason is not None else _REASONS.get(status, b""))


def encode_fields(fields: list[tuple[str, str]]) -> bytes:
    # a field's line made at once (one f-string, not four appends each), the lines joined and encoded once
    return "".join([f"{name}: {value}\r\n" for name, value in fields]).encode("utf-8", "surrogateescape")


def simple_reply(
    status: int, body: bytes, content_type: bytes, fields: bytes = b"", *, keep_alive: bool = True, head: bool = False,
    http10: bool = False,
) -> bytes:  # fmt: skip
    """A whole reply the proxy makes itself, in one buffer (`head`: a reply to HEAD, so no body;
    `http10`: to an HTTP/1.0 client, which is told when the connection stays open)."""
    return b"".join((
        status_line(status), date_header(), b"Content-Type: ", content_type, b"\r\nContent-Length: %d\r\n" % len(body),
        fields, connection_field(keep_alive, http10), b"\r\n", b"" if head else body,
    ))  # fmt: skip


def connection_field(keep_alive: bool, http10: bool) -> bytes:
    """The Connection field a reply needs: `close` when the connection ends after it; `keep-alive` to an
    HTTP/1.0 client when it does not (1.1 keeps alive unless told otherwise)."""
    if not keep_alive:
        return b"Connection: close\r\n"
    return b"Connection: keep-alive\r\n" if http10 else b""


def field_key(name: bytes) -> str:
    """A field name's key in a request's fields: lower-case, decoded (names are tokens, which llhttp has checked:
    latin-1 is exact). Kept by the name as sent: a client sends the same few names on every request, so the key
    is made (and its hash computed, for the dict it goes in) once, not for every field of every request."""
    key = _FIELD_KEYS.get(name)
    if key is None:
        key = name.lower().decode("latin-1")
        keep(_FIELD_KEYS, name, key, _FIELD_KEY_MAX, 256)
    return key


_FIELD_KEYS: Final[dict[bytes, str]] = {}
_FIELD_KEY_MAX: Final = 64
# the places of a head whose names a connection keeps (`HttpConnection._field_values`): a client's usual head (the
# openai SDK sends 18 fields), the rest looked up in `field_key`'s table each time
_KEPT_PLACES: Final = 32


def _method(method: bytes) -> str:
    """A request's method, decoded; kept by its bytes (llhttp knows a few dozen methods and refuses any other)."""
    text = _METHODS.get(method)
    if text is None:
        text = _METHODS[method] = method.decode("latin-1")
    return text


_METHODS: Final[dict[bytes, str]] = {}


def _joined(raw: list[tuple[bytes, bytes]]) -> tuple[dict[str, bytes], int]:
    """A head's fields by lower-case name, a field sent on several lines joined with ','; and how many
    Host lines it has. Joined as sent, decoded when read (`RequestFields.get`): the same text, ',' being one
    byte that UTF-8 never continues."""
    fields: dict[str, bytes] = {}
    hosts = 0
    for name, value in raw:
        key = field_key(name)
        fields[key] = fields[key] + b"," + value if key in fields else value
        hosts += key == "host"
    return fields, hosts


def list_members(value: str) -> set[str]:
    """A list field's members, lower-case (Expect, RFC 9110 10.1.1, whose only member defined is `100-continue`;
    Connection's options): a comma list, sent on one line or several (`_joined`), spaces around a member and empty
    members dropped."""
    return {member.strip(" \t").lower() for member in value.split(",")} - {""}


_CONTINUE: Final = {"100-continue"}


def _add(parts: list[bytes | bytearray], piece: bytes) -> None:
    """A body piece kept: a large one as it came (no copy), a small one added to the last (a chunked body
    sent a byte a chunk held one object per byte, ~90 times the body in memory)."""
    if parts and len(piece) < _SMALL_PIECE:
        last = parts[-1]
        if type(last) is not bytearray:
            last = parts[-1] = bytearray(last)
        last += piece
    else:
        parts.append(piece)


_SMALL_PIECE = 4096


def _whole(parts: list[bytes | bytearray]) -> bytes:
    """A body's pieces as one bytes (the piece itself when it is the only one and not a bytearray)."""
    if len(parts) == 1:
        only = parts[0]
        if type(only) is bytes:
            return only
    return b"".join(parts)


def error_reply(
    error: ProxyError, fields: list[tuple[str, str]], *, keep_alive: bool, head: bool = False, http10: bool = False,
    path: str = "",
) -> bytes:  # fmt: skip
    """`error` as a reply to a request for `path`, in the error shape of the API it belongs to (`http_body`)."""
    if error.retry_after_s is not None:  # a refusal a retry may get past (503 checkpoint_unknown)
        fields = [*fields, ("Retry-After", str(error.retry_after_s))]
    return simple_reply(error.status, error.http_body(path), b"application/json", encode_fields(fields),
                        keep_alive=keep_alive, head=head, http10=http10)  # fmt: skip


Handler = Callable[[Request, HttpConnection], Awaitable[None]]
# records a request a connection refuses before any handler sees it; returns the lineage headers of its answer
RecordRefusal = Callable[[Request, ProxyError, HttpConnection], Awaitable[list[tuple[str, str]]]]
# records a request its client left before it was served (pipelined behind another): no one is answered
RecordUnserved = Callable[[Request, HttpConnection, bool], None]  # (the bool: its head was read whole)


class HttpServer:
    """One listener's connections, with the limits every connection obeys."""

    def __init__(
        self,
        handler: Handler,
        limits: Limits,
        record_refusal: RecordRefusal | None = None,
        record_unserved: RecordUnserved | None = None,
    ) -> None:
        self.handler = handler
        # what records the requests a connection refuses itself (framing, the head's limits, the connection cap):
        # `HttpIngress.record_refusal` on the proxy's listener; none on the admin one
        self.record_refusal = record_refusal
        # what records a request pipelined behind another whose client left before it was served
        # (`HttpIngress.record_unserved`); none on the admin one
        self.record_unserved = record_unserved
        self.set_limits(limits)
        self.connections: set[HttpConnection] = set()
        self.refused = 0
        self.framing_errors = 0
        self.draining = False  # the drain (SIGTERM) has begun (`shutdown`): a connection made now closes at once
        self.heads_cut = 0  # request heads still arriving the drain closed (`HttpConnection._head_cut`), said by it
        self.held = 0  # bytes of request bodies held, all connections together (`HttpConnection._keep`)
        self.bodies_refused = 0
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.now = time.monotonic
        self.hurried = asyncio.Event()  # the drain is cut short now (`shutdown`): a second Ctrl-C, or SIGUSR1
        self.hurried_by = "a second SIGINT"  # what cut it short, as its log line names it (`ProxyProcess.hurry`)
        # a TLS listener's failed handshakes: counted here, by reason in `on_handshake_failure` (the metric), and said
        # in a warning at most every `HANDSHAKE_LOG_S` (`handshake_failed`)
        self.on_handshake_failure: Callable[[str], None] | None = None
        self.handshake_failures = 0
        self._handshakes_said = 0  # `handshake_failures` when the last warning was written
        self._handshake_log_after = -HANDSHAKE_LOG_S  # `now()` from which the next one may be written
        self._listening: socket.socket | None = None  # a TLS listener's socket, accepted from by `_accept`
        self._handshakes: set[asyncio.Task[None]] = set()  # a TLS listener's connections still in their handshake

    def set_limits(self, limits: Limits) -> None:
        """What every connection obeys of `limits.*` from now on: at start, and on a reload."""
        self.max_connections = limits.max_connections
        self.idle_timeout_s = limits.idle_timeout_s
        self.header_timeout_s = limits.header_timeout_s
        self.max_header_bytes = limits.max_header_bytes
        self.max_headers = limits.max_headers
        self.max_body_bytes = limits.max_body_bytes
        self.bodies_max_bytes = limits.bodies_max_bytes
        # timeouts are checked this often, so a connection closes at most a quarter of its timeout late
        self.sweep_s = min(1.0, max(0.01, min(limits.idle_timeout_s, limits.header_timeout_s) / 4))

    def __call__(self) -> HttpConnection:
        return HttpConnection(self)

    async def start(self, sock: socket.socket, ssl_context: ssl.SSLContext | None = None) -> None:
        """Serve the connections `sock` (bound, listening, non-blocking) accepts; over TLS with `ssl_context`."""
        loop = asyncio.get_running_loop()
        self.now = loop.time
        if ssl_context is None:
            self._server = await loop.create_server(self, sock=sock, backlog=LISTEN_BACKLOG)
        else:
            self._listening = sock
            loop.add_reader(sock, self._accept, sock, ssl_context)
        self._sweeper = loop.create_task(self._sweep())

    def _accept(self, sock: socket.socket, context: ssl.SSLContext) -> None:
        """A connection waiting on the TLS listener (called while its socket is readable), accepted here and not by
        `loop.create_server`, whose event loop drops a handshake that fails without a word (asyncio and uvloop say it
        in debug mode only): an operator whose clients refused the certificate, or whose client certificates the CA
        refused, saw nothing. Its handshake runs on a task of its own (`_handshake`); the plain HTTP listener is
        `create_server`'s, as it was. One a call: more waiting call it again at once (the loop's readers are
        level-triggered), and none costs no failed `accept` a connection."""
        try:
            conn, peer = sock.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            if exc.errno in _ACCEPT_SKIPPED:  # what a client did to its connection before it was accepted
                return
            # out of file descriptors or memory: as asyncio's own accept, wait before trying again
            log.warning("the TLS listener cannot accept a connection: %s; trying again in %gs", exc, ACCEPT_RETRY_S)
            loop = asyncio.get_running_loop()
            loop.remove_reader(sock)
            loop.call_later(ACCEPT_RETRY_S, self._accept_again, sock, context)
            return
        task = asyncio.get_running_loop().create_task(self._handshake(conn, peer, context))
        self._handshakes.add(task)
        task.add_done_callback(self._handshakes.discard)

    def _accept_again(self, sock: socket.socket, context: ssl.SSLContext) -> None:
        if self._listening is sock:  # not closed meanwhile (`shutdown`)
            asyncio.get_running_loop().add_reader(sock, self._accept, sock, context)

    async def _handshake(self, conn: socket.socket, peer: Any, context: ssl.SSLContext) -> None:
        """One TLS connection: its handshake (bounded by `limits.header_timeout_s`, as a client that never completes
        one has no protocol yet, so no timeout of ours), then served by an `HttpConnection`. A handshake that fails
        on a TLS error, or does not end in time, is counted and said (`handshake_failed`); a client that closes
        before it ends is not (a TCP health check, a port scan). A client whose first bytes are a plain HTTP request
        line (http:// to this listener) is answered with a plain 400 saying to use https:// (`_plain_http`), as
        nginx does: the TLS stack would close it with no answer (curl: "Empty reply from server")."""
        loop = asyncio.get_running_loop()
        timeout = self.header_timeout_s
        deadline = loop.time() + timeout  # the wait for the first bytes and the handshake together
        try:
            first = await _first_bytes(loop, conn, deadline)  # a peek: the handshake reads them again
            if first is None:  # closed or reset before a byte came (a health check): nothing to say
                conn.close()
                return
            if first[:1] != b"\x16" and _METHOD_START.fullmatch(first) is not None:  # a method's start, in pieces
                first = await _method_rest(loop, conn, first, deadline)  # read: no handshake can follow
                if first is None:  # closed or reset meanwhile
                    conn.close()
                    return
                if _PLAIN_HTTP.match(first) is None:  # no method, and no TLS record either
                    conn.close()
                    self.handshake_failed(peer, _not_tls())
                    return
            if first[:1] != b"\x16" and _PLAIN_HTTP.match(first) is not None:  # not a TLS record: an HTTP method
                await self._plain_http(loop, conn, peer, first)
                return
        except TimeoutError:
            conn.close()
            self.handshake_failed(
                peer, ConnectionAbortedError(f"SSL handshake is taking longer than {timeout} seconds")
            )
            return
        except BaseException:  # cancelled (`shutdown`): the socket is not a transport's yet
            conn.close()
            raise
        try:
            left = max(deadline - loop.time(), 0.001)
            await loop.connect_accepted_socket(self, conn, ssl=context, ssl_handshake_timeout=left)
        except ssl.SSLError as exc:
            self.handshake_failed(peer, exc)
        except ConnectionAbortedError as exc:  # the handshake timeout (asyncio's and uvloop's own error)
            if "SSL handshake" in str(exc):
                self.handshake_failed(peer, exc)
        except OSError:  # the client closed or reset its connection first
            pass
        except Exception:  # (the socket is the transport's from the start: closed with it)
            log.exception("TLS connection from %s failed", _address(peer))

    async def _plain_http(self, loop: asyncio.AbstractEventLoop, conn: socket.socket, peer: Any, first: bytes) -> None:
        """Answer a plain HTTP request sent to the TLS listener with a plain HTTP/1.1 400 (`invalid_request`, in the
        error shape of its path's API) saying to use https://, then close. Counted and said as the handshake failure
        it is (reason `http_request`, OpenSSL's own). What the client sent is read and dropped first (what is in, at
        most `_DRAIN_READS` reads), and after the answer until it closes (at most `LINGER_S`, one read a turn of the
        loop): closing a socket with unread bytes resets it, and the client could lose the answer."""
        self.handshake_failed(peer, None)
        target = first.split(b" ", 2)[1] if first.count(b" ") >= 1 else b""
        path = unquote(target.split(b"?", 1)[0].decode("latin-1"))
        error = InvalidRequest("this listener serves TLS only (listen.tls is set) and the request came as plain HTTP: "
                               "use https:// (and the CA that issued listen.tls.cert) to reach it")  # fmt: skip
        try:
            with contextlib.suppress(BlockingIOError, InterruptedError):  # what is in now, `_DRAIN_READS` reads at most
                for _ in range(_DRAIN_READS):
                    if not conn.recv(65536):
                        break
            await loop.sock_sendall(conn, error_reply(error, [], keep_alive=False, path=path))
            conn.shutdown(socket.SHUT_WR)
            async with asyncio.timeout(LINGER_S):
                while await loop.sock_recv(conn, 65536):
                    # (a read that finds bytes waiting does not suspend: a client sending faster than this reads
                    # held the event loop, every connection's calls, until it stopped)
                    await asyncio.sleep(0)
        except (OSError, TimeoutError):
            pass
        finally:
            conn.close()

    def handshake_failed(self, peer: Any, exc: Exception | None) -> None:
        """A TLS handshake that failed (`exc` None: a plain HTTP request instead, `_plain_http`): counted by reason,
        and said with the client's address and the reason in a warning, at most one every `HANDSHAKE_LOG_S` (each
        saying how many failed since the one before)."""
        self.handshake_failures += 1
        reason, text = handshake_failure(exc) if exc is not None else _PLAIN_HTTP_FAILURE
        if self.on_handshake_failure is not None:
            self.on_handshake_failure(reason)
        now = self.now()
        if now < self._handshake_log_after:
            return
        self._handshake_log_after = now + HANDSHAKE_LOG_S
        unsaid = self.handshake_failures - self._handshakes_said - 1
        self._handshakes_said = self.handshake_failures
        log.warning("TLS handshake from %s failed: %s%s", _address(peer), text,
                    f" ({unsaid} more failed since the last such warning)" if unsaid else "")  # fmt: skip

    async def _sweep(self) -> None:
        """Close connections idle past `idle_timeout_s`, or whose request head is late."""
        while True:
            await asyncio.sleep(self.sweep_s)
            self._expire(self.now())

    def _expire(self, now: float) -> None:
        # a frame of its own: the sweep's loop variable held the last connection it looked at, closed by it, until a
        # sweep found another (before 2026-12-05, helper records: a proxy gone quiet held it, and its request, for good)
        for conn in list(self.connections):
            conn.expire(now)
            if not conn._reading:  # (paused behind a deep pipeline: has its client left?)
                conn.hear_leaving()

    def over_budget(self) -> Overloaded:
        """The refusal of a body that would take the bodies held past `limits.bodies_max_bytes` (counted, logged)."""
        self.bodies_refused += 1
        if self.bodies_refused in (1, 100) or self.bodies_refused % 10_000 == 0:
            log.warning("request bodies held at limits.bodies_max_bytes (%d): refusing further bodies with "
                        "503 (%d so far)", self.bodies_max_bytes, self.bodies_refused)  # fmt: skip
        return Overloaded(
            f"the request bodies lineage-proxy holds are at limits.bodies_max_bytes ({self.bodies_max_bytes}"
            " bytes); retry shortly"
        )

    def framing_error(self, conn: HttpConnection, error: ProxyError) -> None:
        self.framing_errors += 1
        count = self.framing_errors
        if count in (1, 10, 100) or count % 1000 == 0:
            peer = conn.transport.get_extra_info("peername") if conn.transport is not None else None
            log.warning("malformed HTTP request from %s: %s (%d so far)", peer, error.message, count)

    async def shutdown(self, timeout: float) -> None:
        """Stop accepting; let requests in flight finish for at most `timeout` seconds; close the rest."""
        self.draining = True
        if self._server is not None:
            self._server.close()
        if self._listening is not None:
            asyncio.get_running_loop().remove_reader(self._listening)
            self._listening.close()
            self._listening = None
        for handshake in list(self._handshakes):  # not yet a connection: nothing to finish
            handshake.cancel()
        if self._sweeper is not None:
            self._sweeper.cancel()
        for conn in list(self.connections):
            conn.shutdown()
        # calls in flight finish (each connection closes itself after its reply), then what they wrote is sent
        # (a TLS peer that never answers close_notify is not waited for: only unsent bytes are)
        deadline = time.monotonic() + timeout
        hurried = asyncio.ensure_future(self.hurried.wait())
        while (left := deadline - time.monotonic()) > 0 and not self.hurried.is_set():
            tasks = [c._task for c in self.connections if c._task is not None and not c._task.done()]
            if tasks:
                await asyncio.wait([*tasks, hurried], timeout=left, return_when=asyncio.FIRST_COMPLETED)
                continue
            # (and what lingers after its answer, `_close`, reading the client's bytes so none resets it: at most LINGER_S)
            sending = [c.closed for c in self.connections if c.unsent() or c._lingering is not None]
            if not sending:
                break
            await asyncio.wait(sending, timeout=min(left, 0.05))
        hurried.cancel()
        cut = 0
        for conn in list(self.connections):
            if conn.serving is not None and not conn.lost:
                conn.cut = True  # its call is recorded as `drain_timeout`, not as the client's leaving
                cut += 1
            conn._head_cut()  # a head pipelined behind it, partly read: recorded (and counted) now
            conn.abort()
        self.connections.clear()
        # the heads still arriving it closed, unserved (before 2026-12-05 not counted: a drain that cut only those said
        # nothing)
        heads = self.heads_cut
        also = f", and {heads} request head(s) still arriving (recorded drain_timeout, unserved)" if heads else ""
        if cut and self.hurried.is_set():
            log.warning("drain: %d HTTP call(s) still running were cut off (cut short by %s)%s", cut, self.hurried_by,
                        also)  # fmt: skip
        elif cut:
            log.warning("drain: %d HTTP call(s) still running after %gs were cut off (limits.drain_timeout_s)%s", cut,
                        timeout, also)  # fmt: skip
        elif heads:
            log.warning("drain: %d HTTP request head(s) still arriving were cut off (recorded drain_timeout, unserved)",
                        heads)  # fmt: skip

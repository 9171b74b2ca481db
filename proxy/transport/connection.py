"""One upstream connection on asyncio's Protocol API: bytes in go to the reply's parser, waiters are woken.

It sends one request at a time and parses the reply (`http11.ReplyParser`) as it arrives. Reading
pauses while more than `HIGH_WATER` bytes of body wait to be taken (a slow client slows the upstream
instead of filling memory) and resumes once they are. `wait(timeout)` is how the pool waits for more of
a reply; a reply the upstream breaks off leaves `lost` set. One timer serves every wait on a connection: a wait
moves the deadline, and the timer, when it fires before it, is set again for it (a timer made and cancelled
per wait cost ~2 µs of CPU a reply's head and a stream's every event, and its cancel came on the path from
the upstream's bytes to the client's). While the connection is `idle` in its pool, any
byte from the upstream closes it (a reply to no request must never be read as the next one's), and its
end, whatever the cause, is reported to the pool (`on_idle_lost`), which drops it at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

from proxy.transport import UpstreamClosed, UpstreamProtocolError
from proxy.transport.batch import outbox
from proxy.transport.http11 import ReplyParser

HIGH_WATER: Final = 1 << 20


class Connection(asyncio.Protocol):
    """One socket to an upstream and the parser of its replies."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, on_idle_lost: Callable[[Connection], None] | None = None
    ) -> None:
        self.loop = loop
        self._outbox = outbox(loop)  # every write goes through it, in order (`proxy.transport.batch`)
        self.transport: asyncio.Transport | None = None
        self.lost: BaseException | None = None  # set once the connection is gone
        self.reused = False
        self.idle = False  # in its pool's idle list: no request in flight (the pool sets and clears it)
        self.idle_since = 0.0
        self.on_idle_lost = on_idle_lost
        self.received = False  # any byte of the current reply
        self.parser = ReplyParser()
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self._deadline = 0.0  # loop time at which the wait in progress fails
        self._timer: asyncio.TimerHandle | None = None  # due at or before `_deadline`; kept across waits
        self._due = 0.0  # when `_timer` is due (its `when()`, kept: a call less a wait)

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's TCPTransport is not registered as one

    def data_received(self, data: bytes) -> None:
        if self.idle:  # nothing was asked (a misbehaving upstream): close; connection_lost has the pool drop it
            self._fail(UpstreamProtocolError(f"{len(data)} bytes from the upstream on an idle connection"))
            return
        self.received = True
        parser = self.parser
        try:
            parser.feed(data)
        except UpstreamProtocolError as exc:
            self._fail(exc)
            return
        if parser.buffered > HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is None:
            self.parser.feed_eof()
        if self.lost is None:  # a protocol error that aborted the connection stays the reason
            # kept without its traceback (`_fail`)
            self.lost = (
                UpstreamClosed("the upstream closed the connection") if exc is None else exc.with_traceback(None)
            )
        if self.idle and self.on_idle_lost is not None:
            self.on_idle_lost(self)
        self._wake()
        if self._timer is not None:  # the connection is not kept alive for a timer's sake
            self._timer.cancel()
            self._timer = None
        self.parser.close()

    def abandon(self) -> None:
        """Its connect did not end (`pool._abandon`): the transport, closed with no `connection_lost`, let go of."""
        self.transport = None
        self.parser.close()

    # -- the reply

    def send(self, method: str, head: bytes, body: bytes) -> None:
        """Write one request (`head` already encoded) and start parsing its reply."""
        self.parser.start(method)
        self.received = False
        transport = self.transport
        assert transport is not None
        if not body:  # none, or joined with the head already (`ConnectionPool._head`)
            self._outbox.write(transport, head)
        elif len(body) < 65536:
            self._outbox.write(transport, head + body)
        else:  # a large body is not copied to be joined
            self._outbox.write(transport, head)
            self._outbox.write(transport, body)

    def wait(self, timeout: float) -> asyncio.Future[None]:
        """To be awaited: until more of the reply (or its end, or a failure) is here; TimeoutError after
        `timeout`. The future itself, not a coroutine around it (one object less a wait: a reply's head
        and a stream's every event); once done it is as good as none (`_wake`, `_expire`)."""
        loop = self.loop
        waiter = loop.create_future()
        self._waiter = waiter
        self._deadline = deadline = loop.time() + timeout
        timer = self._timer
        if timer is None or deadline < self._due:  # none due by then (a shorter timeout than the last)
            if timer is not None:
                timer.cancel()
            self._timer = loop.call_at(deadline, self._expire)
            self._due = deadline
        return waiter

    def _expire(self) -> None:
        """The timer is due: the wait in progress fails if its deadline has passed, else the timer is set
        again for it (a wait that began after the timer was set); with none in progress, the next sets one."""
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        loop = self.loop
        if loop.time() < self._deadline:
            self._timer = loop.call_at(self._deadline, self._expire)
            self._due = self._deadline
        else:
            waiter.set_exception(TimeoutError())
            self._waiter = None

    def take(self) -> bytes:
        """All the body bytes received and not yet taken; reading resumes if it was paused."""
        parser = self.parser
        pieces = parser.pieces
        data = pieces.popleft() if len(pieces) == 1 else b"".join(pieces)
        pieces.clear()
        parser.buffered = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
            self._waiter = None

    def _fail(self, exc: BaseException) -> None:
        # kept without its traceback, which holds the frames it was raised through (`data_received`'s, holding
        # this connection), nor the error it was raised while handling (the reply parser's refusals are raised
        # `from None` in llhttp's error's handler), whose traceback holds them too: reference cycles that kept
        # them for the collector
        exc.__context__ = None
        self.lost = exc.with_traceback(None)
        self.parser.keep_alive = False
        if self.transport is not None:
            self.transport.abort()
        self._wake()

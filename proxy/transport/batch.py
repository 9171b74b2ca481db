"""The writes of one turn of the event loop, sent together.

A write to a loopback (or same-host) socket whose reader sleeps wakes it: on this project's 2-core VM
about half of a write's ~13 µs of kernel time (`perf`: `try_to_wake_up`, the inter-processor interrupt).
Written as each call gets to it, a busy proxy's replies and upstream requests leave ~60 µs of work apart,
long enough for the client and the upstream to go back to sleep between any two: every write wakes one.
Sent back to back at the end of the turn, the first wakes the reader and the rest find it awake.

Only while several calls are in flight (`busy`, kept by the HTTP ingress): with one, there is nothing to
send together, and a write goes out at once (a turn of the loop later would add its latency to the call's).
Every write of the HTTP ingress and the upstream connections goes through their loop's `Outbox`
(`outbox(loop)`), so the bytes of one connection leave in the order they were written; before the ingress
closes or cuts a client's connection, `flush` sends what waits (an upstream connection is closed only idle or
failed, with nothing to send). A pipelining client's replies are sent at once: whether it reads them decides
whether the next request is served now (`HttpConnection._serve`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

BATCH_FROM: Final = 2  # calls in flight from which the writes of a turn wait for its end


class Outbox:
    """One loop's writes waiting for the end of the turn."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.busy = 0  # calls being served (the HTTP ingress counts them)
        # the writes waiting, as two lists in step (the transport, the bytes): no tuple made and freed a write
        self._to: list[asyncio.Transport] = []
        self._data: list[bytes] = []
        self._after: list[Callable[[], None]] = []
        self._scheduled = False

    def write(self, transport: asyncio.Transport, data: bytes) -> None:
        """`transport.write(data)`: now when fewer than `BATCH_FROM` calls are in flight and no write waits, else at
        the end of this turn of the loop."""
        if self.busy < BATCH_FROM and not self._to:
            transport.write(data)
            return
        self._to.append(transport)
        self._data.append(data)
        if not self._scheduled:
            self._schedule()

    def after_writes(self, callback: Callable[[], None]) -> None:
        """Run `callback` at the end of this turn, once the writes waiting are sent (the record work of the
        calls that ended: the client and upstream have their bytes first, and work on them meanwhile)."""
        self._after.append(callback)
        if not self._scheduled:
            self._schedule()

    def waiting(self, transport: asyncio.Transport) -> int:
        """Bytes written to `transport` that wait for the end of the turn."""
        return sum(len(data) for to, data in zip(self._to, self._data, strict=True) if to is transport)

    def _schedule(self) -> None:
        self._scheduled = True
        self.loop.call_soon(self._turn_end)

    def flush(self) -> None:
        """Send every write waiting, in order (those to a transport closed meanwhile are dropped). One that fails
        (a transport whose writing side was shut) is reported to the loop and costs no other its bytes."""
        waiting = self._to
        if not waiting:
            return
        pieces = self._data
        self._to = []
        self._data = []
        for i in range(len(waiting)):
            transport = waiting[i]
            data = pieces[i]
            if not transport.is_closing():
                try:
                    transport.write(data)
                except Exception as exc:
                    self.loop.call_exception_handler({"message": "a write waiting for the turn's end failed",
                                                      "exception": exc, "transport": transport})  # fmt: skip

    def _turn_end(self) -> None:
        self._scheduled = False
        self.flush()  # never raises: the work after the writes always runs
        after = self._after
        if after:
            self._after = []
            for callback in after:
                try:
                    callback()
                except Exception as exc:  # one callback's failure is not another's
                    self.loop.call_exception_handler({"message": "exception in a callback after writes",
                                                      "exception": exc})  # fmt: skip


_OUTBOXES: dict[asyncio.AbstractEventLoop, Outbox] = {}


def outbox(loop: asyncio.AbstractEventLoop) -> Outbox:
    """`loop`'s Outbox (one a loop: a test's, a worker thread's), made on first use; those of closed loops are
    dropped then."""
    box = _OUTBOXES.get(loop)
    if box is None:
        for old in [old for old in list(_OUTBOXES) if old.is_closed()]:  # (another thread's loop may come meanwhile)
            _OUTBOXES.pop(old, None)
        box = _OUTBOXES[loop] = Outbox(loop)
    return box

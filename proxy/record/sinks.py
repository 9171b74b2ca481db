"""Record sinks as a fan-out: every finished call goes to each sink in turn (spans, edges, ...).

Like OpenTelemetry's SynchronousMultiSpanProcessor: the Exchange calls one `on_end`; each sink keeps
its own *when* (queue, batch, write-through) and *where* (OTLP, SQLite). A sink that raises never
fails the call or starves the others. Only sinks that may hold the reply (`durable = True`: a new
lineage flow is written through before the client has the reply's end) run inside `on_end`; the others
(span encoding, timings, access lines) run right after, on the event loop's next turn, so the client's
bytes are written first and their cost is never in a call's added latency; a call whose reply waits for a durable
write goes to them once it is done, so a client that leaves meanwhile is in its record (`FanOut.holds`). Adding a sink is one module implementing `Recorder` and one
line where the runtime builds its list (`proxy/server.py`).

A sink's counters (`Counts`) outlive the sink: a reload that replaces it hands them on to its successor,
so the counters on /metrics never go down within a process. So do the calls a sink raised on, whose records it
lost: counted by sink name here (`lineage_proxy_sink_records_lost_total{sink}`), logged once per outage and kind of
failure (`Outage`), and what an outage lost said when the sink records again, or at stop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator
from typing import Any, Final, Protocol

from proxy.flow import Call, Decision, Outcome
from proxy.transport.batch import Outbox, outbox

log = logging.getLogger("lineage_proxy.record")

Durable = concurrent.futures.Future[None]
OnEnd = Callable[[Call, Decision, Outcome, frozenset[str]], Durable | None]  # a sink's `on_end`, bound
_running_loop: Final = asyncio.get_running_loop  # compiled, a C static: not looked up in asyncio's module each call
_loop_here: Final = asyncio._get_running_loop  # this thread's running loop, or None (`_on_loop`)


class Recorder(Protocol):
    """One place a call's record goes."""

    @property
    def name(self) -> str: ...

    # True for a sink whose on_end may return a Durable: it runs before the reply completes
    durable: bool

    def start(self) -> None:
        """Begin background work (flush loops); called on the event loop."""
        ...

    def on_end(self, call: Call, decision: Decision, outcome: Outcome, output_labels: frozenset[str]) -> Durable | None:
        """Record one finished call. Returns a future when the reply must wait for this record to be
        durable (a new lineage flow), else None. Must not block."""
        ...

    async def flush(self) -> None:
        """Write what is batched now (shutdown, tests, the demo); may wait for I/O."""
        ...

    async def stop(self) -> None:
        """Flush what is pending and release resources."""
        ...

    def metrics(self) -> Iterable[str]:
        """Prometheus text lines for this sink's counters."""
        ...


class StopOnce:
    """A sink's stop, run once: a second stop (a signal racing the drain, a reload failing mid-way then a stop)
    waits for the first to end and raises nothing (the first one's caller hears how it went), instead of
    stopping what is stopped already again."""

    def __init__(self) -> None:
        self._stopping: asyncio.Task[None] | None = None

    async def run(self, stop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        stopping = self._stopping
        if stopping is not None:
            await asyncio.wait((stopping,))  # never raises: done, failed or cancelled, the first stop says
            return
        stopping = self._stopping = asyncio.get_running_loop().create_task(stop())
        await stopping


class Counts:
    """A sink's counters, by name, for a sink that a reload may replace (`FanOut.swap`): the old sink's
    counts go on in the new one's, and so does all the old one counts while it stops (its last exports),
    so a counter on /metrics never goes down (Prometheus reads a decrease as a restart) and nothing the
    old one did is lost. `add` may be called from any thread; reads are plain."""

    def __init__(self, *names: str) -> None:
        self._values = dict.fromkeys(names, 0)
        self._lock = threading.Lock()
        self._into: Counts | None = None

    def __getitem__(self, name: str) -> int:
        return self._values[name]

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            into = self._into
            if into is None:
                self._values[name] += amount
                return
        into.add(name, amount)

    def carry_into(self, successor: Counts) -> None:
        """Count what was counted here in `successor` too, and from now on all that is counted here."""
        with self._lock:
            if self._into is not None or successor is self:
                return  # carried already: its counts are in the sink it went to
            for name, value in self._values.items():
                successor.add(name, value)
            self._into = successor


LOST: Final = "lineage_proxy_sink_records_lost_total"
UNFLUSHED: Final = "lineage_proxy_sink_flush_failures_total"
# how long a failing sink must go without a failure, besides a turn of calls it recorded, for its outage to end: a sink
# failing now and then (every other call, each call a turn) is one outage, logged once a kind, not twice a failure
SETTLE_S: Final = 60.0
# how long the fan-out waits for a sink's stop (`stop_retired`): past the built-in sinks' own bounds, 5 s to spare (the
# openlineage sink's stop waits up to 3 x 5 s for its sender, then writes its spool; the edge store's up to 3 x 5 s)
SINK_STOP_WAIT_S: Final = 20.0
# what the fan-out waits past a sink's own stop bound (`stop_bound_s`, which it says when it is set by configuration: the
# spans sink's `export_timeout_s`, up to an hour), for it to count and say what it did not write: the fan-out gave up at
# 20 s on a spans sink told to wait 30 s, and the process ended with its spans counted nowhere, their line unsaid
SINK_STOP_SPARE_S: Final = 5.0


def _stopped_late(name: str, stopping: asyncio.Future[None]) -> None:
    """A sink's stop the fan-out gave up waiting for (`stop_retired`) ended: its failure is said, not left to asyncio's
    "exception was never retrieved"."""
    if stopping.cancelled():
        return
    failure = stopping.exception()
    if failure is not None:
        log.error("record sink %s failed to stop, after the proxy gave up waiting for it: %s", name,
                  f"{type(failure).__name__}: {failure}")  # fmt: skip


class Outage:
    """A sink raising on calls, from its first failure to the first turn of calls it records without one, `SETTLE_S`
    or more after its last (`FanOut._settle`): its kinds of failure (each logged once), and how many calls' records it has lost since.
    `durable`: the sink runs as a call ends, not in the turn (`FanOut.on_end`)."""

    def __init__(self, durable: bool) -> None:
        self.kinds: set[tuple[str, str, int]] = set()
        self.lost = 0
        self.failed_this_turn = False
        self.durable = durable
        self.failed_at = 0.0  # its last failure, monotonic seconds
        self.recorded = False  # a turn of calls recorded without a failure since its last failure


def _kind(error: BaseException) -> tuple[str, str, int]:
    """A failure's kind: its type and where it was raised (the innermost frame), not its message, which may name
    the call (an id, a value), so that one broken sink is one line however many calls it fails on."""
    filename, line, _ = raised_at(error)
    return type(error).__qualname__, filename, line


def raised_at(error: BaseException) -> tuple[str, int, str]:
    """Where `error` was raised: its innermost frame's file, line and function ("", 0, "" when it has none)."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return "", 0, ""
    code = tb.tb_frame.f_code
    return code.co_filename, tb.tb_lineno, code.co_name


class FanOut:
    """The runtime's sinks, by name; `on_end` reaches every one."""

    def __init__(self, sinks: Iterable[Recorder] = (), *, clock: Callable[[], float] = time.monotonic) -> None:
        self._sinks: dict[str, Recorder] = {sink.name: sink for sink in sinks}
        self._durable: tuple[Recorder, ...] = ()
        self._deferred: tuple[Recorder, ...] = ()
        # their `on_end`s, bound once a change of the sinks (`_sorted`), in the same order: compiled, a Protocol's method
        # is looked up by name and bound at each call (~350 machine instructions a sink and call at one connection)
        self._durable_ends: tuple[OnEnd, ...] = ()
        self._deferred_ends: tuple[OnEnd, ...] = ()
        self._sorted()
        # the calls each sink raised on, by sink name, for the process's life (a reload's new sink counts on), and the
        # sinks failing now: set only on a failure, so the per-call path costs nothing more
        self._lost: dict[str, int] = {}
        self._unflushed: dict[str, int] = {}  # the flushes and stops each sink raised in, by sink name (`_unfinished`)
        self._outages: dict[str, Outage] = {}
        self._clock = clock
        self.settle_s = SETTLE_S
        self.stop_wait_s = SINK_STOP_WAIT_S  # how long a sink's stop is waited for (`stop_retired`)
        # the calls ended since the loop's last turn, for the deferred sinks (`_run_later`): four lists in step, no
        # tuple made and freed a call
        self._calls: list[Call] = []
        self._decisions: list[Decision] = []
        self._outcomes: list[Outcome] = []
        self._labels: list[frozenset[str]] = []
        self._scheduled = False
        # the loop `_run_later` was last scheduled on, kept: `asyncio.get_running_loop()` is a getpid() system call
        # on Python 3.11 (~0.5 us), `is_running()` a field read
        self._loop: asyncio.AbstractEventLoop | None = None
        self._outbox: Outbox | None = None  # its Outbox: the deferred sinks run once the turn's writes are sent
        self._kept: dict[str, Counts] = {}  # the counts of a sink a reload removed, for the one that comes back
        # the records held for their durable write (`_hold`), by their outcome's id: (call, decision, outcome, labels)
        self._held: dict[int, tuple[Call, Decision, Outcome, frozenset[str]]] = {}
        # of those, the ones whose answer a task waits to hand over (`awaited`): let go by it (`let_go`), not by the write
        self._awaited: set[int] = set()
        # of those, the ones held until their answer is sent too (`on_end`'s `until`: a gRPC status), by the same id
        self._sending: dict[int, Durable] = {}
        # of the calls queued since the last turn, those `_release` queued: the durable sinks took them before
        self._released = 0

    def __iter__(self) -> Iterator[Recorder]:
        return iter(tuple(self._sinks.values()))

    def get(self, name: str) -> Recorder | None:
        return self._sinks.get(name)

    def swap(self, name: str, sink: Recorder | None) -> Recorder | None:
        """Put `sink` in place of the one called `name` (a reload); returns the old one to stop. The new
        one counts on from the old one's counters (`Counts`), or from those of the last one of that name
        a reload removed."""
        old = self._sinks.pop(name, None)
        counts = _counts(old) if old is not None else self._kept.pop(name, None)
        outage = self._outages.pop(name, None)
        if outage is not None:  # what the failing one lost is said now: the new one starts with no failure
            log.warning("record sink %s %s by a reload while failing: the records of %d calls were lost in it", name,
                        "removed" if sink is None else "replaced", outage.lost)  # fmt: skip
        if sink is not None:
            self._sinks[name] = sink
            successor = _counts(sink)
            if counts is not None and successor is not None:
                counts.carry_into(successor)
        elif counts is not None:
            self._kept[name] = counts
        self._sorted()
        return old

    def _sorted(self) -> None:
        """Which sinks run as a call ends (`durable`) and which on the loop's next turn, once per change."""
        sinks = tuple(self._sinks.values())
        self._durable = tuple(sink for sink in sinks if getattr(sink, "durable", False))
        self._deferred = tuple(sink for sink in sinks if not getattr(sink, "durable", False))
        self._durable_ends = tuple(sink.on_end for sink in self._durable)
        self._deferred_ends = tuple(sink.on_end for sink in self._deferred)

    def start(self) -> None:
        for sink in self._sinks.values():
            sink.start()

    def on_end(
        self, call: Call, decision: Decision, outcome: Outcome, output_labels: frozenset[str],
        along: Durable | None = None, until: Durable | None = None,
    ) -> Durable | None:  # fmt: skip
        """Record one call: the durable sinks now; the others on the loop's next turn, or, while a durable write the
        reply waits for is in flight, once it is done (`_hold`). `along`: another call's write its reply waits for too
        (a stream's, whose status answers its denied message): the record is held for it as for its own. `until`: the
        answer's own send (a gRPC refusal's status, which grpc may fail to send to a client gone: the ingress then says
        so in the record), which the record is held for too, and which the returned write, the one the reply waits
        for, does not include."""
        durable: Durable | None = None
        sinks, ends = self._durable, self._durable_ends
        for i in range(len(ends)):
            try:
                future = ends[i](call, decision, outcome, output_labels)
            except Exception as error:
                self._failed(sinks[i], error)
                continue
            if future is not None:
                durable = future if durable is None else _both(durable, future)
        if along is not None and not along.done():
            durable = along if durable is None else _both(durable, along)
        held = durable
        if until is not None and not until.done():
            held = until if durable is None or durable.done() else _both(durable, until)
        if held is not None and not held.done() and self._hold(held, call, decision, outcome, output_labels):
            if held is not durable and until is not None:
                self._sending[id(outcome)] = until
            return durable
        self._queue(call, decision, outcome, output_labels)
        return durable

    def _hold(
        self, durable: Durable, call: Call, decision: Decision, outcome: Outcome, output_labels: frozenset[str]
    ) -> bool:
        """Keep a call's record from the other sinks until `durable` is done: its reply waits for that write, and a client
        that leaves meanwhile (or a drain that cuts it) never gets the reply, which its record then says (`holds`:
        the ingress amends the outcome). Recorded at once, the span and access line said the call was answered. False
        outside an event loop (a tool's): nothing waits there."""
        try:
            loop = _running_loop()
        except RuntimeError:
            return False
        self._held[id(outcome)] = (call, decision, outcome, output_labels)
        durable.add_done_callback(functools.partial(_on_loop, loop, functools.partial(self._written, id(outcome))))
        return True

    def _written(self, key: int) -> None:
        """A held record's write is done (its done callback, on the loop): the record goes to the other sinks, unless a
        task waits to hand its answer over (`awaited`), which lets it go then."""
        if key not in self._awaited:
            self._release(key)

    def awaited(self, outcome: Outcome) -> None:
        """A task waits for the write of `outcome`'s held record to hand its answer over (`Exchange.recorded`): the
        record is let go by it as it does (`let_go`). Let go by the write's done callback, the record went out two turns
        of the loop before that task ran: a client that left in those turns was recorded as answered, never having
        been sent its answer."""
        key = id(outcome)
        if key in self._held:
            self._awaited.add(key)

    def let_go(self, outcome: Outcome, written: bool, *, later: bool = False) -> None:
        """The task that waited for `outcome`'s held record (`awaited`) is done waiting: the record goes to the other
        sinks now, its answer being handed over; or `later`, on this turn's next callback, when the wait was cancelled
        (its client left, the drain cut it), so the ingress first says so in it (`Exchange._unanswered`). Its write not
        yet `written` (cancelled before), the write's done callback lets it go."""
        key = id(outcome)
        self._awaited.discard(key)
        sending = self._sending.get(key)
        if not written or (sending is not None and not sending.done()):  # (then let go by its done callback)
            return
        if later:
            _running_loop().call_soon(self._release, key)
        else:
            self._release(key)

    def pending(self) -> int:
        """The records of calls that ended not yet given to the other sinks (this turn's, and those held for their
        durable write): each still goes to every one of them (`Lingering` counts them)."""
        return len(self._calls) + len(self._held)

    def holds(self, outcome: Outcome) -> bool:
        """Whether the call's record waits for its durable write (`_hold`): its outcome may still change. Not once the
        send of the answer it is held for is done (`on_end`'s `until`; the record goes on the loop's next turn): what
        its client got is said by then, and a later end (a stream's, whose denied message that status answered) said
        its client never got it."""
        key = id(outcome)
        if key not in self._held:
            return False
        sending = self._sending.get(key)
        return sending is None or not sending.done()

    def _release(self, key: int) -> None:
        self._sending.pop(key, None)
        held = self._held.pop(key, None)
        if held is not None:
            self._released += 1
            self._queue(*held)

    def _release_all(self) -> None:
        """Every held record to the other sinks now (a flush, a stop: a write still in flight is not waited for)."""
        self._awaited.clear()
        for key in list(self._held):
            self._release(key)

    def _queue(self, call: Call, decision: Decision, outcome: Outcome, output_labels: frozenset[str]) -> None:
        """The call, for the other sinks on the loop's next turn (`_run_later`)."""
        self._calls.append(call)
        self._decisions.append(decision)
        self._outcomes.append(outcome)
        self._labels.append(output_labels)
        loop = self._loop
        # scheduled on a loop that stopped before that turn's end (a tool's, a test's): scheduled again, on this one
        if not self._scheduled or loop is None or not loop.is_running():
            try:
                box = self._outbox
                if loop is None or box is None or not loop.is_running():  # a new loop (a test's, a tool's) or none
                    loop = self._loop = _running_loop()
                    box = self._outbox = outbox(loop)
                box.after_writes(self._run_later)
                self._scheduled = True
            except RuntimeError:  # no event loop (a tool recording outside the server): now
                self._run_later()

    def _run_later(self) -> None:
        """The other sinks, for every call that ended since the last turn of the loop."""
        self._scheduled = False
        calls = self._calls
        if not calls:
            return
        decisions, outcomes, labels = self._decisions, self._outcomes, self._labels
        self._calls, self._decisions, self._outcomes, self._labels = [], [], [], []
        released, self._released = self._released, 0
        sinks, ends = self._deferred, self._deferred_ends
        for j in range(len(ends)):  # sink by sink (each sink's calls in order): one try a call
            on_end = ends[j]
            for i in range(len(calls)):
                try:
                    on_end(calls[i], decisions[i], outcomes[i], labels[i])
                except Exception as error:
                    self._failed(sinks[j], error)
        if self._outages:  # once a turn, not once a call
            self._settle(durable_ran=len(calls) > released)

    def _failed(self, sink: Recorder, error: Exception) -> None:
        """A sink raised on a call (in an `except`): the call goes on, its record in that sink is lost and counted;
        logged once per outage and kind of failure, not once per call (nor once per process: a sink that recovered
        and fails again, or fails anew, is said again)."""
        name = sink.name
        self._lost[name] = self._lost.get(name, 0) + 1
        outage = self._outages.get(name)
        if outage is None:
            outage = self._outages[name] = Outage(getattr(sink, "durable", False))
        outage.lost += 1
        outage.failed_this_turn = True
        outage.recorded = False
        outage.failed_at = self._clock()
        kind = _kind(error)
        if kind not in outage.kinds:
            outage.kinds.add(kind)
            log.exception("record sink %s failed on a call; the call goes on, its record there is lost (counted in "
                          "%s{sink=\"%s\"}; logged once an outage and kind of failure)", name, LOST, name)  # fmt: skip

    def _settle(self, durable_ran: bool) -> None:
        """After a turn's calls: a failing sink that raised on none of them, nor on any call for `settle_s`, records
        again; what it lost is said.
        `durable_ran`: some of them ended since the last turn, so the durable sinks ran on them (`on_end`); else they
        are all records held for their durable write (`_release`), which those sinks took before, maybe before their
        outage began: a turn of them is no sign that a failing one records again."""
        now = self._clock()
        for name, outage in tuple(self._outages.items()):
            if outage.durable and not durable_ran:
                continue
            if outage.failed_this_turn:
                outage.failed_this_turn = False
                continue
            outage.recorded = True
            if now - outage.failed_at < self.settle_s:
                continue  # not yet: a sink failing now and then stays in one outage (`SETTLE_S`)
            del self._outages[name]
            log.warning("record sink %s records again; the records of %d calls were lost in it meanwhile", name,
                        outage.lost)  # fmt: skip

    async def flush(self) -> None:
        self._release_all()
        self._run_later()
        for sink in tuple(self._sinks.values()):
            try:
                await sink.flush()
            except Exception:
                self._unfinished(sink.name, "flush")

    async def stop(self) -> None:
        """Stop every sink at once: the stop takes the slowest sink's bound, not their sum (a stalled collector's
        `export_timeout_s` then a hung OpenLineage backend's wait, one after the other, was 60 + 4 s); each is waited
        for, counted and logged as alone (`stop_retired`, which raises nothing but a cancellation)."""
        self._release_all()
        self._run_later()
        try:
            await asyncio.gather(*[self.stop_retired(sink) for sink in tuple(self._sinks.values())])
        finally:  # (cancelled too: what the failing sinks lost is said all the same)
            self._say_still_failing()

    async def stop_retired(self, sink: Recorder) -> None:
        """Stop `sink` (one of these at the stop, or one a reload replaced, `swap`): a stop that raises is logged and
        counted as the fan-out's own stop counts it. A reload's was a task no one awaited: its failure went unsaid (or
        said as an asyncio "exception was never retrieved" once collected), and at the stop unsaid altogether.
        Waited for `stop_wait_s` at most: a stop still running then (a sink's own whose wait has no end) is logged and
        counted as one that raised, and left to go on; it held the proxy's stop for good."""
        wait = self.stop_wait_s
        bound = getattr(sink, "stop_bound_s", 0.0)  # a sink's own, set by configuration (`SINK_STOP_SPARE_S`)
        if isinstance(bound, (int, float)) and bound > 0 and bound + SINK_STOP_SPARE_S > wait:
            wait = float(bound) + SINK_STOP_SPARE_S
        try:  # a `stop` that raises as it is called (a plain function's), or returns no awaitable, is counted as one
            stopping = asyncio.ensure_future(sink.stop())  # that raised: it left the fan-out's stop unfinished
        except Exception:
            self._unfinished(sink.name, "stop")
            return
        done, _ = await asyncio.wait((stopping,), timeout=wait)
        if not done:
            self._unflushed[sink.name] = self._unflushed.get(sink.name, 0) + 1
            log.error("record sink %s did not stop within %gs; the proxy goes on without waiting for it: what it held "
                      "may be lost (counted in %s{sink=\"%s\"})", sink.name, wait, UNFLUSHED,
                      sink.name)  # fmt: skip
            stopping.add_done_callback(functools.partial(_stopped_late, sink.name))
            return
        try:
            stopping.result()
        except Exception:
            self._unfinished(sink.name, "stop")

    def _unfinished(self, name: str, what: str) -> None:
        """A sink's flush or stop raised (in an `except`): what it held then may not be written; each is counted (the
        process goes on after a flush, and after a reload's stop) and logged with its traceback."""
        self._unflushed[name] = self._unflushed.get(name, 0) + 1
        log.exception("record sink %s failed to %s: what it held may be lost (counted in %s{sink=\"%s\"})", name, what,
                      UNFLUSHED, name)  # fmt: skip

    def _say_still_failing(self) -> None:
        """The sinks still failing as the process stops, with what they lost since their failing began."""
        for name, outage in self._outages.items():
            if outage.recorded:
                log.warning("record sink %s recorded again at shutdown, %.0f s after its last failure: the records of "
                            "%d calls were lost in it meanwhile (%d in this process)", name,
                            self._clock() - outage.failed_at, outage.lost, self._lost[name])  # fmt: skip
                continue
            log.error("record sink %s was still failing at shutdown: the records of %d calls were lost in it since it "
                      "began failing (%d in this process)", name, outage.lost, self._lost[name])  # fmt: skip
        self._outages.clear()

    def metrics(self) -> list[str]:
        lines: list[str] = []
        for sink in self._sinks.values():
            lines.extend(sink.metrics())
        return lines + self._lost_lines() + self._unflushed_lines()

    def _lost_lines(self) -> list[str]:
        """The calls each sink raised on, 0 for a sink that never did, and on for one a reload removed."""
        names = sorted(self._sinks.keys() | self._lost.keys())
        return [
            f"# HELP {LOST} Calls a record sink raised on: their record in it is lost (the call went on).",
            f"# TYPE {LOST} counter",
            *(f'{LOST}{{sink="{name}"}} {self._lost.get(name, 0)}' for name in names),
        ]

    def _unflushed_lines(self) -> list[str]:
        """The flushes and stops each sink raised in, as `_lost_lines` has its calls."""
        names = sorted(self._sinks.keys() | self._unflushed.keys())
        return [
            f"# HELP {UNFLUSHED} Flushes and stops of a record sink that raised (a reload's stop of the sink it "
            "replaced included): what the sink held then may not be written; its ERROR line says why.",
            f"# TYPE {UNFLUSHED} counter",
            *(f'{UNFLUSHED}{{sink="{name}"}} {self._unflushed.get(name, 0)}' for name in names),
        ]


class Lingering:
    """A sink a reload removed, kept for the calls in flight as it applied (begun under the config that named it)
    until each is recorded: their records still go to it, a call's begun since never; then `done` is called (which
    stops it). Before 2026-12-05 a reload that turned the span exporter off (`telemetry.exporter: none`) lost the spans
    of the calls in flight then (a stream spanning the reload), neither exported nor counted nor said."""

    durable = False

    def __init__(self, sink: Recorder, since_ns: int, calls: int, done: Callable[[Lingering], None]) -> None:
        """`since_ns`: the monotonic clock's as the reload applied; `calls`: how many began before it and are not yet
        recorded (in flight, and `FanOut.pending`)."""
        self.sink = sink
        self.counts = _counts(sink)  # (`FanOut.swap`: the same counts go on, not carried into themselves)
        self.stop_bound_s = getattr(sink, "stop_bound_s", 0.0)
        self._since_ns = since_ns
        self._left = calls
        self._done = done

    @property
    def name(self) -> str:
        return self.sink.name

    def start(self) -> None:
        pass  # started as the sink it keeps

    def on_end(self, call: Call, decision: Decision, outcome: Outcome, output_labels: frozenset[str]) -> Durable | None:
        if self._left <= 0 or outcome.started_ns - outcome.clock_ns >= self._since_ns:
            return self._since(call, decision, outcome, output_labels)  # begun since the reload (its monotonic start)
        self._left -= 1
        try:
            return self.sink.on_end(call, decision, outcome, output_labels)
        finally:
            if self._left == 0:
                self._done(self)

    def _since(self, call: Call, decision: Decision, outcome: Outcome, output_labels: frozenset[str]) -> Durable | None:
        """A call begun since the reload: the config in force names no such sink."""
        return None

    async def flush(self) -> None:
        await self.sink.flush()

    async def stop(self) -> None:
        await self.sink.stop()

    def metrics(self) -> Iterable[str]:
        return self.sink.metrics()


class Replacing(Lingering):
    """A sink a reload replaced (`sink`), kept beside the one that replaced it (`successor`) for the calls in flight as it
    applied, begun under the config that made it, until each is recorded: their records go to it (a span names the
    service, resource and collector of the config its call began under), those of calls begun since to the successor;
    then `done` is called (which puts the successor alone in place and stops the replaced one). Before 2026-12-07 a
    stream spanning a reload that changed the span exporter's endpoint or resource was exported by the new exporter, to
    its collector, named as the service the reload made: a service it never ran under; and, until later that day, the
    OpenLineage sink a reload replaced stopped at once, its calls in flight counted at its successor's backend."""

    def __init__(
        self, sink: Recorder, successor: Recorder, since_ns: int, calls: int, done: Callable[[Replacing], None]
    ) -> None:
        """`since_ns` and `calls` as `Lingering`'s."""
        super().__init__(sink, since_ns, calls, lambda _: done(self))
        self.successor = successor
        self.durable = getattr(successor, "durable", False)
        # the successor's: the replaced one's are carried into them (`FanOut.swap`), and so is all it counts since
        self.counts = _counts(successor)
        bounds = [getattr(each, "stop_bound_s", 0.0) for each in (sink, successor)]
        self.stop_bound_s = max(bound if isinstance(bound, (int, float)) else 0.0 for bound in bounds)

    @property
    def name(self) -> str:
        return self.successor.name

    def start(self) -> None:
        pass  # both started as they were made

    def _since(self, call: Call, decision: Decision, outcome: Outcome, output_labels: frozenset[str]) -> Durable | None:
        return self.successor.on_end(call, decision, outcome, output_labels)

    async def flush(self) -> None:
        await _at_once(self.sink.flush, self.successor.flush)

    async def stop(self) -> None:
        await _at_once(self.sink.stop, self.successor.stop)

    def metrics(self) -> Iterable[str]:
        return self.successor.metrics()


async def _at_once(first: Callable[[], Awaitable[None]], second: Callable[[], Awaitable[None]]) -> None:
    """Two sinks' flushes or stops at once, as the fan-out runs its sinks' stops (`FanOut.stop`): they take the slower
    one's time, not their sum, which the fan-out does not wait for (`stop_bound_s`, the slower one's: two stalled
    collectors' stops one after the other outlasted it). Each runs whether the other raises or not (as it is called
    too); the first failure is raised, for the fan-out to count."""
    running: list[Awaitable[None]] = []
    failures: list[BaseException] = []
    for step in (first, second):
        try:
            running.append(step())
        except Exception as exc:
            failures.append(exc)
    for each in await asyncio.gather(*running, return_exceptions=True):
        if isinstance(each, BaseException):
            failures.append(each)
    if failures:
        raise failures[0]


def _counts(sink: Any) -> Counts | None:
    counts = getattr(sink, "counts", None)
    return counts if isinstance(counts, Counts) else None


def _on_loop(loop: asyncio.AbstractEventLoop, callback: Callable[[], None], _: Durable) -> None:
    """`callback` on `loop`'s thread: a durable write is done on the writer's, and `call_soon_threadsafe` wakes the
    loop for it; what is done on the loop's own thread (a gRPC refusal's status sent, which its record is held for) is
    queued with `call_soon`, no wake-up (the loop's self-pipe written, then read on its next turn). None once the loop
    is closed (a stop has released what was held)."""
    with contextlib.suppress(RuntimeError):
        if _loop_here() is loop:
            loop.call_soon(callback)
        else:
            loop.call_soon_threadsafe(callback)


def _both(first: Durable, second: Durable) -> Durable:
    """A future done when both are (rare: two sinks with write-through in one call)."""
    joined: Durable = concurrent.futures.Future()
    pending = [2]
    lock = threading.Lock()  # the two may complete on two threads

    def done(_: Durable) -> None:
        with lock:
            pending[0] -= 1
            last = pending[0] == 0
        if last:
            joined.set_result(None)

    first.add_done_callback(done)
    second.add_done_callback(done)
    return joined

"""Edge aggregation, the `edges` record sink: every call counts, no flow is ever missed, and the hot
path never waits for disk except the first time a flow is seen.

A new edge is written through (the call's reply waits for that one commit; when it fails, the flow's
later calls are counted as a known flow's, never each a write to wait for again); counts of known edges
accumulate in memory and are flushed at least every `flush_interval_s` and on shutdown. All writes go
through one writer thread that owns the store, in order, so a flush never overtakes the insert it adds
to. *When* to write is decided here; *where* is the `EdgeStore` (SQLite today, see store.py).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Final

from proxy.baseline import NO_WEIGHTS
from proxy.flow import NO_WEIGHTS_SOURCE, Call, Decision, Outcome
from proxy.labels import format_labels
from proxy.record.sinks import StopOnce
from proxy.record.store import EdgeKey, EdgeStore, EdgeWrite, PartlyWritten

log = logging.getLogger("lineage_proxy.edges")
_time: Final = time.time  # compiled, a C static: not looked up in the time module for each call counted

# what of lost counts' calls is kept elsewhere, as a loss's line says it: their spans and access lines exist only where the
# config writes them (`telemetry.exporter`, `sample_ratio`, `logging.access`); by default it writes neither, and the line
# said "each call's span and access line remain", which an operator then looked for in vain
KEPT_ELSEWHERE: Final = "their spans and access lines, where telemetry and logging.access write them, are not"

# at shutdown, how long the writes still queued may take; then a store that can (PostgreSQL) cuts the
# round trip in flight, so the rest goes to its journal, for as long again at most
STOP_WAIT_S = 5.0

# the flows a process remembers as written (`EdgeAggregator._known`), in bytes of their names and labels, each
# counted FLOW_OVERHEAD more: past it they are forgotten (`_forget`), and each is written through again when next
# seen. A caller sending other labels on every call (64 of 128 characters each, in and out) makes a new flow a
# call: remembered for ever, ~6,000 calls a second grew the process by ~100 MB a second.
FLOWS_KEPT_BYTES: Final = 64 * 1024 * 1024
FLOW_OVERHEAD: Final = 400  # the key's tuple and strings, and its slot in the dict


class EdgeAggregator:
    """Lives on the event loop thread; only the writer executor touches the store."""

    name = "edges"
    durable = True  # a new flow is written through before the reply completes

    def __init__(
        self,
        store: EdgeStore,
        *,
        flush_interval_s: float = 1.0,
        retention_days: float = 30.0,
        kept_bytes: int = FLOWS_KEPT_BYTES,
        head_log_interval_s: float = 3600.0,
    ) -> None:
        """`head_log_interval_s`: how often the chain's head is logged (`log_head`) besides at start and at a
        clean stop; 0: only then."""
        self._store = store
        self._head_log_interval_s = head_log_interval_s
        self._writer = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge-writer")
        self._reader = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge-purge-read")
        # key -> the write-through future while the first insert is in flight, then None
        self._known: dict[EdgeKey, concurrent.futures.Future[None] | None] = {}
        self._known_bytes = 0  # `flow_size` of the flows in `_known`
        # new flows' first writes queued and not yet begun (`_first_write`); the writer thread takes them
        self._new: list[EdgeWrite] | None = None
        self._new_future: concurrent.futures.Future[None] = concurrent.futures.Future()  # `_new`'s write
        self._new_lock = threading.Lock()
        self._kept_bytes = kept_bytes
        self._pending: dict[EdgeKey, list[Any]] = {}  # key -> [count, first_seen, last_seen, reason]
        self._held_bytes = 0  # `flow_size` of the flows `_requeue` put back in `_pending` (a failed write's)
        self._flush_interval_s = flush_interval_s
        self._retention_days = retention_days
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failing_since: float | None = None  # set while the store refuses writes (an outage): monotonic
        self._dropping = False  # counts were dropped in this outage (`_requeue`): logged once
        self._reading: concurrent.futures.Future[Any] | None = None  # a purge's replay, on the reader thread
        self._closing = False
        self._store_closing = False  # the stop's close is the writer's next task (`_closing_store`): no purge after
        self._abandoned = False  # the stop gave up on the writer: a write failing later names its calls itself
        self._abandon_lock = threading.Lock()  # `_abandoned` read and the rows posted back as one step
        self._stop = StopOnce()
        self.write_errors = 0
        self.new_edges = 0
        self.forgotten = 0  # flows forgotten (`_forget`), to be written through again when next seen
        self.dropped = 0  # calls whose counts a store refusing writes left no room for (`_requeue`)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.log_head("at start")
        self._purge()
        self._task = asyncio.get_running_loop().create_task(self._flush_loop())

    def on_end(
        self, call: Call, decision: Decision, outcome: Outcome, output_labels: frozenset[str]
    ) -> concurrent.futures.Future[None] | None:
        if not call.carries_data:
            return None  # metadata and health RPCs: no labelled data, no lineage flow
        return self.add(edge_key(decision, outcome, output_labels), decision.reason)

    def add(self, key: EdgeKey, reason: str | None = None) -> concurrent.futures.Future[None] | None:
        """Count one call of the edge `key` (its rule is part of it). Returns a future to await before the
        response completes when the edge is new (or its first write is still in flight); None when the
        count is merely batched."""
        now = _time()
        try:
            in_flight = self._known[key]  # one lookup (a key's tuple is hashed again at each)
        except KeyError:
            size = flow_size(key)
            if self._known_bytes + size > self._kept_bytes:
                self._forget()
            self._known_bytes += size
            future = self._first_write((key, now, now, 1, reason))
            self._known[key] = future
            self.new_edges += 1
            return future
        pending = self._pending.get(key)
        if pending is None:
            self._pending[key] = [1, now, now, reason]
        else:
            pending[0] += 1
            # the earliest and the latest, not the last call's: a wall clock stepped back (NTP, a VM resumed) between
            # two calls made the batched row's last seen earlier than a call it counts (until 2026-12-07)
            if now > pending[2]:
                pending[2] = now
            elif now < pending[1]:
                pending[1] = now
        return in_flight

    def _first_write(self, row: EdgeWrite) -> concurrent.futures.Future[None]:
        """A new flow's first write: joined to the first writes queued and not yet begun, so the new flows seen
        while the writer is busy are written in one transaction (one commit, one chain entry), not one each."""
        with self._new_lock:
            rows = self._new
            if rows is not None:
                rows.append(row)
                return self._new_future
            rows = [row]
            # `_write_new` waits for the lock to take `rows`: it cannot run before they are set here
            future = self._submit(self._write_new, rows)
            self._new, self._new_future = rows, future
        future.add_done_callback(functools.partial(self._written, rows))
        return future

    def _write_new(self, rows: list[EdgeWrite]) -> None:
        """On the writer thread: the first writes queued, taken (flows seen from now on queue a write of their
        own, after this one) and written."""
        with self._new_lock:
            if self._new is rows:
                self._new = None
        self._store.upsert(rows)

    def _forget(self) -> None:
        """Forget the flows written (those whose first write is in flight are kept: their calls wait for it).
        Each is written through again when next seen, its count added to its row (`EdgeStore.upsert`), as after
        a restart. Logged the first time; counted in `lineage_proxy_edges_forgotten_total`."""
        known: dict[EdgeKey, concurrent.futures.Future[None] | None] = {
            key: future for key, future in self._known.items() if future is not None and not future.done()
        }
        forgotten = len(self._known) - len(known)
        if not self.forgotten:
            log.warning("lineage store: %d flows (%d MiB of names and labels) are more than this process remembers "
                        "as written: forgotten, each written again when next seen (many flows of few calls: labels "
                        "or purposes that differ on every call?)", len(self._known), self._known_bytes >> 20)  # fmt: skip
        self.forgotten += forgotten
        self._known = known
        self._known_bytes = sum(flow_size(key) for key in known)

    def _written(self, rows: list[EdgeWrite], future: concurrent.futures.Future[None]) -> None:
        # runs on the writer thread (or wherever the future was cancelled); dict updates are atomic
        # under the GIL. A failed or cancelled write leaves its flows known, their rows back in the batch:
        # the later calls of those flows are counted in memory, written by the next flush that succeeds,
        # never each a write its reply waits for again (on a store that fails them, one after another).
        with self._new_lock:  # a write cancelled before it began is still open to rows: closed now
            if self._new is rows:
                self._new = None
        for row in rows:
            if self._known.get(row[0]) is future:
                self._known[row[0]] = None
        error = "cancelled" if future.cancelled() else future.exception()
        if error is None:
            self._store_ok()
            return
        self._store_failed(error, rows)

    def _store_failed(self, error: object, rows: list[EdgeWrite]) -> None:
        """A write failed (disk full, read-only, locked too long): calls go on; the rows go back to the
        batch and are written once the store takes writes again; one log line per outage. After a stop that gave
        up on the store (`_abandoned`) nothing reads the batch again: the rows' calls are named as lost instead."""
        self.write_errors += 1
        if isinstance(error, PartlyWritten):  # the rest written (journaled): only these stay with the batch
            rows = error.unwritten
        with self._abandon_lock:
            abandoned = self._abandoned
            if not abandoned and self._loop is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._requeue, rows)
        if abandoned:
            log.error("lineage store: a write still running when the shutdown gave up on the store failed (%s): %d "
                      "flows' counts, %d calls, are lost from the store (" + KEPT_ELSEWHERE + ")",
                      error, len(rows), sum(row[3] for row in rows))  # fmt: skip
            return
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            log.error("lineage store: writes are failing (%s); calls go on and their counts are kept in memory "
                      "until it takes writes again (logged once per outage)", error)  # fmt: skip

    def recording(self) -> bool:
        """False while the store refuses writes (for a PostgreSQL store: its database and journal both),
        from the first failed write to the next one that succeeds: what `require_record` zones ask."""
        return self._failing_since is None

    def _store_ok(self) -> None:
        self._dropping = False
        if self._failing_since is not None:
            log.warning("lineage store: writes succeed again after %.0fs", time.monotonic() - self._failing_since)
            self._failing_since = None

    def _requeue(self, rows: list[EdgeWrite]) -> None:
        """A failed write's rows back in the batch, as many flows as `kept_bytes` holds: while the store refuses
        writes every new flow comes here, and a caller sending new labels on every call grew the process without
        end (20,000 flows, 18 MB) for as long as the outage lasted, until it was killed with every count it held.
        The calls of a flow past that are dropped, counted and logged once an outage; a flow's later calls are
        counted as ever (its row is made by the first write that succeeds)."""
        for key, first, last, count, reason in rows:
            pending = self._pending.get(key)
            if pending is None:
                size = flow_size(key)
                if self._held_bytes + size > self._kept_bytes:
                    if not self._dropping:
                        self._dropping = True
                        log.error("lineage store: the counts held while it refuses writes reached %d MiB of flows; the "
                                  "calls of further flows are not counted until it takes writes again "
                                  "(lineage_proxy_edge_counts_dropped_total)", self._kept_bytes >> 20)  # fmt: skip
                    self.dropped += count
                    continue
                self._held_bytes += size
                self._pending[key] = [count, first, last, reason]
            else:
                pending[0] += count
                pending[1] = min(pending[1], first)
                pending[2] = max(pending[2], last)

    def _purge(self) -> None:
        """A retention purge: the chain replayed on a thread of its own (`prepare_purge`: seconds on a long
        chain, which on the writer thread held up every new flow's first write), then the purge itself,
        the tail since, on the writer thread. A failure is logged (its future is not read)."""
        prepare = getattr(self._store, "prepare_purge", None)
        days = self._retention_days
        if prepare is None:
            self._submit(self._store.purge, days).add_done_callback(_log_purge)
            return

        def replayed(future: concurrent.futures.Future[Any]) -> None:
            exc = future.exception()
            if exc is not None:
                log.error("retention purge failed: %s: %s", type(exc).__name__, exc)
            elif future.result() is not None and not self._closing:  # None: nothing has expired
                with contextlib.suppress(RuntimeError):  # the writer has shut down meanwhile
                    self._submit(self._purge_open, days, future.result()).add_done_callback(_log_purge)

        with contextlib.suppress(RuntimeError):
            self._reading = self._reader.submit(prepare, days)
            self._reading.add_done_callback(replayed)

    def _purge_open(self, days: float, prepared: Any) -> int:
        """On the writer thread: the purge of a replay `replayed` saw end, unless the stop's close was queued before it
        (`_store_closing`). The replay's future is done before its callback runs: a stop that found it done and
        queued the close while the callback, past its look at `_closing`, waited for a core, had the purge run on the
        closed store (SQLite: an ERROR line, `Cannot operate on a closed database`; PostgreSQL connects again)."""
        if self._store_closing:
            return 0  # (the next start purges)
        purge: Callable[..., int] = self._store.purge  # (a store with `prepare_purge` takes what it prepared)
        return purge(days, None, prepared)

    def _closing_store(self) -> None:
        """On the writer thread, the task before the store's close: a purge queued after it is not run."""
        self._store_closing = True

    def _submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future[None]:
        return self._writer.submit(fn, *args)

    async def flush(self) -> None:
        """Write the batched counts now (and wait for every write queued before)."""
        future = self._flush_pending() or self._submit(_nothing)
        with contextlib.suppress(Exception):  # a store failure is counted, logged once, and kept for later
            await asyncio.wrap_future(future)

    def _flush_pending(self) -> concurrent.futures.Future[None] | None:
        if not self._pending:
            return None
        batch, self._pending = self._pending, {}
        self._held_bytes = 0  # what fails of it is put back (`_requeue`)
        rows: list[EdgeWrite] = [
            (key, first, last, count, reason) for key, (count, first, last, reason) in batch.items()
        ]
        future = self._submit(self._store.upsert, rows)
        future.add_done_callback(functools.partial(self._flushed, rows))
        return future

    def _flushed(self, rows: list[EdgeWrite], future: concurrent.futures.Future[None]) -> None:
        error = "cancelled" if future.cancelled() else future.exception()
        if error is None:
            self._store_ok()
        else:
            self._store_failed(error, rows)

    async def _flush_loop(self) -> None:
        last_purge = last_head = time.monotonic()
        more = False
        while True:
            if not more:
                await asyncio.sleep(self._flush_interval_s)
            self._flush_pending()
            replay = getattr(self._store, "replay", None)  # a store with a backlog to replay (journal.py)
            more = replay is not None and await self._replaying(replay)
            if time.monotonic() - last_purge > 3600:
                last_purge = time.monotonic()
                self._purge()
            if 0 < self._head_log_interval_s <= time.monotonic() - last_head:
                last_head = time.monotonic()
                self.log_head("now")

    def head(self) -> tuple[int, str] | None:
        """The chain's newest entry (number, hash) as the store's writer last read or wrote it; None when not
        known (a database away since the start, or a store that keeps no chain)."""
        head = getattr(self._store, "head", None)
        return head if isinstance(head, tuple) else None

    def log_head(self, when: str) -> None:
        """One INFO line with the chain's head, a line a log pipeline keeps: an anchor outside the store. Its
        `--expect-head` part is what `lineage-proxy verify --integrity --expect-head` takes, pasted as it is."""
        head = self.head()
        if head is not None:
            log.info("lineage chain head %s: entry %d, --expect-head %s", when, head[0], head[1])

    async def _replaying(self, replay: Callable[[], bool]) -> bool:
        """A store's backlog replayed a slice at a time, each slice a task of its own on the writer thread,
        so the writes queued meanwhile (a new flow's) run between two slices instead of after the whole
        backlog; for one flush interval at most. Whether more is left to replay at once."""
        until = time.monotonic() + self._flush_interval_s
        while True:
            future: concurrent.futures.Future[bool] = self._writer.submit(replay)
            try:
                more = await asyncio.wrap_future(future)
            except Exception as exc:  # the store's own failures are its business (logged there); this is not
                log.error("lineage store: replaying its backlog failed: %s: %s", type(exc).__name__, exc)
                return False
            if not more or time.monotonic() >= until:
                return bool(more)

    def metrics(self) -> Iterable[str]:
        store_metrics = getattr(self._store, "metrics", None)  # a journaled store's own (journal.py)
        head = self.head()
        chain = () if head is None else (
            "# HELP lineage_proxy_record_chain_entries The number of the lineage store's newest chain entry, as this "
            "process last wrote or read it (the highest of the workers'). It never goes down: a drop means the chain "
            "was emptied or cut, or the store replaced.",
            "# TYPE lineage_proxy_record_chain_entries gauge",
            f"lineage_proxy_record_chain_entries {head[0]}",
        )  # fmt: skip
        return (
            *(store_metrics() if store_metrics is not None else ()),
            *chain,
            "# HELP lineage_proxy_edges_new_total Lineage flows seen for the first time by this process (or again, once "
            "forgotten: lineage_proxy_edges_forgotten_total).",
            "# TYPE lineage_proxy_edges_new_total counter",
            f"lineage_proxy_edges_new_total {self.new_edges}",
            "# HELP lineage_proxy_edges_forgotten_total Flows this process stopped remembering as written (past "
            "64 MiB of them), each written through again when next seen.",
            "# TYPE lineage_proxy_edges_forgotten_total counter",
            f"lineage_proxy_edges_forgotten_total {self.forgotten}",
            "# HELP lineage_proxy_edge_counts_dropped_total Calls not counted in the lineage store: it refused writes "
            "and the flows' counts held for it reached 64 MiB.",
            "# TYPE lineage_proxy_edge_counts_dropped_total counter",
            f"lineage_proxy_edge_counts_dropped_total {self.dropped}",
            "# HELP lineage_proxy_edge_write_errors_total Failed or cancelled writes to the lineage store.",
            "# TYPE lineage_proxy_edge_write_errors_total counter",
            f"lineage_proxy_edge_write_errors_total {self.write_errors}",
            "# HELP lineage_proxy_edge_store_failing 1 while the lineage store refuses writes (in any worker, not a sum).",
            "# TYPE lineage_proxy_edge_store_failing gauge",
            f"lineage_proxy_edge_store_failing {1 if self._failing_since is not None else 0}",
        )

    async def stop(self) -> None:
        await self.close()

    async def close(self) -> None:
        """`_close`, once (`StopOnce`): a second stop used to queue the store's close on the writer the first
        had shut down, and fail."""
        await self._stop.run(self._close)

    async def _close(self) -> None:
        """Flush what is pending, wait for every write, then release the store (on the writer thread,
        after them). Bounded: a store whose writes are not done after STOP_WAIT_S (a database that does
        not answer) is interrupted, so the rest goes to its journal; what is still unwritten STOP_WAIT_S
        later is logged as lost, and the store is left as it is."""
        if self._task is not None:
            self._task.cancel()
        deadline = time.monotonic() + STOP_WAIT_S
        if self._reading is not None:  # a purge's replay: its purge is queued as it ends (within the wait)
            await _within(self._reading, STOP_WAIT_S)
        self._closing = True  # a replay still running ends with the store, its purge never queued
        self._reader.shutdown(wait=False, cancel_futures=True)
        flows = len(self._pending)
        last = self._flush_pending()
        self._submit(self._closing_store)
        closed = self._submit(self._store.close)
        done = await _within(closed, max(0.0, deadline - time.monotonic()))
        interrupt = getattr(self._store, "interrupt", None)
        if not done and interrupt is not None:
            log.warning("lineage store: its writes are not done %gs into the shutdown (the database does not answer); "
                        "what is left goes to the journal", STOP_WAIT_S)  # fmt: skip
            interrupt()
            done = await _within(closed, STOP_WAIT_S)
        if not done:
            among = "" if last is None or last.done() else f" (the last {flows} flows' counts among them)"
            log.error("lineage store: shutdown gave up on the store's writes after %gs: those still queued are lost%s",
                      2 * STOP_WAIT_S if interrupt is not None else STOP_WAIT_S, among)  # fmt: skip
            self._writer.shutdown(wait=False, cancel_futures=True)  # (a write cancelled puts its rows back too)
            await self._say_unwritten(abandon=True)
            return
        self._writer.shutdown(wait=True)  # done: nothing left to wait for
        self.log_head("at stop")
        if interrupt is not None:
            interrupt()  # a purge's read still waiting on the database ends now
        await self._say_unwritten()
        closed.result()  # a store that failed to close says why (the fan-out logs it)

    async def _say_unwritten(self, abandon: bool = False) -> None:
        """The flows and calls of the batch at the stop, in one ERROR line: the rows of failed (or cancelled) last
        writes, put back there (`_store_failed`), which nothing is left to retry. Read once what those writes posted
        to the loop has run. A stop that gave up on the store's writes (its line: those queued are lost) said nothing
        of these before. `abandon`: it gave up, and a write still running may fail after this line: from now on such
        a write names its calls in a line of its own (`_store_failed`), where its rows put back went unread."""
        if abandon:
            with self._abandon_lock:  # a failed write's rows are posted back before this, or named by it after
                self._abandoned = True
        await _posted_before(self._loop)  # the rows its failed writes put back, in the batch now
        if self._pending:
            log.error("lineage store: %d flows' counts, %d calls, could not be written before shutdown and are lost from "
                      "the store (" + KEPT_ELSEWHERE + ")", len(self._pending),
                      sum(pending[0] for pending in self._pending.values()))  # fmt: skip


def edge_key(decision: Decision, outcome: Outcome, output_labels: frozenset[str]) -> EdgeKey:
    """The edge a finished call counts toward: its flow and the rule that decided it, so two kinds of
    denial of one flow never share an edge; every sink that keys by flow uses this one."""
    unidentified = decision.unidentified  # refused for its key: one edge per caller and rule, whatever it claims
    key: EdgeKey = _new_tuple(
        EdgeKey,
        (
            decision.caller or "anonymous",
            "" if unidentified else decision.purpose or "",
            "" if unidentified else format_labels(decision.labels),
            outcome.checkpoint or (NO_WEIGHTS if outcome.checkpoint_source == NO_WEIGHTS_SOURCE else ""),
            format_labels(output_labels),
            decision.action,
            decision.rule or "",
        ),
    )
    return key


def flow_size(key: EdgeKey) -> int:
    """What remembering the flow `key` costs, about: its strings' characters (ASCII, most) and FLOW_OVERHEAD."""
    size = FLOW_OVERHEAD
    for part in key:
        size += len(part)
    return size


# `EdgeKey(...)` runs the named tuple's generated `__new__`, interpreted (~0.5 µs a call); tuple's makes the same
# object in C
_new_tuple: Final[Callable[..., Any]] = tuple.__new__


async def _within(future: concurrent.futures.Future[Any], timeout: float) -> bool:
    """Whether `future` is done within `timeout` seconds (it goes on either way)."""
    if future.done():
        return True
    try:
        await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), timeout)
    except TimeoutError:
        return False
    except Exception:
        return True  # done, and failed: its owner reads why
    return True


async def _posted_before(loop: asyncio.AbstractEventLoop | None) -> None:
    """Once the callbacks posted to `loop` from other threads so far have run (`call_soon_threadsafe` runs them in
    order). A failed write's rows go back to the batch so (`_store_failed`): a stop that found its writer done at
    once (the writer's thread ran the last flush and the close while the loop's waited for a core) read the batch
    before they were back, and said nothing of the calls it lost. `loop`: the one they are posted to (None: none are;
    another than this stop's: they run there, not here)."""
    if loop is not asyncio.get_running_loop():
        return
    posted: asyncio.Future[None] = loop.create_future()
    loop.call_soon_threadsafe(posted.set_result, None)
    await posted


def _nothing() -> None:
    """A no-op write: waiting for it waits for every write queued before it."""


def _log_purge(future: concurrent.futures.Future[None]) -> None:
    exc = future.exception()
    if exc is not None:
        log.error("retention purge failed: %s: %s", type(exc).__name__, exc)

"""OpenLineage export, the `openlineage` record sink: lineage flows as RunEvents for Marquez, Kafka or a file.

A flow (the edge key: caller, purpose, input labels, checkpoint, output labels, decision, rule) goes out once
when this process first sees it, and its call count once per `snapshot_interval_s` in which it changed.
The hot path only counts in a dict and, for a new flow, puts one small tuple on a bounded queue; one
background thread builds the events and hands them to openlineage-python's transport (built by its own
factory from `lineage.openlineage.transport`, so its http, kafka, file and console transports all work
as its docs say). A dead backend is logged once per outage and counted; calls never wait for it.

A count event the backend did not take is sent again as it was (its runId, eventTime and window), first
thing at the next snapshot, or after one interval when no call comes, and last at shutdown: a receiver
that kept it though the answer was lost (a slow one, past the transport's timeout) sees the same run
twice, never the calls twice. While that fails, later windows' counts are kept, never sent, and go out
merged once it succeeds, so what is kept is one window's events and one count per flow. Once the first has
failed SET_ASIDE_FAILURES times when sent again, the next in line is tried: a backend that takes that one and still
fails the first fails it for what is in it (a 500 every time), and it is set aside (`_set_aside`). Never one it
answers busy (429, 503, ...: `_BUSY`): a backend shedding load takes some events and refuses others.

What is still not sent when the recorder stops is not lost: the stop takes it from the sender (`_collect`, which
then sends no count event more) and writes it, as count events, to the spool (`_Spool`, `lineage.openlineage.spool`),
which the next recorder to start sends first, each event as it was (its runId too). A spool file is removed once its
events are sent, or are in a newer one: a crash in between sends the same runs again, never more calls.
Nor is it lost to a kill (the OOM killer) during an outage: while the backend fails, the sender writes what it holds
to its own file in the spool after each snapshot (`_save_backlog`), the counts held since made count events there
(`_sealed`) and sent as written, so the next recorder sends the same runs; a kill loses the window in progress only.

Every event is a self-contained COMPLETE run of the checkpoint's job (one job per checkpoint, type
SERVICE): Marquez builds a job version, the datasets and the graph from a COMPLETE event at once, whereas
a long-lived START/RUNNING run shows nothing until a COMPLETE that a killed sidecar never sends. Inputs
are the label set (a dataset per set, `lineage-proxy://labels`), the output is what the caller got back
(a dataset per caller/purpose, `lineage-proxy://callers`; none when the call was denied). A snapshot's
count covers its nominal time window; summing snapshots gives the calls, the first included.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import copy
import fcntl
import functools
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import unquote, urlsplit, urlunsplit

import attr
import orjson
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import DatasetFacet, JobFacet, RunFacet, job_type_job, nominal_time_run
from openlineage.client.transport import AsyncHttpTransport, Transport, get_default_factory
from openlineage.client.transport.composite import CompositeTransport
from openlineage.client.transport.http import TokenProvider
from openlineage.client.uuid import generate_new_uuid

from proxy import __version__
from proxy.baseline import NO_WEIGHTS
from proxy.config import OpenLineage
from proxy.config.loader import redact_userinfo, token_hidden
from proxy.files import sync_directory
from proxy.flow import DENY, Call, Decision, Outcome, digest_cut
from proxy.record.edges import FLOWS_KEPT_BYTES, edge_key, flow_size
from proxy.record.sinks import Counts, StopOnce, raised_at
from proxy.record.store import EdgeKey, split_labels

log = logging.getLogger("lineage_proxy.openlineage")

REPOSITORY = "https://github.com/lineage-proxy/lineage-proxy"
PRODUCER = f"{REPOSITORY}/tree/v{__version__}"
# the JSON schema of the facets below, shipped beside this module: its raw file, which a consumer fetching a facet's
# `_schemaURL` reads as JSON (GitHub's `blob/` page for it is HTML)
FACETS_SCHEMA = (
    f"https://raw.githubusercontent.com/{REPOSITORY.removeprefix('https://github.com/')}/v{__version__}"
    "/proxy/record/openlineage_facets.json"
)
LABELS_NAMESPACE = "lineage-proxy://labels"
CALLERS_NAMESPACE = "lineage-proxy://callers"
# names for what has none, that nothing named can have (the dataset `unlabelled` and the job `policy-boundary` were
# also a caller's label `unlabelled` and a checkpoint named `policy-boundary`: Marquez merged the two into one node)
UNLABELLED = "(no labels)"  # the dataset of calls that carry no label: no label has parentheses or a space
NO_CHECKPOINT = "(policy boundary)"  # the job of flows no checkpoint served (denials, early failures): a checkpoint's
# name has no space (`printable_name` encodes one)
# times the first count event to send again may fail before the backend's taking another sets it aside (`_probe`):
# an event a backend fails every time (a 500 for what is in it) held back every later count for good
SET_ASIDE_FAILURES: Final = 2
# the longest name an event gives a job or a dataset (`_name`): older Marquez keeps them in VARCHAR(255) and answers
# 500 to a longer one, every time; the OpenLineage spec and openlineage-python set no bound. A label set is up to
# ~8 KiB (64 labels of 128 characters), a checkpoint's name 512 characters (`printable_name`)
NAME_MAX: Final = 255
STOP_WAIT_S = 5.0  # at shutdown, how long the events still queued may take to go out
# of the stop's wait for the sender, what is kept for the sender to count what an async_http transport it closes (cut
# short then: its own retries take ~9 s) did not send, and end
CLOSE_SPARE_S: Final = 1.0
# an async_http transport's own per-event methods, which `_watch` puts its counting in front of
_HOOKED: Final = ("_add_event", "_mark_success", "_mark_failed")


def _facet_schema(name: str) -> str:
    return f"{FACETS_SCHEMA}#/$defs/{name}"


@attr.define
class PurposeRunFacet(RunFacet):
    """What the call was for (`x-purpose`, a caller's default, or the policy's)."""

    purpose: str
    caller: str

    @staticmethod
    def _get_schema() -> str:
        return _facet_schema("PurposeRunFacet")


@attr.define
class DecisionRunFacet(RunFacet):
    """The policy's decision, the rule that fired and what the caller was told: a flow's rule belongs with
    its decision, so they travel in one facet."""

    decision: str
    rule: str | None = None
    reason: str | None = None

    @staticmethod
    def _get_schema() -> str:
        return _facet_schema("DecisionRunFacet")


@attr.define
class ZonesRunFacet(RunFacet):
    """The Policy Zones whose labels the flow carried."""

    zones: list[str]

    @staticmethod
    def _get_schema() -> str:
        return _facet_schema("ZonesRunFacet")


@attr.define
class CountRunFacet(RunFacet):
    """Calls of this flow in the run's nominal time window (snapshots only)."""

    count: int

    @staticmethod
    def _get_schema() -> str:
        return _facet_schema("CountRunFacet")


@attr.define
class SidecarRunFacet(RunFacet):
    """The sidecar (`lineage.sidecar`: a deployment of a fleet) that served the run's calls: the name its edges are
    recorded under. A run's, not the job's: a checkpoint's job is one job whichever deployment serves it."""

    name: str

    @staticmethod
    def _get_schema() -> str:
        return _facet_schema("SidecarRunFacet")


@attr.define
class LabelsDatasetFacet(DatasetFacet):
    """The data labels a dataset carries (the input's, or the output's: inputs' labels ∪ detected)."""

    labels: list[str]

    @staticmethod
    def _get_schema() -> str:
        return _facet_schema("LabelsDatasetFacet")


@dataclass(frozen=True, slots=True)
class _Facts:
    """What a flow's events say beyond its key (the last call's, when they change; the rule is the key's)."""

    reason: str | None
    zones: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _NewFlow:
    key: EdgeKey
    facts: _Facts
    at: float


@dataclass(frozen=True, slots=True)
class _Snapshot:
    flows: tuple[tuple[EdgeKey, int, _Facts], ...]
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class _Barrier:
    done: concurrent.futures.Future[None]


_Item = _NewFlow | _Snapshot | _Barrier | None


class _Handed:
    """An event `_emit` handed to async_http transports (one, or several inside a composite one), which post it on
    their own threads later: counted once each has reported what became of its copy (`_reported`), sent when one took
    it, else failed. `disowned`: counted otherwise (the emit raised before any transport took or queued it: failed, and
    sent again), or counted already; what the transports report of it is not counted."""

    __slots__ = ("accepted", "disowned", "gave_up", "queued", "refused", "reported", "returned", "taken")

    def __init__(self) -> None:
        self.accepted = False  # a transport inside a composite one took it or queued it (its emit returned)
        # what a transport inside a composite one raised on it, when the composite went on (`continue_on_failure: true`)
        self.refused: Exception | None = None
        self.queued = 0  # copies queued by async_http transports
        self.reported = 0  # of those, the ones they reported sent or given up on
        self.taken = False  # one of them was taken by the backend
        # an async_http transport gave its copy up (its backend down) while another transport took it (`_settle`)
        self.gave_up = False
        self.returned = False  # the emit returned
        self.disowned = False


class _Tally:
    __slots__ = ("count", "facts")

    def __init__(self, facts: _Facts) -> None:
        self.count = 0
        self.facts = facts


class OpenLineageRecorder:
    """Lives on the event loop thread; only the sender thread touches the transport."""

    name = "openlineage"
    durable = False

    def __init__(
        self, settings: OpenLineage, *, transport: Transport | None = None, kept_bytes: int = FLOWS_KEPT_BYTES,
        sidecar: str | None = None,
    ) -> None:  # fmt: skip
        """`sidecar`: this process's `lineage.sidecar`, named by each event (`lineageProxy_sidecar`); None names none."""
        self._settings = settings
        self._sidecar = sidecar
        self._transport = transport  # None: built from settings on the sender thread (it may do I/O)
        self._target = _describe(settings.transport)
        # what may be a token in a transport's URL (`token_hidden`), hidden in every line this module logs (the errors
        # of requests and httpx quote the URL's path and host, which hold it) and openlineage-python's transports do
        self._hiding = tuple(url for url in _urls(settings.transport) if token_hidden(url, url) != url)
        if self._hiding:
            with _HIDING_LOCK:
                _HIDING.hide(self._hiding)
        # what keeps them hidden (`_unhide`): the stop, until it ends, and the sender thread, once started, until it
        # ends: it closes the transport (an async_http one's own thread, which logs its failures quoting the URL, ends
        # within that close), and outlives a stop that gave up waiting for it. Until 2026-12-06 the stop alone
        self._hidden_for = {"stop"}
        self._queue: queue.Queue[_Item] = queue.Queue(maxsize=settings.queue_size)
        # the flows seen (their first event sent), and this window's counts: each at most `kept_bytes` of flows
        # (`flow_size`), as many as the edge store's writer remembers. Past it, the flows seen are forgotten
        # (each one's first event sent again when next seen) and the window ends early (`_end_window`).
        self._kept_bytes = kept_bytes
        self._seen: set[EdgeKey] = set()
        self._seen_bytes = 0
        self._window: dict[EdgeKey, _Tally] = {}
        self._window_bytes = 0
        self._window_start = time.time()
        self._window_refused = False  # the queue refused a window ended early: none ends so before the interval's
        # sender thread only: count events the backend did not take, sent again as they were, with their flows and
        # counts; counts not sent yet (while those fail), merged per flow, from `_held_since` on; the counts being
        # sent now (taken from `_held`, each gone once sent or kept to retry); whether a new flow's event is being
        # sent. The stop reads them, with the queue, to say what a stuck sender did not send (`_left`): the sender
        # moves an item off the queue, or from one of them to another, only under `_lock`, which the stop holds
        # while it reads, so it sees each item in one place (never an emit under it: the stop would wait for that).
        self._lock = threading.Lock()
        self._retry: list[tuple[EdgeKey, RunEvent, int]] = []
        self._head_failures = 0  # times the first of `_retry` failed when sent again (`_send_snapshot`)
        self._busy = False  # the last event that failed was answered busy (`_BUSY`): for the backend's load, not it
        self._held: dict[EdgeKey, tuple[int, _Facts]] = {}
        self._held_bytes = 0  # `flow_size` of the flows in `_held`: at most `kept_bytes` (`_hold`)
        self._held_since = 0.0
        self._sending: dict[EdgeKey, tuple[int, _Facts]] = {}
        self._sending_since = 0.0  # the window start of the counts in `_sending`
        self._inflight: tuple[EdgeKey, RunEvent, int] | None = None  # a count event built from `_sending`, being sent
        self._sending_new = False
        # while the backend fails, the counts held that the backlog file (`_save_backlog`) has as count events: each
        # flow's one event, its runId made when written, sent as it is (never merged with later counts once tried);
        # by flow, with its count, facts and window start, to merge what is held since into one event at the next
        # write (none of these was ever sent: the file replacing the last, a new runId is no second run)
        self._sealed: dict[EdgeKey, tuple[RunEvent, int, _Facts, float]] = {}
        # the backlog file: this recorder's spool file of what it holds to send again (`_Backlog`), so that a kill
        # (the OOM killer) during an outage loses no more than the last write had not covered
        self._backlog = _Backlog(settings.spool)
        # held by a backlog write, and by the stop from what it takes to the file's removal (`_spool_left`)
        self._backlog_lock = threading.Lock()
        # the stop has taken what is not sent, to spool it (`_collect`): the sender sends no count event after it
        self._closed = False
        self._spool = _Spool(settings.spool)
        self._thread = threading.Thread(target=self._sender, name="openlineage-sender", daemon=True)
        self._task: asyncio.Task[None] | None = None
        self._stop_once = StopOnce()
        self._stopping = False  # `stop` was called: a flush from then on does nothing
        self._down = False
        # the async_http transports (the transport, or those inside a composite one), whose emit only queues the event
        # for their own worker: their events are counted as each worker reports it (`_watch`, `_reported`); the event
        # being emitted, whose copies they queue (`_queued`, the sender's); by each copy queued, its event
        self._async: tuple[AsyncHttpTransport, ...] = ()
        # the emits of the transports inside a composite one are watched (`_took`), or the async_http ones' reports:
        # each event emitted is then followed (`_handing`)
        self._watched = False
        self._said_partly = False  # `_partly` said it once (an event queued, then raised on)
        # a composite's transport fails the events one before it took (`_partly`): an outage of its backend, counted and
        # said as one, until an emit returns (all its transports took the event)
        self._part_down = False
        # that outage was begun by an async_http transport giving its copy of an event up (`_settle`): ended by a copy
        # of its reported sent, not by an emit returning (which says nothing of its backend)
        self._part_async = False
        self._handing: _Handed | None = None
        self._handed: dict[int, _Handed] = {}
        self._tally_lock = threading.Lock()  # counts and outages (`_failing`, `_taking`), `_handed`
        self._stop_by: float | None = None  # monotonic: when the stop gives up waiting for the sender
        # events by what became of them, and outages; a reload's new recorder counts on from these (FanOut.swap)
        self.counts = Counts("sent", "failed", "dropped", "outages")

    # -- the event loop's side

    def start(self) -> None:
        with _HIDING_LOCK:
            self._hidden_for.add("sender")
        self._thread.start()
        self._task = asyncio.get_running_loop().create_task(self._snapshot_loop())

    def on_end(self, call: Call, decision: Decision, outcome: Outcome, output_labels: frozenset[str]) -> None:
        if not call.carries_data:
            return None  # metadata and health RPCs: no labelled data, no lineage flow
        key = edge_key(decision, outcome, output_labels)
        tally = self._window.get(key)
        if tally is None or tally.facts.zones != decision.zones:
            facts = _Facts(decision.reason, decision.zones)
            if tally is None:
                size = flow_size(key)
                if self._window_bytes + size > self._kept_bytes and not self._end_window():
                    self.counts.add("dropped")  # no room for its count (the queue is full): this call's is not sent
                    self._see(key, facts, size)
                    return None
                self._window_bytes += size
                tally = self._window[key] = _Tally(facts)
            tally.facts = facts
        tally.count += 1
        if key not in self._seen:
            self._see(key, tally.facts, flow_size(key))
        return None

    def _see(self, key: EdgeKey, facts: _Facts, size: int) -> None:
        """A flow's first event (or again, once forgotten: past `kept_bytes` of flows seen, they are)."""
        if key in self._seen:
            return
        if self._seen_bytes + size > self._kept_bytes:
            self._seen.clear()
            self._seen_bytes = 0
        self._seen.add(key)
        self._seen_bytes += size
        self._put(_NewFlow(key, facts, time.time()))

    def _end_window(self) -> bool:
        """End the window now, its counts queued as at the interval's end: a window past `kept_bytes` of flows (many
        flows of few calls). False when the queue refuses it (its counts are kept, for the interval's end)."""
        if self._window_refused:
            return False
        snapshot = self._take_window()
        if snapshot is None or self._put(snapshot):
            return True
        self._restore(snapshot)
        self._window_refused = True
        return False

    def _put(self, item: _Item) -> bool:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.counts.add("dropped")  # a dropped new flow still goes out with the next snapshot's counts
            return False
        return True

    def _take_window(self) -> _Snapshot | None:
        now = max(time.time(), self._window_start)  # a wall clock stepped back (NTP) ends no window before its start
        window, start, self._window, self._window_start = self._window, self._window_start, {}, now
        self._window_bytes = 0
        self._window_refused = False
        if not window:
            return None
        return _Snapshot(tuple((key, tally.count, tally.facts) for key, tally in window.items()), start, now)

    async def _snapshot_loop(self) -> None:
        while True:
            await asyncio.sleep(self._settings.snapshot_interval_s)
            snapshot = self._take_window()
            if snapshot is not None and not self._put(snapshot):
                self._restore(snapshot)

    def _restore(self, snapshot: _Snapshot) -> None:
        """A snapshot the full queue refused: its counts go back into the window, for the next one."""
        for key, count, facts in snapshot.flows:
            tally = self._window.get(key)
            if tally is None:
                tally = self._window[key] = _Tally(facts)
                self._window_bytes += flow_size(key)
            tally.count += count
        self._window_start = snapshot.start

    async def flush(self) -> None:
        """Send this window's counts now and wait until everything queued before has been handed over.
        Flush and stop may wait for room in the queue; calls never do. Once the stop has begun, nothing: a flush of
        the fan-out reaches a sink a reload retired meanwhile, whose sender ends at the stop's marker (or once the stop
        has what it did not send); its barrier behind it was never answered, the flush waited for good."""
        if self._stopping:
            return
        snapshot = self._take_window()
        if snapshot is not None and not await asyncio.to_thread(self._put_open, snapshot):
            self.counts.add("dropped", len(snapshot.flows))
            log.warning("openlineage: the counts of %d flows (%d calls) a flush was queueing for %s when the stop gave "
                        "up on its sender are lost", len(snapshot.flows), sum(count for _, count, _ in snapshot.flows),
                        self._target)  # fmt: skip
            return
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        if await asyncio.to_thread(self._put_open, _Barrier(done)):
            await asyncio.wrap_future(done)

    def _put_open(self, item: _Item) -> bool:
        """Put `item` in the queue, waiting for room, unless the stop has taken what is not sent (`_collect`), before
        or meanwhile: False then. A flush waiting for room as the stop gave up on a stuck sender put its snapshot once
        the sender took the next item: the stop had spooled what it found, the sender only held these, lost unsaid."""
        with self._queue.not_full:  # the queue's mutex, under which `_collect` closes and wakes this wait
            while not self._closed and self._queue._qsize() >= self._queue.maxsize > 0:
                self._queue.not_full.wait()
            if self._closed:
                return False
            self._queue._put(item)  # as `Queue.put` does, under its mutex with the check above
            self._queue.unfinished_tasks += 1
            self._queue.not_empty.notify()
        return True

    async def stop(self) -> None:
        """`_stop`, once (`StopOnce`): a second stop neither waits for a stuck sender again nor says twice
        what it did not send."""
        self._stopping = True
        try:
            await self._stop_once.run(self._stop)
        finally:
            self._unhide("stop")

    def _unhide(self, holder: str) -> None:
        """`holder` (the stop, the sender thread) no longer needs what may be a token hidden: it is shown again once
        neither does (and no other recorder hides it)."""
        with _HIDING_LOCK:
            self._hidden_for.discard(holder)
            if self._hidden_for or not self._hiding:
                return
            _HIDING.show(self._hiding)
            self._hiding = ()  # (once: another recorder may hide the same URL)

    async def _stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._thread.ident is None:
            return  # never started
        snapshot = self._take_window()
        try:
            if snapshot is not None:
                await asyncio.to_thread(self._queue.put, snapshot, True, STOP_WAIT_S)
                snapshot = None  # queued: counted with the queue below
            # before the marker: the sender closes its transport by then (`_close`), the join waits as long
            self._stop_by = time.monotonic() + STOP_WAIT_S
            await asyncio.to_thread(self._queue.put, None, True, STOP_WAIT_S)
        except queue.Full:
            pass  # the sender is stuck on a dead backend: said below
        await asyncio.to_thread(self._thread.join, STOP_WAIT_S)
        stuck = self._thread.is_alive()  # the sender is stuck on a backend that does not answer
        events, flows, calls = self._left(snapshot)
        if stuck:
            log.warning("openlineage: %d events not sent to %s at shutdown, and the counts of %d flows (%d calls)",
                        events, self._target, flows, calls)  # fmt: skip
        elif flows:
            log.warning("openlineage: the counts of %d flows (%d calls) could not be sent to %s before shutdown",
                        flows, calls, self._target)  # fmt: skip
        await asyncio.to_thread(self._spool_left, snapshot)

    def _spool_left(self, refused: _Snapshot | None) -> None:
        """`_collect` then `_spool_owed`, while no backlog file is written (`_backlog_lock`): the stop's spool file
        holds what the backlog file has, each event as it is there, before the backlog file is removed."""
        with self._backlog_lock:
            owed, claimed = self._collect(refused)
            self._spool_owed(owed, claimed)

    def _collect(self, refused: _Snapshot | None) -> tuple[list[tuple[EdgeKey, RunEvent, int]], list[_Claimed]]:
        """What is not sent, as count events to spool, and the spool files this recorder claimed (theirs are
        among them); the sender sends no count event after it (`_closed`). The events it had (to send again, the
        one it is sending) as they are, their runIds too: one the backend got anyway is the same run again. The
        counts it had not made an event of yet, each flow's merged into one event of their whole window."""
        pending: dict[EdgeKey, tuple[int, _Facts, float]] = {}

        def add(key: EdgeKey, count: int, facts: _Facts, start: float) -> None:
            found = pending.get(key)
            pending[key] = (count, facts, start) if found is None else (found[0] + count, facts, min(found[2], start))

        with self._lock, self._queue.mutex:
            self._closed = True
            self._queue.not_empty.notify()  # a sender waiting for an item ends, once the queue is empty (`_take`)
            self._queue.not_full.notify_all()  # a flush waiting for room queues nothing more (`_put_open`)
            owed = list(self._retry)
            if self._inflight is not None:
                owed.append(self._inflight)
            owed += [(key, event, count) for key, (event, count, _, _) in self._sealed.items()]
            for key, (count, facts) in self._sending.items():
                add(key, count, facts, self._sending_since)
            for key, (count, facts) in self._held.items():
                add(key, count, facts, self._held_since)
            queued: list[_Item] = list(self._queue.queue)
            if refused is not None:
                queued.append(refused)
            for item in queued:
                if isinstance(item, _Snapshot):
                    for key, count, facts in item.flows:
                        add(key, count, facts, item.start)
            claimed, self._spool.claimed = self._spool.claimed, []
        now = time.time()
        for key, (count, facts, start) in pending.items():
            end = max(now, start)
            owed.append((key, self._event(key, facts, end, window=(start, end), count=count), count))
        return owed, claimed

    def _spool_owed(self, owed: list[tuple[EdgeKey, RunEvent, int]], claimed: list[_Claimed]) -> None:
        """Write the count events not sent to the spool (at most `spool_max_events`; the rest dropped, counted and
        said), then remove the spool files this recorder had claimed: what it had of theirs is in the new one. A
        crash between the two leaves both, the same runIds in each: the same runs again, never more calls."""
        kept = owed[: self._settings.spool_max_events]
        lost = owed[len(kept) :]
        written = not kept
        if kept:
            try:
                path = self._spool.write(_entry(key, event, count) for key, event, count in kept)
            except (OSError, ValueError) as exc:
                self._unspooled(owed, claimed, exc)
                lost = []
            else:
                written = True
                log.warning("openlineage: %d count events (%d calls) spooled to %s, for %s at the next start",
                            len(kept), _calls(kept), path, self._target)  # fmt: skip
        if lost:
            self.counts.add("dropped", len(lost))
            log.warning("openlineage: %d count events (%d calls) for %s could not be spooled (spool_max_events %d); "
                        "lost", len(lost), _calls(lost), self._target, self._settings.spool_max_events)  # fmt: skip
        if written:  # what the claimed files held and was not sent is in the new file (or said lost)
            _Spool.release(claimed)
            self._backlog.remove()  # so is what the backlog file held
        else:
            _Spool.unclaim(claimed)  # kept for the next start: nothing more is lost than could not be written
            self._backlog.let_go()

    def _unspooled(self, owed: list[tuple[EdgeKey, RunEvent, int]], claimed: list[_Claimed], error: Exception) -> None:
        """The stop's spool file could not be written (a full disk): `owed` is lost but for the events the spool's
        earlier files hold, which stay for the next start (`unclaim`, `let_go`): the backlog file's last write and the
        files this recorder claimed. Those are neither counted dropped nor said lost: the next start sends them (the
        line said every one lost, and the count of dropped events had them too)."""
        earlier = set(self._spool.runs) if claimed else set()
        if self._backlog.path is not None:
            earlier |= self._backlog.runs
        kept = [item for item in owed if item[1].run.runId in earlier]
        lost = [item for item in owed if item[1].run.runId not in earlier]
        self.counts.add("dropped", len(lost))
        why = f"the spool {self._spool.directory} could not be written: {_error(error)}"
        if not lost:
            log.error("openlineage: the %d count events (%d calls) for %s not sent could not be spooled (%s); they are "
                      "in the spool's earlier files, kept for the next start", len(kept), _calls(kept), self._target,
                      why)  # fmt: skip
            return
        still = f"; {len(kept)} more ({_calls(kept)} calls) are in the spool's earlier files, kept for the next start"
        log.error("openlineage: %d count events (%d calls) for %s could not be spooled (%s); lost%s", len(lost),
                  _calls(lost), self._target, why, still if kept else "")  # fmt: skip

    def metrics(self) -> Iterable[str]:
        counts = self.counts
        return (
            "# HELP lineage_proxy_openlineage_events_total OpenLineage events by what became of them.",
            "# TYPE lineage_proxy_openlineage_events_total counter",
            f'lineage_proxy_openlineage_events_total{{result="sent"}} {counts["sent"]}',
            f'lineage_proxy_openlineage_events_total{{result="failed"}} {counts["failed"]}',
            f'lineage_proxy_openlineage_events_total{{result="dropped"}} {counts["dropped"]}',
            "# HELP lineage_proxy_openlineage_outages_total Times the OpenLineage backend stopped taking events.",
            "# TYPE lineage_proxy_openlineage_outages_total counter",
            f"lineage_proxy_openlineage_outages_total {counts['outages']}",
        )

    # -- the sender thread's side

    def _sender(self) -> None:
        """The sender thread: `_send_loop`, then its hold on the filter hiding what may be a token let go."""
        try:
            self._send_loop()
        finally:
            self._unhide("sender")

    def _send_loop(self) -> None:
        """`_send_all`; should it raise (not a failed send, which `_emit` takes: a custom transport's SystemExit, a
        bug), the thread holds what comes for the stop rather than ending (`_hold_all`). Ended, it said nothing (not
        even threading's traceback, for a SystemExit), counted no outage, wrote no backlog file, and a flush waited
        for it forever; the counts were spooled only by a clean stop."""
        try:
            self._send_all()
        except BaseException as failure:  # (a SystemExit too: in this thread it only ended the thread)
            self.counts.add("outages")  # one that lasts, as for a transport it cannot build
            # where it was raised, not its traceback: what openlineage-python raises may quote the URL, its password too
            log.error("openlineage: the thread sending events to %s failed (%s, raised at %s); no more events will "
                      "be sent: their counts are held, and written to the spool at the stop for the next start",
                      self._target, _error(failure), "{}:{} in {}".format(*raised_at(failure)))  # fmt: skip
            self._close(STOP_WAIT_S)  # never used again: left open, async_http's thread and connection outlived it
            self._hold_all()

    def _hold_all(self) -> None:
        """What comes until the stop, not sent: the snapshots' counts held (by `_take`), for the stop's spool
        (`_collect`); the flushes answered."""
        with self._lock:
            if self._sending_new:  # the failure came as a new flow's event was sent
                self._sending_new = False
                self.counts.add("failed")
        while True:
            item = self._take(None, True)
            if item is None:
                return
            if isinstance(item, _Barrier):
                item.done.set_result(None)
            elif isinstance(item, _NewFlow):  # marked as being sent by `_take`
                with self._lock:
                    self._sending_new = False
                self.counts.add("failed")

    def _send_all(self) -> None:
        transport = self._transport
        if transport is None:
            try:
                transport = self._transport = get_default_factory().create(
                    _without_userinfo(copy.deepcopy(dict(self._settings.transport)))
                )
            except Exception as exc:
                self.counts.add("outages")  # one that lasts: alerts on outages fire for it as for a dead backend
                # the error, not its traceback: what openlineage-python raises may quote the URL, its password too
                log.error("openlineage: cannot build the %s transport (%s); no events will be sent", self._target,
                          _error(exc))  # fmt: skip
        if transport is not None:
            self._watch(transport)
            self._load_spool()
            if self._retry:  # what an earlier run spooled goes out first, before any new event
                self._send_snapshot(transport, None)
                self._spool_sent()
                self._save_backlog()
        while True:
            # with counts to send again: after an interval without a snapshot too
            timeout = self._settings.snapshot_interval_s if self._owed() else None
            try:
                item = self._take(timeout, transport is not None)
            except queue.Empty:
                if transport is not None:
                    self._send_snapshot(transport, None)
                    self._spool_sent()
                    self._save_backlog()
                continue
            if item is None:
                break
            if isinstance(item, _Barrier):
                item.done.set_result(None)
            elif transport is None:
                events = len(item.flows) if isinstance(item, _Snapshot) else 1  # events, as _emit counts
                self.counts.add("failed", events)
            elif isinstance(item, _NewFlow):  # marked as being sent by `_take`
                self._emit(transport, self._event(item.key, item.facts, item.at))
                with self._lock:
                    self._sending_new = False
            else:  # held by `_take`
                if self._spool.changed():  # a file another recorder spooled since (one a reload replaced)
                    self._load_spool()
                self._send_snapshot(transport, item.end)
                self._spool_sent()
                self._save_backlog()
        if transport is not None:
            if self._owed():  # a last try, within stop's wait; the first failure ends it
                self._send_snapshot(transport, None, last=True)
            stop_by = self._stop_by  # set before the stop's marker, which ended the loop above
            self._close(-1 if stop_by is None else max(0.0, stop_by - time.monotonic() - CLOSE_SPARE_S))

    def _close(self, timeout: float = -1) -> None:
        """Close the transport (its sockets, files, and async_http's and kafka's own threads), once; by the sender.
        `timeout`: how long what it still holds may take to go out (-1: as long as it takes); at the stop, what is
        left of its wait for the sender: an async_http transport's own retries (~9 s) outlasted it, and what it then
        held was counted by no one before the process ended (`_unreported`)."""
        transport, self._transport = self._transport, None
        if transport is None:
            return
        try:
            if timeout >= 0 and self._async and transport is not self._async[0]:
                # a composite's close gives each of its transports the whole timeout, one after the other: two
                # async_http ones still retrying took twice what is left of the stop's wait. So they are waited for
                # within it, together, and closed in what is left then
                deadline = time.monotonic() + timeout
                for part in self._async:
                    wait = getattr(part, "wait_for_completion", None)  # public, but a later release may rename it
                    if callable(wait):
                        wait(max(0.0, deadline - time.monotonic()))
                timeout = max(0.0, deadline - time.monotonic())
            transport.close(timeout)
        except BaseException as exc:  # a SystemExit too: raised on the failed sender, it ended the thread before
            # `_hold_all`, and a flush waited for it forever
            log.error("openlineage: the %s transport failed to close (%s)", self._target, _error(exc))
        self._unreported()

    def _watch(self, transport: Transport) -> None:
        """Count the events of each async_http transport in `transport` (itself, or inside a composite or transform
        one) as its worker reports each (`_reported`): its emit returns once the event is queued. Its `get_stats()` has
        only totals, read now and then: an outage that began and ended between two reads went unsaid, a composite
        transport's were counted sent as queued, and an event its emit queued and then raised on was counted twice."""
        found = list(_parts(transport))  # (one walk of it: there were two)
        parts = tuple(part for part, _ in found if isinstance(part, AsyncHttpTransport))
        for part, inside in found:
            # a composite's transports: one whose emit returned took the event (an async_http one queued it), which is
            # not sent again if a later one fails it (`_partly`); and, but for async_http ones, it is sent whatever
            # its async_http ones report (it was counted failed, an outage said, when they failed it)
            if inside and hasattr(part, "__dict__"):
                taken = not isinstance(part, AsyncHttpTransport)
                vars(part)["emit"] = functools.partial(self._took, part.emit, taken)
                self._watched = True
        missing = sorted({name for part in parts for name in _HOOKED if not callable(getattr(part, name, None))})
        if missing or not all(hasattr(part, "__dict__") for part in parts):
            # private methods (openlineage-python 1.54): a release that renamed them made the hooks raise, and the
            # sender thread failed, no event sent again; counted as the emit returns, as before 2026-12-04
            log.warning("openlineage: the async_http transport of %s has no %s to watch (openlineage-python changed); "
                        "its events are counted sent once queued, not as its thread reports them", self._target,
                        ", ".join(missing) or "instance attributes")  # fmt: skip
            return
        for part in parts:
            hooks = vars(part)  # the instance's own, in front of its methods: each called by the transport itself
            hooks["_add_event"] = functools.partial(self._queued, part._add_event)
            hooks["_mark_success"] = functools.partial(self._reported, part._mark_success, True)
            hooks["_mark_failed"] = functools.partial(self._reported, part._mark_failed, False)
        self._async = parts
        self._watched = self._watched or bool(parts)

    def _took(self, emit: Any, taken: bool, event: Any) -> None:
        """A composite's transport took the event being emitted (`taken`), or an async_http one queued it (on the
        sender, in `_emit`). One that raises is kept (`_Handed.refused`), for a composite that goes on past it and
        returns (`continue_on_failure: true`, openlineage-python's default): its backend is down (`_emit`)."""
        try:
            emit(event)
        except Exception as exc:
            handing = self._handing
            if handing is not None:
                with self._tally_lock:
                    handing.refused = exc
            raise
        handing = self._handing
        if handing is not None:
            with self._tally_lock:
                handing.accepted = True
                handing.taken = handing.taken or taken

    def _partly(self, exc: Exception, accepted: bool) -> None:
        """The transport raised on an event one of its transports took, or queued: a composite one with
        `continue_on_failure: false` stops at the first that fails, and raises; an async_http one may queue it and then
        raise (a wrapper's check after the hand-over). Not sent again, which would send it a second time to those that
        took it (the same run: a receiver summing counts counted its calls twice), as when `continue_on_failure: true`
        (openlineage-python then logs the failure and returns). `accepted`: a composite's transport took it, so a later
        one failed it: that one's backend is down, an outage counted and said (until 2026-12-05 said once for the
        process's life, never counted: `outages_total` stayed 0 while it failed every event); ended by an emit that
        returns (`_emit`); one that follows an outage of them all (`_failing`) goes on as that one, not counted or said
        again, nor said ended (until 2026-12-05 the first's return said 'takes events again' while the later one's
        backend was down, and counted another). Also called, `accepted`, for a composite that went on past the one that
        failed it and returned (`continue_on_failure: true`, `_emit`). Else said once."""
        if accepted:
            with self._tally_lock:
                self._part_failing(redact_userinfo(str(exc)), False)
            return
        if not self._said_partly:
            self._said_partly = True
            log.warning("openlineage: %s failed an event one of its transports took or queued (%s); not sent again, "
                        "which would send it twice to that one; said once", self._target,
                        redact_userinfo(str(exc)))  # fmt: skip

    def _part_failing(self, why: str, reported: bool) -> None:
        """One of a composite's transports failed an event another took or queued: its backend is down, an outage
        begins (said and counted once), unless one is on (under `_tally_lock`; `_partly`, `_settle`). `reported`: an
        async_http one gave its copy up, on its own thread (`_part_async`): one on already, begun by an http one's
        failing, now ends as an async one's does, not when an emit returns (before 2026-12-05, helper revrecords4, the
        http one's recovery ended it, said all take events again while the async one failed each, and it counted
        another)."""
        if self._part_down:
            self._part_async = self._part_async or reported
            return
        self._part_down = True
        self._part_async = reported
        if self._down:  # (not ended by `_taking`: the later one's backend is down still)
            self._down = False
            return
        self.counts.add("outages")
        log.warning("openlineage: %s failed an event one of its transports took or queued (%s): another cannot send "
                    "events; logged once per outage, counted in outages_total; not sent again, which would send it "
                    "twice to the one that took it", self._target, why)  # fmt: skip

    def _queued(self, add: Any, request: Any) -> None:
        """An async_http transport queues a copy of the event being emitted (on the sender, in `_emit`)."""
        handing = self._handing
        if handing is not None:
            with self._tally_lock:
                handing.queued += 1
                self._handed[id(request)] = handing
        add(request)

    def _reported(self, mark: Any, taken: bool, request: Any) -> Any:
        """An async_http transport's worker reports a copy sent (`taken`) or given up on (its own retries): its event
        is counted once every copy is reported and its emit returned, so that outages are said as they come."""
        released = mark(request)
        with self._tally_lock:
            handed = self._handed.pop(id(request), None)
            if handed is not None:
                handed.reported += 1
                handed.taken = handed.taken or taken
                handed.gave_up = handed.gave_up or not taken
                if handed.returned and handed.reported == handed.queued:
                    self._settle(handed)
        return released

    def _settle(self, handed: _Handed) -> None:
        """Count an event handed to async_http transports (under `_tally_lock`), once: sent when one of them took it,
        failed when they gave it up (not sent again, nor spooled: the proxy no longer holds it)."""
        if handed.disowned:
            return
        handed.disowned = True
        if handed.taken:
            if handed.gave_up:
                # an async_http transport of a composite gave its copy up, another taking it: its backend is down, an
                # outage as for a composite's http transport that fails it (`_partly`). Before 2026-12-05 counted sent
                # alone: no outage while that backend failed every event (it reports on its own thread, after the emit)
                self._part_failing("the async_http transport gave an event up", True)
            else:
                self._taking()
                # every transport took it: its copies all reported sent (not one the stop cut unreported, `_unreported`:
                # before 2026-12-05, helper revrecords4, said to take events again as the proxy stopped)
                every = handed.refused is None and handed.reported == handed.queued
                if self._part_down and self._part_async and every:
                    self._part_down = False
                    log.warning("openlineage: all the transports of %s take events again", self._target)
            self.counts.add("sent")  # (after the outage: one waiting for it sees the outage counted)
        else:
            self.counts.add("failed")
            if self._part_down:  # an outage of one of them, now of them all: the same outage, as in `_emit` (before
                # 2026-12-05, helper revrecords4, a second counted after one an async_http one's giving up began)
                self._part_down = False
                self._down = True
            self._failing("the async_http transport gave an event up", kept=False)

    def _unreported(self) -> None:
        """The async_http transports are closed: the events they had not reported (still queued, or retried when the
        stop's close cut them short) never go out: counted dropped, and said (one taken by one of them, sent)."""
        with self._tally_lock:
            left = {id(handed): handed for handed in self._handed.values()}.values()
            self._handed = {}
            self._async = ()
            dropped = 0
            for handed in left:
                if handed.disowned or not handed.returned:
                    continue
                if handed.taken:
                    self._settle(handed)
                    continue
                handed.disowned = True
                dropped += 1
        if dropped:
            self.counts.add("dropped", dropped)
            log.warning("openlineage: %d events the async_http transport of %s still held when closed were not sent; "
                        "dropped", dropped, self._target)  # fmt: skip

    def _save_backlog(self) -> None:
        """While the backend fails, what this recorder holds to send again, in its backlog file in the spool (the
        sender's, after each snapshot it sent or tried to): the events to send again as they are, and the counts held
        since made count events (`_sealed`: each flow's merged with the one it had there, none of them sent yet), the
        file written whole and renamed over the last. A kill (the OOM killer) then loses the counts of the snapshot
        being made, not those of the outage: the next recorder to start sends the file's events as they are, so that
        a run the backend took before the kill is the same run again. Once all is sent, the file is removed."""
        if self._backlog.path is None and not self._owed():
            return  # nothing held, no file: a backend that takes every event costs nothing more
        with self._backlog_lock:  # the stop takes what is not sent (`_spool_left`) before or after, never amid
            with self._lock:
                if self._closed:
                    return  # the stop's spool file has it
                sealed = self._seal()
                owed = list(self._retry) + [(key, event, count) for key, (event, count, _, _) in sealed.items()]
            kept = owed[: self._settings.spool_max_events]
            # the runs the file would hold (`_unspooled` counts those of the stop's it holds): past spool_max_events
            # not all that is owed
            runs = frozenset(event.run.runId for _, event, _ in kept)
            if runs == self._backlog.runs:
                return  # nothing new held since the last write (`_seal` made no event), or none it has room for
            try:
                if kept:
                    self._backlog.write(_entry(key, event, count) for key, event, count in kept)
                else:
                    self._backlog.remove()
            except (OSError, ValueError) as exc:
                if not self._backlog.failing:  # once until a write succeeds
                    self._backlog.failing = True
                    log.error("openlineage: cannot write the counts held for %s to the spool %s (%s); a kill would "
                              "lose them", self._target, self._spool.directory, _error(exc))  # fmt: skip
                return  # nothing changed: the counts held stay held, the file as it was
            self._backlog.failing = False
            self._backlog.runs = runs
            with self._lock:  # the counts held are now the events written (only this thread changes them)
                self._sealed = sealed
                self._held = {}
                claimed: list[_Claimed] = []
                if len(kept) == len(owed):  # what the claimed spool files held and is not sent is in the file now
                    claimed, self._spool.claimed = self._spool.claimed, []
                    self._spool.runs.clear()
            _Spool.release(claimed)

    def _seal(self) -> dict[EdgeKey, tuple[RunEvent, int, _Facts, float]]:
        """`_sealed` with the counts held merged in, each flow's one new count event when it had counts held; under
        `_lock`, by the sender. The events replaced were never sent (none of `_sealed` is once tried)."""
        if not self._held:
            return self._sealed
        sealed = dict(self._sealed)
        end = max(time.time(), self._held_since)
        for key, (count, facts) in self._held.items():
            start = self._held_since
            found = sealed.get(key)
            if found is not None:
                count += found[1]
                start = min(start, found[3])
            sealed[key] = (self._event(key, facts, end, window=(start, end), count=count), count, facts, start)
        return sealed

    def _load_spool(self) -> None:
        """The count events earlier runs spooled (`_spool_owed`), from each file no other recorder has claimed: to be
        sent again as they were, their runIds too, after what this one has to send again."""
        room = self._settings.spool_max_events - len(self._retry)
        loaded: list[tuple[EdgeKey, RunEvent, int]] = []
        entries, claimed = self._spool.claim(room)
        for entry in entries:
            try:
                loaded.append(self._from_entry(entry))
            except (KeyError, TypeError, ValueError) as exc:
                self.counts.add("dropped")
                log.warning("openlineage: a count event in the spool %s is not one (%s); dropped",
                            self._spool.directory, _error(exc))  # fmt: skip
        with self._lock:
            if self._closed:  # the stop has spooled what it had: these stay where they are, for the next start
                _Spool.unclaim(claimed)
                return
            self._spool.claimed += claimed
            known = {event.run.runId for _, event, _ in self._retry}
            for item in loaded:
                run = item[1].run.runId
                if run not in known:  # a crash between a spool's write and its claimed files' removal: both hold it
                    known.add(run)
                    self._retry.append(item)
                    self._spool.runs.add(run)
        if loaded:
            log.info("openlineage: %d count events spooled by an earlier run (%d calls) to send to %s",
                        len(loaded), sum(count for _, _, count in loaded), self._target)  # fmt: skip

    def _spool_sent(self) -> None:
        """Remove the spool files claimed once none of their events is left to send."""
        if not self._spool.claimed:
            return
        with self._lock:
            if self._closed:
                return
            left = self._spool.runs & {event.run.runId for _, event, _ in self._retry}
            if left:
                return
            claimed, self._spool.claimed = self._spool.claimed, []
            self._spool.runs.clear()
        _Spool.release(claimed)

    def _from_entry(self, entry: Any) -> tuple[EdgeKey, RunEvent, int]:
        """A spooled count event (`_entry`) as the event it was."""
        fields = entry["key"]
        if not (isinstance(fields, list) and len(fields) == len(EdgeKey._fields) and all(
                isinstance(field, str) for field in fields)):  # fmt: skip
            raise ValueError(f"not a flow: {fields!r:.200}")
        key = EdgeKey(*fields)
        count = entry["count"]
        texts = [entry[name] for name in ("runId", "eventTime", "namespace", "start", "end")]
        reason, zones = entry["reason"], entry["zones"]
        if (type(count) is not int or count < 1 or not all(isinstance(text, str) for text in texts)
                or not (reason is None or isinstance(reason, str))
                or not (isinstance(zones, list) and all(isinstance(zone, str) for zone in zones))):  # fmt: skip
            raise ValueError(f"not a count event: {entry!r:.200}")
        run, at, namespace, start, end = texts
        str(uuid.UUID(run))  # a run id, or ValueError
        # the sidecar that counted the calls (None: the event named none), not this one: a sidecar renamed between the
        # spool's write and its send, or another sharing the directory, sent them under its own name. An entry of a
        # release before 2026-12-03 has none: this sidecar's, as it was sent then
        sidecar = entry.get("sidecar", self._sidecar)  # a dict: `entry["key"]` was one's
        if not (sidecar is None or isinstance(sidecar, str)):
            raise ValueError(f"not a sidecar's name: {sidecar!r:.200}")
        facts = _Facts(reason, tuple(zones))
        event = self._compose(key, facts, at, window=(start, end), count=count, run=run, namespace=namespace,
                              sidecar=sidecar)  # fmt: skip
        return key, event, count

    def _take(self, timeout: float | None, sending: bool) -> _Item:
        """The next item, waited for without `_lock` and taken off the queue under it, together with what
        taking it means when `sending` (a transport to send with): a snapshot's counts held, a new flow's event
        marked as being sent. Raises queue.Empty when `timeout` passes first."""
        with self._queue.not_empty:
            self._queue.not_empty.wait_for(self._queued_or_closed, timeout)
        with self._lock:
            if self._closed and not self._queue.queue:
                return None  # the stop has what is not sent (`_collect`): as its marker, which a full queue refused
            item = self._queue.get_nowait()  # the one waited for: only this thread takes items
            if sending and isinstance(item, _Snapshot):
                self._hold(item.flows, item.start)
            elif sending and isinstance(item, _NewFlow):
                self._sending_new = True
        return item

    def _queued_or_closed(self) -> bool:
        return bool(self._queue.queue) or self._closed  # under the queue's mutex (`_take`)

    def _owed(self) -> bool:
        return bool(self._retry or self._held or self._sealed)

    def _left(self, refused: _Snapshot | None) -> tuple[int, int, int]:
        """`_unsent` with the queue, from another thread (the stop's, for its line while the sender is stuck
        or slow): read under `_lock`, so nothing the sender moves meanwhile is counted twice or left out.
        `refused`: the last window's counts, which the full queue did not take."""
        with self._lock, self._queue.mutex:
            queued: list[_Item] = list(self._queue.queue)
            if refused is not None:
                queued.append(refused)
            return self._unsent(queued)

    def _unsent(self, queued: Iterable[_Item]) -> tuple[int, int, int]:
        """What is not sent, `queued` items too: new flows' events (the one being sent included), and the
        flows (each once, whatever the windows) and calls whose counts are not. From another thread, only
        under `_lock` (`_left`)."""
        events = 1 if self._sending_new else 0
        calls: dict[EdgeKey, int] = {}
        pending = [(key, count) for key, _, count in self._retry]
        pending += [(key, count) for key, (count, _) in self._held.items()]
        pending += [(key, count) for key, (_, count, _, _) in self._sealed.items()]
        pending += [(key, count) for key, (count, _) in self._sending.items()]
        if self._inflight is not None:
            pending.append((self._inflight[0], self._inflight[2]))
        for item in queued:
            if isinstance(item, _NewFlow):
                events += 1
            elif isinstance(item, _Snapshot):
                pending += [(key, count) for key, count, _ in item.flows]
        for key, count in pending:
            calls[key] = calls.get(key, 0) + count
        return events, len(calls), sum(calls.values())

    def _send_snapshot(self, transport: Transport, end: float | None, *, last: bool = False) -> None:
        """What failed before, as it was; then the counts held (a snapshot's, taken by `_take`, which ends
        at `end`; None: none new, the window ends now). While the first fails, the new counts are held: never
        a second event for them. They are held before the first is tried again: a stop that gives up on an
        emit that hangs counts them (`_unsent`)."""
        while self._retry:
            if self._closed:  # the stop spooled them: sent now, they would be sent twice
                return
            if self._emit(transport, self._retry[0][1]):
                with self._lock:
                    self._retry.pop(0)
                self._head_failures = 0
                continue
            if not self._busy:  # a backend shedding load (429, 503) says nothing of the event
                self._head_failures += 1
            if last or self._head_failures < SET_ASIDE_FAILURES or not self._probe(transport, end):
                return
            # the backend took another event just now: this one it fails for what it is, not for being down,
            # unless it takes it now, or says it is busy
            if self._emit(transport, self._retry[0][1]):
                with self._lock:
                    self._retry.pop(0)
            elif not self._busy:
                self._set_aside()
            self._head_failures = 0
        while self._sealed:  # as the backlog file has them: a kill after this sends the same runs again
            with self._lock:
                if self._closed:
                    return
                key, (event, count, _, _) = next(iter(self._sealed.items()))
                del self._sealed[key]
                if key not in self._held:
                    self._held_bytes -= flow_size(key)
                self._inflight = (key, event, count)
            self._send(transport, key, event, count, last)
        if not self._held or self._closed:
            return
        if end is None:
            end = max(time.time(), self._held_since)
        window = (self._held_since, end)
        with self._lock:
            self._sending, self._held = self._held, {}
            self._sending_since = self._held_since
            self._held_bytes = 0
        for key in list(self._sending):
            with self._lock:  # an event made and sent only while the stop has not spooled its counts (`_collect`)
                if self._closed:
                    return
                count, facts = self._sending.pop(key)
                event = self._event(key, facts, end, window=window, count=count)
                self._inflight = (key, event, count)
            self._send(transport, key, event, count, last)

    def _send(self, transport: Transport, key: EdgeKey, event: RunEvent, count: int, last: bool) -> None:
        """Send the event in flight (`_inflight`), kept to send again if the backend does not take it; shutting down
        on a backend that refuses (`last`), no longer than one failure."""
        sent = not (last and self._retry) and self._emit(transport, event)
        with self._lock:
            self._inflight = None
            if not sent:
                self._retry.append((key, event, count))

    def _probe(self, transport: Transport, end: float | None) -> bool:
        """Whether the backend takes another event than the first to send again (which failed
        SET_ASIDE_FAILURES times): the next one to send again, else the counts of one flow held (sent now, or
        kept to send again second). One event: a backend that is down fails it, and keeps what it has in order."""
        if self._closed:
            return False
        if len(self._retry) > 1:
            if not self._emit(transport, self._retry[1][1]):
                return False
            with self._lock:
                self._retry.pop(1)
            return True
        if not self._held and not self._sealed:
            return False
        if end is None:
            end = max(time.time(), self._held_since)
        with self._lock:
            if self._closed:
                return False
            if self._sealed:  # as the backlog file has it
                key, (event, count, _, _) = next(iter(self._sealed.items()))
                del self._sealed[key]
                if key not in self._held:
                    self._held_bytes -= flow_size(key)
            else:
                key, (count, facts) = next(iter(self._held.items()))
                del self._held[key]
                self._held_bytes -= flow_size(key)
                event = self._event(key, facts, end, window=(self._held_since, end), count=count)
            self._inflight = (key, event, count)
        sent = self._emit(transport, event)
        with self._lock:
            self._inflight = None
            if not sent:
                self._retry.insert(1, (key, event, count))
        return sent

    def _set_aside(self) -> None:
        """The first event to send again, which the backend failed SET_ASIDE_FAILURES times and again while it
        took another: dropped, counted and logged, so that it holds back no other event."""
        with self._lock:
            key, event, count = self._retry.pop(0)
        self.counts.add("dropped")
        log.warning("openlineage: %s failed the count event of job %.200r, input %.200r, %d calls, %d times while "
                    "taking other events; set aside, not sent again", self._target, event.job.name,
                    key.input_labels or UNLABELLED, count, self._head_failures + 2)  # fmt: skip

    def _hold(self, flows: Iterable[tuple[EdgeKey, int, _Facts]], start: float) -> None:
        if not self._held:
            self._held_since = start
        for key, count, facts in flows:
            found = self._held.get(key)
            if found is not None:
                self._held[key] = (found[0] + count, facts)
                continue
            if key in self._sealed:  # its size counted already (`_held_bytes` is that of held and sealed flows)
                self._held[key] = (count, facts)
                continue
            size = flow_size(key)
            if self._held_bytes + size > self._kept_bytes:  # an outage as long as many flows: no room to hold it
                self.counts.add("dropped")  # the count event it would have been
                continue
            self._held_bytes += size
            self._held[key] = (count, facts)

    def _emit(self, transport: Transport, event: RunEvent) -> bool:
        """Send one event: False when it is to be sent again (the backend did not take it). One the backend
        refused for what it is (`_refused`) is dropped: sent again, it would be refused again, and a refused
        count event kept first in line held back every later count."""
        handing = self._handing = _Handed() if self._watched else None
        try:
            transport.emit(event)
        except Exception as exc:
            # one an async_http transport queued (its emit raised after: a wrapper's check) is posted by its thread:
            # sent again, it was posted twice (before 2026-12-05)
            if handing is None or not (handing.accepted or handing.queued):
                self._handing = None
                if handing is not None:
                    with self._tally_lock:  # counted here, and sent again: what the transports report of it is not
                        handing.disowned = True
                self._busy = _status(exc) in _BUSY
                if _refused(exc):
                    self.counts.add("dropped")
                    log.warning("openlineage: %s refused an event of job %.200r (%s); dropped, not sent again",
                                self._target, event.job.name, redact_userinfo(str(exc)))  # fmt: skip
                    return True
                self.counts.add("failed")
                with self._tally_lock:
                    if self._part_down:  # an outage of a later one, now of them all: the same outage, said and counted
                        self._part_down = False
                        self._down = True
                    self._failing(redact_userinfo(str(exc)))
                return False
            # raised after one of its transports took it or queued it: counted as if it returned
            self._partly(exc, handing.accepted)
        else:
            if handing is not None and handing.refused is not None:
                # a composite that goes on past one of its transports failing it (`continue_on_failure: true`, the
                # default), another taking it: that one's backend is down, an outage as in a fail-fast composite.
                # Before 2026-12-05 no outage was counted (openlineage-python's own WARNING for each event alone)
                self._partly(handing.refused, True)
            elif self._part_down and not self._part_async:  # (all of a composite's transports took it)
                # (not an outage of an async_http one: ended once a copy of its is reported sent, `_settle`; an emit
                # returning says nothing of its backend). Under the lock: one an async one's thread made its own
                # meanwhile (`_part_failing`) is not ended here
                with self._tally_lock:
                    if self._part_down and not self._part_async:
                        self._part_down = False
                        log.warning("openlineage: all the transports of %s take events again", self._target)
        self._handing = None
        if handing is not None:
            with self._tally_lock:
                handing.returned = True
                if handing.queued:  # not sent yet: counted as their workers report (`_reported`)
                    if handing.reported == handing.queued:
                        self._settle(handing)
                    return True
        self.counts.add("sent")
        with self._tally_lock:
            self._taking()
        return True

    def _failing(self, why: str, *, kept: bool = True) -> None:
        """The backend did not take an event: an outage begins, unless one is on (under `_tally_lock`). `kept`: the
        event is sent again (not an async_http transport's, which says how many it gave up on, never which)."""
        if not self._down:
            self._down = True
            self.counts.add("outages")
            then = "counts are kept for the next snapshot" if kept else "those events are lost (see its log)"
            log.warning("openlineage: cannot send events to %s (%s); logged once per outage, %s, calls are not slowed",
                        self._target, why, then)  # fmt: skip

    def _taking(self) -> None:
        """The backend took an event: an outage ends (under `_tally_lock`)."""
        if self._down:
            self._down = False
            log.warning("openlineage: %s takes events again", self._target)

    def _event(
        self, key: EdgeKey, facts: _Facts, at: float, *, window: tuple[float, float] | None = None, count: int = 0
    ) -> RunEvent:
        """One flow as a self-contained COMPLETE run of its checkpoint's job."""
        nominal = None if window is None else (_iso(window[0]), _iso(window[1]))
        return self._compose(key, facts, _iso(at), window=nominal, count=count, sidecar=self._sidecar)

    def _compose(
        self,
        key: EdgeKey,
        facts: _Facts,
        at: str,
        *,
        window: tuple[str, str] | None = None,
        count: int = 0,
        run: str | None = None,
        namespace: str | None = None,
        sidecar: str | None,
    ) -> RunEvent:
        """`_event`, its times as written (ISO 8601); a spooled one's (`_from_entry`) with its runId, its job's
        namespace and its sidecar as they were. `sidecar`: named by `lineageProxy_sidecar` (None: no such facet)."""
        run_facets: dict[str, RunFacet] = {
            "lineageProxy_purpose": PurposeRunFacet(purpose=key.purpose, caller=key.caller, producer=PRODUCER),
            "lineageProxy_decision": DecisionRunFacet(
                decision=key.decision, rule=key.rule or None, reason=facts.reason, producer=PRODUCER
            ),
            "lineageProxy_zones": ZonesRunFacet(zones=list(facts.zones), producer=PRODUCER),
        }
        if sidecar is not None:
            run_facets["lineageProxy_sidecar"] = SidecarRunFacet(name=sidecar, producer=PRODUCER)
        if window is None:
            pattern = job_type_job.EmissionPattern(eventTrigger="EVENT_BASED", eventContentMode="COMPLETE_SNAPSHOT")
        else:
            pattern = job_type_job.EmissionPattern(
                eventTrigger="PERIODIC",
                eventContentMode="COMPLETE_SNAPSHOT",
                windowDuration=max(1, round(self._settings.snapshot_interval_s)),
            )
            run_facets["nominalTime"] = nominal_time_run.NominalTimeRunFacet(
                nominalStartTime=window[0], nominalEndTime=window[1], producer=PRODUCER
            )
            run_facets["lineageProxy_count"] = CountRunFacet(count=count, producer=PRODUCER)
        job_facets: dict[str, JobFacet] = {
            "jobType": job_type_job.JobTypeJobFacet(
                processingType="SERVICE",
                integration="LINEAGE-PROXY",
                jobType="INFERENCE",
                emissionPattern=pattern,
                producer=PRODUCER,
            )
        }
        inputs = [
            InputDataset(
                namespace=LABELS_NAMESPACE,
                name=_name(key.input_labels) if key.input_labels else UNLABELLED,
                facets={"lineageProxy_labels": _labels(key.input_labels)},
            )
        ]
        outputs = []
        if key.decision != DENY:  # a denied call's data went nowhere past the boundary
            outputs.append(
                OutputDataset(
                    namespace=CALLERS_NAMESPACE,
                    name=_name(f"{key.caller}/{key.purpose or '-'}"),
                    facets={"lineageProxy_labels": _labels(key.output_labels)},
                )
            )
        return RunEvent(
            eventType=RunState.COMPLETE,
            eventTime=at,
            run=Run(runId=run or str(generate_new_uuid()), facets=run_facets),
            job=Job(
                namespace=namespace or self._settings.namespace,
                name=_name(key.checkpoint) if key.checkpoint and key.checkpoint != NO_WEIGHTS else NO_CHECKPOINT,
                facets=job_facets,
            ),
            inputs=inputs,
            outputs=outputs,
            producer=PRODUCER,
        )


# HTTP statuses that refuse the event itself (not valid to the backend, too large): never any better on a retry.
# Not 401, 403 or 404 (credentials or a URL to put right, then a reload), nor 408 or 429 (come again).
_REFUSING: Final = frozenset({400, 413, 422})


# HTTP statuses that say the backend is busy or not there for now (a proxy in front of it, rate limits): a count event
# answered so is never set aside (`_set_aside`), however often, even while the backend takes another: one that sheds
# load takes some events and refuses others, whatever is in them
_BUSY: Final = frozenset({408, 425, 429, 502, 503, 504})


def _entry(key: EdgeKey, event: RunEvent, count: int) -> dict[str, Any]:
    """A count event as the spool keeps it: what `_compose` makes the same event of again (`_from_entry`)."""
    facets = event.run.facets or {}
    nominal = facets["nominalTime"]
    decision = facets["lineageProxy_decision"]
    zones = facets["lineageProxy_zones"]
    sidecar = facets.get("lineageProxy_sidecar")
    assert isinstance(nominal, nominal_time_run.NominalTimeRunFacet)
    assert isinstance(decision, DecisionRunFacet) and isinstance(zones, ZonesRunFacet)
    assert sidecar is None or isinstance(sidecar, SidecarRunFacet)
    return {
        "runId": event.run.runId,
        "eventTime": event.eventTime,
        "namespace": event.job.namespace,
        "start": nominal.nominalStartTime,
        "end": nominal.nominalEndTime,
        "count": count,
        "key": list(key),
        "reason": decision.reason,
        "zones": list(zones.zones),
        "sidecar": None if sidecar is None else sidecar.name,  # the sidecar that counted them, kept (`_from_entry`)
    }


_Claimed = tuple[str, int]  # a spool file claimed: its path, and its descriptor, which holds its lock (flock)
SPOOL_SUFFIX: Final = ".jsonl"


class _Spool:
    """The directory of count events stopped recorders did not send (`lineage.openlineage.spool`): one file a stop
    (JSON lines, written whole then renamed into place), each read by the first recorder to start (or to look, at a
    snapshot, once the directory changed) that takes its lock (flock, held until its events are sent: a sibling
    worker's or a reload's recorder never sends them too), removed once they are sent or in a newer file."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.claimed: list[_Claimed] = []
        self.runs: set[str] = set()  # the runIds of the claimed files' events
        self._seen: int | None = None  # the directory's mtime when last read

    def changed(self) -> bool:
        try:
            mtime = os.stat(self.directory).st_mtime_ns
        except OSError:
            return False
        return mtime != self._seen

    def claim(self, room: int) -> tuple[list[Any], list[_Claimed]]:
        """The entries of each file no recorder holds, and the files, now held (the caller adds them to `claimed`),
        while fewer than `room` are read (the rest are left for another); a file that is not the spool's is set
        aside (renamed `.bad`), never read again nor removed."""
        try:
            self._seen = os.stat(self.directory).st_mtime_ns
            names = sorted(os.listdir(self.directory))
        except OSError:
            return [], []
        held = {path for path, _ in self.claimed}
        entries: list[Any] = []
        claimed: list[_Claimed] = []
        for name in names:
            path = os.path.join(self.directory, name)
            if len(entries) >= room or not name.endswith(SPOOL_SUFFIX) or path in held:
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if os.fstat(fd).st_ino != os.stat(path).st_ino:
                    raise FileNotFoundError(path)  # removed by its holder after this opened it
                with open(fd, "rb", closefd=False) as file:
                    text = file.read()
                found = [orjson.loads(line) for line in text.splitlines() if line.strip()]
            except orjson.JSONDecodeError as exc:
                with contextlib.suppress(OSError):
                    os.rename(path, path + ".bad")
                log.error("openlineage: the spool file %s is not one (%s); set aside as %s.bad", path, exc, path)
                os.close(fd)
                continue
            except OSError:
                os.close(fd)  # held by another recorder, or gone
                continue
            claimed.append((path, fd))
            entries.extend(found)
        return entries, claimed

    def write(self, entries: Iterable[dict[str, Any]]) -> str:
        """A new file of `entries`, whole once it has its name; returns its path."""
        os.makedirs(self.directory, exist_ok=True)
        name = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex}"
        temporary = os.path.join(self.directory, f".{name}.tmp")
        path = os.path.join(self.directory, name + SPOOL_SUFFIX)
        try:
            with open(temporary, "wb") as file:
                for entry in entries:
                    file.write(orjson.dumps(entry) + b"\n")
                file.flush()
                os.fsync(file.fileno())
            os.rename(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        sync_directory(self.directory)
        return path

    @staticmethod
    def release(claimed: list[_Claimed]) -> None:
        """Remove claimed files (their events sent, or in a newer file), each while still holding its lock."""
        for path, fd in claimed:
            with contextlib.suppress(OSError):
                os.unlink(path)
            os.close(fd)

    @staticmethod
    def unclaim(claimed: list[_Claimed]) -> None:
        for _, fd in claimed:
            os.close(fd)


class _Backlog:
    """A recorder's backlog file (`_save_backlog`): a spool file like a stop's, always at one path (written whole then
    renamed over the last), held locked (flock) until it is removed or the process ends, so that no other recorder
    reads it while this one holds its events; one a kill left is sent by the next recorder to claim it."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.path: str | None = None  # set by the first write of an outage
        self.fd: int | None = None  # the file's descriptor, which holds its lock
        self.runs: frozenset[str] = frozenset()  # the runIds written last
        self.failing = False  # the last write failed (said once)

    def write(self, entries: Iterable[dict[str, Any]]) -> None:
        os.makedirs(self.directory, exist_ok=True)
        if self.path is None:
            name = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex}"
            self.path = os.path.join(self.directory, name + SPOOL_SUFFIX)
        temporary = os.path.join(self.directory, f".{os.path.basename(self.path)}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # before it has its name: no reader finds it unlocked
            with open(fd, "wb", closefd=False) as file:
                for entry in entries:
                    file.write(orjson.dumps(entry) + b"\n")
                file.flush()
                os.fsync(file.fileno())
            os.rename(temporary, self.path)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        if self.fd is not None:
            os.close(self.fd)  # the file replaced: a reader that opened it finds it gone (`_Spool.claim`)
        self.fd = fd
        sync_directory(self.directory)

    def remove(self) -> None:
        """Its events are sent, or in the stop's spool file: the file goes, its lock held until then."""
        if self.path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        self.let_go()
        self.runs = frozenset()

    def let_go(self) -> None:
        """The file stays, for the next recorder to claim (the stop could not write its own)."""
        if self.fd is not None:
            os.close(self.fd)
        self.path = None
        self.fd = None


def _parts(transport: Transport, inside: bool = False) -> Iterator[tuple[Transport, bool]]:
    """The transports `transport` is or holds that send events themselves, each with whether it is inside a composite
    one: async_http ones at any depth (`transport` too), others inside a composite (through transform ones, whose emit
    hands on to theirs)."""
    if isinstance(transport, AsyncHttpTransport):
        yield transport, inside
    elif isinstance(transport, CompositeTransport):
        for part in transport.transports:
            yield from _parts(part, True)
    else:
        inner = getattr(transport, "transport", None)  # a transform transport's
        if isinstance(inner, Transport):
            yield from _parts(inner, inside)
        elif inside:
            yield transport, inside


def _calls(events: Iterable[tuple[EdgeKey, RunEvent, int]]) -> int:
    """The calls count events count."""
    return sum(count for _, _, count in events)


def _status(exc: BaseException) -> object:
    """The HTTP status an HTTP backend answered a failed event with; None when none came (down, a timeout)."""
    return getattr(getattr(exc, "response", None), "status_code", None)


def _refused(exc: BaseException) -> bool:
    """Whether an HTTP backend refused the event itself (`_REFUSING`). Down, busy, or set up wrong for now, it may
    take the event later."""
    return _status(exc) in _REFUSING


def _name(name: str) -> str:
    """A name of at most NAME_MAX characters: a longer one is its start and a digest of the whole, so that two names
    stay two (`printable_name` cuts a checkpoint's so). A label set's labels are whole in its `lineageProxy_labels`."""
    return name if len(name) <= NAME_MAX else digest_cut(name, NAME_MAX)


def _labels(joined: str) -> DatasetFacet:
    facet: DatasetFacet = LabelsDatasetFacet(labels=split_labels(joined), producer=PRODUCER)
    return facet


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _error(exc: BaseException) -> str:
    """An exception for a log line, with no URL's password: `ValueError: Need valid url ..., passed
    http://user:***@host`."""
    return redact_userinfo(f"{type(exc).__name__}: {exc}")


def _describe(transport: Mapping[str, Any]) -> str:
    """Where events go, for log lines: never the auth or headers a transport config may hold, nor the
    secret a URL's userinfo may (`http://user:***@host`), nor what may be a token before its path's `@` after a host
    of one label (`http://***@gateway`: `token_hidden`)."""
    kind = transport.get("type", "?")
    where = transport.get("url") or transport.get("log_file_path") or transport.get("topic") or ""
    if isinstance(where, str) and "url" in transport:
        where = token_hidden(where, where)
    return redact_userinfo(f"{kind} {where}".strip())


def _urls(config: Any) -> tuple[str, ...]:
    """The URLs of a transport config's http(s) transports (a composite's and a transform's inner ones too)."""
    if isinstance(config, list):
        return tuple(url for item in config for url in _urls(item))
    if not isinstance(config, Mapping):
        return ()
    inner = tuple(url for value in config.values() for url in _urls(value))
    url = config.get("url")
    return (url, *inner) if config.get("type") in _USERINFO_TRANSPORTS and isinstance(url, str) else inner


# the loggers whose lines may quote a transport's URL: this module's, and openlineage-python's http transports' (their
# config at debug, as built; async_http's errors, httpx's text), its composite's (an inner transport's error, at
# warning: requests' quotes the path and host) and their HTTP clients' (urllib3's retries, at warning, the path, and
# its retry's at debug; httpx2's requests, at info, the URL; its connections, at debug, the host). Until the review of
# 2026-12-06 those last four quoted it; urllib3's retry's debug line until its reread
_HIDING_IN = (
    log,
    logging.getLogger("openlineage.client.transport.http"),
    logging.getLogger("openlineage.client.transport.async_http"),
    logging.getLogger("openlineage.client.transport.composite"),
    logging.getLogger("urllib3.connectionpool"),
    logging.getLogger("urllib3.util.retry"),
    logging.getLogger("httpx2"),
    logging.getLogger("httpcore2.connection"),
)


# held while the URLs `_HIDING` hides change (by the event loop's thread and by sender threads)
_HIDING_LOCK = threading.Lock()


class _Hiding(logging.Filter):
    """Hides in a log line (its text and its exception's) what may be a token in the URLs of the recorders that need it
    (`hide`, until `show`: `token_hidden`). One for the process, put on `_HIDING_IN`'s loggers by each such recorder
    where it is not on, and never taken off, its URLs changed instead: no list of a logger's filters is replaced, nor
    changed while another thread reads it. Until 2026-12-06 one a recorder, put on and taken off by replacing each
    logger's list (`list.remove` under a thread logging could skip the filter after it), which lost a filter another
    thread added in between (`addFilter` takes no lock of ours)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: tuple[str, ...] = ()  # replaced, never changed: a thread logging reads it once
        self._held: dict[str, int] = {}  # each URL's recorders (a reload's two may share one)

    def hide(self, urls: Iterable[str]) -> None:
        """`urls` hidden (with `_HIDING_LOCK` held) until as many `show` calls."""
        for url in urls:
            self._held[url] = self._held.get(url, 0) + 1
        self.urls = tuple(self._held)
        for logger in _HIDING_IN:  # (appended in place, where not on already)
            logger.addFilter(self)

    def show(self, urls: Iterable[str]) -> None:
        """One `hide` of `urls` over (with `_HIDING_LOCK` held)."""
        for url in urls:
            self._held[url] -= 1
            if not self._held[url]:
                del self._held[url]
        self.urls = tuple(self._held)

    def filter(self, record: logging.LogRecord) -> bool:
        urls = self.urls
        if not urls:
            return True
        try:
            said = record.getMessage()
        except Exception:
            # a call whose arguments do not fit its format: left for the handler to fail on, as it does without this
            # filter (`handleError`, which prints the format and arguments), those hidden. Until 2026-12-06 raised
            # here, in the caller's code (a library's thread)
            self._hide_parts(record, urls)
        else:
            shown = _hidden(said, urls)
            if shown != said:
                record.msg, record.args = shown, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = _hidden(record.exc_text, urls)
        return True

    def _hide_parts(self, record: logging.LogRecord, urls: tuple[str, ...]) -> None:
        """A record that cannot be formatted, its format and arguments hidden: a string argument as a string (it fails
        as it did), any other whose repr quotes what may be a token as that repr hidden (`_Shown`)."""
        # (a message not a string, an exception, likewise: until the review of 2026-12-06 left as it was)
        record.msg = _part(record.msg, urls)
        args = record.args
        if isinstance(args, Mapping):
            record.args = {key: _part(value, urls) for key, value in args.items()}
        elif isinstance(args, tuple):
            record.args = tuple(_part(value, urls) for value in args)


_HIDING = _Hiding()


def _hidden(text: str, urls: tuple[str, ...]) -> str:
    for url in urls:
        text = token_hidden(text, url)
    return text


def _part(value: object, urls: tuple[str, ...]) -> object:
    if isinstance(value, str):
        return _hidden(value, urls)
    try:
        said = repr(value)
    except Exception:
        return value  # (nor does `handleError` show it)
    shown = _hidden(said, urls)
    return value if shown == said else _Shown(shown)


class _Shown:
    """An argument of a log call that could not be formatted, as `handleError` prints it (its repr), hidden."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text

    __str__ = __repr__


_USERINFO_TRANSPORTS = ("http", "async_http")  # openlineage-python's: they log their URL (and config) as given


def _without_userinfo(config: Any) -> Any:
    """A transport config with the credentials of each http(s) transport's URL userinfo moved into its
    `auth` (`UserinfoAuth`), the URL without them: openlineage-python logs the URL and its whole config
    (at debug, and on a failed emit), and requests quotes the URL in its errors. What the backend gets is
    unchanged: the Basic credentials its HTTP client took from the userinfo. Composite and transform
    transports' inner configs too."""
    if isinstance(config, list):
        return [_without_userinfo(item) for item in config]
    if not isinstance(config, dict):
        return config
    config = {key: _without_userinfo(value) for key, value in config.items()}
    kind, url = config.get("type"), config.get("url")
    if kind not in _USERINFO_TRANSPORTS or not isinstance(url, str):
        return config
    parts = urlsplit(url.strip())
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at:
        return config
    config["url"] = urlunsplit(parts._replace(netloc=host))
    user, colon, password = userinfo.partition(":")
    # as each client reads a userinfo (in place of `auth` when it does): requests (http) only with a password,
    # httpx (async_http) when it names a user or a password
    if colon if kind == "http" else user or password:
        # encoded as each client does: requests in latin-1 (where it can; it fails on the rest), httpx in UTF-8
        credentials = _Credentials(unquote(user), unquote(password), "latin-1" if kind == "http" else "utf-8")
        config["auth"] = {"type": f"{__name__}.UserinfoAuth", "credentials": credentials}
    return config


class _Credentials:
    """A user and password that say nothing of themselves when a config holding them is printed."""

    def __init__(self, user: str, password: str, encoding: str) -> None:
        self.user = user
        self.password = password
        self.encoding = encoding

    def __repr__(self) -> str:
        return "<credentials>"


class UserinfoAuth(TokenProvider):
    """Basic authentication with a transport URL's userinfo (`_without_userinfo`), as requests and httpx
    send it. Its repr holds no secret."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        found = config["credentials"]
        assert isinstance(found, _Credentials)
        joined = f"{found.user}:{found.password}"
        try:
            raw = joined.encode(found.encoding)
        except UnicodeEncodeError:
            raw = joined.encode()
        self._header = "Basic " + base64.b64encode(raw).decode()

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"

    def get_bearer(self) -> str | None:
        return self._header  # the Authorization header's value, whatever its scheme

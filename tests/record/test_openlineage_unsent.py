"""The OpenLineage sink's shutdown line against a sender that is slow, not stuck: the sender goes on moving
what it has not sent (off the queue, into its held counts) while the stop reads it, and the line still
counts each flow once."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from typing import Any

import pytest
from openlineage.client.transport import Transport

from proxy.config.model import OpenLineage
from proxy.flow import ALLOW, Call, Decision, Outcome, TraceContext
from proxy.record import openlineage
from proxy.record.openlineage import OpenLineageRecorder
from tests.harness import LoopThread
from tests.record.test_openlineage import spooled_runs


class Slow(Transport):
    """A backend that takes new flows' events at once, and count events once `answer` is set."""

    kind = "slow"

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.answer = threading.Event()

    def emit(self, event: Any) -> None:
        if "lineageProxy_count" in event.run.facets:
            assert self.answer.wait(30)
        self.events.append(event)


class PausedTaking(queue.Queue[Any]):
    """The recorder's queue, whose first snapshot the sender takes and then holds on to (before it does
    anything with it) until `go`: a sender caught between the queue and its held counts."""

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self.taken = threading.Event()
        self.go = threading.Event()

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        item = super().get(block, timeout)
        if isinstance(item, openlineage._Snapshot) and not self.taken.is_set():
            self.taken.set()
            assert self.go.wait(30)
        return item


class Announced:
    """The recorder's lock, which lets the paused sender go on once a thread other than the sender asks for
    it: the stop reads while the sender moves the snapshot it took."""

    def __init__(self, paused: PausedTaking) -> None:
        self._lock = threading.Lock()
        self._paused = paused

    def __enter__(self) -> None:
        if threading.current_thread().name != "openlineage-sender":
            self._paused.go.set()
        self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def test_the_shutdown_line_counts_a_snapshot_the_sender_is_taking_while_the_stop_reads(
    loop_thread: LoopThread, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The sender has taken the snapshot of 3 calls off the queue and not yet held its counts when the stop
    reads (and the backend answers its count event only once the stop has said what was not sent): the line
    said 0 flows (0 calls), though the sender sent the count of 3 calls right after. It says 1 flow (3 calls),
    what the backend then gets."""
    monkeypatch.setattr(openlineage, "STOP_WAIT_S", 0.05)  # the stop gives up on the sender (it is held up)
    transport = Slow()
    sink = OpenLineageRecorder(OpenLineage(snapshot_interval_s=3600.0), transport=transport)
    paused = PausedTaking(sink._queue.maxsize)
    sink._queue = paused
    sink._lock = Announced(paused)
    call = Call("openai", "chat", "m", TraceContext(trace_id=1, span_id=2))
    decision = Decision(ALLOW, None, labels=frozenset({"team-a"}))

    async def record() -> None:
        sink.start()
        for _ in range(3):
            sink.on_end(call, decision, Outcome(started_ns=1), frozenset())
        snapshot = sink._take_window()  # what the snapshot loop does each interval
        assert snapshot is not None and sink._put(snapshot)

    try:
        loop_thread.run(record())
        assert paused.taken.wait(30)  # the sender holds the snapshot, between the queue and its counts
        with caplog.at_level(logging.WARNING, logger="lineage_proxy.openlineage"):
            loop_thread.run(asyncio.wait_for(sink.stop(), 30))
    finally:
        paused.go.set()
        transport.answer.set()
    sink._thread.join(30)
    assert not sink._thread.is_alive()
    (line,) = [r.getMessage() for r in caplog.records if "at shutdown" in r.getMessage()]
    assert line.endswith("at shutdown, and the counts of 1 flows (3 calls)"), line
    runs = {run: count for run, (_, count) in spooled_runs().items()}  # spooled for the next start
    for e in transport.events:  # sent once the sender went on (the one it had in flight when the stop spooled)
        if "lineageProxy_count" in e.run.facets:
            runs[e.run.runId] = e.run.facets["lineageProxy_count"].count
    assert list(runs.values()) == [3]  # what the line said was not sent yet, once

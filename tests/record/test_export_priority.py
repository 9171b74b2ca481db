"""The export thread runs below the event loop's CPU priority: at one connection an export shares the core
with the call being served, and the loop's thread should have the core back as soon as it wakes."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from proxy.record.export import BoundedExporter

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a thread's own nice is Linux's")


def nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


class NiceOfSender:
    """A sink noting the nice of the thread that sends each batch, and the batches."""

    def __init__(self) -> None:
        self.nices: list[int] = []
        self.batches: list[list[bytes]] = []
        self.sent = threading.Event()

    def send(self, batch: list[bytes]) -> None:
        self.nices.append(nice())
        self.batches.append(list(batch))
        self.sent.set()

    def close(self) -> None:
        pass


def test_the_export_thread_sends_below_the_loops_priority_and_the_loop_keeps_its_own() -> None:
    before = nice()
    assert before < 19, "the test runs at the lowest priority already"
    sink = NiceOfSender()
    queue = BoundedExporter(sink, batch_size=4, interval_s=3600.0)
    try:
        for n in range(4):  # a full batch wakes the export thread
            queue.submit(b"span %d" % n)
        assert sink.sent.wait(10)
    finally:
        queue.shutdown()
    assert len(sink.nices) == 1 and sink.nices[0] > before
    assert sink.batches == [[b"span 0", b"span 1", b"span 2", b"span 3"]]
    assert nice() == before  # the submitting thread (the loop's) is left as it was


def test_an_exporter_started_from_a_lowered_thread_is_lowered_from_the_processs_priority_once() -> None:
    """A new thread starts with its creator's nice: counted from the thread's, an exporter made on a thread
    already lowered went to EXPORT_NICE below that (to 19 from one lowered by as much)."""
    from proxy.record.export import EXPORT_NICE

    process = os.getpriority(os.PRIO_PROCESS, os.getpid())
    assert process + EXPORT_NICE + 3 <= 19, "the test needs room below the process's priority"
    sink = NiceOfSender()
    made: list[BoundedExporter] = []

    def lowered_creator() -> None:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), process + 3)
        made.append(BoundedExporter(sink, batch_size=1, interval_s=3600.0))

    creator = threading.Thread(target=lowered_creator)
    creator.start()
    creator.join()
    try:
        made[0].submit(b"span")
        assert sink.sent.wait(10)
    finally:
        made[0].shutdown()
    assert sink.nices == [process + EXPORT_NICE]

"""The flows a process remembers as written are bounded: a caller sending other labels on every call (each a
new flow) cannot grow the proxy without end. Past the bound the flows written are forgotten, and a forgotten
flow seen again is written through again, its count added to its row: nothing is lost or counted twice."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from pathlib import Path

import pytest

from proxy.record.edges import FLOW_OVERHEAD, FLOWS_KEPT_BYTES, EdgeAggregator
from proxy.record.store import EdgeKey, SqliteStore
from tests.harness import LoopThread
from tests.record.test_edges import FailingStore, rows

# a flow as a hostile caller makes them: 64 labels of 120 characters in, the same out (~15 KB of names)
WIDE = ",".join(f"{n:03d}" + "x" * 117 for n in range(64))


def flow(n: int, labels: str = "team-a") -> EdgeKey:
    return EdgeKey("app", "assistant", f"{labels},n{n}", "ckpt", f"{labels},n{n}", "allow", "")


def count(loop_thread: LoopThread, aggregator: EdgeAggregator, keys: list[EdgeKey]) -> int:
    """Count one call of each key, as calls do (a new flow's write waited for); how many were written through."""

    async def run() -> int:
        through = 0
        for key in keys:
            written = aggregator.add(key)
            if written is not None:
                through += 1
                await asyncio.wrap_future(written)
        return through

    return loop_thread.run(run())


def test_flows_past_the_bound_are_forgotten_and_written_again_when_seen(
    loop_thread: LoopThread, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "lineage.db"
    one = FLOW_OVERHEAD + sum(len(part) for part in flow(10))
    aggregator = EdgeAggregator(SqliteStore(path), flush_interval_s=3600.0, kept_bytes=10 * one)
    loop_thread.run(asyncio.sleep(0))
    with caplog.at_level(logging.WARNING, logger="lineage_proxy.edges"):
        assert count(loop_thread, aggregator, [flow(n) for n in range(10, 40)]) == 30
    assert len(aggregator._known) <= 10  # never more than the bound holds
    assert aggregator.forgotten >= 20
    assert [r.getMessage() for r in caplog.records].count(caplog.records[0].getMessage()) == 1  # logged once
    assert "more than this process remembers" in caplog.records[0].getMessage()
    # the last flows are remembered (a call counted in memory); the first, forgotten, is written through again
    assert count(loop_thread, aggregator, [flow(39)]) == 0
    assert count(loop_thread, aggregator, [flow(10)]) == 1
    metrics = "\n".join(aggregator.metrics())
    assert f"lineage_proxy_edges_forgotten_total {aggregator.forgotten}" in metrics
    loop_thread.run(aggregator.stop())
    counted = rows(path)
    assert counted[tuple(flow(10))] == 2 and counted[tuple(flow(39))] == 2  # each call once, none lost
    assert sum(counted.values()) == 32


def test_a_flood_of_new_flows_stays_within_the_bound(loop_thread: LoopThread, tmp_path: Path) -> None:
    """With the defaults: 5,000 flows of ~15 KB of labels each (75 MB of names) are more than it keeps."""
    aggregator = EdgeAggregator(SqliteStore(tmp_path / "lineage.db"), flush_interval_s=3600.0)
    keys = [flow(n, WIDE) for n in range(5000)]
    assert sum(FLOW_OVERHEAD + sum(map(len, key)) for key in keys) > FLOWS_KEPT_BYTES
    assert count(loop_thread, aggregator, keys) == 5000
    kept = sum(FLOW_OVERHEAD + sum(map(len, key)) for key in aggregator._known)
    assert kept <= FLOWS_KEPT_BYTES and len(aggregator._known) < 5000
    loop_thread.run(aggregator.stop())


class Gated(SqliteStore):
    """The real store, each write waiting until `gate` is set (a disk or database slow to answer)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gate = threading.Event()

    def upsert(self, rows):  # type: ignore[no-untyped-def]
        assert self.gate.wait(30)
        super().upsert(rows)


def test_a_flow_whose_first_write_is_in_flight_is_not_forgotten(loop_thread: LoopThread, tmp_path: Path) -> None:
    """Its calls wait for that write: forgotten, the next would start a second one, and wait for it too."""
    store = Gated(tmp_path / "lineage.db")
    one = FLOW_OVERHEAD + sum(len(part) for part in flow(10))
    aggregator = EdgeAggregator(store, flush_interval_s=3600.0, kept_bytes=2 * one)

    async def flood() -> tuple[object, object, int]:
        first = aggregator.add(flow(10))  # in flight: the store holds it
        for n in range(11, 15):
            aggregator.add(flow(n))  # past the bound: the flows written so far are forgotten
        again = aggregator.add(flow(10))
        return first, again, aggregator.forgotten

    first, again, forgotten = loop_thread.run(flood())
    assert first is not None and again is first  # the same write, waited for by both calls
    assert forgotten == 0  # every write was still in flight: none forgotten
    store.gate.set()
    loop_thread.run(aggregator.stop())
    counted = rows(tmp_path / "lineage.db")
    assert counted[tuple(flow(10))] == 2 and sum(counted.values()) == 6


def test_counts_held_while_the_store_refuses_writes_are_bounded(
    loop_thread: LoopThread, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """While the store refuses writes (a full disk) every new flow's counts are held in memory for it: a caller
    sending new labels on every call grew the process without end for as long as the outage lasted (20,000 flows:
    18 MB). Past the bound a flow's calls are dropped, counted and logged once; what is held is written once the
    store takes writes again."""
    path = tmp_path / "lineage.db"
    store = FailingStore(SqliteStore(path))
    one = FLOW_OVERHEAD + sum(len(part) for part in flow(10))
    aggregator = EdgeAggregator(store, flush_interval_s=3600.0, kept_bytes=10 * one)

    async def outage() -> None:
        aggregator.start()  # (its loop: where a failed write's rows are put back)
        for n in range(10, 40):
            written = aggregator.add(flow(n))
            assert written is not None
            with contextlib.suppress(sqlite3.OperationalError):
                await asyncio.wrap_future(written)
        await asyncio.sleep(0)  # the failed writes' rows are put back on the loop (`call_soon_threadsafe`)

    with caplog.at_level(logging.ERROR, logger="lineage_proxy.edges"):
        loop_thread.run(outage())
        loop_thread.run(aggregator.flush())  # fails again: held, not doubled
    assert len(aggregator._pending) == 10 and aggregator.dropped == 20
    assert sum(held[0] for held in aggregator._pending.values()) == 10
    assert sum("further flows are not counted" in r.getMessage() for r in caplog.records) == 1
    assert "lineage_proxy_edge_counts_dropped_total 20" in "\n".join(aggregator.metrics())
    store.failing = False
    loop_thread.run(aggregator.stop())
    assert sum(rows(path).values()) == 10  # the flows held, each call of theirs once

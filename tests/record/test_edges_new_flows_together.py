"""New flows seen while the store is busy are written together: one transaction (one commit, one chain entry)
for all of them, not one each, so a caller making a new flow on every call costs one write a turn of the
writer, not one a call. Each call still waits for its own flow's write; nothing is lost when it fails."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

from proxy.record.edges import EdgeAggregator
from proxy.record.store import SqliteStore
from tests.harness import LoopThread
from tests.record.test_edges import rows
from tests.record.test_edges_forgotten import flow


class Gated(SqliteStore):
    """The real store, each write waiting until `gate` is set, the rows of each write kept in `writes`;
    failing while `failing`."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gate = threading.Event()
        self.started = threading.Event()
        self.writes: list[int] = []
        self.failing = False

    def upsert(self, rows):  # type: ignore[no-untyped-def]
        rows = list(rows)
        self.started.set()
        assert self.gate.wait(30)
        self.writes.append(len(rows))
        if self.failing:
            raise sqlite3.OperationalError("database or disk is full")
        super().upsert(rows)


def test_new_flows_seen_during_a_write_are_written_in_one(loop_thread: LoopThread, tmp_path: Path) -> None:
    store = Gated(tmp_path / "lineage.db")
    aggregator = EdgeAggregator(store, flush_interval_s=3600.0)

    [written] = loop_thread.run(_add(aggregator, range(1)))
    assert store.started.wait(30)  # the writer holds the first flow's write
    later = loop_thread.run(_add(aggregator, range(1, 6)))
    assert None not in later and len(set(map(id, later))) == 1  # one write for the five, each call waits for it
    assert later[0] is not written
    store.gate.set()

    async def wait() -> None:
        await asyncio.gather(*(asyncio.wrap_future(f) for f in (written, *later)))  # type: ignore[arg-type]

    loop_thread.run(wait())
    assert store.writes == [1, 5]
    assert aggregator.new_edges == 6
    assert all(aggregator.add(flow(n)) is None for n in range(6))  # known now: counted in memory
    loop_thread.run(aggregator.stop())
    assert rows(tmp_path / "lineage.db") == {tuple(flow(n)): 1 + 1 for n in range(6)}


def test_a_failed_write_of_many_new_flows_loses_none(loop_thread: LoopThread, tmp_path: Path) -> None:
    """Their rows go back to the batch; their later calls are counted in memory; the next write has them all."""
    store = Gated(tmp_path / "lineage.db")
    aggregator = EdgeAggregator(store, flush_interval_s=3600.0)
    loop_thread.run(_start(aggregator))  # on the loop: a failed write's rows go back to the batch there
    [written] = loop_thread.run(_add(aggregator, range(1)))
    assert store.started.wait(30)
    later = loop_thread.run(_add(aggregator, range(1, 4)))
    store.failing = True
    store.gate.set()

    async def wait() -> None:
        for future in (written, *later):
            try:
                await asyncio.wrap_future(future)  # type: ignore[arg-type]
            except sqlite3.OperationalError:
                pass

    loop_thread.run(wait())
    assert store.writes == [1, 3] and aggregator.write_errors == 2
    assert all(aggregator.add(flow(n)) is None for n in range(4))  # known: never a write to wait for again
    store.failing = False
    loop_thread.run(aggregator.flush())
    loop_thread.run(aggregator.stop())
    assert rows(tmp_path / "lineage.db") == {tuple(flow(n)): 2 for n in range(4)}


async def _add(aggregator: EdgeAggregator, numbers: range) -> list[object]:
    return [aggregator.add(flow(n)) for n in numbers]


async def _start(aggregator: EdgeAggregator) -> None:
    aggregator.start()

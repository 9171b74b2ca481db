"""A known flow's calls counted in memory between two flushes keep the earliest and the latest time among them as the
edge's first and last seen, whatever order the wall clock gave them in: stepped back (NTP, a VM resumed) between two
calls, the batched row's last seen was the later call's, earlier than the one before it, and its first seen the first
call's, later than the stepped-back one."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from proxy.record import edges as edges_module
from proxy.record.edges import EdgeAggregator
from proxy.record.store import SqliteStore
from tests.harness import LoopThread
from tests.record.test_edges_forgotten import flow

T = 1_800_000_000.0


@pytest.mark.interpreted  # replaces the wall clock a compiled module calls directly (tests/conftest.py)
@pytest.mark.parametrize(("times", "first", "last"), [
    ((T, T + 10, T + 10 - 3600), T + 10 - 3600, T + 10),  # stepped back an hour after the second call
    ((T, T + 10, T - 20, T + 30), T - 20, T + 30),  # back 30 s, then on past it: the first seen alone was wrong
    ((T, T - 5, T + 3), T - 5, T + 3),  # back 5 s, then on again
    ((T, T + 1, T + 2), T, T + 2),  # as a clock goes
])  # fmt: skip
def test_a_flows_batched_calls_keep_the_earliest_and_latest_time_whatever_the_clock_did(
    loop_thread: LoopThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, times: tuple[float, ...], first: float,
    last: float,
) -> None:  # fmt: skip
    now = [0.0]
    monkeypatch.setattr(edges_module, "_time", lambda: now[0])
    path = tmp_path / "lineage.db"
    aggregator = EdgeAggregator(SqliteStore(path), flush_interval_s=3600.0)
    key = flow(1)

    async def calls() -> None:
        aggregator.start()
        now[0] = times[0]
        written = aggregator.add(key)  # a new flow: written through, at the first call's time
        assert written is not None
        await asyncio.wrap_future(written)
        for when in times[1:]:  # a known flow's: counted in memory, written by the stop's flush
            now[0] = when
            assert aggregator.add(key) is None
        await aggregator.stop()

    loop_thread.run(calls())
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count, first_seen, last_seen FROM edges").fetchall() == [(len(times), first, last)]

"""While the lineage database is away, a write larger than the room left in the journal (`journal_max_rows` less
what it holds) journals what fits; the rest stays with the aggregator, counted in memory (within its 64 MiB bound,
past which calls are dropped, counted and logged). The journal refused such a batch whole: one flush of more flows
than `journal_max_rows` was never journaled, however empty the journal was, so every count of it lived in memory
only (lost to a `kill -9`) for as long as the outage lasted, and each flush refused it again."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from proxy.record.edges import EdgeAggregator
from proxy.record.journal import Journal, JournaledStore
from proxy.record.postgres import PostgresStore
from tests.harness import LoopThread
from tests.record.test_edges_forgotten import count, flow
from tests.record.test_postgres import counts
from tests.servers.postgres import PostgresServer


def test_a_flush_past_the_journal_s_room_journals_what_fits_and_keeps_the_rest(
    postgres: PostgresServer, loop_thread: LoopThread, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = postgres.database()
    store = JournaledStore(PostgresStore(url), Journal(tmp_path / "journal.db", max_rows=3))
    aggregator = EdgeAggregator(store, flush_interval_s=3600.0)

    async def start() -> None:
        aggregator.start()

    loop_thread.run(start())
    keys = [flow(n) for n in range(4)]
    assert count(loop_thread, aggregator, keys) == 4  # written through: the database has each once
    postgres.stop()
    try:
        with caplog.at_level(logging.ERROR, logger="lineage_proxy.edges"):
            assert count(loop_thread, aggregator, keys) == 0  # counted in memory: one flush of 4 edge writes
            loop_thread.run(aggregator.flush())
            loop_thread.run(asyncio.sleep(0))  # the failed write's rows back in the batch (`_requeue`)
        assert store.journal.held() == 3, "the journal took none of the flush (journal_max_rows 3)"  # was 0
        assert len(aggregator._pending) == 1  # the one the journal had no room for: in memory, not lost
        assert sum(pending[0] for pending in aggregator._pending.values()) == 1
        said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("lineage store:")]
        assert len(said) == 1 and "3 of a batch's 4 edge writes journaled, 1 kept in memory" in said[0], said
    finally:
        postgres.start()
    store._next_try = 0.0  # the database may be tried now (instead of RETRY_S later)
    loop_thread.run(aggregator.stop())  # the last flush, then the backlog replayed on the way out
    assert counts(url) == {tuple(key): 2 for key in keys}  # every call once: none lost, none counted twice

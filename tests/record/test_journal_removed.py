"""A journal whose file is removed (its directory deleted, or the file moved away) while the proxy runs: SQLite
goes on writing into the file it holds open, which no path names any more, so the batches journaled from then on
during an outage were lost at the next start (or `kill -9`) with nothing logged or counted. The journal sees the
path no longer names the file it opened and refuses the write, as a full journal does: the caller keeps the
counts (edges.py), `lineage_proxy_edge_journal_failing` is 1, and `require_record` zones fail closed."""

from __future__ import annotations

import logging
import shutil
import sqlite3
from pathlib import Path

import pytest

from proxy.record.journal import Journal, JournaledStore
from proxy.record.postgres import PostgresStore
from tests.record.test_postgres import KEY, counts
from tests.servers.postgres import PostgresServer

NEW = KEY._replace(caller="new")


@pytest.mark.parametrize("how", ["directory", "file"])
def test_a_journal_removed_while_the_database_is_away_refuses_writes_it_would_lose(
    postgres: PostgresServer, tmp_path: Path, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    url = postgres.database()
    where = tmp_path / "journal"
    where.mkdir()
    store = JournaledStore(PostgresStore(url), Journal(where / "journal.db"))
    postgres.stop()
    try:
        store.upsert([(KEY, 1.0, 1.0, 1, None)])
        assert store.journaled == 1
        if how == "directory":
            shutil.rmtree(where)
        else:
            (where / "journal.db").rename(where / "elsewhere.db")
        with caplog.at_level(logging.ERROR, logger="lineage_proxy.edges"), pytest.raises(sqlite3.Error):
            store.upsert([(NEW, 2.0, 2.0, 1, None)])  # neither takes it: the aggregator keeps it in memory
        assert store.journaled == 1
        assert "lineage_proxy_edge_journal_failing 1" in store.metrics()
        assert [r for r in caplog.records if "removed or replaced" in r.getMessage()]
    finally:
        postgres.start()
    store._next_try = 0.0
    store.upsert([(NEW, 3.0, 3.0, 1, None)])  # the database takes writes directly again
    assert counts(url)[tuple(NEW)] == 1
    store.close()

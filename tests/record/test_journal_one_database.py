"""A journal holds the writes of one database. Two proxies of two databases given one journal file (the default
`./lineage-journal.db`, two services started in one working directory) replayed each other's writes: the calls one
database's proxy journaled during its outage were counted in the other database, and lost from their own."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from proxy.errors import StartupError
from proxy.record.journal import ForeignJournal, Journal, JournaledStore
from proxy.record.postgres import PostgresStore, database_identity
from proxy.record.stores import open_store
from tests.record.test_postgres import KEY, counts
from tests.servers.postgres import PostgresServer

OTHER = KEY._replace(caller="other")


def test_a_journal_holding_another_databases_writes_is_neither_replayed_nor_written_here(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    first, second = postgres.database(), postgres.database()
    assert database_identity(first) != database_identity(second)
    path = tmp_path / "lineage-journal.db"
    mine = JournaledStore(PostgresStore(first), Journal(path, database=database_identity(first)))
    theirs = JournaledStore(PostgresStore(second), Journal(path, database=database_identity(second)))
    postgres.stop()
    try:
        mine.upsert([(KEY, 1.0, 1.0, 1, None)])  # the first database is away: journaled, for it
        assert mine.journaled == 1
        with pytest.raises(StartupError, match="holds edge writes for the database"):
            open_store(second, journal=str(path))  # a proxy of the second database starting now
    finally:
        postgres.start()
    theirs._backlog = True  # as after an outage of its own: it replays what the journal holds
    theirs.replay()
    batch = [(OTHER, 2.0, 2.0, 1, None)]
    try:
        theirs.upsert(batch)  # its own writes go on, to its database
    except sqlite3.Error as exc:  # its connection did not outlive the restart, and the journal is not its to use
        assert isinstance(exc, ForeignJournal), exc
        theirs._next_try = 0.0
        theirs.upsert(batch)
    assert tuple(KEY) not in counts(second) and counts(second)[tuple(OTHER)] == 1
    mine._next_try = 0.0
    while mine.replay():
        pass
    mine.upsert([])
    assert counts(first)[tuple(KEY)] == 1  # replayed where it belongs, once
    mine.close()
    theirs.close()

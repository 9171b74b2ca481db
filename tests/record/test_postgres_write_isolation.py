"""A default isolation level the DBA sets on the lineage database (`ALTER DATABASE ... SET
default_transaction_isolation`, or on the role, or `ALTER SYSTEM`) reaches every connection the proxy makes. At
repeatable read each write's snapshot was taken by the statement that waits for the chain's lock, before it was
granted, so two writers that waited together each read the same newest entry and chained on it: the chain forked,
`verify` named a removed entry, and no purge ran again (it signs only a record that verifies). At serializable one
of them failed ("could not serialize access"): journaled by a sidecar, and logged as an outage."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

from proxy.record.postgres import LOCK_ID, PostgresStore
from proxy.record.store import EdgeKey
from tests.servers.postgres import PostgresServer

KEY = EdgeKey("svc", "assistant", "team-a", "ckpt", "team-a", "allow", "")


def database(postgres: PostgresServer, setting: str, value: str) -> str:
    """A new database whose sessions get `setting` = `value` by default, as a DBA sets it."""
    url = postgres.database()
    name = url.rsplit("/", 1)[1].split("?")[0]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {name} SET {setting} = '{value}'")
    return url


@contextmanager
def chain_lock_held(url: str) -> Iterator[psycopg.Connection[tuple[int, ...]]]:
    """The chain's advisory lock held by another session (a sibling sidecar inside its write) until the block ends."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_ID,))
        try:
            yield conn
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_ID,))


def wait_for_waiters(conn: psycopg.Connection[tuple[int, ...]], n: int) -> None:
    """Until `n` sessions wait for the chain's advisory lock."""
    deadline = time.monotonic() + 20
    while True:
        found = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted").fetchone()
        if found is not None and found[0] >= n:
            return
        assert time.monotonic() < deadline, "the writers never waited for the chain's lock"
        time.sleep(0.01)


@pytest.mark.parametrize("level", ["repeatable read", "serializable"])
def test_writers_that_wait_for_the_chain_lock_chain_in_turn_whatever_the_default_isolation(
    postgres: PostgresServer, level: str
) -> None:
    url = database(postgres, "default_transaction_isolation", level)
    writers = [PostgresStore(url), PostgresStore(url)]
    errors: list[BaseException] = []

    def write(store: PostgresStore, caller: str) -> None:
        try:
            store.upsert([(KEY._replace(caller=caller), 1.0, 2.0, 1, None)])
        except BaseException as exc:  # read below
            errors.append(exc)

    with chain_lock_held(url) as holder:
        threads = [threading.Thread(target=write, args=(store, f"sidecar-{i}")) for i, store in enumerate(writers)]
        for thread in threads:
            thread.start()
        wait_for_waiters(holder, 2)  # both writes began, and wait for the lock
    for thread in threads:
        thread.join(30)
    reader = PostgresStore(url, readonly=True)
    try:
        assert errors == []  # HEAD, serializable: one failed, "could not serialize access"
        assert {r.key.caller: r.count for r in reader.rows()} == {"sidecar-0": 1, "sidecar-1": 1}
        report = reader.integrity()
        assert report.intact, report.problem  # repeatable read: "it does not follow the entry before it"
        assert writers[0].purge(1.0, now=1e10) == 2  # and the record can be purged (it verifies)
    finally:
        for store in (*writers, reader):
            store.close()

"""A large fleet store made before the rule keyed an edge (schema version 1) is re-keyed however long that takes.
The re-key ran under the statement timeout (30 s; the URL's own): a table whose change outlasts it (about a million
edges) was never re-keyed, each start saying the database does not answer, and each start or write trying again,
holding the table for the whole timeout every time. The wait for the table's lock stays bounded."""

from __future__ import annotations

import threading
import time

import psycopg

from proxy.record.postgres import SCHEMA_VERSION, PostgresStore
from proxy.record.store import EdgeKey
from tests.record.test_rule_keyed import FLOW, ZONE, old_postgres_store
from tests.servers.postgres import PostgresServer

EDGES = 100_000  # re-keyed in a second or more: several times the bound below on any machine
BOUND_S = 0.25  # the store's statement timeout, in place of the 30 s a million edges outlast


def test_a_store_whose_rekey_outlasts_the_statement_timeout_is_rekeyed_and_keeps_every_edge(
    postgres: PostgresServer,
) -> None:
    url = postgres.database()
    old_postgres_store(url, None)
    with psycopg.connect(url, autocommit=True) as conn:
        # no autovacuum on the table: a vacuum or analyze of the rows below (taken on a busy machine while the re-key
        # waits its 0.25 s for the table's lock) failed the start with "canceling statement due to lock timeout"
        conn.execute("ALTER TABLE edges SET (autovacuum_enabled = false)")
        conn.execute("INSERT INTO edges SELECT 'caller-' || g, 'assistant', 'team-a', 'ckpt', '', 'allow', 1e9, 1e9, 1, "
                     "NULL, NULL FROM generate_series(1, %s) g", (EDGES,))  # fmt: skip
        before = conn.execute("SELECT count(*), sum(count) FROM edges").fetchone()

    began = time.monotonic()
    store = PostgresStore(url, statement_timeout_s=BOUND_S)
    took = time.monotonic() - began
    store.upsert([(EdgeKey(*FLOW, "route:restricted"), 9e9, 9e9, 1, None)])
    assert store._conn is not None and store._conn.bound == BOUND_S  # the writes are bounded again
    store.close()
    assert took > BOUND_S  # the re-key outlasted the statement timeout, as a large store's does

    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)
        after = conn.execute("SELECT count(*), sum(count) FROM edges WHERE rule <> 'route:restricted'").fetchone()
        assert after == before  # every edge kept as it was
        zoned = conn.execute("SELECT count FROM edges WHERE caller = %s AND rule = %s", (FLOW[0], ZONE)).fetchone()
        assert zoned == (2,)


def test_the_rekey_waits_for_the_tables_lock_no_longer_than_the_statement_timeout(postgres: PostgresServer) -> None:
    """Another session holding the table (a sidecar of the release before in a long read, a `LOCK TABLE`): the re-key
    gives up after the bound, as any statement did, and the next start tries again; it never waits without end."""
    url = postgres.database()
    old_postgres_store(url, None)
    outcome: list[BaseException | None] = []

    def start() -> None:
        try:
            PostgresStore(url, statement_timeout_s=BOUND_S).close()
            outcome.append(None)
        except BaseException as exc:  # what the start raised: asserted below
            outcome.append(exc)

    with psycopg.connect(url) as holder:
        holder.execute("LOCK TABLE edges IN ACCESS SHARE MODE")  # held until this transaction ends
        starting = threading.Thread(target=start, daemon=True)
        starting.start()
        starting.join(30)
        assert not starting.is_alive(), "the re-key waited for the lock without end"
    (error,) = outcome
    assert isinstance(error, psycopg.errors.LockNotAvailable), error
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("1",)
    PostgresStore(url, statement_timeout_s=BOUND_S).close()  # the lock let go: the next start re-keys
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)

"""A URL that sets libpq `options` for something else (`?options=-c search_path=lineage`, the usual way to put the
tables in a schema of their own) kept none of the proxy's bounds on the server: no `statement_timeout`, and no
`idle_in_transaction_session_timeout`, the one that ends the transaction of a sidecar frozen inside its write (a
paused container, a partition between two statements) and with it the chain's lock every other sidecar's write
takes. The README: the URL's own `statement_timeout` counts; one it does not set is the proxy's."""

from __future__ import annotations

import time
from contextlib import ExitStack, suppress

import psycopg

from proxy.record.postgres import PostgresStore
from proxy.record.store import EdgeKey
from tests.servers.postgres import PostgresServer

KEY = EdgeKey("svc", "assistant", "team-a", "ckpt", "team-a", "allow", "")
SCHEMA = "&options=-c%20search_path%3Dpublic"


def test_a_url_with_options_of_its_own_keeps_the_bounds_it_does_not_set(postgres: PostgresServer) -> None:
    url = postgres.database() + SCHEMA
    frozen = PostgresStore(url, statement_timeout_s=1.0)
    other = PostgresStore(url, statement_timeout_s=8.0)
    try:
        with psycopg.connect(url, autocommit=True) as conn:  # the URL's own option is in force
            assert conn.execute("SHOW search_path").fetchone() == ("public",)
        with ExitStack() as stack:
            cur = stack.enter_context(frozen._transaction())  # the chain's lock taken, then nothing more is sent
            cur.execute("SHOW idle_in_transaction_session_timeout")
            assert cur.fetchone() == ("1s",)  # HEAD: ("0",), none
            started = time.monotonic()
            other.upsert([(KEY, 1.0, 1.0, 1, None)])  # waits for the lock: on HEAD until its own bound, 8 s
            waited = time.monotonic() - started
            stack.pop_all()  # the frozen writer's transaction was ended by the server: its exit raises
        with suppress(psycopg.OperationalError):
            frozen._drop()
        assert waited < 6.0, waited
        assert {r.key: r.count for r in other.rows()} == {KEY: 1}
        assert other.integrity().intact
    finally:
        frozen.close()
        other.close()

"""Every fleet write takes the chain's advisory lock first, so the sidecars chain their entries in turn. The
lock was taken by an unqualified `pg_advisory_xact_lock`: someone who can write the database (no key) could put
a `pg_advisory_xact_lock(bigint)` that locks nothing before pg_catalog on the writers' search path, and the
writers chained onto the same head at once (a forked chain: verify fails for good and purges stop). The lock is
pg_catalog's by name."""

from __future__ import annotations

import psycopg
import pytest

from proxy.record.postgres import LOCK_ID, ChainBusy, PostgresStore
from proxy.record.store import EdgeKey
from tests.servers.postgres import PostgresServer

FLOW = EdgeKey("svc", "assistant", "team-a", "ckpt", "team-a", "allow", "")


def test_a_lock_function_of_the_search_path_does_not_unlock_the_chain(postgres: PostgresServer) -> None:
    url = postgres.database()
    name = url.rsplit("/", 1)[1].split("?")[0]
    PostgresStore(url).close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE FUNCTION public.pg_advisory_xact_lock(bigint) RETURNS void LANGUAGE sql AS 'SELECT'")
        conn.execute(f"ALTER DATABASE {name} SET search_path = public, pg_catalog")
    writer = PostgresStore(url)
    try:
        with psycopg.connect(url) as sibling:  # a sibling sidecar inside its write: it holds the chain's lock
            sibling.execute("SELECT pg_catalog.pg_advisory_xact_lock(%s)", (LOCK_ID,))
            with pytest.raises(ChainBusy):  # HEAD: written, beside the sibling's write
                writer.apply([(FLOW, 1.0, 1.0, 1, None)], None, lock_wait_s=0.2)
    finally:
        writer.close()

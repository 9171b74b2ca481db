"""A fleet's purge cuts by the database's clock (test_postgres_purge_clock.py). Someone who can write the
database but holds no key (a role that owns the lineage tables, or the database) could move that clock: a
`clock_timestamp()` of their own in a schema put before pg_catalog (public, where the tables are) on the writers' search_path (ALTER ROLE
or ALTER DATABASE ... SET search_path, which every new connection takes). The next purge deleted the flow
they wanted gone, however recent, and signed the rest as its snapshot with the proxy's key: verify said
intact. The database's clock is read as pg_catalog's, and a purge never cuts later than the sidecar's own
clock either: what has expired is what both clocks say has."""

from __future__ import annotations

import time

import psycopg

from proxy.record.postgres import PostgresStore
from proxy.record.store import EdgeKey
from tests.servers.postgres import PostgresServer

KEY = b"kept-out-of-the-database's-reach"
FLOW = EdgeKey("svc", "assistant", "team-a", "ckpt", "team-a", "allow", "")
DAY = 86400.0


def test_a_clock_of_the_databases_writers_cannot_purge_a_recent_flow(postgres: PostgresServer) -> None:
    url = postgres.database()
    name = url.rsplit("/", 1)[1].split("?")[0]
    now = time.time()
    writer = PostgresStore(url, key=KEY)
    hidden = FLOW._replace(caller="ads-ranker", checkpoint="forbidden-model")
    writer.upsert([(FLOW, now - 3600, now - 3600, 5, None), (hidden, now - 60, now - 60, 1, None)])
    writer.upsert([(FLOW._replace(caller="expired"), now - 40 * DAY, now - 40 * DAY, 1, None)])  # a purge runs
    writer.close()
    with psycopg.connect(url, autocommit=True) as conn:  # no key: only the database
        conn.execute("CREATE FUNCTION public.clock_timestamp() RETURNS timestamptz LANGUAGE sql "
                     "AS $$ SELECT pg_catalog.now() + interval '400 days' $$")  # fmt: skip
        conn.execute(f"ALTER DATABASE {name} SET search_path = public, pg_catalog")
    purging = PostgresStore(url, key=KEY)  # a sidecar's hourly purge, 30 days' retention
    try:
        assert purging.purge(30.0, None, purging.prepare_purge(30.0)) == 1  # HEAD: 3
        assert {row.key.caller: row.count for row in purging.rows()} == {"svc": 5, "ads-ranker": 1}  # HEAD: {}
        assert purging.integrity(KEY).intact
    finally:
        purging.close()

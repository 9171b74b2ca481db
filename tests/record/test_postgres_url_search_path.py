"""A writer whose URL sets its own search_path (`options=-csearch_path=...`, or PGOPTIONS) naming several schemas, or
`"$user"`, was neither checked nor pinned: a schema planted first on that path took its writes (a new store there, or
the edges in one schema while the chain stayed in the store's), while `verify` read the store's schema, intact and
stale. Such a writer is checked at its start as one on the default path is, and pinned to the schema it resolved; a
URL naming one schema alone is still the operator's choice, honoured as given."""

from __future__ import annotations

import psycopg
import pytest

from proxy.errors import StartupError
from proxy.record.postgres import PostgresStore
from tests.record.test_postgres_writer_schema import KEY, LATER, counts, fleet, plant, schemas_with_a_chain
from tests.servers.postgres import PostgresServer

DEFAULT_PATH = "&options=-csearch_path%3D%22%24user%22%2Cpublic"  # "$user",public, written out in the URL


def test_a_url_search_path_naming_user_first_is_checked_at_the_start(postgres: PostgresServer) -> None:
    url, as_writer, role = fleet(postgres)
    plant(url, role, tables=True)
    with pytest.raises(StartupError) as refused:
        PostgresStore(as_writer + DEFAULT_PATH)
    message = str(refused.value)
    assert f"schema {role}" in message and "schema public" in message, message
    assert counts(url, role) == {} and set(schemas_with_a_chain(url)) == {"public", role}


def test_a_url_search_path_of_several_schemas_is_pinned_to_the_one_resolved(postgres: PostgresServer) -> None:
    """The schema named first is made later (and given an `edges` table): the writer's edges went there, its chain
    entries to the store's, and `verify` of the store failed: calls chained that its table did not hold."""
    url, as_writer, role = fleet(postgres)
    store = PostgresStore(as_writer + f"&options=-csearch_path%3D{role}%2Cpublic")
    try:
        store.upsert([(KEY, 2.0, 2.0, 1, None)])
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {role}")
            conn.execute(f"GRANT USAGE ON SCHEMA {role} TO {role}")
            conn.execute(f"CREATE TABLE {role}.edges (LIKE public.edges INCLUDING ALL)")
            conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {role}.edges TO {role}")
        store.upsert([(LATER, 3.0, 3.0, 1, None)])  # the same connection
        with psycopg.connect(url, autocommit=True) as conn:  # and the next one
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))
        store.apply([(LATER, 4.0, 4.0, 1, None)], "after-reconnect")
    finally:
        store.close()
    assert counts(url, role) == {}, "the writer wrote the planted table"
    assert counts(url, "public") == {"svc": 2, "later": 2}
    audit = PostgresStore(url + "&options=-csearch_path%3Dpublic", readonly=True)
    try:
        report = audit.integrity()
    finally:
        audit.close()
    assert report.intact and report.schema == "public", report


def test_a_url_naming_one_schema_alone_is_honoured(postgres: PostgresServer) -> None:
    url, as_writer, role = fleet(postgres)
    plant(url, role, tables=True)
    store = PostgresStore(as_writer + "&options=-csearch_path%3Dpublic")
    try:
        store.upsert([(LATER, 2.0, 2.0, 1, None)])
    finally:
        store.close()
    assert counts(url, "public") == {"svc": 1, "later": 1} and counts(url, role) == {}

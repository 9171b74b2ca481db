"""Which schema the fleet's writers write: the tables are named without a schema, so the connection's
search_path decides, and a writer role's default one is `"$user", public`. Anyone who may create schemas in the
database can make a schema named as the writers' role (`CREATE SCHEMA lineage; GRANT USAGE, CREATE ON SCHEMA
lineage TO lineage`): the writers then started a new store there at their next start (a valid chain of its own),
or wrote a store planted there at once, while the real store in `public` stopped growing and still verified
intact. A writer resolves its schema at its start and refuses to start a second store beside the one on its
search path; once resolved, every connection it opens names that schema alone. A URL that pins search_path is
the operator's choice, honoured as given."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from proxy.errors import StartupError
from proxy.record.postgres import PostgresStore
from proxy.record.store import EdgeKey
from tests.record.test_postgres import CONFIG, cli
from tests.servers.postgres import PostgresServer

KEY = EdgeKey("svc", "assistant", "team-a", "ckpt", "team-a", "allow", "")
LATER = KEY._replace(caller="later")
TABLES = ("edges", "chain", "meta", "applied")


def fleet(postgres: PostgresServer) -> tuple[str, str, str]:
    """A store in `public`, made by its owner (the first start), and a writer role given the rights the README
    names, as a deployment has them: (the owner's URL, the writer's URL, the writer's role)."""
    url = postgres.database()
    writer = url.rsplit("/", 1)[1].split("?")[0] + "_writer"
    owner = PostgresStore(url)
    owner.upsert([(KEY, 1.0, 1.0, 1, None)])
    owner.close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        conn.execute(f"CREATE ROLE {writer} LOGIN")
        conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {writer}")
        conn.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {writer}")
    return url, url.replace("postgres@", f"{writer}@"), writer


def plant(url: str, schema: str, *, tables: bool) -> None:
    """What someone with CREATE on the database can do: a schema named as the writers' role, that they may use
    and create in (`tables`: holding empty lineage tables of its own, which the writer may write)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"GRANT USAGE, CREATE ON SCHEMA {schema} TO {schema}")
        if tables:
            for table in TABLES:
                conn.execute(f"CREATE TABLE {schema}.{table} (LIKE public.{table} INCLUDING ALL)")
            conn.execute(f"CREATE INDEX edges_last_seen ON {schema}.edges (last_seen)")  # named as the writer's
            conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {schema}")
            conn.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {schema} TO {schema}")


def counts(url: str, schema: str) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        found = conn.execute(f"SELECT caller, count FROM {schema}.edges").fetchall()
    return {str(caller): int(count) for caller, count in found}


def schemas_with_a_chain(url: str) -> list[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        found = conn.execute("SELECT schemaname FROM pg_tables WHERE tablename = 'chain' ORDER BY 1").fetchall()
    return [str(row[0]) for row in found]


def test_a_writer_refuses_to_start_a_new_store_in_a_schema_planted_first_on_its_search_path(
    postgres: PostgresServer,
) -> None:
    url, as_writer, role = fleet(postgres)
    plant(url, role, tables=False)
    with pytest.raises(StartupError) as refused:
        PostgresStore(as_writer)
    message = str(refused.value)
    assert f"schema {role}" in message and "schema public" in message, message
    assert "options=-csearch_path%3Dpublic" in message, message  # the fix: the store's schema pinned in the URL
    assert schemas_with_a_chain(url) == ["public"]  # nothing was made in the planted schema
    pinned = PostgresStore(as_writer + "&options=-csearch_path%3Dpublic")  # the operator's choice is honoured
    try:
        pinned.upsert([(LATER, 2.0, 2.0, 1, None)])
    finally:
        pinned.close()
    assert counts(url, "public") == {"svc": 1, "later": 1}


def test_a_writer_refuses_a_store_planted_first_on_its_search_path(postgres: PostgresServer) -> None:
    """Tables planted ready-made need no CREATE from the writer: it wrote them, a new chain from nothing."""
    url, as_writer, role = fleet(postgres)
    plant(url, role, tables=True)
    with pytest.raises(StartupError) as refused:
        PostgresStore(as_writer)
    assert f"schema {role}" in str(refused.value) and "schema public" in str(refused.value), refused.value
    assert counts(url, role) == {}


def test_a_running_writer_keeps_writing_its_schema_when_one_is_planted_before_it(postgres: PostgresServer) -> None:
    """A writer already running resolved its schema at its start: a schema planted before it on the search
    path afterwards changes nothing, on its connection as on the next one (a database restart, a failover)."""
    url, as_writer, role = fleet(postgres)
    store = PostgresStore(as_writer)
    try:
        store.upsert([(KEY, 2.0, 2.0, 1, None)])
        plant(url, role, tables=True)
        store.upsert([(LATER, 3.0, 3.0, 1, None)])  # the same connection
        with psycopg.connect(url, autocommit=True) as conn:  # its connection ends: the next write opens a new one
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))
        store.apply([(LATER, 4.0, 4.0, 1, None)], "after-reconnect")
        report = store.integrity()
    finally:
        store.close()
    assert counts(url, role) == {}, "the writer wrote the planted store"
    assert counts(url, "public") == {"svc": 2, "later": 2}
    assert report.intact and report.schema == "public", report


def test_a_writer_whose_own_schema_holds_the_store_starts_as_before(postgres: PostgresServer) -> None:
    """A store made in the schema named as the writers' role (their `"$user"`), nothing in `public`: written."""
    url = postgres.database()
    role = url.rsplit("/", 1)[1].split("?")[0] + "_own"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"CREATE SCHEMA {role} AUTHORIZATION {role}")
        conn.execute("CREATE TABLE public.meta (note text)")  # an application's table of the same name
    store = PostgresStore(url.replace("postgres@", f"{role}@"))
    try:
        store.upsert([(KEY, 1.0, 1.0, 1, None)])
    finally:
        store.close()
    assert counts(url, role) == {"svc": 1}
    assert schemas_with_a_chain(url) == [role]


def test_a_writer_does_not_start_a_second_store_beside_one_off_its_search_path(postgres: PostgresServer) -> None:
    """The store was made in a schema of its own (its owner's URL names it); a writer whose URL does not, with
    CREATE on `public`, started a new store there, and the fleet's sidecars wrote two stores, each intact."""
    url = postgres.database()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA fleet")
    owner = PostgresStore(url + "&options=-csearch_path%3Dfleet")
    owner.upsert([(KEY, 1.0, 1.0, 1, None)])
    owner.close()
    with pytest.raises(StartupError) as refused:
        PostgresStore(url)  # search_path "$user", public: no schema named as the role, so public
    message = str(refused.value)
    assert "schema public" in message and "schema fleet" in message, message
    assert "options=-csearch_path%3Dfleet" in message, message
    assert schemas_with_a_chain(url) == ["fleet"]
    separate = PostgresStore(url + "&options=-csearch_path%3Dpublic")  # a store of its own, named: the operator's
    separate.close()
    assert schemas_with_a_chain(url) == ["fleet", "public"]


def test_serve_stops_at_its_start_naming_both_schemas(postgres: PostgresServer, tmp_path: Path) -> None:
    """As a user meets it: `serve` exits 1 with one line, the database unchanged (and its journal empty)."""
    url, as_writer, role = fleet(postgres)
    plant(url, role, tables=False)
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG.replace("${UPSTREAM}", "http://127.0.0.1:9").replace("${STORE}", f'"{as_writer}"')
                      .replace("${JOURNAL}", str(tmp_path / "journal.db")))  # fmt: skip
    served = cli("serve", "--config", str(config))
    assert served.returncode == 1, served.stderr
    lines = served.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in served.stderr, served.stderr
    assert f"schema {role}" in lines[0] and "schema public" in lines[0], lines[0]
    assert schemas_with_a_chain(url) == ["public"]

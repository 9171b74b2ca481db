"""Which schema `verify --integrity` reads on PostgreSQL: the tables are named without a schema, so the
connection's search_path decides. An auditor role's default search_path is `"$user", public`: a schema named
as the role, made by someone who can create schemas and holding a stale copy of the store, is read first, and
verified intact in the store's stead. `verify` names the schema it read, and says so when another schema on
the search path holds lineage tables too, or when the tables it reads are not in one schema."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import psycopg

from proxy.record.postgres import PostgresStore
from proxy.record.store import EdgeKey, SqliteStore
from tests.servers.postgres import PostgresServer

ALLOWED = EdgeKey("svc", "assistant", "team-a", "ckpt", "team-a", "allow")
DENIED = EdgeKey("svc", "ads", "health", "ckpt", "", "deny", "zone:h")


def verify(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", "verify", "--store", url, "--integrity", *extra],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def auditor(url: str, tables: tuple[str, ...]) -> str:
    """A role that reads the store (SELECT on public's tables), and a schema named as it holding a copy of
    `tables` as they are now, made by someone else; the role's URL."""
    name = "auditor_" + url.rsplit("/", 1)[1].split("?")[0]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {name} LOGIN")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {name}")
        conn.execute(f"CREATE SCHEMA {name}")
        for table in tables:
            conn.execute(f"CREATE TABLE {name}.{table} AS SELECT * FROM public.{table}")
        conn.execute(f"GRANT USAGE ON SCHEMA {name} TO {name}")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {name} TO {name}")
    return url.replace("postgresql://postgres@", f"postgresql://{name}@", 1)


def written(url: str) -> PostgresStore:
    store = PostgresStore(url)
    store.upsert([(ALLOWED, 1.0, 1.0, 1, None)])
    return store


def test_a_stale_copy_first_on_the_auditors_search_path_is_not_verified_in_the_stores_stead(
    postgres: PostgresServer,
) -> None:
    url = postgres.database()
    store = written(url)
    seen = auditor(url, ("edges", "chain", "meta"))
    store.upsert([(DENIED, 2.0, 2.0, 3, "purpose ads is not allowed for health")])  # after the copy was made
    store.close()
    result = verify(seen)
    assert result.returncode == 1, result.stdout + result.stderr  # the stale copy verified intact
    assert "which one is the store is not certain" in result.stdout, result.stdout
    chosen = verify(seen + "&options=-csearch_path%3Dpublic")  # the store's schema named alone: it is read
    assert chosen.returncode == 0, chosen.stdout + chosen.stderr
    assert "(schema public): intact: 3 chain entries" in chosen.stdout, chosen.stdout


def test_lineage_tables_read_from_two_schemas_are_named(postgres: PostgresServer) -> None:
    url = postgres.database()
    store = written(url)
    seen = auditor(url, ("chain", "meta"))  # the chain as it was; the edges are public's
    store.close()
    report = PostgresStore(seen, readonly=True).integrity()
    assert not report.intact and "not in one schema" in (report.problem or ""), report


def test_verify_names_the_schema_it_read(postgres: PostgresServer) -> None:
    url = postgres.database()
    with psycopg.connect(url, autocommit=True) as conn:  # a store in a schema of its own, and an app's `meta` table
        conn.execute("CREATE SCHEMA lineage")
        conn.execute("CREATE TABLE public.meta (note text)")
    url += "&options=-csearch_path%3Dlineage,public"
    written(url).close()
    result = verify(url, "--json")
    document = orjson.loads(result.stdout)
    assert result.returncode == 0 and document["schema"] == "lineage" and document["intact"], result.stdout


def test_a_sqlite_store_has_no_schema(tmp_path: Path) -> None:
    path = tmp_path / "lineage.db"
    SqliteStore(path).close()
    result = verify(str(path), "--json")
    assert result.returncode == 0 and orjson.loads(result.stdout)["schema"] is None, result.stdout

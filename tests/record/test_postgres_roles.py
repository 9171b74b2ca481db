"""The fleet store's roles as "Running a fleet" names them: the proxy needs `CREATE` on its schema the first
time only, then its tables' `SELECT, INSERT, UPDATE, DELETE` and the chain's sequence; the read commands
need only `SELECT`."""

from __future__ import annotations

import subprocess
import sys

import psycopg

from proxy.record.journal import LOCK_WAIT_S
from proxy.record.postgres import PostgresStore
from proxy.record.store import EdgeKey
from tests.servers.postgres import PostgresServer

KEY = EdgeKey("svc", "assistant", "team-a", "ckpt", "team-a", "allow", "")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", *args], capture_output=True, text=True, timeout=60)


def test_a_writer_with_the_rights_the_readme_names_starts_writes_and_purges(postgres: PostgresServer) -> None:
    """`CREATE TABLE IF NOT EXISTS` needs CREATE on the schema, and `CREATE INDEX IF NOT EXISTS` the table's
    ownership, even when everything is there: a writer given the rights the README names was refused at
    every start (permission denied for schema public), so each sidecar had to own the tables."""
    url = postgres.database()
    name = url.rsplit("/", 1)[1].split("?")[0]
    writer, reader = f"{name}_writer", f"{name}_reader"
    owner = PostgresStore(url)  # the first start, by a role that may create the tables
    owner.upsert([(KEY, 1.0, 1.0, 2, None), (KEY._replace(caller="gone"), 1.0, 1.0, 1, None)])
    owner.close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")  # PostgreSQL 15's default, on any release
        conn.execute(f"CREATE ROLE {writer} LOGIN")
        conn.execute(f"CREATE ROLE {reader} LOGIN")
        conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {writer}")
        conn.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {writer}")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {reader}")
    store = PostgresStore(url.replace("postgres@", f"{writer}@"))
    try:
        store.ping(LOCK_WAIT_S)  # the check during an outage takes the tables' locks too
        store.upsert([(KEY, 2.0, 90_000.0, 1, "why")])
        assert store.purge(1, now=90_000.0) == 1  # `gone` (last seen 1.0) expires; the snapshot is signed
        assert {r.key: r.count for r in store.rows()} == {KEY: 3}
    finally:
        store.close()
    as_reader = url.replace("postgres@", f"{reader}@")
    done = cli("verify", "--store", as_reader, "--integrity")
    assert done.returncode == 0, done.stdout + done.stderr
    listed = cli("edges", "--store", as_reader, "--json")
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 1, listed.stdout + listed.stderr

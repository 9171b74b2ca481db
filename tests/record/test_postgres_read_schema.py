"""`edges` and `report` on PostgreSQL read the tables the connection's search_path finds first, as `verify` does. An
auditor role's default search path is `"$user", public`: a stale copy of the store in a schema named as the role
(made by anyone who can create schemas) was listed, and reported, in the store's stead, with no word of it, where
`verify --integrity` refuses to say which one is the store. They refuse as verify does, naming the fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from proxy.record.postgres import PostgresStore
from tests.record.test_postgres_verify_schema import ALLOWED, DENIED, auditor, written
from tests.servers.postgres import PostgresServer


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", *args], capture_output=True, text=True, timeout=60)


def test_edges_and_report_do_not_read_a_stale_copy_first_on_the_search_path(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    url = postgres.database()
    store = written(url)
    seen = auditor(url, ("edges", "chain", "meta"))
    store.upsert([(DENIED, 2.0, 2.0, 3, "purpose ads is not allowed for health")])  # after the copy was made
    store.close()
    listed = cli("edges", "--store", seen, "--json")
    assert listed.returncode == 1 and listed.stdout == "", listed.stdout  # the stale copy's one edge, before
    assert "which one is the store is not certain" in listed.stderr, listed.stderr
    assert "not a lineage store" not in listed.stderr, listed.stderr
    assert "options=-csearch_path%3DSCHEMA" in listed.stderr, listed.stderr
    out = tmp_path / "fleet.html"
    reported = cli("report", "--store", seen, "--out", str(out))
    assert reported.returncode != 0 and not out.exists(), reported.stdout + reported.stderr
    assert "which one is the store is not certain" in reported.stderr, reported.stderr
    chosen = cli("edges", "--store", seen + "&options=-csearch_path%3Dpublic", "--json")  # the store's schema alone
    assert chosen.returncode == 0 and len(chosen.stdout.splitlines()) == 2, chosen.stdout + chosen.stderr
    assert {ALLOWED, DENIED} == {row.key for row in PostgresStore(seen + "&options=-csearch_path%3Dpublic",
                                                                   readonly=True).rows()}  # fmt: skip

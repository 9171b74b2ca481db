"""`demo --store` with a PostgreSQL URL was not checked at all: the demo added its calls to that database's store
(a fleet's record) without a word, then failed reading its table back as a file. The demo keeps its record in a
file: a PostgreSQL URL is refused (exit 1), the store left as it was."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from proxy.cli import main
from proxy.record.postgres import PostgresStore
from proxy.record.store import EdgeKey
from tests.servers.postgres import PostgresServer


def counts(url: str) -> list[tuple[str, int]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return [(str(c), int(n)) for c, n in conn.execute("SELECT caller, count FROM edges ORDER BY 1").fetchall()]


def test_a_postgres_store_is_refused_and_left_as_it_was(
    postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # (a writer's journal, ./lineage-journal.db, would be made here)
    url = postgres.database()
    store = PostgresStore(url)
    store.upsert([(EdgeKey("anonymous", "", "", "", "", "deny", "no credentials"), 0.0, 1.0, 7, None)])
    store.close()
    before = counts(url)
    assert main(["demo", "--store", url]) == 1
    err = capsys.readouterr().err
    assert "lineage-proxy demo: --store postgresql://" in err and "a PostgreSQL store is a proxy's own record" in err, (
        err
    )
    assert counts(url) == before

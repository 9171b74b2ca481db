"""`edges --copy-to` from a PostgreSQL store whose reader's search path finds another `applied` table first once the
read has begun: anyone who can create a schema in the source's database makes one named as the reader's role (first
on the default search path, `"$user", public`) holding an empty `applied`, after the read's check that its tables
are in one schema. PostgreSQL looks a name up in the catalog as it stands, not in the read's snapshot, so the read of
the copies the source holds found the new table, empty: B, holding a copy of A, was copied back into A, A's calls
counted twice in a record that verified. A reader reads the schema its check found alone, named in each statement's
search path from then on (review revproof12)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from proxy import cli as proxy_cli
from proxy.record.postgres import PostgresStore
from tests.record.test_copy_cycles import counts, store_with
from tests.servers.postgres import PostgresServer


@pytest.mark.parametrize("table", ["applied", "meta"])
def test_a_table_put_first_on_the_path_meanwhile_is_not_read(
    postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], table: str
) -> None:
    """`applied` empty hid B's copy of A; `meta` without its origin had A copied into B again."""
    a, b = postgres.database(), postgres.database()
    store_with(a, "a", 5)
    store_with(b, "b", 3)
    assert proxy_cli.main(["edges", "--store", a, "--copy-to", b]) == 0
    source, target, made = (b, a, {"a": 5}) if table == "applied" else (a, b, {"a": 5, "b": 3})
    oddities = PostgresStore._oddities
    done: list[bool] = []

    def then_shadowed(cur: psycopg.Cursor[Any]) -> str:
        found = oddities(cur)
        if not done:  # the source's check: its tables were found in one schema
            done.append(True)
            with psycopg.connect(source, autocommit=True) as conn:  # the reader's role is postgres: "$user"
                conn.execute("CREATE SCHEMA postgres")
                conn.execute(f"CREATE TABLE postgres.{table} (LIKE public.{table})")
        return found

    monkeypatch.setattr(PostgresStore, "_oddities", staticmethod(then_shadowed))
    proxy_cli.main(["edges", "--store", source, "--copy-to", target])
    said = capsys.readouterr()
    assert done == [True]
    monkeypatch.setattr(PostgresStore, "_oddities", staticmethod(oddities))
    assert counts(target) == made, said.out + said.err  # not A's calls twice

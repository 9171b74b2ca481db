"""`edges --copy-to` from a PostgreSQL store whose reader's search path finds another `applied` table first: anyone
who can create a schema in the source's database makes one named as the reader's role, first on the default search
path (`"$user", public`), holding an empty `applied`. The copy read the copies the source holds from it, none, so B,
holding a copy of A, was copied back into A, A's calls counted twice in a record that verified. `applied` is one of
the tables a reader finds in one schema, as `edges`, `chain` and `meta` are, or it reads none."""

from __future__ import annotations

import psycopg

from proxy import cli as proxy_cli
from tests.record.test_copy_cycles import counts, store_with
from tests.servers.postgres import PostgresServer


def test_a_store_whose_copies_are_shadowed_is_not_copied_back(postgres: PostgresServer, capsys) -> None:  # type: ignore[no-untyped-def]
    a, b = postgres.database(), postgres.database()
    store_with(a, "a", 5)
    store_with(b, "b", 3)
    assert proxy_cli.main(["edges", "--store", a, "--copy-to", b]) == 0
    with psycopg.connect(b, autocommit=True) as conn:  # the reader's role is postgres: "$user" is schema postgres
        conn.execute("CREATE SCHEMA postgres")
        conn.execute("CREATE TABLE postgres.applied (token text PRIMARY KEY, at double precision NOT NULL)")
    assert proxy_cli.main(["edges", "--store", b, "--copy-to", a]) == 1
    said = capsys.readouterr().err
    assert "applied in schema postgres" in said and "not in one schema" in said, said
    assert counts(a) == {"a": 5}  # not A's calls twice


def test_a_store_whose_copies_an_operator_hides_is_not_copied_back(postgres: PostgresServer, capsys) -> None:  # type: ignore[no-untyped-def]
    """The database's owner puts an operator `~~` (LIKE) of their own first on every connection's search path
    (ALTER DATABASE ... SET search_path = public, pg_catalog), answering false: the read of the copies a store holds
    (`token LIKE 'copy:%'`) found none. A reader puts pg_catalog first on its search path."""
    a, b = postgres.database(), postgres.database()
    store_with(a, "a", 5)
    store_with(b, "b", 3)
    assert proxy_cli.main(["edges", "--store", a, "--copy-to", b]) == 0
    name = b.rsplit("/", 1)[1].split("?")[0]
    with psycopg.connect(b, autocommit=True) as conn:
        conn.execute("CREATE FUNCTION public.never(text, text) RETURNS boolean LANGUAGE sql AS 'SELECT false'")
        conn.execute("CREATE OPERATOR public.~~ (LEFTARG = text, RIGHTARG = text, FUNCTION = public.never)")
        conn.execute(f"ALTER DATABASE {name} SET search_path = public, pg_catalog")
    assert proxy_cli.main(["edges", "--store", b, "--copy-to", a]) == 1
    said = capsys.readouterr().err
    assert "holds a copy of this store" in said, said
    assert counts(a) == {"a": 5}  # not A's calls twice

"""`extra_float_digits` set to 0 or less on the lineage database (what clients before PostgreSQL 12 were told
to set; `ALTER DATABASE ... SET`, on the role, or `ALTER SYSTEM`) reaches every connection the proxy makes: each
time was read back rounded to 15 digits, so `verify` named every row as edited (the chain holds them whole), and
no purge ran again (it signs only a record that verifies)."""

from __future__ import annotations

import psycopg
import pytest

from proxy.record.postgres import PostgresStore
from proxy.record.store import EdgeKey
from tests.servers.postgres import PostgresServer

KEY = EdgeKey("svc", "assistant", "team-a", "ckpt", "team-a", "allow", "")


def database(postgres: PostgresServer, setting: str, value: str) -> str:
    """A new database whose sessions get `setting` = `value` by default, as a DBA sets it."""
    url = postgres.database()
    name = url.rsplit("/", 1)[1].split("?")[0]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {name} SET {setting} = '{value}'")
    return url


@pytest.mark.parametrize("where", ["database", "url"])
def test_times_are_read_back_as_written_whatever_extra_float_digits(postgres: PostgresServer, where: str) -> None:
    if where == "database":
        url = database(postgres, "extra_float_digits", "0")
    else:  # the URL's own options (which the proxy's own timeouts then leave to it)
        url = postgres.database() + "&options=-c%20extra_float_digits%3D0%20-c%20statement_timeout%3D20000"
    first, last = 1764690000.1234567, 1764690001.7654321  # time.time()'s: 17 significant digits
    writer = PostgresStore(url)
    reader = PostgresStore(url, readonly=True)
    try:
        writer.upsert([(KEY, first, last, 1, None)])
        assert [(r.first_seen, r.last_seen) for r in reader.rows()] == [(first, last)]  # HEAD: 1764690000.12346
        report = reader.integrity()
        assert report.intact, report.problem  # HEAD: "the row was edited"
        assert writer.purge(1.0, now=last + 2 * 86400) == 1  # HEAD: "retention purge skipped: ... does not verify"
    finally:
        writer.close()
        reader.close()

"""`verify --integrity` on PostgreSQL warns when a role that may write the store finds another schema first on its
default search path (`"$user", public`): a schema named as the role, which anyone who can create schemas can make.
A writer of that role refuses to start then, unless its URL names the store's schema; one of an earlier release
starts a new store there, and the store stops growing while it still verifies intact. The verdict is unchanged."""

from __future__ import annotations

import subprocess
import sys

import orjson
import psycopg

from tests.record.test_postgres_writer_schema import fleet, plant
from tests.servers.postgres import PostgresServer


def verify(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", "verify", "--store", url, "--integrity", *extra],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_verify_warns_of_a_schema_named_as_a_writer_role_before_the_store(postgres: PostgresServer) -> None:
    owner, _, role = fleet(postgres)
    auditor = f"{role}_auditor"
    with psycopg.connect(owner, autocommit=True) as conn:  # an auditor reads the store, and nothing else
        conn.execute(f"CREATE ROLE {auditor} LOGIN")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {auditor}")
    url = owner.replace("postgres@", f"{auditor}@")
    quiet = verify(url)
    assert quiet.returncode == 0 and "warning" not in quiet.stdout, quiet.stdout + quiet.stderr
    plant(owner, role, tables=False)
    warned = verify(url)
    assert warned.returncode == 0, warned.stdout + warned.stderr  # the record itself is intact
    assert f"warning: role {role} may write this store" in warned.stdout, warned.stdout
    assert "options=-csearch_path%3Dpublic" in warned.stdout, warned.stdout
    document = orjson.loads(verify(url, "--json").stdout)
    assert document["intact"] and f"role {role}" in (document["warning"] or ""), document


def test_no_warning_when_the_role_has_its_search_path_or_no_right_to_write(postgres: PostgresServer) -> None:
    url, _, role = fleet(postgres)
    plant(url, role, tables=False)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"ALTER ROLE {role} SET search_path = public")  # its own path: the store's schema
    assert "warning" not in verify(url).stdout
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"ALTER ROLE {role} RESET search_path")
        conn.execute(f"REVOKE INSERT ON ALL TABLES IN SCHEMA public FROM {role}")  # a reader, not a writer
    assert "warning" not in verify(url).stdout

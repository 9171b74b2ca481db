"""`verify --integrity`'s early warning of a writer role that finds another schema before the store's went by
whether the role (or the database) had any search_path set at all: a role whose search_path is set to the
default's own `"$user", public` (or to any path whose first schema it may use is not the store's) was passed over,
while a writer of that role refuses to start. The warning now reads the path that applies to the role (its own
for this database, its own, the database's, else the default) as the writer's connection would."""

from __future__ import annotations

import orjson
import psycopg
import pytest

from proxy.errors import StartupError
from proxy.record.postgres import PostgresStore
from tests.record.test_postgres_verify_writers_path import verify
from tests.record.test_postgres_writer_schema import fleet, plant
from tests.servers.postgres import PostgresServer


@pytest.mark.parametrize(
    "setting",
    [
        "ALTER ROLE {role} SET search_path = '$user', public",
        'ALTER ROLE {role} IN DATABASE {db} SET search_path = "$user", public',
        'ALTER DATABASE {db} SET search_path = "$user", public',
        "ALTER ROLE {role} SET search_path = {role}, public",
    ],
)
def test_verify_warns_as_the_writer_refuses_with_its_search_path_set(postgres: PostgresServer, setting: str) -> None:
    url, as_writer, role = fleet(postgres)
    db = url.rsplit("/", 1)[1].split("?")[0]
    plant(url, role, tables=False)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(setting.format(role=role, db=db))
    with pytest.raises(StartupError):  # the writer of that role refuses to start ...
        PostgresStore(as_writer)
    warned = verify(url)  # ... and verify says so beforehand
    assert warned.returncode == 0, warned.stdout + warned.stderr
    assert f"warning: role {role} may write this store" in warned.stdout, warned.stdout
    assert "options=-csearch_path%3Dpublic" in warned.stdout, warned.stdout
    document = orjson.loads(verify(url, "--json").stdout)
    assert document["intact"] and f"role {role}" in (document["warning"] or ""), document


@pytest.mark.parametrize(
    "setting",
    [
        "ALTER ROLE {role} SET search_path = public, '$user'",
        "ALTER ROLE {role} IN DATABASE {db} SET search_path = public",
        "ALTER ROLE {role} SET search_path = nowhere, public",  # a schema that does not exist is skipped
    ],
)
def test_no_warning_when_the_path_set_finds_the_store_first(postgres: PostgresServer, setting: str) -> None:
    url, as_writer, role = fleet(postgres)
    db = url.rsplit("/", 1)[1].split("?")[0]
    plant(url, role, tables=False)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(setting.format(role=role, db=db))
    PostgresStore(as_writer).close()  # the writer starts
    quiet = verify(url)
    assert quiet.returncode == 0 and "warning" not in quiet.stdout, quiet.stdout + quiet.stderr

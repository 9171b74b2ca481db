"""An emptied store: someone who can write the store but has no key deletes every chain entry, every edge
and the purge's anchor. Every writer starts a store's chain with a snapshot entry in the transaction that
makes its tables, so an empty chain was emptied: `verify --integrity` names it, and a writer restarted on
it neither signs a new chain over it (keyed: it stops) nor starts one again (which then verified intact)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from proxy.errors import StartupError
from proxy.record.postgres import PostgresStore
from proxy.record.store import EdgeKey, SqliteStore
from tests.servers.postgres import PostgresServer

KEY = b"kept-out-of-the-store's-reach-32b"
DENIED = EdgeKey("app", "ads", "health", "", "", "deny", "zone:h")
ALLOWED = EdgeKey("app", "assistant", "a", "ck", "", "allow")
EMPTY = "the chain is empty"


def verify(store: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", "verify", "--store", store, "--integrity", *extra],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def written(path: Path, key: bytes | None) -> None:
    store = SqliteStore(path, key=key)
    store.upsert([(DENIED, 1.0, 1.0, 2, "purpose ads is not allowed for health")])
    store.upsert([(ALLOWED, 2.0, 2.0, 1, None)])
    store.close()


def empty(db: sqlite3.Connection | psycopg.Connection, *, origin: bool = False) -> None:
    db.execute("DELETE FROM chain")
    db.execute("DELETE FROM edges")
    db.execute("DELETE FROM meta WHERE key = 'anchor'")
    if origin:
        db.execute("DELETE FROM meta WHERE key = 'origin'")


def problem(path: Path, key: bytes | None) -> str | None:
    reader = SqliteStore(path, readonly=True)
    try:
        return reader.integrity(key).problem
    finally:
        reader.close()


@pytest.mark.parametrize("key", [KEY, None], ids=["keyed", "unkeyed"])
def test_an_emptied_sqlite_store_is_named_and_never_started_again(tmp_path: Path, key: bytes | None) -> None:
    path = tmp_path / "lineage.db"
    written(path, key)
    with sqlite3.connect(path) as db:
        empty(db)
    assert EMPTY in (problem(path, key) or ""), "an emptied store verified intact"
    key_file = tmp_path / "chain.key"
    key_file.write_bytes(KEY)
    result = verify(str(path), *(("--key-file", str(key_file)) if key else ()))
    assert result.returncode == 1 and f"NOT intact: {EMPTY}" in result.stdout, result.stdout + result.stderr
    if key is not None:
        with pytest.raises(StartupError, match="its chain had entries"):
            SqliteStore(path, key=key)  # a keyed restart stops: no new chain signed over the emptied one
    else:
        SqliteStore(path).close()  # an unkeyed restart goes on, but starts no new chain that would verify
    assert problem(path, key) is not None, "a restart started the emptied store's chain again"


def test_an_emptied_sqlite_store_without_its_origin_is_still_known_by_its_numbering(tmp_path: Path) -> None:
    path = tmp_path / "lineage.db"
    written(path, KEY)
    with sqlite3.connect(path) as db:
        empty(db, origin=True)
    with pytest.raises(StartupError, match="its chain had entries"):
        SqliteStore(path, key=KEY)
    assert EMPTY in (problem(path, KEY) or "")


def test_a_new_sqlite_store_still_starts_its_chain(tmp_path: Path) -> None:
    path = tmp_path / "lineage.db"
    SqliteStore(path, key=KEY).close()
    SqliteStore(path, key=KEY).close()  # and opens again
    assert problem(path, KEY) is None


@pytest.mark.parametrize("key", [KEY, None], ids=["keyed", "unkeyed"])
def test_an_emptied_postgres_store_is_named_and_never_started_again(
    postgres: PostgresServer, key: bytes | None
) -> None:
    url = postgres.database()
    store = PostgresStore(url, key=key)
    store.upsert([(DENIED, 1.0, 1.0, 2, "purpose ads is not allowed for health")])
    store.close()
    with psycopg.connect(url, autocommit=True) as conn:
        empty(conn)
    reader = PostgresStore(url, readonly=True)
    assert EMPTY in (reader.integrity(key).problem or ""), "an emptied store verified intact"
    if key is not None:
        with pytest.raises(StartupError, match="its chain had entries"):
            PostgresStore(url, key=key)
    else:
        PostgresStore(url).close()
    assert not reader.integrity(key).intact, "a restart started the emptied store's chain again"
    reader.close()

"""An edge is keyed by the sidecar that recorded it too (`lineage.sidecar`): in a fleet's store, a flow two
sidecars served is two edges, each sidecar's count exact, and the chain signs who recorded each (an edited
sidecar is named by `verify --integrity`). A store written before (schema version 2: keyed by flow and rule) is
re-keyed when a writer of this release opens it, its edges recorded by sidecar '' and its chain still verifying;
a writer of the release before then stops (PostgreSQL: the schema version; SQLite: the fence trigger), and one
already running fails its writes rather than counting them into another sidecar's edge."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from proxy.record import integrity
from proxy.record.postgres import PostgresStore
from proxy.record.store import EdgeKey, EdgeStore, SqliteStore
from proxy.record.stores import open_reader, open_store
from tests.servers.postgres import PostgresServer

ROOT = Path(__file__).resolve().parents[2]
FLOW = EdgeKey("glasses-app", "assistant", "user-interaction", "org/llama@v1", "", "allow")
DENIED = EdgeKey("ads-ranker", "ads", "user-interaction", "", "", "deny", "zone:interaction-data")
KEY = b"a-key-kept-out-of-the-store"

# what the release before wrote: edges keyed by flow and rule, chain entries of version 2, and (SQLite) its fence
V2_EDGES = """
CREATE TABLE edges (
    caller TEXT NOT NULL, purpose TEXT NOT NULL, input_labels TEXT NOT NULL, checkpoint TEXT NOT NULL,
    output_labels TEXT NOT NULL, decision TEXT NOT NULL, first_seen {real} NOT NULL, last_seen {real} NOT NULL,
    count {integer} NOT NULL, rule TEXT NOT NULL DEFAULT '', reason TEXT,
    PRIMARY KEY (caller, purpose, input_labels, checkpoint, output_labels, decision, rule)
){without_rowid}"""
V2_TABLES = """
CREATE INDEX edges_last_seen ON edges (last_seen);
CREATE TABLE chain (seq {serial} PRIMARY KEY{autoincrement}, at {real} NOT NULL, body TEXT NOT NULL,
                    prev TEXT NOT NULL, hash TEXT NOT NULL);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"""
V2_FENCE = ("CREATE TRIGGER lineage_store_keyed_by_rule_needs_lineage_proxy_2026_11_30_or_newer BEFORE DELETE ON meta "
            "WHEN 0 BEGIN SELECT 1; END")  # fmt: skip
V2_UPSERT = """
INSERT INTO edges (caller, purpose, input_labels, checkpoint, output_labels, decision, first_seen, last_seen, count,
                   rule, reason)
VALUES ({marks})
ON CONFLICT (caller, purpose, input_labels, checkpoint, output_labels, decision, rule) DO UPDATE SET
    count = edges.count + excluded.count,
    first_seen = {least}(edges.first_seen, excluded.first_seen),
    last_seen = {greatest}(edges.last_seen, excluded.last_seen),
    reason = coalesce(excluded.reason, edges.reason)
"""
NOW = 1_800_000_000.0
V2_WRITES = [
    [(*FLOW[:6], NOW, NOW, 5, "", None), (*DENIED[:6], NOW, NOW, 1, DENIED.rule, "refused")],
    [(*FLOW[:6], NOW + 1, NOW + 1, 2, "", None)],
]


def write_v2(db: Any, mark: str, key: bytes | None, *, postgres: bool) -> None:
    upsert = V2_UPSERT.format(marks=", ".join([mark] * 11), least="least" if postgres else "min",
                              greatest="greatest" if postgres else "max")  # fmt: skip
    prev = integrity.GENESIS
    for kind, rows in [(integrity.SNAPSHOT, []), *((integrity.EDGES, rows) for rows in V2_WRITES)]:
        for row in rows:
            db.execute(upsert, row)
        text = orjson.dumps({"kind": kind, "rows": [list(row) for row in rows], "version": 2}).decode()
        hashed = integrity.link(prev, text, key)
        db.execute(f"INSERT INTO chain (at, body, prev, hash) VALUES (0, {mark}, {mark}, {mark})", (text, prev, hashed))
        prev = hashed


def v2_store(url: str, key: bytes | None) -> None:
    if url.startswith("postgresql://"):
        with psycopg.connect(url, autocommit=True) as db:
            db.execute(V2_EDGES.format(real="double precision", integer="bigint", without_rowid=""))
            for statement in V2_TABLES.format(serial="bigserial", autoincrement="", real="double precision").split(";"):
                db.execute(statement)
            db.execute("CREATE TABLE applied (token text PRIMARY KEY, at double precision NOT NULL)")
            db.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '2'), ('origin', 'a-v2-store')")
            write_v2(db, "%s", key, postgres=True)
        return
    with sqlite3.connect(url) as lite:
        lite.executescript(V2_EDGES.format(real="REAL", integer="INTEGER", without_rowid=" WITHOUT ROWID") + ";"
                           + V2_TABLES.format(serial="INTEGER", autoincrement=" AUTOINCREMENT", real="REAL") + ";"
                           + V2_FENCE)  # fmt: skip
        lite.execute("INSERT INTO meta (key, value) VALUES ('origin', 'a-v2-store')")
        write_v2(lite, "?", key, postgres=False)
    lite.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "lineage.db")
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.database()


def writer(url: str, sidecar: str, key: bytes | None) -> EdgeStore:
    if url.startswith("postgresql://"):
        return PostgresStore(url, key=key, sidecar=sidecar)
    return SqliteStore(url, key=key, sidecar=sidecar)


def counts(url: str) -> dict[tuple[str, str, str], int]:
    """(caller, rule, sidecar) -> count, as a reader reads them."""
    reader = open_reader(url)
    try:
        return {(row.key.caller, row.key.rule, row.sidecar): row.count for row in reader.rows()}
    finally:
        reader.close()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this tree's code, whatever the venv has installed
    return subprocess.run([sys.executable, "-m", "proxy", *args], capture_output=True, text=True, timeout=60, env=env)


def verify_integrity(url: str, key: bytes | None, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    args = ["verify", "--store", url, "--integrity"]
    if key is not None:
        (tmp_path / "chain.key").write_bytes(key)
        args += ["--key-file", str(tmp_path / "chain.key")]
    return cli(*args)


def execute(url: str, statement: str) -> None:
    if url.startswith("postgresql://"):
        with psycopg.connect(url, autocommit=True) as db:
            db.execute(statement)
        return
    with sqlite3.connect(url) as lite:
        lite.execute(statement)
    lite.close()


@pytest.mark.parametrize("key", [None, KEY], ids=["unkeyed", "keyed"])
def test_a_v2_store_is_rekeyed_and_two_sidecars_writing_it_keep_their_counts_apart(
    store_url: str, key: bytes | None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    v2_store(store_url, key)
    assert verify_integrity(store_url, key, tmp_path).returncode == 0  # as the release before left it
    assert counts(store_url) == {("glasses-app", "", ""): 7, ("ads-ranker", DENIED.rule, ""): 1}  # read as ''

    with caplog.at_level(logging.WARNING, logger="lineage_proxy.edges"):
        a = writer(store_url, "model-a", key)
    assert "keyed by the sidecar that recorded them from now on" in caplog.text
    assert "recorded by sidecar '' (before sidecars were named)" in caplog.text
    b = writer(store_url, "model-b", key)  # opened once re-keyed: nothing more to do
    try:
        for _ in range(3):
            a.upsert([(FLOW, NOW + 10, NOW + 10, 1, None)])
        b.upsert([(FLOW, NOW + 11, NOW + 11, 4, None), (DENIED, NOW + 11, NOW + 11, 2, "refused by b")])
        a.upsert([(DENIED, NOW + 12, NOW + 12, 1, "refused by a")])
    finally:
        a.close()
        b.close()
    assert counts(store_url) == {
        ("glasses-app", "", ""): 7,  # recorded before sidecars were named: kept as they were
        ("ads-ranker", DENIED.rule, ""): 1,
        ("glasses-app", "", "model-a"): 3,
        ("glasses-app", "", "model-b"): 4,
        ("ads-ranker", DENIED.rule, "model-a"): 1,
        ("ads-ranker", DENIED.rule, "model-b"): 2,
    }
    verified = verify_integrity(store_url, key, tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    listed = orjson.loads("[" + ",".join(cli("edges", "--store", store_url, "--json").stdout.splitlines()) + "]")
    assert sorted((row["caller"], row["sidecar"], row["count"]) for row in listed) == [
        ("ads-ranker", "", 1), ("ads-ranker", "model-a", 1), ("ads-ranker", "model-b", 2),
        ("glasses-app", "", 7), ("glasses-app", "model-a", 3), ("glasses-app", "model-b", 4),
    ]  # fmt: skip

    # who recorded a flow is signed content: an edited sidecar breaks the chain
    execute(store_url, "UPDATE edges SET sidecar = 'model-c' WHERE sidecar = 'model-a' AND caller = 'ads-ranker'")
    edited = verify_integrity(store_url, key, tmp_path)
    assert edited.returncode == 1, edited.stdout + edited.stderr
    assert "recorded by model-c) is in the store but in no chain entry" in edited.stdout, edited.stdout


def test_a_writer_of_the_release_before_fails_its_writes_on_a_rekeyed_store(store_url: str) -> None:
    """PostgreSQL: the schema version says 3, which the release before refuses at its start (SchemaTooNew); SQLite:
    the fence is this release's, which it refuses at its start (a trigger it does not know). One already running
    fails its next write (its upsert names the key it knew), so its counts go to its journal or stay in memory, and
    nothing is added to an edge of the sidecars of this release."""
    v2_store(store_url, None)
    writer(store_url, "model-a", None).close()
    postgres = store_url.startswith("postgresql://")
    upsert = V2_UPSERT.format(marks=", ".join(["%s" if postgres else "?"] * 11), least="least" if postgres else "min",
                              greatest="greatest" if postgres else "max")  # fmt: skip
    row = (*FLOW[:6], NOW, NOW, 1, "", None)
    if postgres:
        with psycopg.connect(store_url, autocommit=True) as db:
            assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("3",)
            with pytest.raises(psycopg.errors.InvalidColumnReference):
                db.execute(upsert, row)
    else:
        with sqlite3.connect(store_url) as lite:
            triggers = [found[0] for found in lite.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")]
            assert triggers == ["lineage_store_keyed_by_sidecar_needs_lineage_proxy_2026_12_03_or_newer"]
            with pytest.raises(sqlite3.OperationalError, match="ON CONFLICT clause does not match"):
                lite.execute(upsert, row)
        lite.close()
    assert counts(store_url) == {("glasses-app", "", ""): 7, ("ads-ranker", DENIED.rule, ""): 1}


def test_a_purge_keeps_each_sidecars_edges_and_the_chain_verifies(store_url: str, tmp_path: Path) -> None:
    """A retention purge's snapshot carries the sidecar of every edge it keeps (a snapshot of version 3)."""
    a, b = writer(store_url, "model-a", None), writer(store_url, "model-b", None)
    try:
        a.upsert([(FLOW, NOW - 10 * 86400, NOW - 10 * 86400, 2, None)])  # expired by a 1-day purge at NOW
        b.upsert([(FLOW, NOW - 10 * 86400, NOW, 3, None)])  # seen since: kept
        a.upsert([(DENIED, NOW, NOW, 1, "refused")])
        assert b.purge(1.0, now=NOW) == 1
        b.upsert([(FLOW, NOW + 1, NOW + 1, 1, None)])
    finally:
        a.close()
        b.close()
    assert counts(store_url) == {("glasses-app", "", "model-b"): 4, ("ads-ranker", DENIED.rule, "model-a"): 1}
    verified = verify_integrity(store_url, None, tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_serving_proxy_records_its_configured_sidecar(tmp_path: Path) -> None:
    """`open_store`, as `serve` calls it with `lineage.sidecar`, writes the edges as that sidecar's."""
    url = str(tmp_path / "lineage.db")
    store = open_store(url, sidecar="eu-west-model-a")
    try:
        store.upsert([(FLOW, NOW, NOW, 1, None)])
    finally:
        store.close()
    assert counts(url) == {("glasses-app", "", "eu-west-model-a"): 1}


def test_a_writer_that_does_not_own_a_v2_store_says_to_start_one_proxy_as_its_owner(postgres: PostgresServer) -> None:
    """Re-keying changes the table once, which only its owner may do: a writer granted only what a writer needs
    is refused at its start, in one clear line, and starts once the owner's proxy has re-keyed the store."""
    from proxy.errors import StartupError

    url = postgres.database()
    v2_store(url, None)
    role = url.rsplit("/", 1)[1].split("?")[0] + "_writer"
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        db.execute(f"CREATE ROLE {role} LOGIN")
        db.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}")
        db.execute(f"GRANT USAGE ON SEQUENCE chain_seq_seq TO {role}")
    as_writer = url.replace("postgres@", f"{role}@")
    with pytest.raises(StartupError) as refused:
        PostgresStore(as_writer, sidecar="model-a").close()
    message = str(refused.value)
    assert "its edges are keyed by sidecar from this release on" in message, message
    assert "start one proxy once as the table's owner" in message, message
    PostgresStore(url, sidecar="owner").close()  # the owner's proxy re-keys it
    writer_store = PostgresStore(as_writer, sidecar="model-a")
    try:
        writer_store.upsert([(FLOW, NOW + 5, NOW + 5, 1, None)])
    finally:
        writer_store.close()
    assert counts(url)[("glasses-app", "", "model-a")] == 1

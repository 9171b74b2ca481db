"""An edge is keyed by its rule too: a caller's unapproved kind of denial followed by an approved kind, for
the same caller, purpose and labels, stays two edges, so `verify` names the unapproved one (one edge
keyed by the flow alone kept the last rule: the count was right, the kind was lost). Stores written
before (SQLite and PostgreSQL) are re-keyed when a writer opens them, and their chain still verifies."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest

from proxy.flow import DENY, Decision, Outcome
from proxy.record import integrity
from proxy.record.edges import EdgeAggregator, edge_key
from proxy.record.postgres import SCHEMA_VERSION, PostgresStore
from proxy.record.store import EdgeKey, EdgeStore, SqliteStore
from proxy.record.stores import ReadableStore, open_reader
from tests.conftest import KEYS, sha
from tests.servers.postgres import PostgresServer
from tests.servers.vllm_like import SERVED

CONFIG = f"""
listen: {{http: 127.0.0.1:0}}
upstreams: [{{name: vllm, url: "${{UPSTREAM}}", checkpoint: org/llama@v1}}]
routes:
  - {{model: restricted, upstream: vllm, purposes: [assistant]}}
  - {{model: "*", upstream: vllm}}
callers:
  - {{name: ads-ranker, api_key_sha256: {sha(KEYS["ads"])}, purposes: [ads]}}
zones:
  - {{name: interaction-data, labels: [user-interaction], allow_purposes: [assistant]}}
lineage:
  store: ${{STORE}}
  journal: ${{JOURNAL}}
  flush_interval_s: 0.05
"""

# the denial the deployment expects: interaction data refused for ads by its zone; not the route's refusal
BASELINE = """
version: 1
flows:
  - caller: ads-ranker
    purpose: ads
    labels: [user-interaction]
    decisions: [deny]
    rules: ["zone:interaction-data"]
"""

FLOW = ("ads-ranker", "ads", "user-interaction", "", "", "deny")  # a denial reaches no checkpoint, has no output
ROUTE, ZONE = "route:restricted", "zone:interaction-data"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", *args], capture_output=True, text=True, timeout=60)


def deny(url: str, model: str) -> int:
    reply = httpx.post(f"{url}/v1/chat/completions", timeout=10,
                       headers={"authorization": f"Bearer {KEYS['ads']}", "x-purpose": "ads",
                                "x-data-labels": "user-interaction"},
                       json={"model": model, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    return reply.status_code


def edges_of(store: str) -> dict[tuple[str, ...], tuple[int, str | None]]:
    reader: ReadableStore = open_reader(store)
    try:
        return {tuple(row.key): (row.count, row.rule) for row in reader.rows()}
    finally:
        reader.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "lineage.db")
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.database()


# -- end to end: real calls, then verify, report and edges


def test_two_kinds_of_denial_of_one_flow_are_two_edges_and_verify_names_the_unapproved_one(
    vllm: Any, make_proxy: Any, loop_thread: Any, store_url: str, tmp_path: Path
) -> None:
    _, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream, STORE=store_url, JOURNAL=str(tmp_path / "journal.db"))
    assert deny(proxy.url, "restricted") == 403  # the route refuses ads: a kind nobody approved
    assert deny(proxy.url, SERVED) == 403  # then the zone refuses it: the approved kind, same caller, purpose, labels
    assert deny(proxy.url, SERVED) == 403
    loop_thread.run(proxy.process.runtime.sinks.flush())
    assert edges_of(store_url) == {(*FLOW, ROUTE): (1, ROUTE), (*FLOW, ZONE): (2, ZONE)}
    assert cli("verify", "--store", store_url, "--integrity").returncode == 0

    baseline = tmp_path / "baseline.yaml"
    baseline.write_text(BASELINE)
    verified = cli("verify", "--store", store_url, "--baseline", str(baseline))
    assert verified.returncode == 1, verified.stdout + verified.stderr
    assert ("UNAPPROVED new-denial: a new kind of denial for 'ads-ranker' acting for 'ads': deny by rule "
            f"{ROUTE}") in verified.stdout  # fmt: skip
    assert "FAIL: 1 unapproved flow (1 call), 1 approved" in verified.stdout
    as_json = orjson.loads(cli("verify", "--store", store_url, "--baseline", str(baseline), "--json").stdout)
    (unapproved,) = as_json["unapproved"]
    assert (unapproved["kind"], unapproved["edge"]["rule"], unapproved["edge"]["count"]) == ("new-denial", ROUTE, 1)
    assert "may not be used for purpose 'ads'" in unapproved["edge"]["reason"]

    out = tmp_path / "report.html"
    assert cli("report", "--store", store_url, "--baseline", str(baseline), "--out", str(out)).returncode == 0
    page = out.read_text(encoding="utf-8")
    assert f"deny by rule {ROUTE}" in page and page.count(f'<td class="mono rule">{ROUTE}</td>') == 2  # denials, flows
    assert page.count(f'<td class="mono rule">{ZONE}</td>') == 2

    listed = cli("edges", "--store", store_url, "--caller", "ads-ranker")
    header, *lines = listed.stdout.splitlines()
    assert "  decision  rule " in header and len(lines) == 2
    assert sorted(line.split()[6] for line in lines) == [ROUTE, ZONE]  # after checkpoint .. decision: the rule


# -- the store itself, through the aggregator


def denial(rule: str) -> Decision:
    return Decision(DENY, None, "ads-ranker", "ads", frozenset({"user-interaction"}), code="purpose_denied",
                    rule=rule, reason=f"refused by {rule}")  # fmt: skip


def writer(store_url: str) -> EdgeStore:
    if store_url.startswith("postgresql://"):
        return PostgresStore(store_url)
    return SqliteStore(store_url)


def test_the_aggregator_counts_each_rule_of_a_flow_apart(store_url: str) -> None:
    route, zone = (edge_key(denial(rule), Outcome(started_ns=0), frozenset()) for rule in (ROUTE, ZONE))
    assert route[:6] == zone[:6] == FLOW and (route.rule, zone.rule) == (ROUTE, ZONE) and route != zone

    async def record() -> EdgeAggregator:
        aggregator = EdgeAggregator(writer(store_url), flush_interval_s=60)
        aggregator.start()
        for key in (route, zone, route, zone, zone):
            written = aggregator.add(key, f"refused by {key.rule}")
            if written is not None:
                await asyncio.wrap_future(written)
        await aggregator.close()
        return aggregator

    aggregator = asyncio.run(record())
    assert aggregator.new_edges == 2  # each kind of denial is a new edge, written through
    assert edges_of(store_url) == {tuple(route): (2, ROUTE), tuple(zone): (3, ZONE)}
    reader = open_reader(store_url)
    try:
        rows = {row.rule: row for row in reader.rows()}
        assert (rows[ROUTE].reason, rows[ZONE].reason) == (f"refused by {ROUTE}", f"refused by {ZONE}")
        assert reader.integrity().intact
    finally:
        reader.close()


# -- a store written before the rule keyed an edge


# what the release before wrote: the edge table keyed by flow alone (its rule the last one given), and
# chain entries without a `version`
OLD_EDGES = """
CREATE TABLE edges (
    caller TEXT NOT NULL, purpose TEXT NOT NULL, input_labels TEXT NOT NULL, checkpoint TEXT NOT NULL,
    output_labels TEXT NOT NULL, decision TEXT NOT NULL, first_seen {real} NOT NULL, last_seen {real} NOT NULL,
    count {integer} NOT NULL, rule TEXT, reason TEXT,
    PRIMARY KEY (caller, purpose, input_labels, checkpoint, output_labels, decision)
){without_rowid}"""
OLD_TABLES = """
CREATE INDEX edges_last_seen ON edges (last_seen);
CREATE TABLE chain (seq {serial} PRIMARY KEY{autoincrement}, at {real} NOT NULL, body TEXT NOT NULL,
                    prev TEXT NOT NULL, hash TEXT NOT NULL);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"""
OLD_UPSERT = """
INSERT INTO edges (caller, purpose, input_labels, checkpoint, output_labels, decision, first_seen, last_seen, count,
                   rule, reason)
VALUES ({marks})
ON CONFLICT (caller, purpose, input_labels, checkpoint, output_labels, decision) DO UPDATE SET
    count = edges.count + excluded.count,
    first_seen = {least}(edges.first_seen, excluded.first_seen),
    last_seen = {greatest}(edges.last_seen, excluded.last_seen),
    rule = coalesce(excluded.rule, edges.rule),
    reason = coalesce(excluded.reason, edges.reason)
"""
ALLOWED = ("glasses-app", "assistant", "user-interaction", "org/llama@v1", "user-interaction", "allow")
ROUTE_REASON = "model 'restricted' may not be used for purpose 'ads' (route allows: assistant)"
ZONE_REASON = "purpose 'ads' is not allowed for data labelled 'user-interaction'"
# the writes the release before made: the route's denial, then the zone's, of one flow (its edge kept the
# zone's rule alone), and an allowed flow, no rule, its count flushed later
OLD_WRITES = [
    [(*FLOW, 1.0, 1.0, 1, ROUTE, ROUTE_REASON), (*ALLOWED, 1.0, 1.0, 3, None, None)],
    [(*FLOW, 2.0, 2.0, 1, ZONE, ZONE_REASON)],
    [(*ALLOWED, 3.0, 3.0, 2, None, None)],
]
KEY = b"a-key-kept-out-of-the-store"


def write_old(db: Any, mark: str, key: bytes | None, *, postgres: bool) -> None:
    """The edges and chain entries of OLD_WRITES, as the release before wrote them (`db`: a SQLite or
    psycopg connection; `mark`: its parameter placeholder)."""
    upsert = OLD_UPSERT.format(marks=", ".join([mark] * 11), least="least" if postgres else "min",
                               greatest="greatest" if postgres else "max")  # fmt: skip
    prev = integrity.GENESIS
    for kind, rows in [(integrity.SNAPSHOT, []), *((integrity.EDGES, rows) for rows in OLD_WRITES)]:
        for row in rows:
            db.execute(upsert, row)
        text = orjson.dumps({"kind": kind, "rows": [list(row) for row in rows]}).decode()  # no `version`
        hashed = integrity.link(prev, text, key)
        db.execute(f"INSERT INTO chain (at, body, prev, hash) VALUES (0, {mark}, {mark}, {mark})", (text, prev, hashed))
        prev = hashed


def old_sqlite_store(path: Path, key: bytes | None) -> None:
    with sqlite3.connect(path) as db:
        db.executescript(OLD_EDGES.format(real="REAL", integer="INTEGER", without_rowid=" WITHOUT ROWID") + ";"
                         + OLD_TABLES.format(serial="INTEGER", autoincrement=" AUTOINCREMENT", real="REAL"))  # fmt: skip
        db.execute("INSERT INTO meta (key, value) VALUES ('origin', 'an-older-store')")
        write_old(db, "?", key, postgres=False)
    db.close()


def old_postgres_store(url: str, key: bytes | None) -> None:
    with psycopg.connect(url, autocommit=True) as db:
        db.execute(OLD_EDGES.format(real="double precision", integer="bigint", without_rowid=""))
        for statement in OLD_TABLES.format(serial="bigserial", autoincrement="", real="double precision").split(";"):
            db.execute(statement)
        db.execute("CREATE TABLE applied (token text PRIMARY KEY, at double precision NOT NULL)")
        db.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '1'), ('origin', 'an-older-store')")
        write_old(db, "%s", key, postgres=True)


def verify_integrity(store: str, key: bytes | None, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    args = ["verify", "--store", store, "--integrity"]
    if key is not None:
        (tmp_path / "chain.key").write_bytes(key)
        args += ["--key-file", str(tmp_path / "chain.key")]
    return cli(*args)


def chain_of(store: str) -> list[tuple[Any, ...]]:
    if store.startswith("postgresql://"):
        with psycopg.connect(store) as db:
            return db.execute("SELECT seq, body, prev, hash FROM chain ORDER BY seq").fetchall()
    with sqlite3.connect(store) as db:
        found = db.execute("SELECT seq, body, prev, hash FROM chain ORDER BY seq").fetchall()
    db.close()
    return found


@pytest.mark.parametrize("key", [None, KEY], ids=["unkeyed", "keyed"])
def test_an_old_store_is_rekeyed_on_open_still_verifies_and_then_keeps_each_rule_apart(
    store_url: str, key: bytes | None, tmp_path: Path
) -> None:
    postgres = store_url.startswith("postgresql://")
    if postgres:
        old_postgres_store(store_url, key)
    else:
        old_sqlite_store(Path(store_url), key)
    chain = chain_of(store_url)
    # the old edge kept the zone's rule alone, the route's denial in its count
    assert edges_of(store_url) == {(*FLOW, ZONE): (2, ZONE), (*ALLOWED, ""): (5, None)}
    read = verify_integrity(store_url, key, tmp_path)  # read as it stands, not re-keyed: a reader changes nothing
    assert read.returncode == 0 and "intact: 4 chain entries" in read.stdout, read.stdout + read.stderr

    store = PostgresStore(store_url, key=key) if postgres else SqliteStore(store_url, key=key)  # a writer re-keys
    store.close()
    assert chain_of(store_url) == chain  # the chain is left as written: nothing signed over
    assert edges_of(store_url) == {(*FLOW, ZONE): (2, ZONE), (*ALLOWED, ""): (5, None)}  # every row as it was
    migrated = verify_integrity(store_url, key, tmp_path)
    assert migrated.returncode == 0 and "intact: 4 chain entries" in migrated.stdout, migrated.stdout + migrated.stderr
    if postgres:
        with psycopg.connect(store_url) as db:
            version = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            assert version == (str(SCHEMA_VERSION),)
            assert db.execute("SELECT count(*) FROM edges WHERE rule IS NULL").fetchone() == (0,)

    store = PostgresStore(store_url, key=key) if postgres else SqliteStore(store_url, key=key)
    route, zone = EdgeKey(*FLOW, ROUTE), EdgeKey(*FLOW, ZONE)
    store.upsert([(route, 4.0, 4.0, 1, ROUTE_REASON), (zone, 5.0, 5.0, 1, None)])
    store.upsert([(EdgeKey(*ALLOWED), 6.0, 6.0, 1, None)])
    store.close()
    assert edges_of(store_url) == {(*FLOW, ROUTE): (1, ROUTE), (*FLOW, ZONE): (3, ZONE), (*ALLOWED, ""): (6, None)}
    after = verify_integrity(store_url, key, tmp_path)
    assert after.returncode == 0 and "intact: 6 chain entries" in after.stdout, after.stdout + after.stderr

    # the release before cannot write to it any more (its upsert names a key the table no longer has),
    # so no entry keyed by flow alone follows these
    row = (*FLOW, 7.0, 7.0, 1, ROUTE, None)
    if postgres:
        with pytest.raises(psycopg.errors.InvalidColumnReference), psycopg.connect(store_url) as db:
            db.execute(OLD_UPSERT.format(marks=", ".join(["%s"] * 11), least="least", greatest="greatest"), row)
    else:
        with pytest.raises(sqlite3.OperationalError, match="ON CONFLICT clause does not match"):
            sqlite3.connect(store_url).execute(OLD_UPSERT.format(marks=", ".join("?" * 11), least="min",
                                                                 greatest="max"), row)  # fmt: skip


def test_an_old_store_purges_after_the_rekey_and_the_snapshot_verifies(store_url: str, tmp_path: Path) -> None:
    """A purge's snapshot is the chain replayed (old entries by flow, new ones by rule), less what expired."""
    if store_url.startswith("postgresql://"):
        old_postgres_store(store_url, None)
        store: PostgresStore | SqliteStore = PostgresStore(store_url)
    else:
        old_sqlite_store(Path(store_url), None)
        store = SqliteStore(store_url)
    store.upsert([(EdgeKey(*FLOW, ROUTE), 9e9, 9e9, 1, ROUTE_REASON)])
    assert store.purge(30) == 2  # both old edges (last seen 1970) go; the route's new one stays
    store.upsert([(EdgeKey(*FLOW, ROUTE), 9e9, 9e9, 1, None)])
    store.close()
    assert edges_of(store_url) == {(*FLOW, ROUTE): (2, ROUTE)}
    assert verify_integrity(store_url, None, tmp_path).returncode == 0


# -- the replay


def replayed(*bodies: str) -> integrity.Report:
    """Unkeyed entries of `bodies` in order, replayed against no rows."""
    replay, prev = integrity.Replay(integrity.GENESIS, None), integrity.GENESIS
    entries = []
    for seq, text in enumerate(bodies, 1):
        entries.append(integrity.Entry(seq, 0.0, text, prev, integrity.link(prev, text, None)))
        prev = entries[-1].hash
    replay.feed(entries)
    return replay.finish([])


def test_an_entry_keyed_by_flow_after_entries_keyed_by_rule_is_named() -> None:
    change = [*FLOW, 1.0, 1.0, 1, ZONE, None]
    old = integrity.body(integrity.EDGES, [change], version=integrity.BY_FLOW)
    report = replayed(integrity.body(integrity.SNAPSHOT, []), integrity.body(integrity.EDGES, [change]), old)
    assert report.problem is not None and "entry 3: its changes are keyed by flow alone" in report.problem
    # a snapshot keyed by flow (a purge by the release before) starts over: what follows it replays by flow
    snapshot = integrity.body(integrity.SNAPSHOT, [change], version=integrity.BY_FLOW)
    after = replayed(integrity.body(integrity.SNAPSHOT, []), integrity.body(integrity.EDGES, [change]), snapshot, old)
    assert after.problem is not None and "is in the chain but not in the store" in after.problem  # replayed
    unknown = replayed('{"kind":"snapshot","rows":[],"version":4}')
    assert unknown.problem is not None and "version 4, which this release does not read" in unknown.problem


def test_a_store_keyed_by_rule_stops_a_writer_of_an_earlier_release(tmp_path: Path) -> None:
    """An earlier release started on a re-keyed SQLite store (it has no schema version to refuse), failed every
    write (its counts kept in memory, then lost) and called the record unverifiable. Every earlier release stops
    at start on a trigger on the lineage tables: the store carries one that never fires, named for why. This
    code knows it by name and text; any other trigger still stops it."""
    from proxy.errors import StartupError
    from proxy.record.store import _FENCE_NAME

    path = tmp_path / "lineage.db"
    SqliteStore(path).close()
    SqliteStore(path).close()  # opened again: the fence is ours
    db = sqlite3.connect(path)
    assert [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")] == [_FENCE_NAME]
    # the name alone does not make a trigger ours: one that fires is refused like any other
    db.execute(f"DROP TRIGGER {_FENCE_NAME}")
    db.execute(f"CREATE TRIGGER {_FENCE_NAME} BEFORE DELETE ON edges BEGIN SELECT RAISE(IGNORE); END")
    db.commit()
    db.close()
    with pytest.raises(StartupError, match=f"it has trigger {_FENCE_NAME}"):
        SqliteStore(path)
    assert subprocess.run([sys.executable, "-m", "proxy", "verify", "--store", str(path), "--integrity"],
                          capture_output=True).returncode == 1  # fmt: skip

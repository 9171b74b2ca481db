"""The fleet store against a real PostgreSQL: many proxies, one table, exact counts; an outage costs no
record (the journal takes it and is replayed once); require_record fails closed exactly while nothing
can record; the chain verifies; a SQLite history moves in with `edges --copy-to`."""

from __future__ import annotations

import asyncio
import logging
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp
import orjson
import psycopg
import pytest
import yaml

from proxy.config import parse
from proxy.errors import ConfigError, StartupError
from proxy.record.journal import Journal, JournaledStore, JournalFull
from proxy.record.postgres import SCHEMA_VERSION, PostgresStore, redact
from proxy.record.store import EdgeKey, SqliteStore
from tests.harness import LoopThread, ProxyHandle, ServeProcess
from tests.record.conftest import forge_unsigned_chain
from tests.servers.postgres import PostgresServer
from tests.servers.vllm_like import ROOT, SERVED

CONFIG = """
listen:
  http: 127.0.0.1:0
upstreams:
  - name: vllm
    url: ${UPSTREAM}
    region: eu
routes:
  - model: "*"
    upstream: vllm
policy:
  anonymous: allow
  default_purpose: assistant
zones:
  - name: audited
    labels: [audited]
    allow_purposes: [assistant]
    require_record: true
lineage:
  store: ${STORE}
  journal: ${JOURNAL}
  journal_max_rows: ${JOURNAL_MAX:-1000000}
"""

ROOT_DIR = Path(__file__).resolve().parents[2]
KEY = EdgeKey("svc", "assistant", "team-a", "ckpt", "team-a", "allow")


def counts(url: str) -> dict[tuple[str, ...], int]:
    store = PostgresStore(url, readonly=True)
    try:
        return {tuple(r.key): r.count for r in store.rows()}
    finally:
        store.close()


def replay_all(store: JournaledStore) -> None:
    """The aggregator's tick, then the slices it asks for while `replay` says more waits: the whole backlog, however
    many slices (`REPLAY_SLICE_S`, 0.1 s each) it takes. One tick replayed all of it only while the machine kept up:
    under CPU load a slice ended after the first batch (seen: 1 of 3 forged batches set aside)."""
    store.upsert([])
    for _ in range(1000):
        if not store.replay():
            return


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", *args], capture_output=True, text=True, timeout=60)


async def calls(url: str, labels: list[str]) -> list[int]:
    """One call per entry of `labels`, all at once; the statuses the clients saw."""
    async with aiohttp.ClientSession() as session:

        async def one(i: int, label: str) -> int:
            body = {"model": SERVED, "messages": [{"role": "user", "content": f"hi {i}"}]}
            async with session.post(f"{url}/v1/chat/completions", json=body,
                                    headers={"x-data-labels": label}) as resp:  # fmt: skip
                await resp.read()
                return resp.status

        return list(await asyncio.gather(*(one(i, label) for i, label in enumerate(labels))))


def flush(loop_thread: LoopThread, proxy: ProxyHandle) -> None:
    async def run() -> None:
        await proxy.process.runtime.sinks.flush()

    loop_thread.run(run())


def start(make_proxy: Callable[..., ProxyHandle], upstream: str, url: str, journal: Path, **env: str) -> ProxyHandle:
    return make_proxy(CONFIG, UPSTREAM=upstream, STORE=url, JOURNAL=str(journal), **env)


# -- the store itself


def test_store_upserts_chains_and_versions_its_schema(postgres: PostgresServer) -> None:
    url = postgres.database()
    store = PostgresStore(url)
    store.upsert([(KEY._replace(rule="zone:a"), 10.0, 11.0, 2, None)])
    store.upsert([(KEY, 5.0, 12.0, 3, "why"), (KEY._replace(caller="other"), 7.0, 7.0, 1, None)])
    again = PostgresStore(url)  # a second sidecar starting on the same database: no second schema or chain
    again.upsert([(KEY, 20.0, 20.0, 1, None)])
    rows = {r.key: r for r in store.rows()}
    assert (rows[KEY].count, rows[KEY].first_seen, rows[KEY].last_seen) == (4, 5.0, 20.0)
    assert (rows[KEY].rule, rows[KEY].reason) == (None, "why")
    zoned = rows[KEY._replace(rule="zone:a")]  # the same flow decided by a rule: an edge of its own
    assert (zoned.count, zoned.first_seen, zoned.last_seen, zoned.rule, zoned.reason) == (2, 10.0, 11.0, "zone:a", None)
    report = store.integrity()
    assert report.intact and report.entries == 4, report  # the first snapshot and three writes
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(RuntimeError, match="schema version 99 was written by a newer lineage-proxy"):
        PostgresStore(url)
    assert store.apply([(KEY, 30.0, 30.0, 1, None)], "t1") is True
    assert store.apply([(KEY, 30.0, 30.0, 1, None)], "t1") is False  # a token counts once
    assert {r.key: r.count for r in store.rows()}[KEY] == 5
    assert store.purge(1, now=86400 + 17.0) == 2  # `other` (last seen 7.0) and `zone:a` (11.0) go, KEY stays
    assert store.integrity().intact
    store.close()
    again.close()


def test_journal_takes_writes_while_the_database_is_away_and_replays_them_once(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    url = postgres.database()
    store = JournaledStore(PostgresStore(url), Journal(tmp_path / "journal.db"))
    store.upsert([(KEY, 1.0, 1.0, 1, None)])
    postgres.stop()
    try:
        store.upsert([(KEY, 2.0, 2.0, 2, None)])
        store.upsert([(KEY._replace(caller="new"), 3.0, 3.0, 1, None)])
        assert store.journal.held() == 2 and store.journaled == 2
        assert "lineage_proxy_edge_database_failing 1" in store.metrics()
    finally:
        postgres.start()
    # a crash after an entry was applied but before it was deleted: the token keeps it from counting twice
    entry_id, token, rows, _ = store.journal.oldest()[0]
    assert store.database.apply(rows, token)
    store._next_try = 0.0  # the retry is due now (instead of waiting RETRY_S)
    replay_all(store)
    assert store.journal.held() == 0 and store.replayed == 1
    assert counts(url) == {tuple(KEY): 3, tuple(KEY._replace(caller="new")): 1}
    assert store.integrity().intact
    store.close()


def test_a_full_journal_refuses_so_the_aggregator_keeps_the_counts(postgres: PostgresServer, tmp_path: Path) -> None:
    url = postgres.database()
    store = JournaledStore(PostgresStore(url), Journal(tmp_path / "journal.db", max_rows=1))
    postgres.stop()
    try:
        store.upsert([(KEY, 2.0, 2.0, 2, None)])
        with pytest.raises(Exception, match="journal_max_rows 1"):
            store.upsert([(KEY, 3.0, 3.0, 1, None)])
    finally:
        postgres.start()
    store.close()  # replays what it holds on the way out
    assert counts(url) == {tuple(KEY): 2}


def test_the_journal_limit_counts_the_writes_of_every_process_sharing_it(tmp_path: Path) -> None:
    """Workers share one journal file: each keeps a running count of what it holds (no scan per write),
    which must still see the others' appends and removals."""
    path = tmp_path / "journal.db"
    row = (*KEY[:6], 1.0, 1.0, 1, None, None)
    one, two = Journal(path, max_rows=3), Journal(path, max_rows=3)
    one.append("one:1", [row, row])
    with pytest.raises(JournalFull, match="holds 2 edge writes"):
        two.append("two:1", [row, row])
    two.append("two:1", [row])
    assert one.held() == two.held() == 3
    with pytest.raises(JournalFull, match="holds 3 edge writes"):
        one.append("one:2", [row])
    first = two.oldest()[0][0]
    two.remove(first)  # one worker replays the first entry ...
    one.remove(first)  # ... and the other, replaying it too, finds it gone
    assert one.held() == two.held() == 1
    one.append("one:2", [row, row])
    assert two.held() == 3 and Journal(path, max_rows=3).held() == 3
    assert [token for _, token, _, _ in two.oldest()] == ["two:1", "one:2"]
    one.close()
    two.close()


# -- proxies writing one database


def test_two_proxies_write_one_database_and_every_call_counts(  # type: ignore[no-untyped-def]
    postgres, vllm, make_proxy, loop_thread, tmp_path
) -> None:
    url = postgres.database()
    _, upstream = vllm
    proxies = [start(make_proxy, upstream, url, tmp_path / f"journal-{i}.db") for i in range(2)]
    labels = [("team-a" if i % 3 else "team-b") for i in range(120)]

    async def load() -> list[list[int]]:
        return list(await asyncio.gather(*(calls(p.url, labels) for p in proxies for _ in range(2))))

    statuses = loop_thread.run(load(), timeout=120)
    assert all(s == [200] * 120 for s in statuses)
    # each stop flushes and replays its journal: a write that found the other proxy holding the chain's lock
    # longer than LOCK_WAIT_S (a loaded machine: seen in CI, one proxy's whole flush) was journaled, not lost
    for proxy in proxies:
        loop_thread.run(proxy.process.stop())
    assert [Journal(tmp_path / f"journal-{i}.db").held() for i in range(2)] == [0, 0]
    assert counts(url) == {
        ("anonymous", "assistant", "team-a", ROOT, "team-a", "allow", ""): 4 * 80,
        ("anonymous", "assistant", "team-b", ROOT, "team-b", "allow", ""): 4 * 40,
    }
    assert cli("verify", "--store", url, "--integrity").returncode == 0


def test_database_stopped_mid_load_loses_and_doubles_nothing(  # type: ignore[no-untyped-def]
    postgres, vllm, make_proxy, loop_thread, tmp_path
) -> None:
    url = postgres.database()
    _, upstream = vllm
    proxy = start(make_proxy, upstream, url, tmp_path / "journal.db")
    seen: dict[str, int] = {}

    def count(label: str, statuses: list[int]) -> None:
        seen[label] = seen.get(label, 0) + statuses.count(200)

    async def during(action: Callable[[], None], label: str) -> None:
        got = await asyncio.gather(calls(proxy.url, [label] * 60), asyncio.to_thread(action))
        count(label, got[0])

    count("before", loop_thread.run(calls(proxy.url, ["before"] * 40)))
    loop_thread.run(during(postgres.stop, "before"))  # the database goes away under load
    count("outage", loop_thread.run(calls(proxy.url, ["outage"] * 40)))  # a new flow while it is away
    flush(loop_thread, proxy)
    edges = proxy.process.runtime.sinks.get("edges")
    assert edges is not None
    assert "lineage_proxy_edge_database_failing 1" in edges.metrics()
    loop_thread.run(during(postgres.start, "after"))  # and comes back under load
    loop_thread.run(proxy.process.stop())  # drains, flushes, and replays the journal
    assert seen == {"before": 100, "outage": 40, "after": 60}  # calls kept flowing throughout
    assert counts(url) == {("anonymous", "assistant", k, ROOT, k, "allow", ""): n for k, n in seen.items()}
    assert Journal(tmp_path / "journal.db").held() == 0
    assert cli("verify", "--store", url, "--integrity").returncode == 0


def test_require_record_fails_closed_exactly_while_nothing_can_record(  # type: ignore[no-untyped-def]
    postgres, vllm, make_proxy, loop_thread, tmp_path
) -> None:
    url = postgres.database()
    _, upstream = vllm
    proxy = start(make_proxy, upstream, url, tmp_path / "journal.db", JOURNAL_MAX="1")
    assert loop_thread.run(calls(proxy.url, ["audited", "open"])) == [200, 200]
    postgres.stop()
    try:
        # the database is away, the journal (one row) still takes a write: the zone's calls go on
        assert loop_thread.run(calls(proxy.url, ["audited"])) == [200]
        flush(loop_thread, proxy)  # journaled: the journal is now full
        assert loop_thread.run(calls(proxy.url, ["audited"])) == [200]
        flush(loop_thread, proxy)  # neither can take it: from here nothing records
        assert loop_thread.run(calls(proxy.url, ["audited", "open", "audited"])) == [503, 200, 503]
    finally:
        postgres.start()
    proxy.process.runtime.sinks.get("edges")._store._next_try = 0.0  # type: ignore[union-attr]
    flush(loop_thread, proxy)  # the database answers: journal replayed, kept counts written
    assert loop_thread.run(calls(proxy.url, ["audited"])) == [200]
    loop_thread.run(proxy.process.stop())
    found = counts(url)
    assert found[("anonymous", "assistant", "audited", ROOT, "audited", "allow", "")] == 4
    assert found[("anonymous", "assistant", "open", ROOT, "open", "allow", "")] == 2
    assert found[("anonymous", "assistant", "audited", "", "", "deny", "zone:audited")] == 2  # the refusals too


def test_a_journal_whose_disk_refuses_while_the_database_is_away(  # type: ignore[no-untyped-def]
    postgres, vllm, make_proxy, loop_thread, tmp_path, caplog
) -> None:
    """Database down and the journal's own file refusing writes: the write fails (counted, logged once per
    outage by each layer), the counts wait in memory, require_record zones answer 503 record_unavailable
    while other calls go on; once the database answers, every kept count is written."""
    url = postgres.database()
    _, upstream = vllm
    proxy = start(make_proxy, upstream, url, tmp_path / "journal.db")
    assert loop_thread.run(calls(proxy.url, ["audited", "open"])) == [200, 200]
    edges = proxy.process.runtime.sinks.get("edges")
    assert edges is not None
    store = edges._store  # type: ignore[attr-defined]
    # SQLite's own "the file cannot be written" (a read-only volume; the tests run as root, which chmod
    # does not stop): every write to the journal fails with "attempt to write a readonly database"
    store.journal._db.execute("PRAGMA query_only = ON")
    postgres.stop()
    try:
        with caplog.at_level(logging.ERROR, logger="lineage_proxy.edges"):
            assert loop_thread.run(calls(proxy.url, ["audited"])) == [200]  # counted in memory
            flush(loop_thread, proxy)  # neither the database nor the journal takes it
            assert loop_thread.run(calls(proxy.url, ["audited", "open", "audited"])) == [503, 200, 503]
            flush(loop_thread, proxy)
        metrics = list(edges.metrics())
        assert "lineage_proxy_edge_store_failing 1" in metrics
        assert "lineage_proxy_edge_database_failing 1" in metrics
        assert "lineage_proxy_edge_journaled_total 0" in metrics and store.journal.held() == 0
        assert edges.write_errors >= 1  # type: ignore[attr-defined]
        messages = [r.getMessage() for r in caplog.records]
        (store_line,) = [m for m in messages if m.startswith("lineage store: writes are failing")]
        assert "attempt to write a readonly database" in store_line
        assert len([m for m in messages if m.startswith(f"lineage database {redact(url)}: writes are failing")]) == 1
    finally:
        store.journal._db.execute("PRAGMA query_only = OFF")
        postgres.start()
    store._next_try = 0.0  # the retry is due now (instead of waiting RETRY_S)
    flush(loop_thread, proxy)  # the database answers: the counts kept in memory are written
    assert "lineage_proxy_edge_store_failing 0" in list(edges.metrics())
    assert loop_thread.run(calls(proxy.url, ["audited"])) == [200]
    loop_thread.run(proxy.process.stop())
    found = counts(url)
    assert found[("anonymous", "assistant", "audited", ROOT, "audited", "allow", "")] == 3
    assert found[("anonymous", "assistant", "open", ROOT, "open", "allow", "")] == 2
    assert found[("anonymous", "assistant", "audited", "", "", "deny", "zone:audited")] == 2


def test_kill_9_during_an_outage_loses_no_flow_whose_reply_was_sent(postgres, vllm, tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = postgres.database()
    _, upstream = vllm
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG)
    env = {"UPSTREAM": upstream, "STORE": url, "JOURNAL": str(tmp_path / "journal.db")}
    serve = ServeProcess(str(config), env=env)
    try:
        postgres.stop()
        try:
            status = asyncio.run(calls(serve.url, ["fresh-flow"]))
            assert status == [200]
            serve.proc.send_signal(signal.SIGKILL)
            serve.proc.wait(10)
        finally:
            postgres.start()
    finally:
        serve.stop()
    again = ServeProcess(str(config), env=env)  # the next start replays what the dead one journaled
    assert again.stop() == 0
    assert counts(url) == {("anonymous", "assistant", "fresh-flow", ROOT, "fresh-flow", "allow", ""): 1}


# -- the commands


def test_verify_integrity_reads_a_postgresql_store_and_names_an_edited_row(postgres: PostgresServer) -> None:
    url = postgres.database()
    store = PostgresStore(url)
    store.upsert([(KEY, 1.0, 2.0, 5, None)])
    store.close()
    done = cli("verify", "--store", url, "--integrity")
    assert done.returncode == 0, done.stderr
    assert "intact: 2 chain entries" in done.stdout
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE edges SET count = 50")
    done = cli("verify", "--store", url, "--integrity")
    assert done.returncode == 1
    assert "the store says count 50" in done.stdout + done.stderr


def test_the_baseline_gate_with_integrity_fails_a_fleet_record_edited_to_look_approved(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    url = postgres.database()
    store = PostgresStore(url)
    store.upsert([(KEY, 1.0, 2.0, 5, None), (KEY._replace(purpose="ads"), 1.0, 2.0, 1, None)])
    store.close()
    baseline = tmp_path / "baseline.yaml"  # svc may act for assistant on team-a data, not for ads
    baseline.write_text("version: 1\nflows:\n  - {caller: svc, purpose: assistant, labels: [team-a]}\n")
    gate = ("verify", "--store", url, "--baseline", str(baseline), "--integrity")
    judged = cli(*gate)
    assert judged.returncode == 1 and "intact: 2 chain entries" in judged.stdout, judged.stdout + judged.stderr
    assert "UNAPPROVED new-purpose: new purpose 'ads'" in judged.stdout
    with psycopg.connect(url, autocommit=True) as conn:  # the ads flow made to look like the approved one
        conn.execute("DELETE FROM edges WHERE purpose = 'ads'")
        conn.execute("UPDATE edges SET count = 6")
    assert cli("verify", "--store", url, "--baseline", str(baseline)).returncode == 0  # the table as it stands
    edited = cli(*gate)
    assert edited.returncode == 1 and "NOT intact" in edited.stdout and "are not judged" in edited.stdout, edited


def test_edges_copy_to_moves_a_sqlite_history_into_postgresql_once(postgres: PostgresServer, tmp_path: Path) -> None:
    url = postgres.database()
    zoned, denied = KEY._replace(rule="zone:a"), KEY._replace(decision="deny", rule="caller:x")
    sqlite = SqliteStore(tmp_path / "lineage.db")
    sqlite.upsert([(zoned, 1.0, 2.0, 7, "a reason")])
    sqlite.upsert([(denied, 3.0, 4.0, 2, None), (zoned, 1.5, 5.0, 1, None)])
    sqlite.close()
    done = cli("edges", "--store", str(tmp_path / "lineage.db"), "--copy-to", url)
    assert done.returncode == 0, done.stderr
    assert "copied 2 edges (10 calls)" in done.stdout
    assert cli("edges", "--store", str(tmp_path / "lineage.db"), "--copy-to", url).returncode == 0  # adds nothing
    assert counts(url) == {tuple(zoned): 8, tuple(denied): 2}
    grown = SqliteStore(tmp_path / "lineage.db")  # the source goes on recording: a new head, the same history
    grown.upsert([(zoned, 6.0, 6.0, 1, None)])
    grown.close()
    again = cli("edges", "--store", str(tmp_path / "lineage.db"), "--copy-to", url)
    assert again.returncode == 0 and "copied into" in again.stdout and "nothing added" in again.stdout, again.stdout
    assert counts(url) == {tuple(zoned): 8, tuple(denied): 2}  # never counted twice
    store = PostgresStore(url, readonly=True)
    row = next(r for r in store.rows() if r.key == zoned)
    assert (row.first_seen, row.last_seen, row.rule, row.reason) == (1.0, 5.0, "zone:a", "a reason")
    assert store.integrity().intact
    store.close()
    listed = cli("edges", "--store", url, "--json")
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 2


def test_read_commands_report_an_unreachable_database_without_its_password(postgres: PostgresServer) -> None:
    url = f"postgresql://postgres:secret@127.0.0.1:{postgres.port}/nosuchdb?connect_timeout=2"
    done = cli("edges", "--store", url)
    assert done.returncode == 1
    assert redact(url) in done.stderr and "secret" not in done.stderr


@pytest.mark.parametrize(
    ("lineage", "problem"),
    [
        ("store: 'postgresql://u@h:5432/db?bogus=1'", "lineage.store: not a valid PostgreSQL URL"),
        ("store: 'postgresql://u@h:5432'", "lineage.store: the PostgreSQL URL names no database"),
        ("password_file: ./missing", "lineage.password_file: cannot read a password"),
        ("journal_max_rows: 0", "lineage.journal_max_rows: must be >= 1"),
    ],
)
def test_config_checks_the_postgresql_settings(lineage: str, problem: str) -> None:
    text = f"upstreams: [{{name: u, url: 'http://127.0.0.1:1'}}]\nroutes: [{{model: '*', upstream: u}}]\nlineage:\n  {lineage}\n"
    with pytest.raises(ConfigError) as caught:
        parse(text, source="t.yaml")
    assert any(problem in p for p in caught.value.problems), caught.value.problems


def test_the_kubernetes_example_config_is_valid(tmp_path: Path) -> None:
    documents = list(yaml.safe_load_all((ROOT_DIR / "config" / "kubernetes" / "lineage-proxy.yaml").read_text()))
    config_map = next(d for d in documents if d["kind"] == "ConfigMap")
    secret = next(d for d in documents if d["kind"] == "Secret")
    password = tmp_path / "db-password"
    password.write_text(secret["stringData"]["db-password"])
    text = config_map["data"]["proxy.yaml"].replace("/run/secrets/lineage/db-password", str(password))
    config = parse(
        text, source="proxy.yaml", env={"GLASSES_APP_KEY_SHA256": secret["stringData"]["glasses-app-key-sha256"]}
    )
    assert config.lineage.store is not None and config.lineage.store.startswith("postgresql://")
    assert config.zones[0].require_record
    pod = next(d for d in documents if d["kind"] == "Deployment")["spec"]["template"]
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(config.listen.admin.port)  # type: ignore[union-attr]
    proxy = next(c for c in pod["spec"]["containers"] if c["name"] == "lineage-proxy")
    assert proxy["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_a_database_that_hangs_fails_the_write_in_time_and_writes_go_on(postgres: PostgresServer) -> None:
    """A lock held elsewhere (or a stalled server) would hold the writer thread for ever: the statement
    timeout fails the write, the caller keeps its counts, and the next write after the hang succeeds."""
    import time

    from proxy.record.postgres import LOCK_ID

    url = postgres.database()
    store = PostgresStore(url, statement_timeout_s=0.3)
    with psycopg.connect(url) as holder:  # a transaction holding the writers' lock
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_ID,))
        started = time.monotonic()
        with pytest.raises(psycopg.OperationalError):
            store.upsert([(KEY, 1.0, 1.0, 1, None)])
        assert time.monotonic() - started < 5
    store.upsert([(KEY, 2.0, 2.0, 2, None)])
    assert {r.key: r.count for r in store.rows()}[KEY] == 2
    store.close()


def test_two_sidecars_of_two_workers_each_write_one_database(postgres, vllm, loop_thread, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Four processes (two `serve --workers 2`) writing one database: every call counts exactly once,
    the new flows of all four race on one chain and it still verifies."""
    url = postgres.database()
    _, upstream = vllm
    servers = []
    for i in range(2):
        config = tmp_path / f"proxy-{i}.yaml"
        config.write_text(CONFIG)
        env = {
            "UPSTREAM": upstream,
            "STORE": url,
            "JOURNAL": str(tmp_path / f"journal-{i}.db"),
            "TMPDIR": str(tmp_path),
        }
        servers.append(ServeProcess(str(config), "--workers", "2", env=env))
    labels = [("team-a" if i % 3 else "team-b") for i in range(90)]
    try:

        async def load() -> list[list[int]]:  # separate connections, so each sidecar's kernel spreads them
            return list(await asyncio.gather(*(calls(s.url, labels) for s in servers for _ in range(2))))

        statuses = loop_thread.run(load(), timeout=120)
        assert all(s == [200] * 90 for s in statuses)
    finally:
        assert [s.stop() for s in servers] == [0, 0]  # SIGTERM: each worker flushes its counts
    assert counts(url) == {
        ("anonymous", "assistant", "team-a", ROOT, "team-a", "allow", ""): 4 * 60,
        ("anonymous", "assistant", "team-b", ROOT, "team-b", "allow", ""): 4 * 30,
    }
    assert cli("verify", "--store", url, "--integrity").returncode == 0


def test_a_proxy_started_while_the_database_is_down_serves_and_writes_everything_once_it_is_back(  # type: ignore[no-untyped-def]
    postgres, vllm, make_proxy, loop_thread, tmp_path, caplog
) -> None:
    """A sidecar restarted during a database outage (maintenance, failover) must not crash-loop: it
    starts, journals (so require_record zones still record), makes the schema on the first write that
    reaches the database, and replays the journal once."""
    url = postgres.database()  # made, but the proxy has never seen it: no tables yet
    _, upstream = vllm
    postgres.stop()
    try:
        with caplog.at_level(logging.ERROR, logger="lineage_proxy.edges"):
            proxy = start(make_proxy, upstream, url, tmp_path / "journal.db")
        assert [r.getMessage() for r in caplog.records if "writes are failing" in r.getMessage()]
        assert loop_thread.run(calls(proxy.url, ["audited", "open", "audited"])) == [200, 200, 200]
        flush(loop_thread, proxy)
        edges = proxy.process.runtime.sinks.get("edges")
        assert edges is not None
        assert "lineage_proxy_edge_database_failing 1" in edges.metrics()
        assert Journal(tmp_path / "journal.db").held() > 0
    finally:
        postgres.start()
    proxy.process.runtime.sinks.get("edges")._store._next_try = 0.0  # type: ignore[union-attr]
    loop_thread.run(proxy.process.stop())  # drains, flushes, and replays the journal
    assert counts(url) == {
        ("anonymous", "assistant", "audited", ROOT, "audited", "allow", ""): 2,
        ("anonymous", "assistant", "open", ROOT, "open", "allow", ""): 1,
    }
    assert Journal(tmp_path / "journal.db").held() == 0
    assert cli("verify", "--store", url, "--integrity").returncode == 0


def test_a_database_that_answers_with_an_error_stops_the_start_with_one_line(  # type: ignore[no-untyped-def]
    postgres, tmp_path
) -> None:
    """Unlike a database that is away, one that answers "no" (no such database, wrong password, no
    rights) is a configuration to fix: `serve` says so in one line, without the password, and exits 1."""
    missing = postgres.url("no_such_database").replace("postgres@", "postgres:s3cret@")
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG.replace("${UPSTREAM}", "http://127.0.0.1:9").replace("${STORE}", f'"{missing}"')
                      .replace("${JOURNAL}", str(tmp_path / "journal.db")))  # fmt: skip
    served = cli("serve", "--config", str(config))
    assert served.returncode == 1, served.stderr
    lines = served.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in served.stderr, served.stderr
    assert "cannot open the lineage store" in lines[0] and 'database "no_such_database" does not exist' in lines[0]
    assert "s3cret" not in served.stderr and "***" in lines[0]


@pytest.mark.parametrize(
    ("message", "lasting"),
    [
        ('connection to server at "10.0.0.5", port 5432 failed: Connection refused', False),
        ('connection to server at "db", port 5432 failed: timeout expired', False),
        ('could not translate host name "db" to address: Name or service not known', False),
        ('connection to server at "db", port 5432 failed: FATAL:  the database system is starting up', False),
        ('connection to server at "db", port 5432 failed: FATAL:  sorry, too many clients already', False),
        (
            'connection to server at "db", port 5432 failed: FATAL:  the database system is not yet accepting connections',
            False,
        ),
        ('connection to server at "db", port 5432 failed: FATAL:  password authentication failed for user "lp"', True),
        ('connection to server at "db", port 5432 failed: FATAL:  database "lineage" does not exist', True),
        ('connection to server at "db", port 5432 failed: FATAL:  no pg_hba.conf entry for host "10.0.0.9"', True),
    ],
)
def test_an_outage_is_waited_out_and_a_refusal_is_not(message: str, lasting: bool) -> None:
    from proxy.record.postgres import refused

    assert refused(psycopg.OperationalError(f"connection failed: {message}")) is lasting


@pytest.mark.parametrize(("sqlstate", "lasting"), [("28P01", True), ("3D000", True), ("42501", True),
                                                   ("57P01", False), ("57014", False), ("53300", False)])  # fmt: skip
def test_an_answer_with_a_sqlstate_is_lasting_only_for_rights_and_names(sqlstate: str, lasting: bool) -> None:
    from proxy.record.postgres import refused

    error = psycopg.OperationalError("server said no")
    error.sqlstate = sqlstate  # type: ignore[misc]  # what psycopg sets from the server's answer
    assert refused(error) is lasting


def test_redact_hides_a_password_in_the_query_string_too() -> None:
    assert redact("postgresql://lp:pw@db:5432/lineage") == "postgresql://lp:***@db:5432/lineage"
    assert redact("postgresql://db/lineage?password=s3cret&sslmode=require") == (
        "postgresql://db/lineage?password=***&sslmode=require"
    )
    assert redact("postgresql://lp:pw@h1:5432,h2:5433/lineage?sslpassword=k") == (
        "postgresql://lp:***@h1:5432,h2:5433/lineage?sslpassword=***"
    )


@pytest.mark.parametrize(
    ("url", "password", "shown"),
    [
        ("postgresql://lp:12?34@db:5432/lineage", "12?34", "postgresql://lp:***@db:5432/lineage"),
        ("postgres://lp:s3#cr@db/lineage?sslmode=require", "s3#cr", "postgres://lp:***@db/lineage?sslmode=require"),
        ("postgresql://lp:a?b#c@h1,h2:5433/lineage?sslpassword=kz9", "a?b#c",
         "postgresql://lp:***@h1,h2:5433/lineage?sslpassword=***"),
        ("postgresql://lp:pw@db?dbname=lineage&application_name=a@b", "pw",
         "postgresql://lp:***@db?dbname=lineage&application_name=a@b"),
    ],
)  # fmt: skip
def test_redact_and_scrub_hide_a_password_as_libpq_reads_it(url: str, password: str, shown: str) -> None:
    """libpq's userinfo ends at its first `@` before any `/`, so a `?` or `#` before it is the password's, where
    `urlsplit` reads a query or fragment: such a password was shown as written."""
    from proxy.record.postgres import scrub

    assert psycopg.conninfo.conninfo_to_dict(url)["password"] == password
    assert redact(url) == shown
    assert scrub(f'invalid URI "{url}", token "{password}"', url) == f'invalid URI "{shown}", token "***"'


def test_a_purge_or_a_start_never_signs_an_edited_fleet_record(
    postgres: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = postgres.database()
    store = PostgresStore(url, key=b"k")
    store.upsert([(KEY, 100.0, 100.0, 3, None), (KEY._replace(decision="deny", rule="zone:z"), 100.0, 100.0, 2, "no")])
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM edges WHERE decision = 'deny'")
        conn.execute("INSERT INTO edges VALUES ('old', 'p', '', '', '', 'allow', 0, 0, 1, '', NULL)")
    with caplog.at_level("ERROR", logger="lineage_proxy.edges"):
        assert store.purge(30) == 0  # the purgeable row stays: a snapshot would sign the edited table
        assert "retention purge skipped: the record does not verify" in caplog.text
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DELETE FROM chain")
        with pytest.raises(StartupError, match="its chain is empty or missing, though the store holds edges"):
            PostgresStore(url, key=b"k")  # a keyed restart on the emptied chain stops
    report = store.integrity(b"k")
    store.close()
    assert not report.intact and "is in the store but in no chain entry" in (report.problem or ""), report


def test_a_journaled_batch_edited_or_added_by_hand_is_never_replayed_and_signed(
    postgres: PostgresServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = postgres.database()
    key = b"the chain's key"
    store = JournaledStore(PostgresStore(url, key=key), Journal(tmp_path / "journal.db", key=key))
    denied = KEY._replace(decision="deny", rule="zone:z")
    postgres.stop()
    try:
        store.upsert([(KEY, 1.0, 1.0, 1, None)])
        store.upsert([(denied, 2.0, 2.0, 2, "not for ads")])
        store.upsert([(KEY, 3.0, 3.0, 1, None)])
    finally:
        postgres.start()
    with sqlite3.connect(tmp_path / "journal.db") as db:  # the denial's count edited; a flow forged
        db.execute(
            "UPDATE entries SET rows = replace(rows, ',2,\"zone:z\"', ',0,\"zone:z\"') WHERE CAST(rows AS TEXT) LIKE '%deny%'"
        )
        forged = orjson.dumps([[*KEY._replace(caller="forged")[:6], 4.0, 4.0, 100, None, None]]).decode()
        db.execute("INSERT INTO entries (token, n, rows, mac) VALUES ('x:1', 1, ?, 'ab12')", (forged,))
        db.execute("INSERT INTO entries (token, n, rows) VALUES ('x:2', 1, ?)", (forged,))
    store._next_try = 0.0
    with caplog.at_level("ERROR", logger="lineage_proxy.edges"):
        replay_all(store)
    assert caplog.text.count("is not replayed: its signature does not match") == 3
    assert counts(url) == {tuple(KEY): 2}  # the two authentic batches; nothing forged, the edited denial set aside
    assert "lineage_proxy_edge_journal_rejected_total 3" in store.metrics()
    with sqlite3.connect(tmp_path / "journal.db") as db:
        assert db.execute("SELECT count(*) FROM rejected").fetchone() == (3,)
        assert db.execute("SELECT count(*) FROM entries").fetchone() == (0,)
    assert store.integrity(key).intact
    store.close()


def test_edges_copy_to_moves_a_keyed_history_and_signs_the_copy(postgres: PostgresServer, tmp_path: Path) -> None:
    url = postgres.database()
    key_file = tmp_path / "chain.key"
    key_file.write_text("one key for the fleet\n")
    PostgresStore(url, key=b"one key for the fleet").close()  # the fleet's store, keyed
    sqlite = SqliteStore(tmp_path / "lineage.db", key=b"one key for the fleet")
    sqlite.upsert([(KEY._replace(rule="zone:a"), 1.0, 2.0, 7, None)])
    sqlite.close()
    unkeyed = cli("edges", "--store", str(tmp_path / "lineage.db"), "--copy-to", url)
    assert unkeyed.returncode == 1 and "give --key-file" in unkeyed.stderr
    done = cli("edges", "--store", str(tmp_path / "lineage.db"), "--copy-to", url, "--key-file", str(key_file))
    assert done.returncode == 0 and "copied 1 edges (7 calls)" in done.stdout, done.stdout + done.stderr
    verified = cli("verify", "--store", url, "--integrity", "--key-file", str(key_file))
    assert verified.returncode == 0, verified.stdout + verified.stderr  # the copy's entry is signed too
    assert cli("edges", "--store", url, "--key-file", str(key_file)).returncode == 2  # only with --copy-to


def test_copy_to_never_signs_over_an_edited_fleet_record(postgres: PostgresServer, tmp_path: Path) -> None:
    url = postgres.database()
    key_file = tmp_path / "k"
    key_file.write_text("k" * 16 + "\n")
    fleet = PostgresStore(url, key=b"k" * 16)
    fleet.upsert([(KEY, 1.0, 1.0, 500, None)])
    fleet.close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE edges SET count = 1")  # edited without the key
    source = SqliteStore(tmp_path / "new.db", key=b"k" * 16)
    source.upsert([(KEY._replace(caller="new"), 2.0, 2.0, 1, None)])
    source.close()
    done = cli("edges", "--store", str(tmp_path / "new.db"), "--copy-to", url, "--key-file", str(key_file))
    assert done.returncode == 1 and "its own record does not verify" in done.stderr, done.stdout + done.stderr
    verified = cli("verify", "--store", url, "--integrity", "--key-file", str(key_file))
    assert verified.returncode == 1 and "the store says count 1" in verified.stdout


def test_a_history_is_copied_once_even_after_the_source_was_purged(postgres: PostgresServer, tmp_path: Path) -> None:
    url = postgres.database()
    source = SqliteStore(tmp_path / "lineage.db")
    source.upsert([(KEY, 1.0, 9e9, 100, None), (KEY._replace(caller="old"), 1.0, 1.0, 1, None)])
    source.close()
    assert cli("edges", "--store", str(tmp_path / "lineage.db"), "--copy-to", url).returncode == 0
    source = SqliteStore(tmp_path / "lineage.db")
    source.upsert([(KEY, 2.0, 9e9, 1, None)])  # a flush, then the purge cuts the copied head from the chain
    assert source.purge(30) == 1
    source.close()
    again = cli("edges", "--store", str(tmp_path / "lineage.db"), "--copy-to", url)
    assert again.returncode == 0 and "nothing added" in again.stdout, again.stdout
    assert counts(url) == {tuple(KEY): 100, tuple(KEY._replace(caller="old")): 1}  # it was 201 calls


def test_an_unkeyed_history_copies_into_a_keyed_fleet_store(postgres: PostgresServer, tmp_path: Path) -> None:
    url = postgres.database()
    key_file = tmp_path / "k"
    key_file.write_text("k" * 16 + "\n")
    PostgresStore(url, key=b"k" * 16).close()
    source = SqliteStore(tmp_path / "lineage.db")  # no key
    source.upsert([(KEY, 1.0, 2.0, 3, None)])
    source.close()
    copy = ("edges", "--store", str(tmp_path / "lineage.db"), "--copy-to", url, "--key-file", str(key_file))
    refused = cli(*copy)  # given a key, the source must be signed with it, as for verify
    assert refused.returncode == 1 and "add --unkeyed-source" in refused.stderr, refused.stderr
    done = cli(*copy, "--unkeyed-source")
    assert done.returncode == 0, done.stdout + done.stderr
    assert cli("verify", "--store", url, "--integrity", "--key-file", str(key_file)).returncode == 0


def test_a_dropped_fleet_chain_is_never_adopted(postgres: PostgresServer, caplog: pytest.LogCaptureFixture) -> None:
    url = postgres.database()
    PostgresStore(url, key=b"k").upsert([(KEY, 1.0, 1.0, 5, None)])
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE edges SET count = 1")
        conn.execute("DROP TABLE chain")
        conn.execute("DELETE FROM meta WHERE key = 'anchor'")
    with pytest.raises(StartupError, match="its chain is empty or missing"):
        PostgresStore(url, key=b"k")
    reader = PostgresStore(url, readonly=True)
    assert not reader.integrity(b"k").intact
    reader.close()


def test_a_dropped_fleet_meta_table_is_named_as_such(postgres: PostgresServer) -> None:
    url = postgres.database()
    store = PostgresStore(url, key=b"k")
    store.upsert([(KEY, 1.0, 1.0, 5, None)])
    store.close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE meta")  # the chain left whole: before, the verdict named the chain table dropped
    reader = PostgresStore(url, readonly=True)
    assert reader.integrity(b"k").problem == "this store has no meta table (it was dropped)"
    reader.close()


@pytest.mark.parametrize(
    ("sql", "needle"),
    [
        ("ALTER TABLE chain DROP COLUMN at", "this store's chain table has no at column"),
        ("ALTER TABLE meta RENAME COLUMN value TO v", "this store's meta table has no value column"),
        ("ALTER TABLE edges DROP COLUMN reason", "this store's edges table has no reason column"),
    ],
)
def test_a_fleet_column_dropped_is_a_verdict_not_a_usage_error(
    postgres: PostgresServer, tmp_path: Path, sql: str, needle: str
) -> None:
    url = postgres.database()
    store = PostgresStore(url, key=b"k")
    store.upsert([(KEY, 1.0, 1.0, 5, None)])
    store.close()
    key_file = tmp_path / "key"
    key_file.write_bytes(b"k")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)  # before, 'cannot read (or open) it as a lineage store: column ... does not exist', exit 2
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text("version: 1\nflows:\n  - {caller: svc, purpose: assistant, labels: [team-a]}\n")
    for gate in ((), ("--baseline", str(baseline))):
        done = cli("verify", "--store", url, "--integrity", "--key-file", str(key_file), *gate)
        assert done.returncode == 1 and "NOT intact" in done.stdout and needle in done.stdout, done
        assert "Traceback" not in done.stderr


def test_an_unsigned_journal_batch_is_set_aside_however_it_got_there(
    postgres: PostgresServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With a key, a batch without a valid signature is never replayed: a backlog from a release before
    signatures, and a journal whose `mac` column was dropped to pass for one, look the same. Rows of the
    wrong types, or a token that is not text, are set aside too; 10-item rows (written before reasons)
    replay."""
    url = postgres.database()
    path = tmp_path / "journal.db"
    with sqlite3.connect(path) as db:  # the journal's schema before signatures (or with its column dropped)
        db.execute("CREATE TABLE entries (id INTEGER PRIMARY KEY AUTOINCREMENT, token TEXT NOT NULL, "
                   "n INTEGER NOT NULL, rows TEXT NOT NULL)")  # fmt: skip
        for id_ in (-5, 1, 2):
            db.execute("INSERT INTO entries (id, token, n, rows) VALUES (?, ?, 1, ?)", (id_, f"x:{id_}",
                       orjson.dumps([[*KEY._replace(caller="forged")[:6], 1.0, 1.0, 9, None, None]]).decode()))  # fmt: skip
        db.execute("INSERT INTO entries (id, token, n, rows) VALUES (3, x'00', 1, '[]')")
    store = JournaledStore(PostgresStore(url, key=b"k"), Journal(path, key=b"k"))
    with caplog.at_level("ERROR", logger="lineage_proxy.edges"):
        store._backlog, store._next_try = True, 0.0
        replay_all(store)
    assert counts(url) == {} and store.rejected == 4, (counts(url), store.rejected)
    assert "its signature does not match" in caplog.text and "its token or rows are not text" in caplog.text
    plain_url = postgres.database()  # an unkeyed store (a keyed one refuses unkeyed writers)
    unkeyed = JournaledStore(PostgresStore(plain_url), Journal(tmp_path / "j2.db"))
    unkeyed.journal.append("p:1", [["a", "b", "c", "d", "e", "allow", "soon", 1.0, 1, None, None]])
    unkeyed.journal.append("p:2", [[*KEY[:6], 2.0, 2.0, 1, None]])  # 10 items: no reason
    unkeyed.journal.append("p:3", [[*KEY._replace(caller="big")[:6], 3.0, 3.0, 2**63, None, None]])  # over bigint
    unkeyed._backlog, unkeyed._next_try = True, 0.0
    replay_all(unkeyed)  # the wrong types, and values the database refuses: set aside, never retried for ever
    assert unkeyed.rejected == 2 and unkeyed.journal.held() == 0 and counts(plain_url) == {tuple(KEY): 1}
    store.close()
    unkeyed.close()


def test_a_keyed_fleet_writer_never_signs_on_top_of_a_chain_rebuilt_without_the_key(postgres: PostgresServer) -> None:
    from proxy.errors import StartupError
    from proxy.record import integrity

    url = postgres.database()
    store = PostgresStore(url, key=b"k")
    store.upsert([(KEY._replace(decision="deny", rule="zone:z"), 1.0, 1.0, 2, None)])
    with psycopg.connect(url, autocommit=True) as conn:  # deny made allow; the chain replaced by an unsigned snapshot
        conn.execute("UPDATE edges SET decision = 'allow'")
        forge_unsigned_chain(conn, "%s")
    with pytest.raises(integrity.UnsignedHead):
        store.upsert([(KEY, 2.0, 2.0, 1, None)])  # the running writer: its counts stay with the aggregator
    store.close()
    with pytest.raises(StartupError, match="newest entry is unsigned"):
        PostgresStore(url, key=b"k")  # a keyed restart
    assert not PostgresStore(url, readonly=True).integrity(b"k").intact


def test_copying_after_an_old_empty_store_was_copied_still_copies(postgres: PostgresServer, tmp_path: Path) -> None:
    """Every new store's first entry is the same empty snapshot: it is never taken for a history."""
    url = postgres.database()
    empty = SqliteStore(tmp_path / "empty.db")
    empty.close()
    with sqlite3.connect(tmp_path / "empty.db") as db:
        db.execute("DELETE FROM meta WHERE key = 'origin'")  # as an earlier release made it
    assert cli("edges", "--store", str(tmp_path / "empty.db"), "--copy-to", url).returncode == 0
    busy = SqliteStore(tmp_path / "busy.db")
    busy.upsert([(KEY, 1.0, 1.0, 4, None)])
    busy.close()
    with sqlite3.connect(tmp_path / "busy.db") as db:
        db.execute("DELETE FROM meta WHERE key = 'origin'")
    done = cli("edges", "--store", str(tmp_path / "busy.db"), "--copy-to", url)
    assert done.returncode == 0 and "copied 1 edges (4 calls)" in done.stdout, done.stdout
    assert counts(url) == {tuple(KEY): 4}


def test_copy_to_refuses_a_source_rebuilt_without_the_key_a_self_copy_and_a_key_mismatch(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    from proxy.record import integrity

    url = postgres.database()
    key_file = tmp_path / "k"
    key_file.write_text("k" * 16 + "\n")
    PostgresStore(url, key=b"k" * 16).close()
    source = SqliteStore(tmp_path / "lineage.db", key=b"k" * 16)
    source.upsert([(KEY, 1.0, 1.0, 3, None)])
    source.close()
    with sqlite3.connect(tmp_path / "lineage.db") as db:  # a count edited, the chain rebuilt unkeyed
        db.execute("UPDATE edges SET count = 100000")
        prev = integrity.GENESIS
        for seq, body in db.execute("SELECT seq, body FROM chain ORDER BY seq").fetchall():
            body = body.replace(",3,", ",100000,")
            db.execute("UPDATE chain SET body = ?, prev = ?, hash = ? WHERE seq = ?",
                       (body, prev, integrity.link(prev, body, None), seq))  # fmt: skip
            prev = integrity.link(prev, body, None)
    rebuilt = cli("edges", "--store", str(tmp_path / "lineage.db"), "--copy-to", url, "--key-file", str(key_file))
    assert rebuilt.returncode == 1 and "not signed" in rebuilt.stderr, rebuilt.stdout + rebuilt.stderr
    unkeyed_url = postgres.database()
    plain = PostgresStore(unkeyed_url)
    plain.upsert([(KEY, 1.0, 1.0, 7, None)])
    plain.close()
    with psycopg.connect(unkeyed_url, autocommit=True) as conn:  # as a store written before origins
        conn.execute("DELETE FROM meta WHERE key = 'origin'")
    into_itself = subprocess.run([sys.executable, "-c", "import sys; from proxy.edges_query import run_edges; "
                                  "import argparse; sys.exit(run_edges(argparse.Namespace(store=sys.argv[1], "
                                  "copy_to=sys.argv[1], key_file=None, unkeyed_source=False)))", unkeyed_url],
                                 capture_output=True, text=True, timeout=60, cwd=ROOT_DIR)  # fmt: skip
    assert into_itself.returncode == 1 and "it is the store being copied" in into_itself.stderr, into_itself.stderr
    other = SqliteStore(tmp_path / "other.db", key=b"k" * 16)
    other.upsert([(KEY, 1.0, 1.0, 1, None)])
    other.close()
    mismatch = cli("edges", "--store", str(tmp_path / "other.db"), "--copy-to", unkeyed_url, "--key-file",
                   str(key_file))  # fmt: skip
    assert mismatch.returncode == 1 and "newest entry is unsigned" in mismatch.stderr, mismatch.stderr
    assert counts(unkeyed_url) == {tuple(KEY): 7}


def test_copying_a_store_into_itself_is_refused(postgres: PostgresServer) -> None:
    url = postgres.database()
    store = PostgresStore(url)
    store.upsert([(KEY, 1.0, 1.0, 10, None)])
    store.close()
    done = cli("edges", "--store", url, "--copy-to", url)
    assert done.returncode == 1 and "it is the store being copied" in done.stderr, done.stdout + done.stderr
    assert counts(url) == {tuple(KEY): 10}  # it was 20


def test_a_refused_write_goes_to_the_journal_not_lost(postgres: PostgresServer, tmp_path: Path) -> None:
    """A keyed writer refusing a chain rebuilt without the key journals the batch (signed), as during an
    outage, so the counts are not lost when the proxy stops before the chain is looked into."""
    url = postgres.database()
    store = JournaledStore(PostgresStore(url, key=b"k"), Journal(tmp_path / "journal.db", key=b"k"))
    store.upsert([(KEY, 1.0, 1.0, 1, None)])
    with psycopg.connect(url, autocommit=True) as conn:
        forge_unsigned_chain(conn, "%s")
    store.upsert([(KEY, 2.0, 2.0, 1, None)])
    assert store.journaled == 1 and store.journal.held() == 1
    assert "lineage_proxy_edge_database_failing 1" in store.metrics()
    store.journal.close()
    store.database.close()


def test_a_trigger_cannot_make_a_fleet_purge_sign_what_it_writes(
    postgres: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = postgres.database()
    store = PostgresStore(url, key=b"k")
    store.upsert([(KEY._replace(decision="deny", rule="zone:z"), 1e9, 9e9, 2, None), (KEY, 1.0, 1.0, 1, None)])
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                     "DELETE FROM edges WHERE decision = 'deny'; RETURN NULL; END $$")  # fmt: skip
        conn.execute("CREATE TRIGGER t AFTER DELETE ON edges FOR EACH STATEMENT EXECUTE FUNCTION f()")
    with caplog.at_level("ERROR", logger="lineage_proxy.edges"):
        assert store.purge(30) == 0
    assert "trigger t" in caplog.text
    report = store.integrity(b"k")
    assert not report.intact and "trigger t" in (report.problem or "")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TRIGGER t ON edges")
    assert store.integrity(b"k").intact  # nothing was signed over
    assert store.purge(30) == 1 and store.integrity(b"k").intact
    store.close()


def test_rows_committed_while_a_purge_waits_on_its_delete_are_never_signed(
    postgres: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The purge verifies, then its delete waits on a row someone holds; they commit forged rows and
    let go. Read back after the delete (read committed), those rows were signed in the snapshot."""
    import threading

    url = postgres.database()
    store = PostgresStore(url, key=b"k")
    store.upsert([(KEY._replace(decision="deny", rule="zone:z"), 1e9, 9e9, 2, None), (KEY, 1.0, 1.0, 1, None)])
    held = psycopg.connect(url)  # a transaction holding the expired row
    held.execute("SELECT 1 FROM edges WHERE last_seen < 10 FOR UPDATE")
    result: list[int] = []
    with caplog.at_level("ERROR", logger="lineage_proxy.edges"):
        purging = threading.Thread(target=lambda: result.append(store.purge(30)))
        purging.start()
        with psycopg.connect(url, autocommit=True) as watch:  # until the purge's delete waits on the held row
            for _ in range(500):
                waiting = watch.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()
                if waiting and waiting[0]:
                    break
                purging.join(0.01)
        held.execute("DELETE FROM edges WHERE decision = 'deny'")
        held.execute(
            "INSERT INTO edges VALUES ('ads-ranker', 'ads', 'health', 'evil', '', 'allow', 1e9, 9e9, 1, '', NULL)"
        )
        held.commit()
        purging.join(30)
    held.close()
    assert result == [0] and "the table changed under the purge's delete" in caplog.text
    assert not store.integrity(b"k").intact  # the forged rows stand out, unsigned
    store.close()


def test_a_journaled_batch_replayed_twice_is_named(postgres: PostgresServer, tmp_path: Path) -> None:
    """The once-only record of a replayed batch (`applied`) is outside the chain: with its row deleted and
    the batch put back into the journal, it was applied again and verified intact. Each write's token is
    now signed into its chain entry, so a second application shows."""
    url = postgres.database()
    store = JournaledStore(PostgresStore(url, key=b"k"), Journal(tmp_path / "journal.db", key=b"k"))
    postgres.stop()
    try:
        store.upsert([(KEY._replace(decision="deny", rule="zone:z"), 1.0, 1.0, 5, None)])
    finally:
        postgres.start()
    with sqlite3.connect(tmp_path / "journal.db") as db:
        saved = db.execute("SELECT token, n, rows, mac FROM entries").fetchone()
    store._next_try = 0.0
    store.upsert([])
    assert store.replayed == 1 and store.integrity(b"k").intact
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM applied WHERE token = %s", (saved[0],))
    with sqlite3.connect(tmp_path / "journal.db") as db:
        db.execute("INSERT INTO entries (token, n, rows, mac) VALUES (?, ?, ?, ?)", saved)
    store._backlog, store._next_try = True, 0.0
    store.upsert([])
    report = store.integrity(b"k")
    assert not report.intact and "applied before" in (report.problem or ""), report
    store.close()


def test_a_view_in_place_of_a_lineage_table_is_named(postgres: PostgresServer) -> None:
    """A view named `edges` (the table renamed, or a schema earlier on the search path) showed `verify`
    one history and `edges` another; only the lineage tables themselves are checked, so a DBA's view
    elsewhere is fine."""
    url = postgres.database()
    store = PostgresStore(url, key=b"k")
    store.upsert([(KEY._replace(decision="deny", rule="zone:z"), 1.0, 1.0, 2, None)])
    store.close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA mon")
        conn.execute("CREATE VIEW mon.denials AS SELECT * FROM edges WHERE decision = 'deny'")
    assert PostgresStore(url, readonly=True).integrity(b"k").intact
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER TABLE edges RENAME TO edges_real")
        conn.execute("CREATE VIEW edges AS SELECT * FROM edges_real WHERE decision <> 'deny'")
    report = PostgresStore(url, readonly=True).integrity(b"k")
    assert not report.intact and "not a plain table" in (report.problem or ""), report
    with pytest.raises(StartupError, match=r"name is taken|not a plain table"):
        PostgresStore(url, key=b"k")

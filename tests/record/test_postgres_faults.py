"""The fleet store when what is around it fails: a journal whose disk is full, a database that stops
answering (SIGSTOP: a stalled host or a partition), a database that is not UTF-8 or refuses one value,
a password rotated in its file. Each against the real PostgreSQL the other store tests start."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from proxy.errors import StartupError
from proxy.record import edges as edges_module
from proxy.record.edges import EdgeAggregator
from proxy.record.journal import PROBE_WAIT_S, Journal, JournaledStore
from proxy.record.postgres import PostgresStore
from proxy.record.store import flat
from tests.harness import LoopThread, ServeProcess, fill
from tests.record.test_postgres import CONFIG, KEY, ROOT, calls, cli, counts, start
from tests.servers.postgres import PostgresServer

NEW = KEY._replace(caller="new")


def in_thread(fn: Callable[[], Any], timeout: float) -> tuple[bool, float, Any]:
    """Run `fn` on a thread of its own for at most `timeout` seconds: (finished, seconds taken, result or
    what it raised). A call that hangs is left running (the test's `finally` releases what it waits on)."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(fn())
        except BaseException as exc:  # handed back to the test
            outcome.append(exc)

    began = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    return not thread.is_alive(), time.monotonic() - began, outcome[0] if outcome else None


def wait_for_probe(store: JournaledStore) -> None:
    """Let a check of the database in flight finish (it runs on a thread of its own)."""
    probe = getattr(store, "_probe", None)
    if probe is not None:
        assert probe.done.wait(30)


def replay_all(store: JournaledStore) -> None:
    """The whole backlog: a replay is one slice of it (`REPLAY_SLICE_S`), and on a loaded machine one slice may not
    hold it all (a single empty `upsert` was taken for the whole: the tests failed under CI's load)."""
    deadline = time.monotonic() + 30
    while store.replay():
        assert time.monotonic() < deadline, "the backlog was not replayed within 30 s"


def retry_now(store: JournaledStore) -> None:
    """The database answers again: each retry due now (instead of RETRY_S later), its check waited for
    however long it takes; a check that failed before the database came back is used up first."""
    for _ in range(3):
        store._next_try = 0.0
        store.upsert([])
        wait_for_probe(store)
    store._next_try = 0.0
    store.upsert([])


# -- 1. a journal that cannot be written


def test_a_journal_that_cannot_be_written_never_wedges_the_database_path(
    postgres: PostgresServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SQLite refusing every write to the journal (what a full disk does to a DELETE, which needs room in
    the WAL): the backlog is replayed but cannot be deleted, so it waits; new writes go to the database
    directly; nothing counts twice (the replayed batch's token), and closing raises nothing."""
    url = postgres.database()
    path = tmp_path / "journal.db"
    store = JournaledStore(PostgresStore(url), Journal(path))
    postgres.stop()
    try:
        store.upsert([(KEY, 1.0, 1.0, 2, None)])  # journaled
    finally:
        postgres.start()
    store.journal._db.execute("PRAGMA query_only = ON")  # "attempt to write a readonly database", as full
    with caplog.at_level(logging.ERROR, logger="lineage_proxy.edges"):
        retry_now(store)
        store.upsert([(NEW, 2.0, 2.0, 1, None)])
        store.upsert([(KEY, 3.0, 3.0, 1, None)])
    assert counts(url) == {tuple(KEY): 3, tuple(NEW): 1}
    assert store.journal.held() == 1  # replayed, not deleted
    assert "lineage_proxy_edge_journal_failing 1" in store.metrics()
    assert "lineage_proxy_edge_database_failing 0" in store.metrics()
    (line,) = [r.getMessage() for r in caplog.records if "cannot be written" in r.getMessage()]
    assert "attempt to write a readonly database" in line and "go to the database directly" in line
    store.close()  # the last replay cannot delete either: said, not raised
    assert store.database._conn is None
    with pytest.raises(sqlite3.ProgrammingError):
        store.journal._db.execute("SELECT 1")

    # a restart, the journal still refusing: the backlog waits, writes reach the database
    journal = Journal(path)
    journal._db.execute("PRAGMA query_only = ON")
    again = JournaledStore(PostgresStore(url), journal)
    again.upsert([(NEW, 4.0, 4.0, 1, None)])
    assert counts(url) == {tuple(KEY): 3, tuple(NEW): 2}
    journal._db.execute("PRAGMA query_only = OFF")  # room again
    again._next_try = 0.0
    replay_all(again)
    assert journal.held() == 0 and "lineage_proxy_edge_journal_failing 0" in again.metrics()
    assert counts(url) == {tuple(KEY): 3, tuple(NEW): 2}  # applied once, whatever the replays
    assert again.integrity().intact
    again.close()


def test_a_journal_on_a_full_disk_never_wedges_the_database_path(postgres: PostgresServer, tiny_disk: Path) -> None:
    """The same on a real full disk, across a restart too."""
    url = postgres.database()
    path = tiny_disk / "journal.db"
    store = JournaledStore(PostgresStore(url), Journal(path))
    postgres.stop()
    try:
        for index in range(5):
            store.upsert([(KEY._replace(caller=f"c{index}"), 1.0, 1.0, 1, None)])
        fill(tiny_disk)
    finally:
        postgres.start()
    retry_now(store)
    store.upsert([(NEW, 2.0, 2.0, 1, None)])
    assert counts(url)[tuple(NEW)] == 1
    store.close()
    again = JournaledStore(PostgresStore(url), Journal(path))  # the disk still full
    again.upsert([(NEW, 3.0, 3.0, 1, None)])
    assert counts(url) == {**{tuple(KEY._replace(caller=f"c{i}")): 1 for i in range(5)}, tuple(NEW): 2}
    (tiny_disk / "filler").unlink()
    again._next_try = 0.0
    replay_all(again)
    assert again.journal.held() == 0
    again.close()
    assert counts(url) == {**{tuple(KEY._replace(caller=f"c{i}")): 1 for i in range(5)}, tuple(NEW): 2}


def test_a_batch_a_full_journal_could_not_delete_never_holds_back_the_batches_after_it(
    postgres: PostgresServer, tiny_disk: Path
) -> None:
    """Batches applied but not deleted (the journal's disk full) are skipped by the next passes, which go on
    to apply what was never applied: here a batch another worker journaled after the first pass (a pass
    cut short by its slice leaves such batches too). A pass used to stop at the first batch it still could
    not delete, so the rest waited for the disk."""
    url = postgres.database()
    path = tiny_disk / "journal.db"
    store = JournaledStore(PostgresStore(url), Journal(path))
    postgres.stop()
    try:
        for index in range(4):
            store.upsert([(KEY._replace(caller=f"c{index}"), 1.0, 1.0, 1, None)])
        fill(tiny_disk)
    finally:
        postgres.start()
    retry_now(store)  # applied, none deleted
    assert counts(url) == {tuple(KEY._replace(caller=f"c{i}")): 1 for i in range(4)}
    (tiny_disk / "filler").unlink()
    worker = JournaledStore(PostgresStore(url), Journal(path))  # a worker sharing the journal: behind its backlog
    worker.upsert([(NEW, 2.0, 2.0, 1, None)])
    assert worker.journaled == 1
    fill(tiny_disk)
    retry_now(store)
    assert counts(url).get(tuple(NEW)) == 1
    (tiny_disk / "filler").unlink()
    retry_now(store)
    assert store.journal.held() == 0
    worker.close()
    store.close()
    assert counts(url) == {**{tuple(KEY._replace(caller=f"c{i}")): 1 for i in range(4)}, tuple(NEW): 1}


def test_passes_over_batches_a_journal_cannot_delete_resume_after_them_and_reach_a_later_batch(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    """Many batches applied but not deleted (the journal refusing writes, as on a full disk): each next pass
    tries one delete and, still refused, resumes after them, so it reads only a batch journaled since (by
    another worker). A pass used to read and verify every stuck batch again from the oldest, ~13,000 a
    0.1 s slice: with 60,000 of them a later batch was never reached while the disk stayed full. Once
    deletes succeed a pass sweeps from the oldest again; every batch counts once, in order."""
    url = postgres.database()
    path = tmp_path / "journal.db"
    store = JournaledStore(PostgresStore(url), Journal(path))
    stuck = 250  # three pages of the journal
    for index in range(stuck):  # what an outage journaled
        store.journal.append(f"old:{index}", [flat((KEY._replace(caller=f"c{index}"), 1.0, 1.0, 1, None))])
    store._backlog = True
    store.journal._db.execute("PRAGMA query_only = ON")  # every delete refused, as on a full disk
    store._replay()  # one pass: every batch applied, none deleted
    assert sum(counts(url).values()) == stuck and store.journal.held() == stuck
    assert "lineage_proxy_edge_journal_failing 1" in store.metrics()
    worker = JournaledStore(PostgresStore(url), Journal(path))  # a worker sharing the journal: behind its backlog
    worker.upsert([(NEW, 2.0, 2.0, 1, None)])
    assert worker.journaled == 1

    read: list[int] = []  # the batches each pass reads from the journal
    oldest = store.journal.oldest

    def counted(limit: int = 100, after: int | None = None) -> list[tuple[int, str, Any, Any]]:
        page = oldest(limit, after)
        read.extend(entry_id for entry_id, _, _, _ in page)
        return page

    store.journal.oldest = counted  # type: ignore[method-assign]
    store._replay()
    assert counts(url).get(tuple(NEW)) == 1
    assert len(read) == 1, len(read)  # the new batch only: not the 250 before it
    read.clear()
    store._replay()  # the disk still full: nothing read, nothing applied again
    assert read == [] and counts(url).get(tuple(NEW)) == 1 and store.journal.held() == stuck + 1

    store.journal._db.execute("PRAGMA query_only = OFF")  # room again: a sweep from the oldest deletes them all
    store._replay()
    assert store.journal.held() == 0 and "lineage_proxy_edge_journal_failing 0" in store.metrics()
    assert counts(url) == {**{tuple(KEY._replace(caller=f"c{i}")): 1 for i in range(stuck)}, tuple(NEW): 1}
    assert store.replayed == stuck + 1 and store.integrity().intact
    worker.close()
    store.close()


# -- 2. a database that stops answering


def test_a_stalled_database_fails_a_write_at_the_bound_then_journals_without_waiting(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    """No answer on an open connection (the server's statement_timeout cannot fire): the write is cut at
    the bound and journaled; later writes during the stall are journaled at once, the database checked
    on a thread of its own; once it answers, the journal is replayed and every count is there once."""
    url = postgres.database()
    store = JournaledStore(PostgresStore(url, statement_timeout_s=1.0), Journal(tmp_path / "journal.db"))
    store.upsert([(KEY, 1.0, 1.0, 1, None)])  # the connection is open
    with postgres.stalled():
        finished, took, raised = in_thread(lambda: store.upsert([(NEW, 2.0, 2.0, 1, None)]), 15)
        assert finished and raised is None, raised  # it hung for as long as the stall lasted
        assert took < 5, took
        assert store.journaled == 1 and "lineage_proxy_edge_database_failing 1" in store.metrics()
        slowest = 0.0
        for _ in range(3):  # each after the retry interval: a check of the database is due each time
            store._next_try = 0.0
            finished, took, raised = in_thread(lambda: store.upsert([(KEY, 3.0, 3.0, 1, None)]), 15)
            assert finished and raised is None, raised
            slowest = max(slowest, took)
        assert slowest < PROBE_WAIT_S, slowest  # never a connect timeout, nor the bound, nor the check
        assert store.journaled == 4
    wait_for_probe(store)  # the one started during the stall
    retry_now(store)
    assert store.journal.held() == 0 and "lineage_proxy_edge_database_failing 0" in store.metrics()
    assert counts(url) == {tuple(KEY): 4, tuple(NEW): 1}
    assert store.integrity().intact
    store.close()


@pytest.mark.interpreted  # patches what a compiled module calls directly (tests/conftest.py)
def test_shutdown_during_a_stall_is_bounded_and_what_it_could_not_write_is_journaled(
    postgres: PostgresServer, tmp_path: Path, loop_thread: LoopThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The aggregator's writer waits on a database that does not answer (the bound is 30 s): closing cuts
    the round trip after STOP_WAIT_S, the write in flight and the last counts go to the journal, and the
    next start replays them."""
    monkeypatch.setattr(edges_module, "STOP_WAIT_S", 1.0, raising=False)
    url = postgres.database()
    path = tmp_path / "journal.db"
    aggregator = EdgeAggregator(JournaledStore(PostgresStore(url), Journal(path)), flush_interval_s=3600)

    async def first() -> None:
        aggregator.start()
        future = aggregator.add(KEY)
        assert future is not None
        await asyncio.wrap_future(future)

    loop_thread.run(first())
    with postgres.stalled():

        async def during() -> None:
            aggregator.add(NEW)  # its first write waits on the stalled database
            for _ in range(3):
                aggregator.add(KEY)  # counts, batched

        loop_thread.run(during())
        began = time.monotonic()
        try:
            loop_thread.run(aggregator.close(), timeout=20)
        finally:
            took = time.monotonic() - began
    assert took < 2 * 1.0 + 3, took
    assert Journal(path).held() == 2  # the new flow's write and the last counts
    again = JournaledStore(PostgresStore(url), Journal(path))
    replay_all(again)
    assert counts(url) == {tuple(KEY): 4, tuple(NEW): 1}
    again.close()


def test_sigterm_during_a_stall_exits_and_the_next_start_writes_every_count(  # type: ignore[no-untyped-def]
    postgres, vllm, tmp_path
) -> None:
    url = postgres.database()
    _, upstream = vllm
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG)
    env = {"UPSTREAM": upstream, "STORE": url, "JOURNAL": str(tmp_path / "journal.db")}
    serve = ServeProcess(str(config), env=env)
    try:
        assert asyncio.run(calls(serve.url, ["team-a"] * 3)) == [200] * 3  # the flow is in the database
        with postgres.stalled():
            assert asyncio.run(calls(serve.url, ["team-a"] * 20)) == [200] * 20  # counted, not yet written
            serve.signal(15)
            began = time.monotonic()
            try:
                code = serve.proc.wait(25)
            except subprocess.TimeoutExpired:
                code = None
            took = time.monotonic() - began
        assert code == 0 and took < 15, (code, took, "".join(serve.stderr[-5:]))
    finally:
        if serve.proc.poll() is None:
            serve.proc.kill()
    again = ServeProcess(str(config), env=env)  # replays what the stopped one journaled
    assert again.stop() == 0
    assert counts(url) == {("anonymous", "assistant", "team-a", ROOT, "team-a", "allow", ""): 23}


# -- 3. encodings and values the database refuses


@pytest.mark.parametrize("encoding", ["LATIN1", "SQL_ASCII"])
def test_a_database_not_in_utf8_is_refused_at_start_in_one_line(
    postgres: PostgresServer, tmp_path: Path, encoding: str
) -> None:
    """SQL_ASCII hands text back as bytes (every write failed, `verify` called the store tampered), LATIN1
    cannot hold most scripts (one call naming a model `模型` stopped every later flush)."""
    url = postgres.database(encoding)
    with pytest.raises(StartupError, match=f"its encoding is {encoding}, not UTF8"):
        PostgresStore(url)
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG.replace("${UPSTREAM}", "http://127.0.0.1:9").replace("${STORE}", url)
                      .replace("${JOURNAL}", str(tmp_path / "journal.db")))  # fmt: skip
    served = cli("serve", "--config", str(config))
    assert served.returncode == 1, served.stderr
    lines = served.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in served.stderr, served.stderr
    assert f"its encoding is {encoding}" in lines[0] and "createdb -E UTF8 -T template0" in lines[0]
    verified = cli("verify", "--store", url, "--integrity")
    assert verified.returncode != 0 and "createdb -E UTF8 -T template0" in verified.stderr, verified.stderr
    assert "tamper" not in (verified.stdout + verified.stderr).lower()


def test_a_client_encoding_in_the_url_cannot_make_names_unwritable(postgres: PostgresServer) -> None:
    store = PostgresStore(postgres.database() + "&client_encoding=LATIN1")
    store.upsert([(KEY._replace(checkpoint="模型"), 1.0, 1.0, 1, "no route for model 模型")])
    (row,) = store.rows()
    assert (row.key.checkpoint, row.reason) == ("模型", "no route for model 模型")
    store.close()


def test_one_value_the_database_refuses_never_takes_its_batch_or_later_flushes_down(
    postgres: PostgresServer, tmp_path: Path, loop_thread: LoopThread, caplog: pytest.LogCaptureFixture
) -> None:
    """A NUL character (PostgreSQL text cannot hold one) in one flow of a flush: the other flows of that
    flush are written, the refused one is set aside (kept in the journal's `rejected` table, logged,
    counted), and the next flushes are written as usual. Nothing is journaled: the database answered."""
    url = postgres.database()
    path = tmp_path / "journal.db"
    store = JournaledStore(PostgresStore(url), Journal(path))
    aggregator = EdgeAggregator(store, flush_interval_s=3600)
    bad = KEY._replace(caller="odd", purpose="a\x00b")

    async def run() -> None:
        aggregator.start()
        for key in (KEY, NEW, bad):
            future = aggregator.add(key, "why")
            if future is not None:
                await asyncio.shield(asyncio.wrap_future(future))
        for key in (KEY, NEW, bad, KEY):
            aggregator.add(key)
        await aggregator.flush()
        for key in (KEY, NEW):
            aggregator.add(key)
        await aggregator.flush()
        await aggregator.close()

    with caplog.at_level(logging.ERROR, logger="lineage_proxy.edges"):
        loop_thread.run(run())
    assert counts(url) == {tuple(KEY): 4, tuple(NEW): 3}
    assert store.journaled == 0 and store.rejected == 2  # the first write, then the row of the flush
    assert aggregator.write_errors == 0 and "lineage_proxy_edge_store_failing 0" in aggregator.metrics()
    assert "cannot contain NUL" in caplog.text and "lineage database" in caplog.text
    with sqlite3.connect(path) as db:
        kept = [row for (row,) in db.execute("SELECT rows FROM rejected ORDER BY id")]
    assert len(kept) == 2 and all(b"a\\u0000b" in row for row in kept), kept
    assert PostgresStore(url, readonly=True).integrity().intact


def test_a_journaled_batch_with_one_refused_value_replays_its_other_rows(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    """Journaled during an outage, a batch holding one bad row: the replay writes the others (each under
    a token of its own, so a second replay adds nothing) and sets only that row aside."""
    url = postgres.database()
    store = JournaledStore(PostgresStore(url), Journal(tmp_path / "journal.db"))
    rows = [(KEY, 1.0, 1.0, 5, None), (KEY._replace(caller="x\x00"), 1.0, 1.0, 1, None), (NEW, 1.0, 1.0, 2, None)]
    postgres.stop()
    try:
        store.upsert(rows)
    finally:
        postgres.start()
    with sqlite3.connect(tmp_path / "journal.db") as db:
        saved = db.execute("SELECT token, n, rows, mac FROM entries").fetchone()
    retry_now(store)
    assert counts(url) == {tuple(KEY): 5, tuple(NEW): 2}
    assert store.journal.held() == 0 and store.rejected == 1 and store.replayed == 2
    with sqlite3.connect(tmp_path / "journal.db") as db:
        (why,) = db.execute("SELECT why FROM rejected").fetchone()
        db.execute("INSERT INTO entries (token, n, rows, mac) VALUES (?, ?, ?, ?)", saved)
    assert "cannot contain NUL" in why
    store._backlog, store._next_try = True, 0.0
    store.upsert([])  # the same batch again (a second worker's replay, a crash before the delete)
    assert counts(url) == {tuple(KEY): 5, tuple(NEW): 2}
    assert store.integrity().intact
    store.close()


# -- 6. a password rotated in its file


def test_a_password_rotated_in_its_file_is_used_on_the_next_reconnect(  # type: ignore[no-untyped-def]
    postgres, vllm, make_proxy, loop_thread, tmp_path
) -> None:
    role = "lp_rotated"
    url = postgres.database()
    name = url.rsplit("/", 1)[1].split("?")[0]
    postgres.require_password(role, "first-secret", owns=name)
    secret = tmp_path / "db-password"
    secret.write_text("first-secret\n")
    _, upstream = vllm
    proxy = make_proxy(CONFIG + f"  password_file: {secret}\n", UPSTREAM=upstream,
                       STORE=url.replace("postgres@", f"{role}@"), JOURNAL=str(tmp_path / "journal.db"))  # fmt: skip
    assert loop_thread.run(calls(proxy.url, ["team-a"])) == [200]
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"ALTER ROLE {role} PASSWORD 'second-secret'")
        secret.write_text("second-secret\n")  # the secret rotated, as Kubernetes does
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))
    assert loop_thread.run(calls(proxy.url, ["team-b"])) == [200]  # its write finds the connection ended
    edges = proxy.process.runtime.sinks.get("edges")
    assert isinstance(edges, EdgeAggregator)
    store = edges._store
    assert isinstance(store, JournaledStore)
    for _ in range(2):  # the database checked, then the journal replayed, on new connections
        store._next_try = 0.0
        edges._submit(store.upsert, []).result(30)
        wait_for_probe(store)
    assert "lineage_proxy_edge_database_failing 0" in list(edges.metrics())
    assert store.journal.held() == 0
    found = counts(url)
    assert found[("anonymous", "assistant", "team-b", ROOT, "team-b", "allow", "")] == 1


def test_a_new_flow_during_a_stall_is_answered_within_the_statement_timeout(  # type: ignore[no-untyped-def]
    postgres, vllm, make_proxy, loop_thread, tmp_path
) -> None:
    """The reply waits for a new flow's first write, which waited on a database that does not answer for
    as long as it did not: it is answered once the write is cut at the URL's statement_timeout (1 s
    here), its record journaled; so is every call after it."""
    url = postgres.database() + "&options=-c%20statement_timeout%3D1000"
    _, upstream = vllm
    path = tmp_path / "journal.db"
    proxy = start(make_proxy, upstream, url, path)
    assert loop_thread.run(calls(proxy.url, ["team-a"])) == [200]  # the connection is open
    edges = proxy.process.runtime.sinks.get("edges")
    assert edges is not None
    with postgres.stalled():
        began = time.monotonic()
        assert loop_thread.run(calls(proxy.url, ["team-b", "team-c", "team-a"]), timeout=20) == [200] * 3
        took = time.monotonic() - began
        assert took < 1 + 2, took
        began = time.monotonic()
        assert loop_thread.run(calls(proxy.url, ["team-d"]), timeout=20) == [200]
        assert time.monotonic() - began < 1, "a later new flow waited on the database"
        metrics = list(edges.metrics())
        assert "lineage_proxy_edge_database_failing 1" in metrics
        assert "lineage_proxy_edge_store_failing 0" in metrics  # recorded all the while: in the journal
    loop_thread.run(proxy.process.stop())
    JournaledStore(PostgresStore(url), Journal(path)).close()  # the next start: replayed
    assert counts(url) == {("anonymous", "assistant", label, ROOT, label, "allow", ""): 2 if label == "team-a" else 1
                           for label in ("team-a", "team-b", "team-c", "team-d")}  # fmt: skip

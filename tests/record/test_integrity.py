"""The tamper-evident record: real calls build the store's hash chain; `verify --integrity` proves it
intact, and names the first broken link for each way a record can be altered."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from proxy.record.store import EdgeKey, SqliteStore
from tests.record.conftest import forge_unsigned_chain
from tests.servers.vllm_like import SERVED

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: vllm, url: "${UPSTREAM}"}]
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
zones: [{name: h, labels: [health], allow_purposes: [assistant]}]
lineage:
  store: ${STORE}
  integrity_key_file: ${KEY_FILE:-}
"""


def verify(store: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", "verify", "--store", str(store), "--integrity", *extra],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def record(proxy, loop_thread, calls: list[tuple[str, str]]) -> None:  # type: ignore[no-untyped-def]
    for labels, purpose in calls:
        httpx.post(f"{proxy.url}/v1/chat/completions", timeout=10, headers={"x-data-labels": labels, "x-purpose": purpose},
                   json={"model": SERVED, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    loop_thread.run(proxy.process.runtime.sinks.flush())


CALLS = [("a", "assistant"), ("a", "assistant"), ("b", "assistant"), ("health", "ads"), ("a", "assistant")]


@pytest.fixture
def store(vllm, make_proxy, loop_thread, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    proxy = make_proxy(CONFIG.replace("  integrity_key_file: ${KEY_FILE:-}\n", ""), UPSTREAM=upstream)
    record(proxy, loop_thread, CALLS)
    return tmp_path / "lineage.db"


def tamper(store: Path, sql: str, *params: object) -> None:
    with sqlite3.connect(store) as db:
        db.execute(sql, params)


def test_an_untouched_record_is_intact(store: Path) -> None:
    result = verify(store)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "intact" in result.stdout and "every edge matches" in result.stdout and "head sha256:" in result.stdout


@pytest.mark.parametrize(
    ("sql", "needle"),
    [
        ("UPDATE edges SET count = count + 5 WHERE input_labels = 'a'", "the row was edited"),
        ("DELETE FROM edges WHERE decision = 'deny'", "a row was deleted"),
        ("INSERT INTO edges VALUES ('x', 'p', '', '', '', 'allow', 1, 1, 1, '', NULL, '')", "a row was inserted"),
        ("UPDATE edges SET rule = 'zone:approved' WHERE decision = 'deny'", "or its key or rule edited"),
        ("UPDATE chain SET body = replace(body, '\"a\"', '\"z\"') WHERE seq = 2", "its hash does not match"),
        ("DELETE FROM chain WHERE seq = 2", "does not follow the entry before it"),
    ],
    ids=["count edited", "denial deleted", "row inserted", "rule edited", "entry edited", "entry removed"],
)
def test_each_kind_of_tampering_is_named(store: Path, sql: str, needle: str) -> None:
    tamper(store, sql)
    result = verify(store)
    assert result.returncode == 1 and "NOT intact" in result.stdout and needle in result.stdout, result.stdout


def test_a_keyed_chain_cannot_be_rebuilt_without_the_key(vllm, make_proxy, loop_thread, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    key = tmp_path / "chain.key"
    key.write_text("s3cret-key-kept-elsewhere\n")
    proxy = make_proxy(CONFIG, UPSTREAM=upstream, KEY_FILE=str(key))
    record(proxy, loop_thread, CALLS)
    store = tmp_path / "lineage.db"
    assert verify(store, "--key-file", str(key)).returncode == 0
    unkeyed = verify(store)
    assert unkeyed.returncode == 2 and "give --key-file" in unkeyed.stderr  # a usage error, not tampering
    wrong = tmp_path / "wrong.key"
    wrong.write_text("guess")
    assert "its hash does not match" in verify(store, "--key-file", str(wrong)).stdout
    # an attacker edits a count and rebuilds the whole chain, without the key, as plain sha256 links
    tamper(store, "UPDATE edges SET count = 1 WHERE input_labels = 'a'")
    with sqlite3.connect(store) as db:
        from proxy.record import integrity

        prev = integrity.GENESIS
        for seq, body in db.execute("SELECT seq, body FROM chain ORDER BY seq").fetchall():
            db.execute(
                "UPDATE chain SET prev = ?, hash = ? WHERE seq = ?", (prev, integrity.link(prev, body, None), seq)
            )
            prev = integrity.link(prev, body, None)
    rebuilt = verify(store, "--key-file", str(key))
    assert rebuilt.returncode == 1 and "not signed" in rebuilt.stdout


def test_retention_purge_keeps_the_chain_verifiable(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    old, new = EdgeKey("c", "p", "", "ck", "", "allow"), EdgeKey("c", "p", "x", "ck", "x", "allow")
    store.upsert([(old, 1.0, 2.0, 3, None), (new, 1.0, 9e9, 1, None)])
    store.upsert([(new._replace(rule="r"), 5.0, 9e9, 2, None)])
    assert store.purge(30) == 1  # `old` was last seen in 1970
    store.upsert([(new, 6.0, 9e9, 1, None)])
    report = store.integrity()
    store.close()
    assert report.intact, report.problem
    assert verify(tmp_path / "s.db").returncode == 0


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert verify(tmp_path / "none.db").returncode == 2
    store = SqliteStore(tmp_path / "s.db")
    store.close()
    missing_key = verify(tmp_path / "s.db", "--key-file", str(tmp_path / "no.key"))
    assert missing_key.returncode == 2 and "cannot read the key" in missing_key.stderr
    empty = tmp_path / "empty.key"
    empty.write_text(" \n")
    empty_key = verify(tmp_path / "s.db", "--key-file", str(empty))
    assert empty_key.returncode == 2 and "the file is empty" in empty_key.stderr


@pytest.mark.parametrize("setting", ["integrity_key_file", "password_file"])
def test_a_secret_file_gone_after_the_check_stops_the_start_with_one_line(tmp_path: Path, setting: str) -> None:
    from proxy.config import parse
    from proxy.errors import StartupError
    from proxy.workers import open_process

    secret = tmp_path / "secret"
    secret.write_text("s3cret-of-16-bytes-or-more\n")
    store = "postgresql://lp@127.0.0.1:9/lp" if setting == "password_file" else str(tmp_path / "lineage.db")
    config = parse(f"""
listen: {{http: 127.0.0.1:0}}
upstreams: [{{name: u, url: "http://127.0.0.1:9"}}]
routes: [{{model: "*", upstream: u}}]
policy: {{anonymous: allow, default_purpose: assistant}}
lineage: {{store: "{store}", {setting}: "{secret}"}}
""")
    secret.unlink()  # rotated away between `check` (or the loader) and the start
    with pytest.raises(StartupError) as caught:
        open_process(config)
    assert str(caught.value) == f"lineage.{setting}: cannot read {str(secret)!r}: No such file or directory"


# -- what a writer of the store file, without the key, cannot make verify say intact


def keyed_store(tmp_path: Path) -> tuple[Path, Path, bytes]:
    """A keyed store of four writes: a (3 calls), b, and a denial with its rule and reason."""
    key_file = tmp_path / "chain.key"
    key_file.write_text("kept-out-of-the-store's-reach\n")
    key = b"kept-out-of-the-store's-reach"
    path = tmp_path / "keyed.db"
    store = SqliteStore(path, key=key)
    a, b = EdgeKey("app", "assistant", "a", "ck", "", "allow"), EdgeKey("app", "assistant", "b", "ck", "", "allow")
    denied = EdgeKey("app", "ads", "health", "", "", "deny", "zone:h")
    store.upsert([(a, 100.0, 100.0, 1, None)])
    store.upsert([(a, 101.0, 101.0, 2, None), (b, 101.0, 101.0, 1, None)])
    store.upsert([(denied, 102.0, 102.0, 2, "purpose ads is not allowed for health")])
    store.upsert([(a, 103.0, 103.0, 1, None)])
    store.close()
    return path, key_file, key


def test_a_purge_never_signs_an_edited_table(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path, key_file, key = keyed_store(tmp_path)
    tamper(path, "DELETE FROM edges WHERE decision = 'deny'")
    tamper(path, "INSERT INTO edges VALUES ('old', 'p', '', '', '', 'allow', 0, 0, 1, '', NULL, '')")  # purgeable
    store = SqliteStore(path, key=key)
    with caplog.at_level("ERROR", logger="lineage_proxy.edges"):
        assert store.purge(30) == 0  # the old row is not purged: a purge would sign the edited table
    store.close()
    assert "retention purge skipped: the record does not verify" in caplog.text
    result = verify(path, "--key-file", str(key_file))
    assert result.returncode == 1 and "NOT intact" in result.stdout, result.stdout


def test_a_removed_chain_is_never_signed_over_at_the_next_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, key_file, key = keyed_store(tmp_path)
    with sqlite3.connect(path) as db:
        head = db.execute("SELECT hash FROM chain ORDER BY seq DESC LIMIT 1").fetchone()[0]
        db.execute("DELETE FROM chain")
        db.execute("INSERT INTO meta VALUES ('anchor', ?)", (head,))  # as if a purge had left it
        db.execute("DELETE FROM edges WHERE decision = 'deny'")
    from proxy.errors import StartupError

    with pytest.raises(StartupError, match="its chain is empty or missing, though the store holds edges or was purged"):
        SqliteStore(path, key=key)  # a keyed restart stops: no chain is started over edges it did not write
    result = verify(path, "--key-file", str(key_file))
    assert result.returncode == 1 and "the chain is empty" in result.stdout, result.stdout


def test_cutting_the_oldest_entries_is_named(tmp_path: Path) -> None:
    path, key_file, _ = keyed_store(tmp_path)
    with sqlite3.connect(path) as db:  # entries 1-2 go; the anchor is set to what entry 3 follows; edges replayed
        prev = db.execute("SELECT prev FROM chain WHERE seq = 3").fetchone()[0]
        db.execute("DELETE FROM chain WHERE seq < 3")
        db.execute("INSERT INTO meta VALUES ('anchor', ?)", (prev,))
        db.execute("DELETE FROM edges WHERE input_labels = 'b'")
        db.execute("UPDATE edges SET count = 1, first_seen = 103 WHERE input_labels = 'a'")
    result = verify(path, "--key-file", str(key_file))
    assert result.returncode == 1 and "the oldest entry kept is not a snapshot" in result.stdout, result.stdout


def test_an_edited_rule_or_reason_and_a_row_stored_twice_are_named(tmp_path: Path) -> None:
    path, key_file, _ = keyed_store(tmp_path)
    tamper(path, "UPDATE edges SET reason = 'the caller agreed to ads' WHERE decision = 'deny'")
    edited = verify(path, "--key-file", str(key_file))
    assert edited.returncode == 1 and "reason 'the caller agreed to ads'" in edited.stdout, edited.stdout
    (tmp_path / "twice").mkdir()
    path, key_file, _ = keyed_store(tmp_path / "twice")
    with sqlite3.connect(path) as db:  # the table made again without its key, a copy of `a` ahead of the real one
        db.executescript("""
            CREATE TABLE e2 AS SELECT * FROM edges WHERE 0;
            INSERT INTO e2 SELECT caller, purpose, input_labels, checkpoint, output_labels, decision, first_seen,
                                  last_seen, 1000, rule, reason, sidecar FROM edges WHERE input_labels = 'a';
            INSERT INTO e2 SELECT * FROM edges;
            DROP TABLE edges;
            ALTER TABLE e2 RENAME TO edges;
        """)
    twice = verify(path, "--key-file", str(key_file))
    assert twice.returncode == 1 and "is in the store twice" in twice.stdout, twice.stdout


@pytest.mark.parametrize("body", ['{"rows":[]}', '{"kind":"edges","rows":[["a"]]}', "[1]", "not json"])
def test_a_malformed_entry_is_named_not_a_traceback(store: Path, body: str) -> None:
    from proxy.record import integrity

    with sqlite3.connect(store) as db:  # an unkeyed chain rebuilt from entry 2 on, with a bad body in entry 2
        rows = db.execute("SELECT seq, body, prev FROM chain ORDER BY seq").fetchall()
        prev = rows[1][2]
        for seq, text, _ in rows[1:]:
            text = body if seq == rows[1][0] else text
            db.execute("UPDATE chain SET body = ?, prev = ?, hash = ? WHERE seq = ?",
                       (text, prev, integrity.link(prev, text, None), seq))  # fmt: skip
            prev = integrity.link(prev, text, None)
    result = verify(store)
    assert result.returncode == 1 and "its content is not a chain entry" in result.stdout, result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_expect_head_names_newest_entries_cut_away(tmp_path: Path) -> None:
    path, key_file, _ = keyed_store(tmp_path)
    first = verify(path, "--key-file", str(key_file), "--json")
    head = orjson.loads(first.stdout)["head"]
    assert verify(path, "--key-file", str(key_file), "--expect-head", head).returncode == 0
    with sqlite3.connect(path) as db:  # the newest entry and its count go: a consistent, shorter record
        db.execute("DELETE FROM chain WHERE seq = (SELECT max(seq) FROM chain)")
        db.execute("UPDATE edges SET count = count - 1, last_seen = 101 WHERE input_labels = 'a'")
    numbered = verify(path, "--key-file", str(key_file))  # SQLite's numbering still says an entry was cut
    assert numbered.returncode == 1 and "is not the newest written" in numbered.stdout, numbered.stdout
    tamper(path, "UPDATE sqlite_sequence SET seq = seq - 1 WHERE name = 'chain'")  # and that, too, by hand
    assert verify(path, "--key-file", str(key_file)).returncode == 0  # what the store alone cannot see
    cut = verify(path, "--key-file", str(key_file), "--expect-head", head)
    assert cut.returncode == 1 and f"the head {head} is not in the chain" in cut.stdout, cut.stdout
    assert subprocess.run([sys.executable, "-m", "proxy", "verify", "--store", str(path), "--baseline", "x.yaml",
                           "--expect-head", head], capture_output=True).returncode == 2  # fmt: skip


def test_verify_reads_one_snapshot_while_writers_go_on(tmp_path: Path) -> None:
    """The chain, the anchor and the edges are read in one transaction: a flow written between the
    reads (another worker's) is in all of them or in none."""
    path = tmp_path / "live.db"
    writer = SqliteStore(path)
    writer.upsert([(EdgeKey("c", "p", "", "ck", "", "allow"), 1.0, 1.0, 1, None)])
    reader = SqliteStore(path, readonly=True)
    db = reader._db
    new = EdgeKey("c", "p", "new", "ck", "", "allow")

    class Between:  # the reader's connection, with a write landing right after the chain is read
        @property
        def text_factory(self) -> object:  # the reader's: whether it reads text that is not UTF-8 as bytes escaped
            return db.text_factory

        def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
            cursor = db.execute(sql, *args)
            if sql.startswith("SELECT seq, at, body"):
                cursor = iter(cursor.fetchall())  # type: ignore[assignment]
                writer.upsert([(new, 2.0, 2.0, 1, None)])
            return cursor

    reader._db = Between()  # type: ignore[assignment]
    report = reader.integrity()
    reader._db = db
    assert report.intact, report.problem
    assert reader.integrity().intact  # and after it, with the new flow in both
    reader.close()
    writer.close()


def test_a_dropped_chain_table_is_never_adopted_when_the_store_is_keyed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A store from before the chain is adopted with a first snapshot; a keyed store whose chain table
    was dropped looks just the same, so with a key nothing is adopted (without one, the chain proves
    nothing against a writer anyway)."""
    path, key_file, key = keyed_store(tmp_path)
    tamper(path, "UPDATE edges SET count = 1 WHERE input_labels = 'a'")
    tamper(path, "DROP TABLE chain")
    tamper(path, "DROP TABLE meta")
    from proxy.errors import StartupError

    with pytest.raises(StartupError, match="written before the record was chained"):
        SqliteStore(path, key=key)  # it stops with one line: nothing is signed over, nothing chained on
    result = verify(path, "--key-file", str(key_file))
    assert result.returncode == 1 and "NOT intact" in result.stdout, result.stdout


def test_a_purge_replays_a_chain_longer_than_a_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The chain is read `BATCH` entries at a time (never held whole), first in a read transaction, then
    under the write lock only what was appended since."""
    from proxy.record import integrity

    monkeypatch.setattr(integrity, "BATCH", 3)
    store = SqliteStore(tmp_path / "s.db")
    old, new = EdgeKey("c", "p", "", "ck", "", "allow"), EdgeKey("c", "p", "x", "ck", "x", "allow")
    store.upsert([(old, 1.0, 2.0, 1, None)])
    for n in range(10):
        store.upsert([(new, 5.0 + n, 9e9, 1, None)])
    assert store.purge(30) == 1 and store.integrity().intact
    tamper(tmp_path / "s.db", "UPDATE edges SET count = 99")
    store.upsert([(old, 1.0, 2.0, 1, None)])  # purgeable again, on an edited table
    assert store.purge(30) == 0  # replayed in batches, the edit is found: nothing is purged
    store.close()


def test_an_edge_row_of_the_wrong_types_is_named_not_a_traceback(store: Path) -> None:
    tamper(store, "UPDATE edges SET first_seen = x'00ff' WHERE input_labels = 'b'")
    result = verify(store)
    assert result.returncode == 1 and "a row whose values are not an edge's" in result.stdout, result.stderr
    assert "Traceback" not in result.stderr


def test_names_in_verify_messages_cannot_write_over_the_terminal(store: Path) -> None:
    tamper(store, "INSERT INTO edges VALUES (?, 'p', '', '', '', 'allow', 1, 1, 1, '', NULL, '')", "\r\x1b[2Kx: intact")
    result = verify(store)
    assert result.returncode == 1 and "\x1b" not in result.stdout and "\\r\\x1b[2Kx: intact" in result.stdout


@pytest.mark.parametrize("column", ["checkpoint", "reason"])
def test_a_name_edited_into_the_bytes_its_escape_reads_as_is_named(tmp_path: Path, column: str) -> None:
    """A name an upstream gave with a backslash (`m\\xffx`, signed so) and the byte it reads as (0xff) are one text to
    a reader, which shows bytes that are not UTF-8 escaped: an edit of one into the other is named, since no writer
    writes text that is not UTF-8."""
    key_file = tmp_path / "chain.key"
    key_file.write_bytes(b"kept-out-of-the-store's-reach")
    path = tmp_path / "keyed.db"
    store = SqliteStore(path, key=key_file.read_bytes())
    store.upsert([(EdgeKey("app", "assistant", "a", "m\\xffx", "", "deny", "zone:h"), 1.0, 1.0, 1, "told m\\xffx")])
    store.close()
    assert verify(path, "--key-file", str(key_file)).returncode == 0
    signed = {"checkpoint": "m\\xffx", "reason": "told m\\xffx"}[column]
    tamper(path, f"UPDATE edges SET {column} = CAST(? AS TEXT)", signed.encode().replace(b"\\xff", b"\xff"))
    result = verify(path, "--key-file", str(key_file))
    assert result.returncode == 1 and "the store holds text that is not UTF-8" in result.stdout, result.stdout
    listed = subprocess.run([sys.executable, "-m", "proxy", "edges", "--store", str(path), "--json"],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert orjson.loads(listed.stdout)[column] == signed  # what every reader shows: the text the chain signed


def test_an_origin_edited_into_bytes_is_one_verdict_for_verify_and_what_reads_the_verified_record(
    tmp_path: Path,
) -> None:
    """The origin (`meta`, which `edges --copy-to` reads beside the verdict, and no chain entry signs) edited into
    bytes that are not UTF-8: the record `verify --integrity` calls intact is the one `report --integrity` draws and
    the gate judges, not one they call NOT intact for text the verdict never read."""
    path, key_file, _ = keyed_store(tmp_path)
    tamper(path, "UPDATE meta SET value = CAST(? AS TEXT) WHERE key = 'origin'", b"an-origin\xff")
    said = verify(path, "--key-file", str(key_file))
    assert said.returncode == 0 and "intact: 5 chain entries" in said.stdout, said.stdout + said.stderr
    out = tmp_path / "report.html"
    drawn = subprocess.run([sys.executable, "-m", "proxy", "report", "--store", str(path), "--integrity", "--key-file",
                            str(key_file), "--out", str(out)], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert drawn.returncode == 0 and "3 flows, 7 calls" in drawn.stdout, drawn.stdout + drawn.stderr
    baseline = tmp_path / "baseline.yaml"  # approves the assistant flows, not the refused one for ads
    baseline.write_text("version: 1\nflows:\n  - caller: app\n    purpose: assistant\n    labels: [a, b]\n")
    judged = verify(path, "--baseline", str(baseline), "--key-file", str(key_file))
    assert judged.returncode == 1 and "UNAPPROVED new-purpose" in judged.stdout, judged.stdout + judged.stderr
    assert "NOT intact" not in judged.stdout


def pre_chain_store(path: Path) -> None:
    """A store as releases before the chain wrote it: the edges table alone."""
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE edges (caller TEXT NOT NULL, purpose TEXT NOT NULL, input_labels TEXT NOT NULL, "
                   "checkpoint TEXT NOT NULL, output_labels TEXT NOT NULL, decision TEXT NOT NULL, first_seen REAL "
                   "NOT NULL, last_seen REAL NOT NULL, count INTEGER NOT NULL, rule TEXT, PRIMARY KEY (caller, "
                   "purpose, input_labels, checkpoint, output_labels, decision)) WITHOUT ROWID")  # fmt: skip
        db.execute("INSERT INTO edges VALUES ('app', 'assistant', 'a', 'ck', '', 'allow', 1, 2, 5, NULL)")


def test_a_store_from_before_the_chain_is_adopted_only_without_a_key(tmp_path: Path) -> None:
    """A keyed proxy does not sign edges it did not write: it stops with one line (a dropped chain table
    looks the same) rather than chain on and leave a record that can never verify."""
    from proxy.errors import StartupError

    pre_chain_store(tmp_path / "old.db")
    with pytest.raises(StartupError, match=r"start once without lineage\.integrity_key_file"):
        SqliteStore(tmp_path / "old.db", key=b"k" * 16)
    SqliteStore(tmp_path / "old.db").close()  # adopted: its first entry a snapshot of what it holds
    checked = verify(tmp_path / "old.db", "--json")
    assert checked.returncode == 0
    key_file = tmp_path / "k"
    key_file.write_text("k" * 16)
    head = orjson.loads(checked.stdout)["head"]  # then signed from the head adopted by hand
    assert verify(tmp_path / "old.db", "--key-file", str(key_file), "--adopt-head", head).returncode == 0
    store = SqliteStore(tmp_path / "old.db", key=b"k" * 16)
    store.upsert([(EdgeKey("app", "assistant", "a", "ck", "", "allow"), 3.0, 3.0, 1, None)])
    store.close()
    assert verify(tmp_path / "old.db", "--key-file", str(key_file)).returncode == 0


def test_chain_columns_edited_by_hand_are_named_not_a_traceback(tmp_path: Path) -> None:
    path, key_file, _ = keyed_store(tmp_path)
    head = orjson.loads(verify(path, "--key-file", str(key_file), "--json").stdout)["head"]
    tamper(path, "UPDATE chain SET at = 'yesterday' WHERE seq = 1")  # not signed: shown, never trusted
    tamper(path, "DELETE FROM chain WHERE seq = (SELECT max(seq) FROM chain)")
    tamper(path, "UPDATE sqlite_sequence SET seq = seq - 1 WHERE name = 'chain'")
    tamper(path, "UPDATE edges SET count = count - 1, last_seen = 101 WHERE input_labels = 'a'")
    cut = verify(path, "--key-file", str(key_file), "--expect-head", head)
    assert cut.returncode == 1 and "is not in the chain" in cut.stdout and "'yesterday'" in cut.stdout, cut.stderr
    tamper(path, "UPDATE chain SET hash = x'00' WHERE seq = 2")
    blob = verify(path, "--key-file", str(key_file))
    assert blob.returncode == 1 and "its columns are not a chain entry's" in blob.stdout, blob.stderr
    assert "Traceback" not in cut.stderr + blob.stderr


@pytest.mark.parametrize(
    ("sql", "needle"),
    [
        ("DROP TABLE meta", "this store has no meta table (it was dropped"),
        ("ALTER TABLE chain DROP COLUMN at", "this store's chain table has no at column"),
        ("ALTER TABLE meta RENAME COLUMN value TO v", "this store's meta table has no value column"),
    ],
)
def test_a_lineage_table_or_column_dropped_is_a_verdict_not_a_usage_error(
    tmp_path: Path, sql: str, needle: str
) -> None:
    path, key_file, _ = keyed_store(tmp_path)
    tamper(path, sql)  # the chain itself untouched: before, "no such table: meta", exit 2 as if misused
    result = verify(path, "--key-file", str(key_file))
    assert result.returncode == 1 and "NOT intact" in result.stdout and needle in result.stdout, result
    assert "Traceback" not in result.stderr


def test_the_baseline_gate_with_integrity_judges_only_a_record_that_verifies(tmp_path: Path) -> None:
    path, key_file, _ = keyed_store(tmp_path)
    baseline = tmp_path / "baseline.yaml"  # approves the assistant flows, not the refused one for ads
    baseline.write_text("version: 1\nflows:\n  - caller: app\n    purpose: assistant\n    labels: [a, b]\n")
    gate = ("--baseline", str(baseline), "--key-file", str(key_file))
    judged = verify(path, *gate)
    assert judged.returncode == 1, judged.stdout + judged.stderr
    assert "keyed.db: intact: 5 chain entries" in judged.stdout and "UNAPPROVED new-purpose" in judged.stdout
    tamper(path, "DELETE FROM edges WHERE decision = 'deny'")  # the flow the baseline does not approve, hidden
    alone = subprocess.run([sys.executable, "-m", "proxy", "verify", "--store", str(path), "--baseline", str(baseline)],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert alone.returncode == 0 and "ok: 0 unapproved flows" in alone.stdout  # the table as it stands: edited
    edited = verify(path, *gate)
    assert edited.returncode == 1 and "NOT intact" in edited.stdout and "a row was deleted" in edited.stdout
    assert "FAIL: the flows of" in edited.stdout and "are not judged" in edited.stdout, edited.stdout
    document = orjson.loads(verify(path, *gate, "--json").stdout)
    assert document["ok"] is False and document["integrity"]["intact"] is False and "unapproved" not in document
    unkeyed = verify(path, "--baseline", str(baseline))
    assert unkeyed.returncode == 2 and "give --key-file" in unkeyed.stderr


def test_the_baseline_gate_with_integrity_judges_the_window_since_asks_for(tmp_path: Path) -> None:
    path, key_file, _ = keyed_store(tmp_path)  # its flows last seen in 1970
    store = SqliteStore(path, key=b"kept-out-of-the-store's-reach")
    store.upsert([(EdgeKey("app", "assistant", "a", "ck", "", "allow"), time.time(), time.time(), 1, None)])
    store.close()
    baseline = tmp_path / "baseline.yaml"  # approves the assistant flows, not the refused one for ads (1970's)
    baseline.write_text("version: 1\nflows:\n  - caller: app\n    purpose: assistant\n    labels: [a, b]\n")
    gate = ("--baseline", str(baseline), "--key-file", str(key_file), "--since", "1d")
    judged = verify(path, *gate)
    assert judged.returncode == 0 and "intact: 6 chain entries" in judged.stdout, judged.stdout + judged.stderr
    document = orjson.loads(verify(path, *gate, "--json").stdout)
    assert document["ok"] is True and document["since_s"] == 86400.0 and document["approved"] == 1
    assert document["integrity"]["intact"] is True and document["integrity"]["entries"] == 6
    assert verify(path, *gate[:4]).returncode == 1  # the whole store: the ads flow is unapproved


def lying_index(path: Path, table: str, columns: str, where: str) -> None:
    """An index on `table` made partial (`where`), then said, by hand in sqlite_master, to hold every row."""
    with sqlite3.connect(path) as db:
        db.execute(f"CREATE INDEX hide ON {table} ({columns}) WHERE {where}")
    db = sqlite3.connect(path)
    db.execute("PRAGMA writable_schema = ON")
    db.execute("UPDATE sqlite_master SET sql = ? WHERE name = 'hide'", (f"CREATE INDEX hide ON {table} ({columns})",))
    db.commit()
    db.close()


def test_an_index_rewritten_to_leave_a_row_out_hides_no_flow_from_what_reads_the_verified_record(
    tmp_path: Path,
) -> None:
    """An index made partial (no denials) and then said, by hand in sqlite_master, to hold every row: SQLite reads a
    query ordered as the index is through it, so `edges` lists no denial. The verdict names the index (it said intact,
    reading the table); the gate, `report --integrity` and `edges --copy-to` take nothing from the record."""
    path, key_file, _ = keyed_store(tmp_path)
    lying_index(path, "edges", "checkpoint, purpose, caller, input_labels, rule, sidecar", "decision <> 'deny'")
    listed = subprocess.run([sys.executable, "-m", "proxy", "edges", "--store", str(path)], capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert listed.returncode == 0 and "zone:h" not in listed.stdout, listed.stdout  # the table as read through it
    said = verify(path, "--key-file", str(key_file))
    assert said.returncode == 1, said.stdout + said.stderr
    assert "NOT intact: the store's index hide disagrees with its table edges" in said.stdout, said.stdout
    baseline = tmp_path / "baseline.yaml"  # approves the assistant flows, not the refused one for ads
    baseline.write_text("version: 1\nflows:\n  - caller: app\n    purpose: assistant\n    labels: [a, b]\n")
    judged = verify(path, "--baseline", str(baseline), "--key-file", str(key_file))
    assert judged.returncode == 1 and "index hide disagrees" in judged.stdout, judged.stdout + judged.stderr
    out = tmp_path / "report.html"
    drawn = subprocess.run([sys.executable, "-m", "proxy", "report", "--store", str(path), "--integrity", "--key-file",
                            str(key_file), "--out", str(out)], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert drawn.returncode == 1 and not out.exists(), drawn.stdout + drawn.stderr
    from proxy.record.stores import open_reader

    store = open_reader(str(path))
    try:
        report, rows = store.for_copy(b"kept-out-of-the-store's-reach")[:2]
    finally:
        store.close()
    assert not report.intact and rows == []


@pytest.mark.parametrize(
    ("table", "columns", "where"),
    [
        ("edges", "first_seen, last_seen, count, reason", "decision <> 'deny'"),  # covers the verdict's read
        ("edges", "checkpoint, purpose, caller, input_labels, rule, sidecar", "decision <> 'deny'"),  # a reader's order
        ("edges", "last_seen", "decision <> 'deny'"),  # the store's own index's columns
        ("chain", "seq, at, body, prev, hash", "seq <> 3"),
        ("meta", "key, value", "key <> 'origin'"),
    ],
    ids=["covering", "reader order", "by last seen", "chain", "meta"],
)
def test_an_index_that_disagrees_with_its_table_is_named(tmp_path: Path, table: str, columns: str, where: str) -> None:
    """Whether or not the verdict's own read goes through it (covering every column it reads, it named a row
    deleted; not, it said intact), an index that holds other rows than its table is named as what it is."""
    path, key_file, _ = keyed_store(tmp_path)
    lying_index(path, table, columns, where)
    said = verify(path, "--key-file", str(key_file))
    assert said.returncode == 1, said.stdout + said.stderr
    assert f"NOT intact: the store's index hide disagrees with its table {table} (SQLite's integrity check: row " in (
        said.stdout
    ), said.stdout
    assert "missing from index hide)" in said.stdout, said.stdout


@pytest.mark.parametrize("filler", ["", ", CHECK (count < 0)"], ids=["untouched schema", "a CHECK written in"])
def test_an_index_that_disagrees_is_named_past_a_hundred_lines_that_name_none(tmp_path: Path, filler: str) -> None:
    """A store of 60 allowed edges and a denial read after them: the integrity check's other lines come first, three
    an edge on SQLite 3.40 ("NULL value in edges.first_seen", last_seen, count), and one an edge more of a NOT NULL
    or CHECK its owner writes into the table's schema (on any version). Its default stops at 100 lines, before the
    one naming the index: the store was called intact while `edges` listed no denial (review revproof12)."""
    path = tmp_path / "lineage.db"
    store = SqliteStore(path)
    allowed = [EdgeKey("app", "assistant", f"l{i:02d}", "ck", "", "allow") for i in range(60)]
    store.upsert([(key, 100.0, 100.0, 1, None) for key in allowed])
    store.upsert([(EdgeKey("zz", "ads", "health", "", "", "deny", "zone:h"), 102.0, 102.0, 2, "not allowed")])
    store.close()
    if filler:
        with sqlite3.connect(path) as db:
            (table,) = db.execute("SELECT sql FROM sqlite_master WHERE name = 'edges'").fetchone()
            db.execute("PRAGMA writable_schema = ON")
            written = table.replace("reason        TEXT,", "reason        TEXT NOT NULL,")
            written = written.replace(")\n)", f"){filler}\n)")
            assert written.count("NOT NULL") == 12 and filler in written, written
            db.execute("UPDATE sqlite_master SET sql = ? WHERE name = 'edges'", (written,))
        with sqlite3.connect(path) as db:
            assert len(db.execute("PRAGMA integrity_check(edges)").fetchall()) == 100  # the default's last line
    lying_index(path, "edges", "checkpoint, purpose, caller, input_labels, rule, sidecar", "decision <> 'deny'")
    listed = subprocess.run([sys.executable, "-m", "proxy", "edges", "--store", str(path)], capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert listed.returncode == 0 and "zone:h" not in listed.stdout, listed.stdout  # read through the index
    said = verify(path)
    assert said.returncode == 1, said.stdout + said.stderr
    assert "NOT intact: the store's index hide disagrees with its table edges (SQLite's integrity check: row 61 " \
        "missing from index hide)" in said.stdout, said.stdout  # fmt: skip


def test_the_stores_own_indexes_agree_with_their_tables(tmp_path: Path) -> None:
    """An untouched store: SQLite 3.40's integrity check says "NULL value in edges.first_seen" of each of its rows
    (a WITHOUT ROWID table whose last column, sidecar, is one of its key's: a nullable column last, it says ok; the
    values are there), which names no index: intact."""
    path, key_file, _ = keyed_store(tmp_path)
    said = verify(path, "--key-file", str(key_file))
    assert said.returncode == 0 and "intact: 5 chain entries" in said.stdout, said.stdout + said.stderr


def test_copy_to_names_a_file_that_is_no_lineage_store_or_predates_the_chain(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE t (x)")
    pre_chain_store(tmp_path / "old.db")
    url = "postgresql://nobody@127.0.0.1:9/none"
    for path, needle in ((other, "no edges table; it has t"), (tmp_path / "old.db", "this store has no chain")):
        done = subprocess.run([sys.executable, "-m", "proxy", "edges", "--store", str(path), "--copy-to", url],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 1 and needle in done.stderr, done.stderr


def test_a_purge_that_fails_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture, loop_thread) -> None:  # type: ignore[no-untyped-def]
    from proxy.record.edges import EdgeAggregator

    class Failing(SqliteStore):
        def prepare_purge(self, retention_days: float, now: float | None = None) -> None:
            raise TypeError("a chain column edited by hand")

    aggregator = EdgeAggregator(Failing(tmp_path / "s.db"), flush_interval_s=3600, retention_days=30)
    with caplog.at_level("ERROR", logger="lineage_proxy.edges"):
        loop_thread.run(_start_and_flush(aggregator))
    assert "retention purge failed: TypeError: a chain column edited by hand" in caplog.text


async def _start_and_flush(aggregator) -> None:  # type: ignore[no-untyped-def]
    aggregator.start()
    await aggregator.flush()  # the writer thread runs in order: the purge has ended
    await aggregator.stop()


def test_a_keyed_writer_never_signs_on_top_of_a_chain_rebuilt_without_the_key(tmp_path: Path) -> None:
    """Someone without the key turns a denial into an allow and replaces the chain with one unsigned
    snapshot: `verify --key-file` fails, until a keyed writer signs on top, after which it said intact.
    The running writer now refuses (its counts stay with the aggregator), and a keyed restart stops."""
    from proxy.errors import StartupError
    from proxy.record import integrity

    path, key_file, key = keyed_store(tmp_path)
    store = SqliteStore(path, key=key)
    tamper(path, "UPDATE edges SET decision = 'allow' WHERE decision = 'deny'")
    with sqlite3.connect(path) as db:
        forge_unsigned_chain(db, "?")
    with pytest.raises(integrity.UnsignedHead):
        store.upsert([(EdgeKey("app", "assistant", "a", "ck", "", "allow"), 104.0, 104.0, 1, None)])
    store.close()
    with pytest.raises(StartupError, match="newest entry is unsigned"):
        SqliteStore(path, key=key)
    assert verify(path, "--key-file", str(key_file)).returncode == 1


def test_an_unkeyed_store_is_signed_from_the_head_adopted_by_hand(tmp_path: Path) -> None:
    from proxy.errors import StartupError

    path = tmp_path / "s.db"
    store = SqliteStore(path)  # unkeyed until now
    store.upsert([(EdgeKey("app", "assistant", "a", "ck", "", "allow"), 1.0, 1.0, 3, None)])
    store.close()
    key_file = tmp_path / "k"
    key_file.write_text("the new key, long enough")
    with pytest.raises(StartupError, match="adopt-head"):
        SqliteStore(path, key=b"the new key, long enough")
    head = orjson.loads(verify(path, "--json").stdout)["head"]
    wrong = verify(path, "--key-file", str(key_file), "--adopt-head", "sha256:" + "0" * 64)
    assert wrong.returncode == 1 and "nothing adopted" in wrong.stdout
    adopted = verify(path, "--key-file", str(key_file), "--adopt-head", head)
    assert adopted.returncode == 0 and "intact" in adopted.stdout, adopted.stdout + adopted.stderr
    store = SqliteStore(path, key=b"the new key, long enough")  # the keyed writer starts, and signs on
    store.upsert([(EdgeKey("app", "assistant", "a", "ck", "", "allow"), 2.0, 2.0, 1, None)])
    store.close()
    assert verify(path, "--key-file", str(key_file)).returncode == 0


def test_an_anchor_edited_to_a_blob_is_named_not_a_traceback(store: Path) -> None:
    tamper(store, "INSERT OR REPLACE INTO meta (key, value) VALUES ('anchor', x'00')")
    result = verify(store)
    assert result.returncode == 1 and "the store's anchor is not a chain hash" in result.stdout, result.stderr


def test_an_emptied_chain_with_a_forged_anchor_is_never_signed_on(tmp_path: Path) -> None:
    """The chain emptied and the anchor set to a forged entry's hash: a keyed writer chained its next
    flush onto that anchor, and the forged entry put back below it then verified with the key."""
    from proxy.errors import StartupError
    from proxy.record import integrity

    path, _, key = keyed_store(tmp_path)
    store = SqliteStore(path, key=key)
    tamper(path, "DELETE FROM chain")
    tamper(path, "INSERT OR REPLACE INTO meta (key, value) VALUES ('anchor', 'sha256:' || hex(randomblob(32)))")
    with pytest.raises(integrity.UnsignedHead, match="its chain is empty or missing"):
        store.upsert([(EdgeKey("app", "assistant", "a", "ck", "", "allow"), 104.0, 104.0, 1, None)])
    store.close()
    with pytest.raises(StartupError, match="its chain is empty or missing"):
        SqliteStore(path, key=key)


def test_an_unsigned_rebuild_anchored_at_a_recorded_head_does_not_pass_expect_head(tmp_path: Path) -> None:
    """A rebuilt chain whose anchor is set to the head an auditor recorded: the anchor is anyone's to set,
    so it counts as a kept head only under a signed first entry; under a signed anchor, unsigned entries
    are named."""
    from proxy.record import integrity

    for keyed in (False, True):
        folder = tmp_path / f"keyed-{keyed}"
        folder.mkdir()
        path = folder / "s.db"
        store = SqliteStore(path, key=b"k" if keyed else None)
        store.upsert([(EdgeKey("app", "ads", "health", "", "", "deny", "zone:h"), 1.0, 1.0, 2, None)])
        store.close()
        key_file = folder / "k"
        key_file.write_text("k")
        extra = ("--key-file", str(key_file)) if keyed else ()
        head = orjson.loads(verify(path, *extra, "--json").stdout)["head"]
        tamper(path, "DELETE FROM edges WHERE decision = 'deny'")
        with sqlite3.connect(path) as db:  # one unsigned snapshot of the edited table, after the recorded head
            db.execute("DELETE FROM chain")
            body = integrity.body(integrity.SNAPSHOT, [])
            db.execute("INSERT INTO chain (at, body, prev, hash) VALUES (0, ?, ?, ?)",
                       (body, head, integrity.link(head, body, None)))  # fmt: skip
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('anchor', ?)", (head,))
        result = verify(path, *extra, "--expect-head", head)
        assert result.returncode == 1, (keyed, result.stdout)


def test_an_unkeyed_writer_never_writes_to_a_signed_chain(tmp_path: Path) -> None:
    """One writer without the key (config drift, `demo --store` on a keyed store) left an unsigned entry
    after signed ones: the keyed writers then stopped, and the store could not be adopted back."""
    from proxy.errors import StartupError
    from proxy.record import integrity

    path, key_file, key = keyed_store(tmp_path)
    with pytest.raises(StartupError, match="the chain is signed and this writer has no key"):
        SqliteStore(path)
    running = SqliteStore(path, key=key)
    running._key = None  # a writer that lost its key while running (the same check guards every write)
    with pytest.raises(integrity.UnsignedHead):
        running.upsert([(EdgeKey("app", "assistant", "a", "ck", "", "allow"), 104.0, 104.0, 1, None)])
    running.close()
    assert verify(path, "--key-file", str(key_file)).returncode == 0


def test_adopt_head_refuses_options_it_would_ignore_and_a_second_run_is_a_no_op(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    SqliteStore(path).close()
    key_file = tmp_path / "k"
    key_file.write_text("k" * 16)
    head = orjson.loads(verify(path, "--json").stdout)["head"]
    both = verify(path, "--key-file", str(key_file), "--adopt-head", head, "--expect-head", head)
    assert both.returncode == 2 and "takes neither --expect-head nor --json" in both.stderr
    assert verify(path, "--key-file", str(key_file), "--adopt-head", head).returncode == 0
    again = verify(path, "--key-file", str(key_file), "--adopt-head", head)
    assert again.returncode == 0 and "signed already" in again.stdout, again.stdout


def test_a_trigger_cannot_make_a_purge_sign_what_it_writes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A trigger on the delete a purge makes erased a denial and added a flow, and the purge's snapshot,
    read back from the table, signed them. The snapshot is now the verified chain less what expired; and a
    trigger or view in the store stops a writer, skips a purge, and is named by verify."""
    from proxy.errors import StartupError

    path, key_file, key = keyed_store(tmp_path)
    store = SqliteStore(path, key=key)
    store.upsert([(EdgeKey("old", "p", "", "", "", "allow"), 1.0, 1.0, 1, None)])  # expired: a purge will run
    tamper(path, "CREATE TRIGGER t AFTER DELETE ON edges BEGIN DELETE FROM edges WHERE decision = 'deny'; "
                 "INSERT INTO edges VALUES ('ads-ranker', 'ads', 'health', 'evil', '', 'allow', 1, 1, 1, '', NULL, ''); END")  # fmt: skip
    with caplog.at_level("ERROR", logger="lineage_proxy.edges"):
        assert store.purge(30) == 0
    assert "retention purge skipped" in caplog.text and "trigger t" in caplog.text
    store.close()
    with pytest.raises(StartupError, match="it has trigger t"):
        SqliteStore(path, key=key)
    named = verify(path, "--key-file", str(key_file))
    assert named.returncode == 1 and "the store has trigger t" in named.stdout, named.stdout
    tamper(path, "DROP TRIGGER t")
    assert verify(path, "--key-file", str(key_file)).returncode == 0  # nothing was signed over


def test_only_triggers_and_views_on_the_lineage_tables_are_refused(tmp_path: Path) -> None:
    """A DBA's view or trigger elsewhere in the file is no business of the record's; a view in place of
    a lineage table is."""
    path, key_file, key = keyed_store(tmp_path)
    tamper(path, "CREATE VIEW denials AS SELECT * FROM edges WHERE decision = 'deny'")
    tamper(path, "CREATE TABLE notes (x)")
    tamper(path, "CREATE TRIGGER n AFTER INSERT ON notes BEGIN SELECT 1; END")
    SqliteStore(path, key=key).close()
    assert verify(path, "--key-file", str(key_file)).returncode == 0
    tamper(path, "ALTER TABLE edges RENAME TO edges_real")
    tamper(path, "CREATE VIEW edges AS SELECT * FROM edges_real WHERE decision <> 'deny'")
    shown = verify(path, "--key-file", str(key_file))  # never intact: the edges table is gone, a view in its place
    assert shown.returncode == 2 and "no edges table; it has chain, edges_real" in shown.stderr, shown.stderr


def test_a_purge_replays_the_chain_off_the_writer_thread(tmp_path: Path, loop_thread) -> None:  # type: ignore[no-untyped-def]
    """On a long chain the replay takes seconds (2.9 s for 100,000 entries); run on the writer thread it
    held up every new flow's first write after a start. It runs on a thread of its own; the writer only
    replays the tail."""
    import threading

    from proxy.record.edges import EdgeAggregator

    release = threading.Event()
    entered = threading.Event()

    class Slow(SqliteStore):
        def prepare_purge(self, retention_days: float, now: float | None = None) -> Any:
            entered.set()
            release.wait(10)  # a long replay
            return super().prepare_purge(retention_days, now)

    store = Slow(tmp_path / "s.db")
    store.upsert([(EdgeKey("old", "p", "", "", "", "allow"), 1.0, 1.0, 1, None)])  # expired
    aggregator = EdgeAggregator(store, flush_interval_s=3600, retention_days=30)

    async def run() -> None:
        aggregator.start()
        assert await asyncio.to_thread(entered.wait, 10)
        durable = aggregator.add(EdgeKey("new", "p", "", "", "", "allow"), None)  # a new flow's first write
        assert durable is not None
        await asyncio.wait_for(asyncio.wrap_future(durable), 5)  # written while the replay still runs
        release.set()
        await aggregator.flush()
        await aggregator.stop()

    loop_thread.run(run())
    assert {row.key.caller for row in SqliteStore(tmp_path / "s.db", readonly=True).rows()} == {"new"}


@pytest.mark.parametrize("table", ['"CHAIN"', "Chain", "main.CHAIN"])
def test_a_trigger_on_a_lineage_table_named_in_another_case_is_named(tmp_path: Path, table: str) -> None:
    """SQLite's names are case-insensitive, and sqlite_master keeps a trigger's table as it was written: a
    trigger ON "CHAIN" passed the check for triggers on `chain`, erased a forbidden flow's write (its chain
    entry and its row) as it was made, and verify said intact; a keyed restart went on with it in place."""
    from proxy.errors import StartupError

    path, key_file, key = keyed_store(tmp_path)
    store = SqliteStore(path, key=key)  # running when the trigger is made
    tamper(path, f"CREATE TRIGGER hide AFTER INSERT ON {table} WHEN new.body LIKE '%forbidden-model%' BEGIN "
                 "DELETE FROM edges WHERE checkpoint = 'forbidden-model'; DELETE FROM chain WHERE seq = new.seq; END")  # fmt: skip
    store.upsert([(EdgeKey("ads-ranker", "ads", "health", "forbidden-model", "", "allow"), 200.0, 200.0, 1, None)])
    store.close()
    named = verify(path, "--key-file", str(key_file))
    assert named.returncode == 1 and "the store has trigger hide" in named.stdout, named.stdout
    with pytest.raises(StartupError, match="it has trigger hide"):
        SqliteStore(path, key=key)

"""The tamper-evident record: real calls build the store's hash chain; `verify --integrity` proves it
intact, and names the first broken link for each way a record can be altered."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from proxy.record.store import EdgeKey, SqliteStore
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
        ("INSERT INTO edges VALUES ('x', 'p', '', '', '', 'allow', 1, 1, 1, NULL, NULL)", "a row was inserted"),
        ("UPDATE chain SET body = replace(body, '\"a\"', '\"z\"') WHERE seq = 2", "its hash does not match"),
        ("DELETE FROM chain WHERE seq = 2", "does not follow the entry before it"),
    ],
    ids=["count edited", "denial deleted", "row inserted", "entry edited", "entry removed"],
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
    assert unkeyed.returncode == 1 and "give --key-file" in unkeyed.stdout
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
    store.upsert([(new, 5.0, 9e9, 2, "r")])
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
    secret.write_text("s3cret\n")
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

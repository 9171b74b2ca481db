"""`report --integrity` draws only a record whose hash chain verifies, its rows read in the same transaction as the
verdict: a flow edited out of the store (a refused flow's row deleted) is never drawn as if it had not happened.
Before, `report` drew the edge table as it stood, whoever had edited it, and had no such option (exit 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from proxy.cli import main
from proxy.record.integrity import Report
from proxy.record.store import EdgeKey, SqliteStore
from tests.record.test_integrity import keyed_store, tamper


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", *args], capture_output=True, text=True, timeout=60)


def unkeyed_store(tmp_path: Path) -> tuple[Path, tuple[str, ...]]:
    """A store without a key: a flow of two calls and a refused one."""
    path = tmp_path / "unkeyed.db"
    store = SqliteStore(path)
    store.upsert([(EdgeKey("app", "assistant", "a", "ck", "", "allow"), 100.0, 100.0, 2, None)])
    store.upsert([(EdgeKey("app", "ads", "health", "", "", "deny", "zone:h"), 101.0, 101.0, 1, "not for ads")])
    store.close()
    return path, ()


def keyed(tmp_path: Path) -> tuple[Path, tuple[str, ...]]:
    path, key_file, _ = keyed_store(tmp_path)
    return path, ("--key-file", str(key_file))


@pytest.mark.parametrize("make", [unkeyed_store, keyed], ids=["unkeyed", "keyed"])
def test_an_intact_record_is_drawn_with_the_head_it_verified(tmp_path: Path, make) -> None:  # type: ignore[no-untyped-def]
    path, key = make(tmp_path)
    verified = cli("verify", "--store", str(path), "--integrity", "--json", *key)
    head = orjson.loads(verified.stdout)["head"]
    out = tmp_path / "report.html"
    done = cli("report", "--store", str(path), "--out", str(out), "--integrity", *key, "--expect-head", head)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith(f"; the record verified, head {head}"), done.stdout
    text = out.read_text(encoding="utf-8")
    assert "Record verified: hash chain intact" in text and f"head <code>{head}</code>" in text
    assert "zone:h" in text  # the refused flow is drawn
    plain = cli("report", "--store", str(path), "--out", str(out))  # without the option: said so in the header
    assert plain.returncode == 0 and "Record not verified: drawn from the edge table as it stands" in out.read_text()


@pytest.mark.parametrize("make", [unkeyed_store, keyed], ids=["unkeyed", "keyed"])
def test_a_record_edited_is_not_drawn(tmp_path: Path, make) -> None:  # type: ignore[no-untyped-def]
    path, key = make(tmp_path)
    out = tmp_path / "report.html"
    tamper(path, "DELETE FROM edges WHERE decision = 'deny'")  # the refused flow, edited out of the record
    edited = cli("report", "--store", str(path), "--out", str(out), "--integrity", *key)
    assert edited.returncode == 1, edited.stdout + edited.stderr
    assert "NOT intact" in edited.stdout and "a row was deleted" in edited.stdout, edited.stdout
    assert f"lineage-proxy report: no report written: the record of {path} does not verify" in edited.stderr
    assert not out.exists()
    assert cli("report", "--store", str(path), "--out", str(out)).returncode == 0  # as it stands: the flow gone
    assert "zone:h" not in out.read_text(encoding="utf-8")


def test_a_head_cut_away_writes_no_report_and_a_keyed_chain_needs_its_key(tmp_path: Path) -> None:
    path, key = keyed(tmp_path)
    out = tmp_path / "report.html"
    gone = "sha256:" + "0" * 64
    cut = cli("report", "--store", str(path), "--out", str(out), "--integrity", *key, "--expect-head", gone)
    assert cut.returncode == 1 and f"the head {gone} is not in the chain" in cut.stdout and not out.exists()
    unkeyed = cli("report", "--store", str(path), "--out", str(out), "--integrity")
    assert unkeyed.returncode == 1 and not out.exists(), unkeyed.stdout + unkeyed.stderr
    assert unkeyed.stderr.startswith("lineage-proxy report: ") and "give --key-file" in unkeyed.stderr


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--key-file", "k"), "--key-file goes with --integrity"),
        (("--expect-head", "sha256:" + "0" * 64), "--expect-head goes with --integrity"),
        (("--integrity", "--retired-key-file", "k"), "--retired-key-file goes with --key-file"),
    ],
)
def test_options_that_would_do_nothing_are_usage_errors(options: tuple[str, ...], message: str) -> None:
    done = cli("report", "--store", "s.db", "--out", "r.html", *options)
    assert done.returncode == 2 and f"lineage-proxy report: error: {message}" in done.stderr, done.stderr


def test_the_help_says_what_integrity_does() -> None:
    help_text = " ".join(cli("report", "--help").stdout.split())
    assert "draw only a record that verifies" in help_text and "no report written" in help_text


def test_a_flow_written_after_the_verdict_is_not_drawn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A write committed after the verdict (here, once it is given, before the reader's transaction ends, by a writer
    beside the reader: WAL) is not in the report: its rows are those the verdict compared, in the snapshot the chain
    was verified in."""
    path, key = keyed(tmp_path)
    verify = SqliteStore._verify

    def written_meanwhile(store: SqliteStore, *args: Any, **kwargs: Any) -> tuple[Report, list[Any]]:
        found = verify(store, *args, **kwargs)
        writer = SqliteStore(path, key=b"kept-out-of-the-store's-reach")
        writer.upsert([(EdgeKey("latecomer", "assistant", "a", "ck", "", "allow"), 104.0, 104.0, 1, None)])
        writer.close()
        return found

    monkeypatch.setattr(SqliteStore, "_verify", written_meanwhile)
    out = tmp_path / "report.html"
    assert main(["report", "--store", str(path), "--out", str(out), "--integrity", *key]) == 0
    assert "3 flows, 7 calls; the record verified" in capsys.readouterr().out
    text = out.read_text(encoding="utf-8")
    assert "zone:h" in text and "latecomer" not in text  # drawn: the record verified; not: the flow written after
    monkeypatch.setattr(SqliteStore, "_verify", verify)
    assert any(row.key.caller == "latecomer" for row in SqliteStore(path, readonly=True).rows())  # it was written

"""A SQLite store whose path holds a character a URI reads otherwise (`%`, `#`, `?`): the readers (`edges`, `verify`,
`report`) open the store read-only through a URI, into which the path went as it was, so `a%62.db` opened `ab.db`,
`run#2/lineage.db` the file `run`, and `x.db?immutable=1&` the file `x.db`: the record of another file was listed,
judged against the baseline and verified intact as this one's, which held a denial. The path is percent-encoded now."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from proxy.record.store import EdgeKey, SqliteStore

KEY = b"kept-out-of-the-store's-reach"
SERVED = EdgeKey("app", "assistant", "a", "ck", "", "allow")
DENIED = EdgeKey("app", "ads", "health", "", "", "deny", "zone:h")
BASELINE = "version: 1\nflows:\n  - {caller: app, purpose: assistant, labels: [a], checkpoints: [ck]}\n"


def store(path: Path, *, denial: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    written = SqliteStore(path, key=KEY)
    written.upsert([(SERVED, 100.0, 100.0, 2, None)])
    if denial:
        written.upsert([(DENIED, 101.0, 101.0, 1, "purpose ads is not allowed for health")])
    written.close()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("named", "other"), [("a%62.db", "ab.db"), ("run#2/lineage.db", "run"),
                                              ("x.db?immutable=1&", "x.db")])  # fmt: skip
def test_the_store_named_is_the_store_read(tmp_path: Path, named: str, other: str) -> None:
    store(tmp_path / other, denial=False)  # a clean record beside it, which the URI named instead
    store(tmp_path / named, denial=True)
    path = str(tmp_path / named)
    listed = cli("edges", "--store", path)
    assert listed.returncode == 0 and "zone:h" in listed.stdout, listed.stdout + listed.stderr
    (tmp_path / "key").write_bytes(KEY)
    (tmp_path / "baseline.yaml").write_text(BASELINE)
    gate = cli("verify", "--store", path, "--baseline", str(tmp_path / "baseline.yaml"), "--integrity", "--key-file",
               str(tmp_path / "key"))  # fmt: skip
    assert gate.returncode == 1 and "UNAPPROVED new-purpose" in gate.stdout, gate.stdout + gate.stderr
    assert "intact: 3 chain entries" in gate.stdout  # this store's: its first entry and two writes
    out = tmp_path / "report.html"
    drawn = cli("report", "--store", path, "--out", str(out), "--integrity", "--key-file", str(tmp_path / "key"))
    assert drawn.returncode == 0 and "zone:h" in out.read_text(encoding="utf-8"), drawn.stdout + drawn.stderr


def test_a_purge_reads_the_store_it_purges(tmp_path: Path) -> None:
    """A writer's purge reads the chain on a read-only connection of its own: of the file named, not of `ab.db`."""
    store(tmp_path / "ab.db", denial=False)
    path = tmp_path / "a%62.db"
    store(path, denial=True)
    writer = SqliteStore(path, key=KEY)
    try:
        prepared = writer.prepare_purge(1, now=101.0 + 86400 * 1.5)  # a day and a half on: both expired
        assert prepared is not None and prepared.replay.problem is None
        assert [row[5] for row in prepared.expired] == ["deny", "allow"]  # both expired, the denial this file's
    finally:
        writer.close()

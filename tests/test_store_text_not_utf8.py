"""A store whose text is not UTF-8: one row or chain entry edited with bytes (`CAST(x'ff...' AS TEXT)`, as a hand
with `sqlite3`, or any program writing the file, can). Python's sqlite3 refuses such text, so every reader failed
on the whole store: `verify --integrity` exited 2, a usage or file error ("cannot read it as a lineage store"), for
a record that had been tampered with, which is its verdict 1, NOT intact; `edges`, `verify` and `report` showed no
flow at all. And each quoted the row's bytes in that error, terminal controls included (an OSC sequence retitled
the terminal). Such text is now read as its bytes escaped (`\\xff`): the readers show the rows, and the chain
names the edited one."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from proxy.cli import main
from proxy.record.store import EdgeKey, SqliteStore

NOT_UTF8 = b"\xff\x1b]0;owned\x07"  # not UTF-8, and an OSC sequence that sets a terminal's title


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "lineage.db"
    store = SqliteStore(path)
    store.upsert([(EdgeKey("app", "assistant", "a", "org/m@v1", "a", "allow"), 0.0, 1.0, 3, None),
                  (EdgeKey("app", "ads", "a", "", "", "deny", "zone:z"), 0.0, 1.0, 2, "purpose 'ads' denied")])  # fmt: skip
    store.close()
    return path


def edit(path: Path, statement: str) -> None:
    db = sqlite3.connect(path)
    db.execute(statement, (NOT_UTF8,))
    db.commit()
    db.close()


def test_a_row_not_utf8_is_named_by_the_chain_and_shown_by_the_readers(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(store, "UPDATE edges SET caller = CAST(? AS TEXT) WHERE decision = 'allow'")
    assert main(["verify", "--store", str(store), "--integrity"]) == 1  # tampered: NOT intact, not a usage error
    out, err = capsys.readouterr()
    assert "NOT intact: edge (caller \\xff\\x1b]0;owned\\x07, purpose assistant" in out, out + err
    assert main(["edges", "--store", str(store)]) == 0
    out, err = capsys.readouterr()
    assert "\x1b" not in out + err and len(out.splitlines()) == 3  # the header and both flows
    assert "\\xff\\x1b]0;owned\\x07" in out
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text("version: 1\nflows: []\n")
    assert main(["verify", "--store", str(store), "--baseline", str(baseline)]) == 1  # two unapproved flows
    assert "FAIL: 2 unapproved flows" in capsys.readouterr().out
    assert main(["report", "--store", str(store), "--out", str(tmp_path / "report.html")]) == 0
    assert "\\xff" in (tmp_path / "report.html").read_text()


def test_a_chain_entry_not_utf8_is_a_broken_link(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit(store, "UPDATE chain SET body = CAST(? AS TEXT) WHERE seq = (SELECT max(seq) FROM chain)")
    assert main(["verify", "--store", str(store), "--integrity"]) == 1
    out, err = capsys.readouterr()
    assert "NOT intact: entry " in out and "\x1b" not in out + err, out + err

"""A row of the edges table whose values are not an edge's: SQLite keeps any value in any column (a count that is
text, a time as text, or a time past any calendar, `1e300`), so a hand with `sqlite3` or any program writing the
file can leave one. `edges`, `verify` and `report` stopped on it with a Python traceback (`TypeError: unsupported
operand type(s) for +: 'int' and 'str'`, `OverflowError: timestamp out of range for platform time_t`), `verify`
with exit 1, which says "unapproved flows". They now stop with a message naming the row, and `verify --integrity`
(which named it already) as the command that tells what was edited."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from proxy.cli import main
from proxy.record.store import EdgeKey, SqliteStore


@pytest.mark.parametrize(
    ("edit", "shown"),
    [
        ("UPDATE edges SET count = '<style>main{display:none}</style>'", "count '<style>main{display:none}</style>'"),
        ("UPDATE edges SET last_seen = 1e300", "last seen 1e+300"),
        ("UPDATE edges SET first_seen = 'yesterday'", "first seen 'yesterday'"),
    ],
)
def test_a_row_that_is_not_an_edge_is_named_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: str, shown: str
) -> None:
    path = tmp_path / "lineage.db"
    store = SqliteStore(path)
    store.upsert([(EdgeKey("app", "assistant", "a", "org/m@v1", "a", "allow"), 0.0, 1.0, 3, None)])
    store.close()
    db = sqlite3.connect(path)
    db.execute(edit)
    db.commit()
    db.close()
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text("version: 1\nflows: []\n")
    expected = {"edges": 1, "verify": 2, "report": 1}  # verify: a file error, not "unapproved flows"
    for command, more in (("edges", []), ("verify", ["--baseline", str(baseline)]),
                          ("report", ["--out", str(tmp_path / "report.html")])):  # fmt: skip
        assert main([command, "--store", str(path), *more]) == expected[command], command
        err = capsys.readouterr().err
        assert "edge (caller app, purpose assistant, labels a, checkpoint org/m@v1, allow): a row whose values " in err
        assert shown in err and "verify --integrity" in err, err
    assert not (tmp_path / "report.html").exists()
    assert main(["verify", "--store", str(path), "--integrity"]) == 1  # as before: NOT intact

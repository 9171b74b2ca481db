"""A writer never takes over another program's SQLite file: `lineage.store` pointed at a database that
holds tables, none of them a lineage store's, stops the start with one line and leaves the file as it was."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from proxy.config import parse
from proxy.errors import StartupError
from proxy.record.store import SqliteStore
from proxy.workers import open_process


def app_database(path: Path) -> bytes:
    """Another program's database (one table, `t`, with a row); its bytes, to compare with afterwards."""
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT)")
        db.execute("INSERT INTO t (v) VALUES ('kept')")
    db.close()
    return path.read_bytes()


def test_a_database_of_other_tables_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    before = app_database(path)
    with pytest.raises(StartupError) as caught:
        SqliteStore(path)
    assert str(caught.value) == (f"lineage store {path}: not a lineage store: it holds other tables (t) and none "
                                 "of a lineage store's; point lineage.store at a new file")  # fmt: skip
    assert path.read_bytes() == before  # no tables added, not even switched to WAL mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]


def test_serve_refuses_it_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    app_database(path)
    config = parse(f"""
listen: {{http: 127.0.0.1:0}}
upstreams: [{{name: u, url: "http://127.0.0.1:9"}}]
routes: [{{model: "*", upstream: u}}]
policy: {{anonymous: allow, default_purpose: assistant}}
lineage: {{store: "{path}"}}
""")
    with pytest.raises(StartupError, match="not a lineage store") as caught:
        open_process(config)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_many_tables_are_named_up_to_five(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as db:
        for name in "abcdefg":
            db.execute(f"CREATE TABLE {name} (x)")
    db.close()
    with pytest.raises(StartupError, match=r"\(a, b, c, d, e and 2 more\)"):
        SqliteStore(path)


@pytest.mark.parametrize("kind", ["new", "empty file", "no tables"])
def test_a_new_path_or_an_empty_database_becomes_a_store(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "lineage.db"
    if kind == "empty file":
        path.write_bytes(b"")
    elif kind == "no tables":
        sqlite3.connect(path).execute("PRAGMA user_version = 1").connection.close()
    SqliteStore(path).close()
    with sqlite3.connect(path) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    db.close()
    assert {"edges", "chain", "meta"} <= tables


def test_a_store_beside_other_tables_is_still_a_store(tmp_path: Path) -> None:
    """Someone's extra table in a lineage store does not make it foreign: the store's own tables are there."""
    path = tmp_path / "lineage.db"
    SqliteStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (x)")
    db.close()
    SqliteStore(path).close()


def test_a_journal_is_never_written_into_another_programs_database(tmp_path: Path) -> None:
    """`lineage.journal` pointed at another program's file had the journal's tables added to it."""
    from proxy.record.journal import Journal

    path = tmp_path / "app.db"
    before = app_database(path)
    with pytest.raises(StartupError, match=r"not a lineage journal: it holds other tables \(t\)"):
        Journal(path)
    assert path.read_bytes() == before
    Journal(tmp_path / "journal.db").close()  # a new file is a journal
    Journal(tmp_path / "journal.db").close()  # and is one when opened again

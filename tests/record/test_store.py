"""The SQLite store and the journal make their file, never the directories above it: a typo in the path
is refused with one line naming the directory, instead of building a tree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from proxy.config import parse
from proxy.errors import StartupError
from proxy.record.journal import Journal
from proxy.record.store import SqliteStore
from proxy.workers import open_process


def test_a_store_in_a_missing_directory_is_refused_and_nothing_is_created(tmp_path: Path) -> None:
    store = tmp_path / "lineag" / "data" / "lineage.db"
    with pytest.raises(StartupError) as caught:
        SqliteStore(store)
    assert str(caught.value) == (f"cannot open the lineage store {store}: the directory {tmp_path / 'lineag'} "
                                 "does not exist (create it, or correct the path)")  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_a_relative_path_says_where_it_was_looked_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StartupError) as caught:
        SqliteStore("data/lineage.db")
    assert str(caught.value) == (f"cannot open the lineage store data/lineage.db: the directory data "
                                 f"({tmp_path / 'data'}) does not exist (create it, or correct the path)")  # fmt: skip


def test_a_store_under_a_regular_file_says_it_is_not_a_directory(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    store = tmp_path / "a-file" / "lineage.db"
    with pytest.raises(StartupError) as caught:
        SqliteStore(store)
    assert str(caught.value) == f"cannot open the lineage store {store}: {tmp_path / 'a-file'} is not a directory"


def test_the_journal_is_held_to_the_same_rule(tmp_path: Path) -> None:
    journal = tmp_path / "spool" / "journal.db"
    with pytest.raises(StartupError) as caught:
        Journal(journal)
    assert str(caught.value) == (f"cannot open the lineage journal {journal}: the directory {tmp_path / 'spool'} "
                                 "does not exist (create it, or correct the path)")  # fmt: skip
    assert not (tmp_path / "spool").exists()


def test_a_store_in_an_existing_directory_or_the_working_directory_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    SqliteStore(tmp_path / "lineage.db").close()
    monkeypatch.chdir(tmp_path)
    SqliteStore("here.db").close()  # the default ./lineage.db has no directory to make
    assert {p.name for p in tmp_path.iterdir()} >= {"lineage.db", "here.db"}


def test_the_proxy_start_reports_it_as_one_line(tmp_path: Path) -> None:
    store = tmp_path / "typo" / "lineage.db"
    config = parse(f"""
listen: {{http: 127.0.0.1:0}}
upstreams: [{{name: u, url: "http://127.0.0.1:9"}}]
routes: [{{model: "*", upstream: u}}]
lineage: {{store: "{store}"}}
""")
    with pytest.raises(StartupError) as caught:
        open_process(config)
    assert "\n" not in str(caught.value) and f"the directory {tmp_path / 'typo'} does not exist" in str(caught.value)


def _open_store(path: Path, start: Any, failed: Any) -> None:
    start.wait()
    try:
        SqliteStore(path).close()
    except Exception as exc:
        failed.put(repr(exc))


def test_workers_opening_one_new_store_together_all_start(tmp_path: Path) -> None:
    """Switching a new file to WAL takes a lock SQLite does not wait for: one run in fifteen, one of eight
    worker processes starting together failed with "database is locked"."""
    import multiprocessing

    fork = multiprocessing.get_context("fork")
    failed = fork.Queue()
    for round_ in range(10):
        start = fork.Barrier(8)
        workers = [fork.Process(target=_open_store, args=(tmp_path / f"new-{round_}.db", start, failed))
                   for _ in range(8)]  # fmt: skip
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
            assert worker.exitcode == 0
    assert failed.empty(), failed.get()

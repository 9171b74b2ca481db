"""`demo --store PATH` on a proxy's own store (`./lineage.db`, flows the demo did not write) is refused with a
clear error, exit 1, and the store is left as it was: the demo used to add its calls to that record without a
word. A new file, or a store an earlier demo wrote, is still used (the README's `demo --store lineage.db`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.cli import main
from proxy.demo_model import ROOT
from proxy.record.store import EdgeKey, SqliteStore


def edges(path: Path) -> list[tuple[str, str, int]]:
    reader = SqliteStore(path, readonly=True)
    try:
        return sorted((row.key.caller, row.key.checkpoint, row.count) for row in reader.rows())
    finally:
        reader.close()


def test_a_proxy_store_is_refused_and_left_as_it_was(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "lineage.db"
    store = SqliteStore(path)
    store.upsert(
        [(EdgeKey("billing-svc", "support", "pii:email", "org/m@v1", "pii:email", "allow"), 0.0, 1.0, 3, None)]
    )
    store.close()
    before = edges(path)
    assert main(["demo", "--store", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"demo --store {path}: it holds 1 flow(s) the demo did not write (callers billing-svc)" in err
    assert "Give a new file" in err
    assert edges(path) == before


def test_a_new_file_then_the_same_demo_store_again_are_used(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "lineage.db"
    assert main(["demo", "--store", str(path)]) == 0
    first = edges(path)
    assert first and {checkpoint for _, checkpoint, _ in first} <= {"", ROOT}
    assert main(["demo", "--store", str(path)]) == 0  # a demo's own store: its calls are added
    assert sum(count for *_, count in edges(path)) == 2 * sum(count for *_, count in first)
    capsys.readouterr()

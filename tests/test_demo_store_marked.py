"""`demo --store` told a demo's store by its flows' callers and checkpoints: a proxy's own record that holds only
anonymous calls denied before any checkpoint (`anonymous`, checkpoint none: what a demo writes too) passed as a
demo's, and the demo added its calls to it. A demo now marks its store (a row in its `meta` table), and a store
holding flows without that mark is refused, whoever its callers are."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.cli import main
from proxy.record.store import EdgeKey, SqliteStore
from tests.test_demo_store_foreign import edges


def test_a_proxy_store_of_anonymous_denials_is_refused_and_left_as_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "lineage.db"
    store = SqliteStore(path)  # a proxy's own record: an anonymous caller denied before its checkpoint was known
    store.upsert([(EdgeKey("anonymous", "", "", "", "", "deny", "no credentials"), 0.0, 1.0, 7, None)])
    store.close()
    before = edges(path)
    assert main(["demo", "--store", str(path)]) == 1
    err = capsys.readouterr().err
    assert (
        f"lineage-proxy demo: --store {path}: it holds 1 flow(s) the demo did not write (callers anonymous)" in err
    ), err
    assert edges(path) == before


def test_a_demo_s_store_is_marked_and_used_again(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "lineage.db"
    assert main(["demo", "--store", str(path)]) == 0
    first = sum(count for *_, count in edges(path))
    assert main(["demo", "--store", str(path)]) == 0
    assert sum(count for *_, count in edges(path)) == 2 * first
    capsys.readouterr()

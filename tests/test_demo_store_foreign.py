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
    assert f"lineage-proxy demo: --store {path}: it holds 1 flow(s) the demo did not write (callers billing-svc)" in err
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


def test_a_proxy_store_named_as_a_file_uri_is_refused_as_by_its_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`demo --store file:lineage.db` is the file lineage.db to the demo's writer (SQLite reads the URI), as it is to
    `serve` and the readers: the check that the store is no proxy's own looked for a file named `file:lineage.db`, found
    none, and the demo added its calls to the proxy's record (rec15)."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "lineage.db"
    store = SqliteStore(path)
    store.upsert(
        [(EdgeKey("billing-svc", "support", "pii:email", "org/m@v1", "pii:email", "allow"), 0.0, 1.0, 3, None)]
    )
    store.close()
    before = edges(path)
    for given in ("file:lineage.db", f"file://{path}"):
        assert main(["demo", "--store", given]) == 1
        err = capsys.readouterr().err
        assert (
            f"lineage-proxy demo: --store {given}: it holds 1 flow(s) the demo did not write (callers billing-svc)"
            in err
        ), err
        assert edges(path) == before


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("file:x.db?mode=ro", "'file:x.db?mode=ro': a file: URI's parameters ('mode=ro') are not taken"),
        ("file://host/x.db", "'file://host/x.db': a file: URI names no host but localhost ('host')"),
    ],
)
def test_a_file_uri_serve_refuses_is_refused_by_the_demo_in_its_words(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, given: str, said: str
) -> None:
    """As `check`, `serve` and the readers refuse it, naming the flag, not a `lineage.store` the user never wrote; it
    ended the demo with a ConfigError traceback (rec15)."""
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--store", given]) == 1
    err = capsys.readouterr().err
    assert f"lineage-proxy demo: --store {said}" in err, err
    assert "Traceback" not in err and "lineage.store" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_file_uri_whose_file_is_named_as_a_postgresql_url_is_that_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`file:postgresql://127.0.0.1:1/x.db` names the SQLite file `postgresql://127.0.0.1:1/x.db` (a directory
    `postgresql:`) to `serve` and the readers, which take a URL by its own scheme alone: the demo took the file's name
    for the URL, and refused it as a fleet's PostgreSQL record (review revrec15)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "postgresql:" / "127.0.0.1:1").mkdir(parents=True)
    given = "file:postgresql://127.0.0.1:1/x.db"
    assert main(["demo", "--store", given]) == 0, capsys.readouterr().err
    capsys.readouterr()
    written = edges(tmp_path / "postgresql:" / "127.0.0.1:1" / "x.db")
    assert written
    assert main(["edges", "--store", given, "--json"]) == 0
    assert capsys.readouterr().out.count('"caller"') == len(written)

"""`lineage-proxy edges` prints its times in UTC and says so, as `verify` and `report` do."""

from __future__ import annotations

from pathlib import Path

from proxy.baseline import NO_WEIGHTS
from proxy.cli import main
from proxy.record.store import EdgeKey, SqliteStore


def test_the_table_says_its_times_are_utc(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    store = SqliteStore(tmp_path / "lineage.db")
    store.upsert([(EdgeKey("app", "assistant", "a", "ck", "", "allow"), 0.0, 86400.0 + 3661, 2, None)])
    store.close()
    assert main(["edges", "--store", str(tmp_path / "lineage.db")]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split("  ")[-1] == "last seen (UTC)"
    assert row.endswith("  1970-01-02 01:01:01")


def test_label_and_purpose_filters_read_as_the_wire_does(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """Labels and purposes are recorded lower case (the wire normalises them): `--label User-Interaction`
    and `--purpose ADS` found nothing."""
    store = SqliteStore(tmp_path / "lineage.db")
    store.upsert([(EdgeKey("app", "ads", "user-interaction", "ck", "", "deny"), 0.0, 1.0, 2, None)])
    store.close()
    assert (
        main(["edges", "--store", str(tmp_path / "lineage.db"), "--label", "User-Interaction", "--purpose", "ADS"]) == 0
    )
    assert len(capsys.readouterr().out.splitlines()) == 2  # the header and the edge


def test_an_empty_purpose_filter_finds_calls_that_named_none(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    store = SqliteStore(tmp_path / "lineage.db")
    store.upsert([(EdgeKey("app", "", "", "ck", "", "allow"), 0.0, 1.0, 2, None),
                  (EdgeKey("app", "ads", "", "ck", "", "allow"), 0.0, 1.0, 2, None)])  # fmt: skip
    store.close()
    assert main(["edges", "--store", str(tmp_path / "lineage.db"), "--purpose", " "]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2  # the header and the one edge without a purpose


def test_a_checkpoint_filter_finds_the_loads_that_run_no_weights(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """A LoRA adapter's load or unload is recorded with the checkpoint `(runs no weights)` (`NO_WEIGHTS`), which the
    table shows: `--checkpoint` names it so. Until review revroutes (2026-12-05) the filter percent-encoded its spaces,
    as it does a raw checkpoint name's, and found none of them."""
    store = SqliteStore(tmp_path / "lineage.db")
    store.upsert([(EdgeKey("app", "care", "", NO_WEIGHTS, "", "allow"), 0.0, 1.0, 2, None),
                  (EdgeKey("app", "care", "", "ck", "", "allow"), 0.0, 1.0, 2, None)])  # fmt: skip
    store.close()
    assert main(["edges", "--store", str(tmp_path / "lineage.db"), "--checkpoint", NO_WEIGHTS]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert [row.split("  ")[0] for row in rows] == [NO_WEIGHTS]  # was: []

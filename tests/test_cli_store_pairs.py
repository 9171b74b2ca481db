"""A store given on the command line as libpq's key=value pairs (`edges --store 'host=db password=...'`, `--copy-to`,
`verify`'s, `report`'s, `demo`'s) is refused as the config's `lineage.store` is (`store_pairs_problem`), in the same
words, none of the store's, so its password is shown nowhere. Until 2026-12-06 each command took it for a SQLite
file's name and said it whole (`lineage-proxy: host=db ... password=s3cretXYZ: no lineage store there`), and
`demo --store` failed with a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_store_url_white_space import SECRET

ROOT = str(Path(__file__).parent.parent)  # this tree's proxy, not the one installed
PAIRS = f"host=db dbname=lineage password={SECRET}"
SAID = (
    "a PostgreSQL store is a postgresql:// URL, postgresql://user@host:5432/DB, not libpq's key=value pairs, which "
    "would be a SQLite file's name (write ./ before one so named)"
)


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", *args], capture_output=True, text=True, timeout=120, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": ROOT})  # fmt: skip


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["edges", "--store", PAIRS], "--store"),
        (["edges", "--store", f"sslmod=require host=db password={SECRET}"], "--store"),  # (a key libpq refuses)
        (["edges", "--store", "lineage.db", "--copy-to", PAIRS], "--copy-to"),
        (["verify", "--integrity", "--store", PAIRS], "--store"),
        (["report", "--out", "r.html", "--store", PAIRS], "--store"),
        (["demo", "--store", PAIRS], "--store"),
    ],
    ids=["edges", "edges-refused-pairs", "copy-to", "verify", "report", "demo"],
)
def test_a_store_flag_of_libpqs_pairs_is_refused_without_its_password(
    args: list[str], flag: str, tmp_path: Path
) -> None:
    done = run(args, tmp_path)
    said = done.stdout + done.stderr
    assert done.returncode == 2, said
    assert f"error: argument {flag}: {SAID}" in done.stderr, said
    assert SECRET not in said and "Traceback" not in said, said
    assert list(tmp_path.iterdir()) == []  # (no file made, nor a report written)


@pytest.mark.parametrize("store", ["./dbname=lineage", "runs=3/lineage.db"])
def test_a_store_flag_naming_a_file_holding_a_key_is_still_a_sqlite_file(store: str, tmp_path: Path) -> None:
    """A name the config's store loads as a SQLite file's (`./` before it) is one on the command line too."""
    done = run(["edges", "--store", store], tmp_path)
    assert done.returncode == 1 and "no lineage store there" in done.stderr, done.stdout + done.stderr

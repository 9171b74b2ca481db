"""A SQLite store path naming a FIFO (a store replaced by one, or a link to one): SQLite opening it waits for a writer
to open the FIFO, for ever, so `verify` (a CI gate), `edges` and `report` hung, and so did `check` and `serve` at
their start, where each now says what the path names and stops."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: m, url: "http://127.0.0.1:1"}]
routes: [{model: "*", upstream: m}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: STORE}
"""


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "lineage.db"
    os.mkfifo(path)
    link = tmp_path / "link.db"  # a link to it is read as what it names
    link.symlink_to(path)
    return link


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("verify", "--integrity"), 2),
        (("verify", "--baseline", "BASELINE"), 2),
        (("edges",), 1),
        (("report", "--out", "OUT"), 1),
        (("report", "--integrity", "--out", "OUT"), 1),
    ],
    ids=["verify --integrity", "verify --baseline", "edges", "report", "report --integrity"],
)
def test_a_reader_says_what_the_path_names(fifo: Path, tmp_path: Path, args: tuple[str, ...], code: int) -> None:
    (tmp_path / "baseline.yaml").write_text("version: 1\nflows: []\n")
    given = [str(tmp_path / "baseline.yaml") if a == "BASELINE" else str(tmp_path / "r.html") if a == "OUT" else a
             for a in args]  # fmt: skip
    done = cli(given[0], "--store", str(fifo), *given[1:])
    assert done.returncode == code, done.stdout + done.stderr
    assert f"{fifo}: is a FIFO, not a lineage store" in done.stderr, done.stderr
    assert not (tmp_path / "r.html").exists()


def test_check_names_it(fifo: Path, tmp_path: Path) -> None:
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG.replace("STORE", str(fifo)))
    done = cli("check", "--config", str(config))
    assert done.returncode == 1, done.stdout + done.stderr
    said = done.stdout + done.stderr
    assert f"lineage.store: cannot open the lineage store {fifo} (a link to" in said, said
    assert "it is a FIFO, not a file" in said, said

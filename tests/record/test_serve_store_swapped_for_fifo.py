"""`serve`'s own open of its SQLite store, or of its journal (lineage.journal, a SQLite file too), whose -journal is
swapped for a FIFO after its check (`require_directory`), before SQLite opens it: SQLite opens a store's -journal,
read-only, to see whether it is a journal to roll back, and that open of a FIFO waits for a writer for ever, so `serve`
hung at its start, never ready, never saying why. The readers' `Unblocker` (edges, verify, report) ends such a wait; the
writer's open now runs with one too, and is refused as a store replaced as it was opened. The swap is made at that
window exactly: `sqlite3.connect`, called once the check has passed, makes it right after it opens the file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from proxy.record.journal import Journal
from proxy.record.store import EdgeKey, SqliteStore

# `serve` run with `sqlite3.connect` swapping the -journal of the file it opens (the store, or the journal) for a FIFO
SWAPPING = """
import os, runpy, sqlite3, sys
name, args = sys.argv[1], sys.argv[2:]
real = sqlite3.connect

def swapping(target, *given, **named):
    opened = real(target, *given, **named)
    if str(target).endswith(os.path.basename(name)) and not os.path.exists(name + "-journal"):
        os.mkfifo(name + "-journal")
    return opened

sqlite3.connect = swapping
sys.argv = ["lineage-proxy", *args]
runpy.run_module("proxy", run_name="__main__")
"""

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: vllm, url: "http://127.0.0.1:9"}]
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: "STORE"JOURNAL}
"""


@pytest.mark.parametrize("which", ["store", "journal"])
def test_serve_whose_store_s_journal_is_swapped_for_a_fifo_as_it_opens_it_says_so_and_exits(
    tmp_path: Path, which: str, request: pytest.FixtureRequest
) -> None:
    """The SQLite store's, or the journal beside a PostgreSQL store (a real one). On main: serve hung, 2 of 2."""
    config = tmp_path / "proxy.yaml"
    if which == "store":
        swapped = tmp_path / "lineage.db"
        written = SqliteStore(swapped)  # made already: SQLite looks for a -journal to roll back before it reads one
        written.upsert([(EdgeKey("app", "assistant", "team-a", "ck", "", "allow"), 100.0, 100.0, 3, None)])
        written.close()
        config.write_text(CONFIG.replace("STORE", str(swapped)).replace("JOURNAL", ""))
    else:
        swapped = tmp_path / "lineage.journal"
        Journal(swapped).close()
        database = request.getfixturevalue("postgres").database()
        config.write_text(CONFIG.replace("STORE", database).replace("JOURNAL", f', journal: "{swapped}"'))
    try:
        done = subprocess.run([sys.executable, "-c", SWAPPING, str(swapped), "serve", "--config", str(config)],
                              capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail(f"serve waited on the FIFO swapped in for its {which}'s -journal")
    said = done.stdout + done.stderr
    assert done.returncode == 1, said
    assert "lineage-proxy ready" not in said
    assert f"{swapped}: replaced as it was opened ({swapped}-journal beside it by a FIFO)" in said, said

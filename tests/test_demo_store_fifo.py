"""`demo --store` whose store's -journal is a FIFO: SQLite opens a store's -journal, read-only, to see whether it is one
to roll back, and that open of a FIFO waits for a writer for ever. `serve`'s writer and the readers open the store with
an `Unblocker` (and refuse a FIFO found there at their check); the demo's own opens did not: its mark (`_mark`, once the
proxy's writer had checked and opened the store) and its look at a store a demo wrote (`_rows`, before the writer
starts) hung the demo for ever. Now the demo refuses, in the writer's words, exit 1. Run as a user runs it, in a
subprocess; the swap made at the window exactly (`sqlite3.connect`, called by `_mark`, swaps it in first)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# `demo` run with `sqlite3.connect`, when `_mark` calls it (or, given `read`, when the demo's reader of what it
# recorded does), first swapping the store's -journal for a FIFO
SWAPPING = """
import os, runpy, sqlite3, sys
real = sqlite3.connect
at = os.environ["SWAP_AT"]

def swapping(target, *given, **named):
    name = str(target).removeprefix("file://").removesuffix("?mode=ro")
    caller = sys._getframe(1).f_code.co_name
    if (caller == at or at == "read" and "mode=ro" in str(target) and caller == "_open_to_read") and (
            not os.path.exists(name + "-journal")):
        os.mkfifo(name + "-journal")
    return real(target, *given, **named)

sqlite3.connect = swapping
sys.argv = ["lineage-proxy", *sys.argv[1:]]
runpy.run_module("proxy", run_name="__main__")
"""


def demo(*args: str, swapping: str = "") -> subprocess.CompletedProcess[str]:
    command = [sys.executable, *(("-c", SWAPPING) if swapping else ("-m", "proxy")), "demo", *args]
    env = {**os.environ, "SWAP_AT": swapping}
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail("the demo waited on a FIFO where SQLite opens its store's -journal")


def test_a_fifo_swapped_in_for_the_journal_as_the_demo_marks_its_store_is_refused(tmp_path: Path) -> None:
    """On main: the demo hung in `_mark` (1 of 1, past 60 s)."""
    store = tmp_path / "lineage.db"
    done = demo("--store", str(store), swapping="_mark")
    said = done.stdout + done.stderr
    assert done.returncode == 1, said
    assert said.endswith(f"lineage-proxy demo: lineage store {store}: replaced as it was opened ({store}-journal beside it "
                         "by a FIFO); SQLite would wait on it for ever: remove it (only SQLite makes the files beside "
                         "a store), then start again\n"), said  # fmt: skip
    assert "Traceback" not in said and "lineage edges recorded" not in said


def test_a_store_a_demo_wrote_with_a_fifo_for_its_journal_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """A store an earlier demo wrote (and marked), a FIFO beside it named as its -journal: refused in the writer's
    words, as a new store's is (on main: the demo hung reading it, `_rows`, 1 of 1, past 60 s)."""
    store = tmp_path / "lineage.db"
    first = demo("--store", str(store))
    assert first.returncode == 0, first.stdout + first.stderr
    os.mkfifo(f"{store}-journal")
    done = demo("--store", str(store))
    assert done.returncode == 1, done
    assert done.stderr.endswith(f"lineage-proxy demo: cannot open the lineage store {store}: {store}-journal beside it is a "
                                "FIFO, not a file SQLite makes (remove it)\n"), done.stderr  # fmt: skip
    assert not done.stdout


def test_a_fifo_swapped_in_for_the_journal_as_the_demo_reads_what_it_recorded_is_said_without_a_traceback(
    tmp_path: Path,
) -> None:
    """Its reader of the record (`SqliteStore`, read-only, with its own `Unblocker`) refused it, `replaced while it was
    read`, and the demo ended with a traceback (on main: 1 of 1); now it says so as the readers do, exit 1."""
    store = tmp_path / "lineage.db"
    done = demo("--store", str(store), swapping="read")
    assert done.returncode == 1, done
    assert "Traceback" not in done.stderr and "lineage edges recorded" not in done.stdout, done.stderr
    assert done.stderr.endswith(f"lineage-proxy demo: lineage store {store}: replaced while it was read ({store}-journal "
                                "beside it by a FIFO): what was read is not certain to be this store's, so nothing is "
                                "said of it; read it again once nobody changes it\n"), done.stderr  # fmt: skip

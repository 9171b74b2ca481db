"""A command whose stdout takes no write, one open for reading alone (`1</dev/null`: EBADF) or a full disk
(`1>/dev/full`: ENOSPC), says so in one line on stderr and exits as on a file error (1; `verify` 2, its 1 saying flows
are unapproved), where `check`, `edges`, `verify`, `report` and `demo` ended with a traceback, exit 1, and `--version`
and `--help` exited 0, their output lost. A stdout whose reader is gone keeps the shell's 141 (tests/test_cli.py).
Started with no stdout (`1>&-`), the demo runs (exit 0, said nowhere), where it aborted on uvloop's assertion (134)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Final

import pytest

from tests.test_cli import ROOT, edge_store

REFUSED: Final = {
    "1</dev/null": "stdout takes no write (it is open for reading only (1</dev/null)): the output is lost; give it a "
    "stdout that does (a terminal, a file or a pipe), or 1>/dev/null for none\n",
    "1>/dev/full": "stdout takes no write (No space left on device): the output is lost; give it a stdout that does (a "
    "terminal, a file or a pipe), or 1>/dev/null for none\n",
}


def _run(redirect: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m proxy ARGS REDIRECT` as a shell runs it, stderr captured."""
    quoted = " ".join(f"'{arg}'" for arg in args)
    command = f"exec '{sys.executable}' -m proxy {quoted} {redirect}"
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60)


def _commands(tmp_path: Path) -> list[tuple[list[str], str, int]]:
    """(arguments, the command said, the exit code) of each command that prints."""
    store = str(edge_store(tmp_path / "l.db", 3))
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text("flows: []\n")
    example = str(ROOT / "config" / "example.yaml")
    return [
        (["check", "--config", example], "check: ", 1),
        (["check", "--config", example, "--explain", "--caller", "glasses-app"], "check: ", 1),
        (["edges", "--store", store], "edges: ", 1),
        (["verify", "--store", store, "--baseline", str(baseline)], "verify: ", 2),
        (["report", "--store", store, "--out", str(tmp_path / "r.html")], "report: ", 1),
        (["--version"], "", 1),
    ]


@pytest.mark.parametrize("redirect", sorted(REFUSED))
def test_a_stdout_that_takes_no_write_is_said_in_one_line(tmp_path: Path, redirect: str) -> None:
    for args, said, code in _commands(tmp_path):
        result = _run(redirect, *args)
        assert (result.returncode, result.stderr) == (code, f"lineage-proxy: {said}{REFUSED[redirect]}"), args


def test_the_demo_with_no_stdout_runs(tmp_path: Path) -> None:
    result = _run("1>&-", "demo", "--store", str(tmp_path / "demo.db"))
    assert (result.returncode, result.stderr) == (0, "")
    kept = subprocess.run([sys.executable, "-m", "proxy", "edges", "--store", str(tmp_path / "demo.db"), "--json"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert kept.returncode == 0 and kept.stdout.count("\n") >= 5  # its calls were made and recorded

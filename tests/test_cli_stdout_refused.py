"""A command whose stdout takes no write, one open for reading alone (`1</dev/null`: EBADF) or a full disk
(`1>/dev/full`: ENOSPC), says so in one line on stderr and exits as on a file error (1; `verify` 2, its 1 saying flows
are unapproved), where `check`, `edges`, `verify`, `report` and `demo` ended with a traceback, exit 1, and `--version`
and `--help` exited 0, their output lost. A stdout whose reader is gone keeps the shell's 141 (tests/test_cli.py).
Started with no stdout (`1>&-`), the demo runs (exit 0, said nowhere), where it aborted on uvloop's assertion (134).
Buffered or not (`-u`, PYTHONUNBUFFERED) as Python's own stdout is."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Final

import pytest

from proxy import BUILD, __version__
from proxy.cli import COMMANDS, build_parser
from tests.test_cli import ROOT, edge_store

REFUSED: Final = {
    "1</dev/null": "stdout takes no write (it is open for reading only (1</dev/null)): the output is lost; give it a "
    "stdout that does (a terminal, a file or a pipe), or 1>/dev/null for none\n",
    "1>/dev/full": "stdout takes no write (No space left on device): the output is lost; give it a stdout that does (a "
    "terminal, a file or a pipe), or 1>/dev/null for none\n",
}


def _run(redirect: str, *args: str, unbuffered: bool = False) -> subprocess.CompletedProcess[str]:
    """`python -m proxy ARGS REDIRECT` as a shell runs it, stderr captured; `unbuffered`: `python -u`."""
    quoted = " ".join(f"'{arg}'" for arg in args)
    command = f"exec '{sys.executable}' {'-u' if unbuffered else ''} -m proxy {quoted} {redirect}"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60, env=env)


def _commands(tmp_path: Path) -> list[tuple[list[str], str, int]]:
    """(arguments, the command said, the exit code) of each command that prints."""
    store = str(edge_store(tmp_path / "l.db", 3))
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text("flows: []\n")
    example = str(ROOT / "config" / "example.yaml")
    return [
        (["check", "--config", example], " check: ", 1),
        (["check", "--config", example, "--explain", "--caller", "glasses-app"], " check: ", 1),
        (["edges", "--store", store], " edges: ", 1),
        (["verify", "--store", store, "--baseline", str(baseline)], " verify: ", 2),
        (["report", "--store", store, "--out", str(tmp_path / "r.html")], " report: ", 1),
        (["--version"], ": ", 1),
        (["verify", "--help"], " verify: ", 2),
    ]


@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize("redirect", sorted(REFUSED))
def test_a_stdout_that_takes_no_write_is_said_in_one_line(tmp_path: Path, redirect: str, unbuffered: bool) -> None:
    """Unbuffered (`-u`), each write fails as it is made: argparse's `--help` and `--version` take its OSError, and
    the failure is said all the same."""
    for args, said, code in _commands(tmp_path):
        result = _run(redirect, *args, unbuffered=unbuffered)
        assert (result.returncode, result.stderr) == (code, f"lineage-proxy{said}{REFUSED[redirect]}"), args


@pytest.mark.parametrize("redirect", sorted(REFUSED))
def test_every_commands_help_exits_as_its_command(redirect: str) -> None:
    """A command's `--help` is said as the command's output is, and exits as the command does on a file error: `verify
    --help` exited 1, which from `verify` says flows are unapproved, and its line named no command. The program's own
    `--help` and `--version` name none, exit 1."""
    commands = next(action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction))
    assert sorted(commands.choices) == sorted(COMMANDS)  # every command's help is asked below
    for command in ("", *COMMANDS):
        result = _run(redirect, *([command] if command else []), "--help")
        said, code = (f" {command}: ", 2 if command == "verify" else 1) if command else (": ", 1)
        assert (result.returncode, result.stderr) == (code, f"lineage-proxy{said}{REFUSED[redirect]}"), command
        abbreviated = _run(redirect, *([command] if command else []), "--he")  # (argparse's abbreviation of it)
        assert (abbreviated.returncode, abbreviated.stderr) == (code, result.stderr), command


# what a process's stdout holds when it ends without a flush (`os._exit`, a SIGKILL), after one `print`
PRINTED: Final = "import os, sys; {guard}print('a line'); os._exit(0)"


@pytest.mark.parametrize("flag", ["-u", "-B"], ids=["unbuffered", "buffered"])
def test_stdout_is_buffered_as_python_buffers_it(flag: str) -> None:
    """`-u` (or PYTHONUNBUFFERED) writes each print at once, so a process that ends without a flush has written it, as
    with Python's own stdout; without, the line waits in the buffer. Until 2026-12-07 the guarded stdout was buffered
    under `-u` too: a demo's lines came all at once as it ended, and one killed had written none."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    held = []
    for guard in ("", "from proxy.cli import _guard_stdout; _guard_stdout(); "):
        code = PRINTED.format(guard=guard)
        result = subprocess.run([sys.executable, flag, "-c", code], capture_output=True, text=True, env=env, timeout=60)
        assert result.returncode == 0, result.stderr
        held.append(result.stdout)
    assert held[1] == held[0] == ("a line\n" if flag == "-u" else "")


def test_with_no_stdout_version_and_help_write_to_stderr() -> None:
    """As argparse writes them when `sys.stdout` is None (README: "A stdout that takes no write")."""
    version = _run("1>&-", "--version")
    assert (version.returncode, version.stderr) == (0, f"lineage-proxy {__version__} ({BUILD})\n")
    usage = _run("1>&-", "edges", "--help")
    assert usage.returncode == 0 and usage.stderr.startswith("usage: lineage-proxy edges")


@pytest.mark.parametrize("closed", ["1>&-", "0<&-", "2>&-"])
def test_the_demo_with_no_stdout_runs(tmp_path: Path, closed: str) -> None:
    """So too with no stdin or no stderr, where it aborted on the same assertion (134), a socket taking fd 0 or 2."""
    result = _run(f"{closed} 1>/dev/null" if closed != "1>&-" else closed, "demo", "--store", str(tmp_path / "demo.db"))
    assert (result.returncode, result.stderr) == (0, "")
    kept = subprocess.run([sys.executable, "-m", "proxy", "edges", "--store", str(tmp_path / "demo.db"), "--json"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert kept.returncode == 0 and kept.stdout.count("\n") >= 5  # its calls were made and recorded


@pytest.mark.parametrize("flag", ["-u", "-B"], ids=["unbuffered", "buffered"])
def test_version_and_help_into_a_pipe_whose_reader_is_gone_end_quietly(flag: str) -> None:
    """141, nothing said, as the commands (tests/test_cli.py), where they exited 120 saying `Exception ignored ...
    BrokenPipeError` at exit (0, saying nothing, unbuffered: argparse takes the OSError)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    for args in (["--version"], ["verify", "--help"]):
        read, write = os.pipe()
        os.close(read)  # (the reader gone before the first write: each write EPIPE)
        try:
            result = subprocess.run([sys.executable, flag, "-m", "proxy", *args], stdout=write, stderr=subprocess.PIPE,
                                    text=True, env=env, timeout=60)  # fmt: skip
        finally:
            os.close(write)
        assert (result.returncode, result.stderr) == (141, ""), args

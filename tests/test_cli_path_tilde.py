"""A path flag given a `~` the shell did not expand (`--config '~/proxy.yaml'`, quoted; `--config=~/proxy.yaml`, after
`=`, which bash leaves) names a directory `~` in the working directory. Until 2026-12-07 `check` said `no file
/srv/~/proxy.yaml` and `report --out` wrote into such a directory or failed; every path flag now says what happened and
the path meant (exit 2), through one helper (`cli._path`). A path so written that names a file is read as written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CURE = (
    "does not exist: the shell did not expand '~' (it does only unquoted, at a word's start: not quoted, nor after '=')"
)


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    env = {**os.environ, "HOME": str(tmp_path / "home")}
    return subprocess.run([sys.executable, "-m", "proxy", *args], cwd=work, env=env, capture_output=True, text=True,
                          timeout=60)  # fmt: skip


@pytest.mark.parametrize(
    ("args", "flag", "path"),
    [
        (["check", "--config", "~/proxy.yaml"], "--config", "~/proxy.yaml"),
        (["check", "--config=~/proxy.yaml"], "--config", "~/proxy.yaml"),
        (["serve", "--config", "~/proxy.yaml"], "--config", "~/proxy.yaml"),
        (["verify", "--store", "~/lineage.db", "--baseline", "b.yaml"], "--store", "~/lineage.db"),
        (["verify", "--store", "s.db", "--baseline", "~/baseline.yaml"], "--baseline", "~/baseline.yaml"),
        (["verify", "--store", "s.db", "--write-baseline=~/baseline.yaml"], "--write-baseline", "~/baseline.yaml"),
        (["verify", "--store", "s.db", "--integrity", "--key-file", "~/key"], "--key-file", "~/key"),
        (["report", "--store", "s.db", "--out", "~/report.html"], "--out", "~/report.html"),
        (["report", "--store", "s.db", "--config", "~/proxy.yaml", "--out", "r.html"], "--config", "~/proxy.yaml"),
        (["edges", "--store", "~"], "--store", "~"),
        (["demo", "--store", "~/demo.db"], "--store", "~/demo.db"),
    ],
    ids=["check", "check=", "serve", "verify store", "baseline", "write-baseline", "key-file", "report out",
         "report config", "edges store", "demo store"],
)  # fmt: skip
def test_a_tilde_the_shell_left_is_said_with_the_path_meant(
    tmp_path: Path, args: list[str], flag: str, path: str
) -> None:
    result = _run(tmp_path, *args)
    meant = str(tmp_path / "home" / path.removeprefix("~/")) if path != "~" else str(tmp_path / "home")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"lineage-proxy {args[0]}: error: argument {flag}: {path!r} {CURE}: write {meant!r}"
    )
    assert not (tmp_path / "work" / "~").exists()


def test_a_directory_named_tilde_is_read_as_written(tmp_path: Path) -> None:
    """A config in `./~/` (made by such a slip, or on purpose) is the file the path names: read, not refused."""
    (tmp_path / "work" / "~").mkdir(parents=True)
    (tmp_path / "work" / "~" / "proxy.yaml").write_text(
        'listen: {http: "127.0.0.1:0"}\nupstreams: [{name: u, url: "http://127.0.0.1:8000"}]\n'
        'routes: [{model: "*", upstream: u}]\n', encoding="utf-8")  # fmt: skip
    result = _run(tmp_path, "check", "--config", "~/proxy.yaml")
    assert result.returncode == 0, result.stderr

"""`check` or `serve` with a config path that names no file, a first user's mistake (a relative path from another
directory, a typo): the line said `No such file or directory` alone. It now says which file was looked for, the
working directory's when the path is relative, and to correct the path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def _refused(tmp_path: Path, command: str, config: str) -> list[str]:
    """`command` run with `--config config` in `tmp_path`: it exits 1 with no traceback; what it said, a line each."""
    result = subprocess.run([sys.executable, "-m", "proxy", command, "--config", config], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    return result.stderr.splitlines()


@pytest.mark.parametrize("command", ["check", "serve"])
def test_a_config_path_naming_no_file_says_where_it_looked(tmp_path: Path, command: str) -> None:
    assert _refused(tmp_path, command, "config/minmal.yaml") == [
        f"lineage-proxy {command}: config/minmal.yaml: invalid configuration:",
        "  config/minmal.yaml: cannot read: No such file or directory "
        f"(no file {tmp_path / 'config' / 'minmal.yaml'}: correct the path)",
    ]


def test_a_directory_says_why_alone(tmp_path: Path) -> None:
    assert _refused(tmp_path, "check", ".") == [
        "lineage-proxy check: .: invalid configuration:",
        "  .: cannot read: Is a directory",
    ]


@pytest.mark.parametrize("command", ["check", "serve"])
def test_a_link_to_no_file_names_its_target(tmp_path: Path, command: str) -> None:
    """A link whose target is gone (a config management's link, a release directory removed) is a file `ls` shows:
    `no file <the link>` named one that is there. The target is the file looked for."""
    (tmp_path / "proxy.yaml").symlink_to(tmp_path / "releases" / "proxy.yaml")
    assert _refused(tmp_path, command, "proxy.yaml") == [
        f"lineage-proxy {command}: proxy.yaml: invalid configuration:",
        "  proxy.yaml: cannot read: No such file or directory "
        f"(a link to {tmp_path / 'releases' / 'proxy.yaml'}, no file: correct the link or the path)",
    ]


@pytest.mark.parametrize("command", ["check", "serve"])
def test_an_empty_path_is_said_empty(tmp_path: Path, command: str) -> None:
    """`--config "$CONFIG"` with CONFIG not set: the path read as the working directory, `: cannot read: Is a
    directory`, naming neither the empty path nor the cure."""
    assert _refused(tmp_path, command, "") == [
        f"lineage-proxy {command}: : invalid configuration:",
        "  : cannot read: the path is empty (give the config file's path: a variable in it that is not set?)",
    ]

"""`check` or `serve` with a config path that names no file, a first user's mistake (a relative path from another
directory, a typo): the line said `No such file or directory` alone. It now says which file was looked for, the
working directory's when the path is relative, and to correct the path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("command", ["check", "serve"])
def test_a_config_path_naming_no_file_says_where_it_looked(tmp_path: Path, command: str) -> None:
    result = subprocess.run([sys.executable, "-m", "proxy", command, "--config", "config/minmal.yaml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.splitlines() == [
        "config/minmal.yaml: invalid configuration:",
        "  config/minmal.yaml: cannot read: No such file or directory "
        f"(no file {tmp_path / 'config' / 'minmal.yaml'}: correct the path)",
    ]


def test_a_directory_says_why_alone(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "proxy", "check", "--config", "."], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.stderr.splitlines() == [".: invalid configuration:", "  .: cannot read: Is a directory"]

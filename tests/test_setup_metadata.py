"""setup.py run for the package's metadata alone (pip's `egg_info` and `dist_info` calls, each in a process of
its own before the build) generates no C: mypyc's analysis of the compiled modules is a ~20 s mypy run, and
pip made two of them before every build, neither of which compiled anything."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("command", ["egg_info", "dist_info"])
def test_the_metadata_alone_generates_no_c(tmp_path: Path, command: str) -> None:
    tree, meta = tmp_path / "tree", tmp_path / "meta"
    meta.mkdir()
    shutil.copytree(
        ROOT / "proxy", tree / "proxy", ignore=shutil.ignore_patterns("*.so", "_compiled.py", "__pycache__")
    )
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tree / name)
    where = "--output-dir" if command == "dist_info" else "--egg-base"  # pip passes an absolute path too
    out = subprocess.run([sys.executable, "setup.py", "-q", command, where, str(meta)], cwd=tree,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert list(meta.glob("*/PKG-INFO")) or list(meta.glob("*/METADATA")), "no metadata written"
    assert not (tree / "build").exists(), "C generated for the metadata"
    assert not (tree / "proxy" / "_compiled.py").exists()

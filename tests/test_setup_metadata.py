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


def test_the_docker_images_files_build_the_package_with_its_license(tmp_path: Path) -> None:
    """The Dockerfile's build stage copies what building the package takes, no more: the metadata builds from
    those files alone (setup.py for the compiled modules, LICENSE for `license-files`), naming the license by its
    SPDX expression (a TOML table there is deprecated and breaks setuptools' builds from 2027-02-18)."""
    copied = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            copied += line.split()[1:-1]
    assert "setup.py" in copied and "LICENSE" in copied
    tree, meta = tmp_path / "tree", tmp_path / "meta"
    meta.mkdir()
    for name in copied:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name, tree / name, ignore=shutil.ignore_patterns("*.so", "_compiled.py", "__pycache__")
            )
        else:
            tree.mkdir(exist_ok=True)
            shutil.copy(ROOT / name, tree / name)
    out = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "setup.py", "-q", "dist_info",
                          "--output-dir", str(meta)], cwd=tree, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "SetuptoolsDeprecationWarning" not in out.stderr, out.stderr
    [metadata] = meta.glob("*/METADATA")
    assert "License-Expression: Apache-2.0" in metadata.read_text()
    assert list(meta.glob("*/licenses/LICENSE"))

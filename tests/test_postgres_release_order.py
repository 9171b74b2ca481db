"""The tests' PostgreSQL (tests/servers/postgres.py) is the newest release installed, by its number: Debian keeps one
directory a release under /usr/lib/postgresql, and sorted as text `9.6` came after `15`."""

from __future__ import annotations

from pathlib import Path

from tests.servers.postgres import bin_dir


def _installed(root: Path, *releases: str) -> None:
    for release in releases:
        (root / release / "bin").mkdir(parents=True)
        (root / release / "bin" / "initdb").write_text("")


def test_the_newest_release_is_taken_by_its_number(tmp_path: Path) -> None:
    _installed(tmp_path, "9.6", "15", "10", "9")
    assert bin_dir(str(tmp_path)) == tmp_path / "15" / "bin"


def test_a_minor_number_counts_as_a_number(tmp_path: Path) -> None:
    _installed(tmp_path, "9.10", "9.6")
    assert bin_dir(str(tmp_path)) == tmp_path / "9.10" / "bin"


def test_none_installed(tmp_path: Path) -> None:
    assert bin_dir(str(tmp_path)) is None


def test_the_installed_one_is_the_newest_installed() -> None:
    installed = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    found = bin_dir()
    if not installed:
        assert found is None
        return
    assert found is not None and (found / "initdb") in installed
    newest = max(tuple(int(part) for part in path.parent.parent.name.split(".")) for path in installed)
    assert found.parent.name == ".".join(map(str, newest))

"""What --help says matches what the commands do: `verify --integrity`'s own exit codes, the `w` unit --since
takes, a config reference an installed package has (pip does not install config/), and how --keep stops."""

from __future__ import annotations

import re

import pytest

from proxy.cli import build_parser
from proxy.verify import parse_duration


def rendered(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    return " ".join(capsys.readouterr().out.split())  # as one line: argparse wraps at the terminal's width


def test_verify_help_gives_the_integrity_exit_codes_and_every_since_unit(capsys: pytest.CaptureFixture[str]) -> None:
    text = rendered("verify", capsys)
    assert "With --integrity, prove the record untouched: exit 0 intact, 1 naming the first broken link" in text
    assert "2 on a usage or file error or a keyed chain without --key-file" in text
    units = set(re.findall(r"\b\d+([smhdw])\b", text))
    assert units == {"s", "m", "h", "d", "w"}, units
    for unit in units:
        parse_duration(f"2{unit}")  # each one shown is taken


def test_report_help_names_every_since_unit(capsys: pytest.CaptureFixture[str]) -> None:
    assert set(re.findall(r"\b\d+([smhdw])\b", rendered("report", capsys))) == {"s", "m", "h", "d", "w"}


def test_serve_help_points_at_what_an_installed_package_has(capsys: pytest.CaptureFixture[str]) -> None:
    text = rendered("serve", capsys)
    assert "see config/" not in text
    assert "README" in text and "`lineage-proxy demo` prints the path of a sample one" in text


def test_demo_help_says_it_prints_the_policy_path_and_how_keep_stops(capsys: pytest.CaptureFixture[str]) -> None:
    text = rendered("demo", capsys)
    assert "the path of its file" in text
    assert "until Ctrl-C or SIGTERM" in text

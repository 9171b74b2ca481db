"""The README's command rows show each option with the value --help names (`--store PATH|URL`), so what a
reader copies from the table is what the command takes."""

from __future__ import annotations

import argparse
from pathlib import Path

from proxy.cli import build_parser

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def synopses(command: str) -> list[str]:
    """The first cell (the command line) of each of the command's rows, with the table's `\\|` unescaped."""
    rows = [line for line in README.splitlines() if line.startswith(f"| `lineage-proxy {command} ")]
    return [row[3 : row.index("` |")].replace("\\|", "|") for row in rows]


def test_each_option_in_a_row_takes_the_value_help_names() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    wrong = []
    for name, command in commands.items():
        for synopsis in synopses(name):
            words = synopsis.replace("[", " ").replace("]", " ").split()
            for action in command._actions:
                if action.metavar is not None:
                    value = str(action.metavar)
                elif action.choices is not None:
                    value = "|".join(map(str, action.choices))
                else:
                    continue
                for option in action.option_strings:
                    if option in words and f"{option} {value}" not in synopsis:
                        wrong.append(f"{name}: {option} {value}, not as in: {synopsis}")
    assert not wrong, "\n".join(wrong)

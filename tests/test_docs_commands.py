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


def test_each_option_of_a_command_is_in_one_of_its_rows() -> None:
    """`--help` and the table name the same options: one left out of every row (`serve --log-level`, before) is one a
    reader of the table does not know the command takes."""
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    missing = []
    for name, command in commands.items():
        words = {word for synopsis in synopses(name) for word in synopsis.replace("[", " ").replace("]", " ").split()}
        options = [action.option_strings[-1] for action in command._actions if action.option_strings]
        missing.extend(f"{name} {option}" for option in options if option != "--help" and option not in words)
    assert not missing, missing

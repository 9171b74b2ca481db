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


def test_each_option_in_a_row_is_one_the_command_takes() -> None:
    """The other way round: an option a row shows (`--since` in `edges`' row, say) that the command's --help does not
    know is exit 2 to a reader who copies it."""
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    unknown = []
    for name, command in commands.items():
        takes = {option for action in command._actions for option in action.option_strings}
        for synopsis in synopses(name):
            words = synopsis.replace("[", " ").replace("]", " ").split()
            unknown.extend(f"{name} {word}" for word in words if word.startswith("--") and word not in takes)
    assert not unknown, unknown


# each default argparse gives an option, and the README's words saying it (a row's, or its command's section's)
DEFAULTS = {("serve", "--workers", 1): "N processes (default 1, at most 256)",
            ("demo", "--log-level", "warning"): "`warning` for demo"}  # fmt: skip


def test_each_default_help_gives_is_the_readmes() -> None:
    """`serve --help` says `default 1`; the row said `N processes (1 to 256)`, no default (until 2026-12-07)."""
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    defaults = {
        (name, action.option_strings[-1], action.default)
        for name, command in commands.items()
        for action in command._actions
        if action.default not in (None, False, [], argparse.SUPPRESS)
    }
    assert defaults == set(DEFAULTS)
    for (name, option, default), words in DEFAULTS.items():
        assert words in README, (name, option, words)
        help_text = " ".join(commands[name]._option_string_actions[option].help.split())
        assert f"default {default}" in help_text, (name, option, help_text)

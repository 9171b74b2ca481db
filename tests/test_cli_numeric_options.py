"""Every numeric option of every command (`serve --workers`, `demo --port`, `verify --since`, `report --since`) takes
its number written in ASCII digits alone, as a config's number keys read text: a sign, a space, an underscore, a hex
or another script's digits is exit 2 naming the option, in real `lineage-proxy` processes. `--help` after the option
makes a value taken exit 0 at once (argparse reads the option first), so a form let through is seen, not served."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from proxy.cli import _duration, _head, _path, _port, _store, _workers, build_parser

DURATION = "expected a duration such as 30d, 12h, 15m or 90s, not {!r}"
# the option, the command line before it, a form it takes, and the line said of every other form
NUMERIC = {
    "--workers": (("serve", "--config", "x.yaml"), ("2", ""), "argument --workers: not a number: {!r}"),
    "--port": (("demo",), ("8080", ""), "argument --port: not a port number: {!r}"),
    "--since": (("verify", "--store", "x.db", "--baseline", "b.yaml"), ("30", "d"), f"argument --since: {DURATION}"),
    "report --since": (("report", "--store", "x.db", "--out", "r.html"), ("30", "d"), f"argument --since: {DURATION}"),
}
# each form's number, then the option's unit (`d`: `--since= 30d`, `--since=30 d`); `{}.0` is a duration's fraction
FORMS = ("-0", "-00", "+{}", " {}", "{} ", "0x10", "1_0", "\u0661\u0662", "{}.0")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", *args], capture_output=True, text=True, timeout=60)


def test_the_options_tested_are_every_numeric_option() -> None:
    """An option added with a number's type is added here too; so is one with a type this test does not know (a new
    reader, `_positive` for `--limit`, say, is no int and was let by; review revconfig17)."""
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    numeric = {
        (name, action.option_strings[-1])
        for name, command in commands.items()
        for action in command._actions
        if action.type in (_workers, _port, _duration, int, float)
    }
    assert numeric == {("serve", "--workers"), ("demo", "--port"), ("verify", "--since"), ("report", "--since")}
    types = {action.type for command in commands.values() for action in command._actions}
    assert types == {None, _workers, _port, _duration, _path, _store, _head}, types


@pytest.mark.parametrize(
    ("option", "form"),
    [(option, form) for option in NUMERIC for form in FORMS if not (NUMERIC[option][1][1] and form == "{}.0")],
)
def test_a_number_not_in_ascii_digits_alone_is_refused(option: str, form: str) -> None:
    before, (number, unit), said = NUMERIC[option]
    value = form.format(number) + unit
    # `--flag=value`: `--since -0d` would be read as an option (argparse takes `-0` alone as a negative number)
    result = cli(*before, f"{option.split()[-1]}={value}", "--help")
    assert result.returncode == 2, (value, result.stdout[:200])
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1] == f"lineage-proxy {before[0]}: error: {said.format(value)}"


@pytest.mark.parametrize("option", NUMERIC)
def test_the_form_written_is_taken(option: str) -> None:
    before, (number, unit), _ = NUMERIC[option]
    result = cli(*before, option.split()[-1], number + unit, "--help")
    assert result.returncode == 0 and result.stdout.startswith(f"usage: lineage-proxy {before[0]}"), result.stderr

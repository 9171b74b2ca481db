"""A tab where YAML takes spaces, in a config or a baseline, says so. Found by a first user's afternoon (helper
huntuser): an editor's tab before a key was `t.yaml:2:1: not valid YAML: found character '\\t' that cannot start any
token`, PyYAML's words, which name neither the tab as something to replace nor what to write instead."""

from __future__ import annotations

import pytest

from proxy.baseline import BaselineError, parse_baseline
from proxy.config import parse
from proxy.errors import ConfigError

SAID = "(a tab, which YAML does not take here: write spaces)"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("listen:\n\thttp: 127.0.0.1:0\n", "c.yaml:2:1"),
        ("listen:\n  http:\t127.0.0.1:0\n", "c.yaml:2:8"),
    ],
)
def test_a_tab_in_a_config_is_said(text: str, where: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(text, source="c.yaml", env={})
    assert caught.value.problems == [
        f"{where}: not valid YAML: found character '\\t' that cannot start any token {SAID}"
    ]


def test_a_tab_in_a_baseline_is_said() -> None:
    with pytest.raises(BaselineError) as caught:
        parse_baseline("version: 1\nflows:\n\t- caller: a\n", source="b.yaml")
    assert caught.value.problems == [
        f"b.yaml:3:1: not valid YAML: found character '\\t' that cannot start any token {SAID}"
    ]


def test_other_yaml_errors_are_said_as_before() -> None:
    with pytest.raises(ConfigError) as caught:
        parse("listen: [\n", source="c.yaml", env={})
    assert "tab" not in caught.value.problems[0]

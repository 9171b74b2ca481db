"""`lineage.openlineage.namespace` is a name: 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or a
digit, well within what Marquez takes (its pattern has those characters; older Marquez stores a namespace in 255
characters). A longer one was refused by `check` with the whole value and the characters a name may hold, which it
held, and no word of its length: the problem says the bound it is past, and shows the value cut."""

from __future__ import annotations

import pytest

from proxy.config import parse
from proxy.errors import ConfigError

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: m, url: "http://127.0.0.1:8000"}]
routes: [{model: "*", upstream: m}]
lineage:
  store: null
  openlineage: {url: "http://127.0.0.1:5000", namespace: "NS"}
"""


def problems(namespace: str) -> list[str]:
    with pytest.raises(ConfigError) as refused:
        parse(CONFIG.replace("NS", namespace))
    return refused.value.problems


def test_a_namespace_past_the_bound_is_refused_saying_the_bound() -> None:
    (problem,) = problems("prod" * 75)  # 300 characters, each one a name may hold
    assert problem.startswith("lineage.openlineage.namespace: ")
    assert "300 characters" in problem and "at most 128" in problem, problem
    assert "prod" * 75 not in problem  # the value cut, not 300 characters of it


@pytest.mark.parametrize("namespace", ["prod ns", "prod@eu", "prod:eu", "-prod", "pröd", ""])
def test_a_namespace_with_a_character_a_name_cannot_hold_is_refused(namespace: str) -> None:
    (problem,) = problems(namespace)
    assert problem.startswith("lineage.openlineage.namespace: "), problem


def test_a_namespace_at_the_bound_is_taken() -> None:
    settings = parse(CONFIG.replace("NS", "p" * 128)).lineage.openlineage
    assert settings is not None and settings.namespace == "p" * 128


@pytest.mark.parametrize("interval", ["1e10", "86401"])
def test_a_snapshot_interval_past_a_day_is_refused(interval: str) -> None:
    """`snapshot_interval_s: 1e10` (for "only at shutdown") passed `check`; past ~9.2e9 s the sender thread's wait
    for the next snapshot raised OverflowError once an event had failed: the thread died, no event went out again,
    a flush (a demo's, a reload's) waited for ever and shutdown said nothing of what was lost."""
    config = CONFIG.replace('namespace: "NS"', f"snapshot_interval_s: {interval}")
    with pytest.raises(ConfigError) as refused:
        parse(config)
    (problem,) = refused.value.problems
    assert problem.startswith("lineage.openlineage.snapshot_interval_s: must be between"), problem


def test_a_snapshot_interval_of_a_day_is_taken() -> None:
    settings = parse(CONFIG.replace('namespace: "NS"', "snapshot_interval_s: 86400")).lineage.openlineage
    assert settings is not None and settings.snapshot_interval_s == 86400

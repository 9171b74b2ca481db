"""A baseline's raw checkpoint name is percent-encoded as the record writes checkpoints (`checkpoint_pattern`):
`Llama 3` is matched as `Llama%203`. A `[...]` set holding such a character was encoded too, into a set of `%`
and hex digits: `Llama[ -]3` became `Llama[%20-]3`, which approved the checkpoints `Llama23` and `Llama03` (other
weights, never reviewed) and not `Llama 3`, the name it meant. Such a pattern is refused with its place, as
every pattern that cannot mean what it says is."""

from __future__ import annotations

import pytest

from proxy.baseline import BaselineError, Flow, parse_baseline
from proxy.flow import printable_name


def baseline(pattern: str) -> str:
    return f"""version: 1
flows:
  - caller: app
    purpose: assistant
    checkpoints: ["org/model@v1", {pattern!r}]
"""


@pytest.mark.parametrize(("pattern", "unmeant"), [("Llama[ -]3", "Llama23"), ("qwen-[üö]", "qwen-C"), ("m[%x]", "m2")])
def test_a_set_holding_a_character_the_record_encodes_never_approves_other_weights(pattern: str, unmeant: str) -> None:
    try:
        parsed = parse_baseline(baseline(pattern), source="b.yaml")
    except BaselineError as exc:  # refused, with its place: nothing is approved by it
        assert "b.yaml:5: flows[0].checkpoints[1]" in str(exc) and pattern in str(exc)
        return
    approved = parsed.covering(Flow("app", "assistant", frozenset(), printable_name(unmeant), "allow"))
    assert approved is None, f"{pattern!r} approves the checkpoint {unmeant!r}"


@pytest.mark.parametrize("pattern", ["Llama[-_]3", "Qwen2.5 7B*", "org/[ab]*", "Meta Llama?3", "[[]*]", "ü*"])
def test_other_patterns_still_load(pattern: str) -> None:
    assert parse_baseline(baseline(pattern)).approvals[0].checkpoints[0] == "org/model@v1"

"""Where a request's parts meet, with a custom pattern configured, is read twice: in windows for every detector
(256 characters either side, widened to white space) and in windows for the custom patterns alone (4,096 either
side). Each part was read near its edges (`read_edges`) and the run joined for each of them apart: a call of 10,000
text parts spent twice the Python there that it spent without a custom pattern (`Pipeline.call`: 2,002,277
instructions, 1,001,844 without). The parts are now read and joined once for both (1,322,299), and both windows are
what they were."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

import proxy.protocols as protocols
from proxy.protocols.openai import read_request
from proxy.record.spans import trace_context
from tests.test_custom_pattern_split_across_parts import _PEM, _pipeline


def _call(pipeline: Any, texts: list[str]) -> frozenset[str]:
    parts = [{"type": "text", "text": text} for text in texts]
    body = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": parts}]})
    return pipeline.call(read_request("chat", body), "openai", {}.get, trace_context(None, None, 1.0)).detected  # type: ignore[no-any-return]


@pytest.mark.interpreted  # (counts the calls of a function compiled modules call directly)
def test_each_part_is_read_near_its_edges_once_with_a_custom_pattern(monkeypatch: pytest.MonkeyPatch) -> None:
    """1,000 parts, an address split where two meet: 1,000 readings of a part's edges, not 2,000 (before); found."""
    texts = [f"part {n}, the tea is hot" for n in range(1000)]
    texts[500] += " write to alice@exa"
    texts[501] = "mple.com " + texts[501]
    read = protocols.read_edges
    counted: list[int] = []

    def counting(text: str, chars: int) -> str:
        counted.append(chars)
        return read(text, chars)

    monkeypatch.setattr(protocols, "read_edges", counting)
    pipeline = _pipeline(f"[email, {{name: private_key, pattern: '{_PEM}'}}]")
    assert _call(pipeline, texts) == {"pii:email"}
    assert len(counted) == len(texts)  # before: 2,000
    counted.clear()
    assert _call(_pipeline("[email]"), texts) == {"pii:email"}  # without a custom pattern, as before
    assert len(counted) == len(texts)


ZERO_WIDTH = "\u200b"
RUNS: dict[str, list[str]] = {
    "plain short": ["a b c", "alice@exa", "mple.com d", "e"],
    "no white space": ["x" * 5000, "y" * 9000, "z" * 300, "w" * 20],
    "dropped characters": ["alice@" + ZERO_WIDTH * 5000, "example.com", "q" * 100],
    # read whole at CUSTOM_WIDEST and as two edges at WINDOW_WIDEST: plain, and with a dropped character in the middle
    "between twice the widths": ["a " * 4200, "b" * 8500, ("c" * 4300) + ZERO_WIDTH + ("c" * 4300), "d"],
    "edges not plain": [ZERO_WIDTH + "e" * 10_000 + ZERO_WIDTH, "f " * 3000, "ｆｕｌｌ" * 2000],
    "escapes": ["alice%40exa", "mple.com " * 600, "\\u0040" * 2000],
    # read as it stands at CUSTOM_WIDEST (equal, another string), as two edges at WINDOW_WIDEST
    "escapes between twice the widths": ["g", ("x %40 & y " * 900)[:8600], "h"],
}


@pytest.mark.parametrize("name", RUNS)
def test_both_windows_are_those_built_apart(name: str) -> None:
    runs = [RUNS[name], list(reversed(RUNS[name]))]
    before: list[int] = []
    windows, customs = protocols.both_boundary_windows(runs, before)
    apart: list[int] = []
    assert windows == protocols.boundary_windows(runs, before=apart)
    assert before == apart
    assert customs == protocols.boundary_windows(runs, protocols.CUSTOM_REACH, protocols.CUSTOM_WIDEST)

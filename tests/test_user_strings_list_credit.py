"""A flat list's strings earn three values looked at each for the nulls, booleans and a request's numbers after them in
the same list, as 7fff94b's refill rule has every string taken earn them (helper reqreads, 2026-12-05): before, only
the strings already in `out` counted there, so `["a"] * 30_000 + [None] * 70_000` and an address after it were cut
(`scan:truncated`), where the same strings in a list of their own before the nulls were read whole."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from proxy.protocols import MAX_STRINGS, user_strings
from proxy.protocols import openai as openai_protocol

ADDRESS = "alice@example.com"


@pytest.mark.parametrize("scalar", [None, True, 0], ids=["null", "true", "int"])
def test_a_lists_strings_count_for_the_nulls_after_them(scalar: Any) -> None:
    out: list[str] = []
    assert user_strings(["a"] * 30_000 + [scalar] * 70_000 + [ADDRESS], out) is True  # before: False
    assert out[-1] == ADDRESS and len(out) == 30_001
    # (as the same strings in a list of their own before the nulls: held before and after)
    assert user_strings([["a"] * 30_000, [scalar] * 70_000, ADDRESS], []) is True
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "extra": ["a"] * 30_000 + [scalar] * 70_000}
    assert not openai_protocol.read_request("chat", orjson.dumps(body)).unscanned  # before: scan:truncated


# the bound: the list, then `MAX_STRINGS` - 1 values and three for each string before them (before: the first cut, 30 short)
def test_the_nulls_past_what_the_strings_earn_are_still_cut() -> None:
    assert user_strings(["a"] * 10 + [None] * (MAX_STRINGS - 1 + 30) + [ADDRESS], []) is True
    assert user_strings(["a"] * 10 + [None] * (MAX_STRINGS + 30) + [ADDRESS], []) is False
    assert user_strings(["a"] * 10 + [None] * 3_000_000 + [ADDRESS], []) is False


# lists of nulls on top of a list's strings credited ahead (their own, before its nulls): the credit they had not yet
# earned in `out` was negative there, so `_taken` went over every null and `credited` was reset to count them again.
# Before the fix (helper revreqreads): read whole, 12,000,400 values looked at for 30,000 strings
@pytest.mark.parametrize("tail", [70_000, 70_001])
def test_lists_on_top_of_strings_credited_ahead_are_still_bounded(tail: int) -> None:
    nulls = [[None] * 60_002 for _ in range(200)]
    assert user_strings([*nulls, *(["a"] * 30_000), *([None] * tail)], []) is False  # before: True
    out: list[str] = []
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "extra": [*nulls, *(["a"] * 30_000)]}
    body["extra"] += [None] * tail
    assert openai_protocol.read_request("chat", orjson.dumps(body)).unscanned  # before: read whole
    # (the strings alone before the nulls: read whole, before and after)
    assert user_strings([*(["a"] * 30_000), *([None] * tail), ADDRESS], out) is True and out[-1] == ADDRESS

"""`nested_named_as_fields`' quick check (every object's values scalars, every key a field: nothing to walk) on a short
list (most chats: a system and a user message) is made object by object (`_flat_named`), compiled, instead of by
the iterators of a check in C (~8,000 machine instructions a call of the benchmark's chat; 2026-12-05, helper speed): it
answers as the check in C does, and the walk refuses and passes over the same keys either way."""

from __future__ import annotations

from itertools import chain
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import proxy.protocols as protocols
from proxy.errors import InvalidRequest
from proxy.protocols import openai

# keys of a chat message, some spelt as Go reads them for another (`Content`), some no field at all
_KEYS = st.sampled_from(["role", "content", "name", "Content", "ROLE", "tool_calls", "Tool_Calls", "type", "text",
                         "x", "ſtyle"])  # fmt: skip
_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=3))
_VALUE = st.recursive(_SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3),
                      max_leaves=8)  # fmt: skip
_ITEM = st.one_of(st.dictionaries(_KEYS, _VALUE, max_size=4), _SCALAR, st.lists(_VALUE, max_size=2))
_ITEMS = st.lists(_ITEM, max_size=protocols._FEW)
_WALK = (openai._MESSAGE_NAMED, openai._MESSAGE_INNER, openai._MESSAGE_BELOW)


def _in_c(items: list[Any], fields: frozenset[str]) -> bool:
    """The check as made in C for a longer list."""
    try:
        return protocols._SCALARS.issuperset(map(type, chain.from_iterable(map(dict.values, items)))) and (
            fields.issuperset(chain.from_iterable(items))
        )
    except TypeError:
        return False


def _outcome(items: list[Any]) -> object:
    try:
        return protocols.nested_named_as_fields(items, *_WALK)
    except InvalidRequest as refused:
        return refused.param


@settings(max_examples=400, deadline=None)
@given(_ITEMS)
def test_the_quick_check_object_by_object_answers_as_the_one_in_c(items: list[Any]) -> None:
    assert protocols._flat_named(items, openai._MESSAGE_NAMED) is _in_c(items, openai._MESSAGE_NAMED)


@settings(max_examples=300, deadline=None)
@given(_ITEMS)
def test_a_short_list_is_walked_as_a_long_one(items: list[Any]) -> None:
    """The same objects, then as many plain messages as take the list past `_FEW` (its check then made in C): the
    same key refused, or none."""
    longer = [*items, *({"role": "user", "content": "hi"} for _ in range(protocols._FEW + 1 - len(items)))]
    assert len(items) <= protocols._FEW < len(longer)
    assert _outcome(items) == _outcome(longer)


def test_a_chat_of_plain_messages_passes_and_one_spelt_for_go_is_refused() -> None:
    plain = [{"role": "system", "content": "Be concise."}, {"role": "user", "content": "hi", "name": "a"}]
    assert protocols.nested_named_as_fields(plain, *_WALK) is True
    assert _outcome([*plain, {"role": "user", "Content": "x"}]) == "content"
    assert _outcome([{"role": "user", "content": [{"type": "text", "Text": "x"}]}]) == "text"

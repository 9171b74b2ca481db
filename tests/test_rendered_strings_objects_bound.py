"""`rendered_strings` (what a template prints whole: tool definitions, schemas, a tool use's input, TGI's grammar) looks
at no more objects and lists than `user_strings` does, sharing a request's budget with it (`request_strings`; TGI's
`parameters` too): `MAX_STRINGS`, three more for each string taken; past them the value is not read further and the
request is `scan:truncated`. Before 2026-12-05 it had no such bound: `"tools": [{}] * 999000` took 0.4-0.8 s of the
event loop (interpreted; 0.55 s compiled) and was read as whole, and TGI's parameters were each read with a budget of
their own (helper ollamakeys3)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from proxy.protocols import MAX_STRINGS, Target, anthropic, rendered_strings, tgi
from proxy.protocols import openai as openai_protocol

ADDRESS = "alice@example.com"
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("empty", [{}, []], ids=["objects", "lists"])
def test_no_more_objects_than_the_limit_are_looked_at(empty: Any) -> None:
    """The list and `MAX_STRINGS` - 2 empty ones before a text: all looked at, the text read; one more, and the text
    is past them: the value is said not read whole."""
    at_limit: list[Any] = [[empty] * (MAX_STRINGS - 2), ADDRESS]
    out: list[str] = []
    assert rendered_strings(at_limit, out) is True and out == [ADDRESS]
    past: list[Any] = [[empty] * (MAX_STRINGS - 1), ADDRESS]
    assert rendered_strings(past, []) is False  # before: True, every object looked at


def test_tools_of_many_empty_objects_make_the_request_unscanned() -> None:
    body = {**CHAT, "tools": [{}] * 999_000}
    assert openai_protocol.read_request("chat", orjson.dumps(body)).unscanned  # before: read whole, 0.4-0.8 s
    assert not openai_protocol.read_request("chat", orjson.dumps({**CHAT, "tools": [{}] * 1_000})).unscanned


def test_the_objects_are_counted_across_a_requests_fields() -> None:
    """Rendered fields and the rest share a request's budget: two fields of 40,000 empty objects each, one printed
    whole (`tools`) and one the proxy does not know, are past it together."""
    body = {**CHAT, "tools": [{}] * 40_000, "extra": [{}] * 40_000}
    assert openai_protocol.read_request("chat", orjson.dumps(body)).unscanned  # before: read whole
    assert not openai_protocol.read_request("chat", orjson.dumps({**body, "extra": [{}] * 20_000})).unscanned


def test_a_tool_uses_input_of_many_empty_objects_is_unscanned() -> None:
    use = {"type": "tool_use", "id": "t", "name": "f", "input": {"a": [{}] * 999_000}}
    body = {"model": "m", "max_tokens": 1, "messages": [{"role": "assistant", "content": [use]}]}
    assert anthropic.read_request(orjson.dumps(body)).unscanned  # before: read whole


def test_tgis_parameters_share_the_requests_budget() -> None:
    """TGI's `parameters` are each read (its grammar whole): they count against the body's budget, not each their own
    (16 parameters of 62,000 empty objects each, or a grammar of 999,000, were read as whole)."""
    many = {"inputs": "hi", "parameters": {f"x{n}": [{}] * 62_000 for n in range(16)}}
    assert tgi.read_request(Target("generate"), orjson.dumps(many)).unscanned  # before: read whole
    grammar = {"inputs": "hi", "parameters": {"grammar": {"type": "json", "value": [{}] * 999_000}}}
    assert tgi.read_request(Target("generate"), orjson.dumps(grammar)).unscanned  # before: read whole
    fine = {"inputs": "hi", "parameters": {"grammar": {"type": "json", "value": {"type": "object"}}, "x": [{}] * 9}}
    assert not tgi.read_request(Target("generate"), orjson.dumps(fine)).unscanned


def test_bodies_of_many_tools_are_read_whole() -> None:
    """Each string taken lets three objects more be looked at: 5,000 tools with their schemas (60,000 strings) are read whole."""
    schema = {"type": "object", "properties": {"to": {"type": "string"}}}
    tools = [{"type": "function", "function": {"name": f"f{n}", "parameters": schema}} for n in range(5_000)]
    read = openai_protocol.read_request("chat", orjson.dumps({**CHAT, "tools": tools}))
    assert not read.unscanned and "f4999" in read.texts


@pytest.mark.parametrize("scalar", [None, True, False], ids=["null", "true", "false"])
def test_nulls_and_booleans_are_counted_as_values_looked_at(scalar: Any) -> None:
    """null, true and false print nothing the proxy reads, but each is a value looked at: counted as an object is, so a
    tool's list of 3,000,000 nulls (15 MB) is not walked to its end (before: 1.4 s of the event loop interpreted, every
    one, read as whole) and an address after them is said not read (the request `scan:truncated`). Under the bound, the
    address is read."""
    at_limit: list[Any] = [[scalar] * (MAX_STRINGS - 2), ADDRESS]
    out: list[str] = []
    assert rendered_strings(at_limit, out) is True and out == [ADDRESS]
    assert rendered_strings([[scalar] * 3_000_000, ADDRESS], []) is False  # before: True, all looked at
    body = {**CHAT, "tools": [[scalar] * 999_000, ADDRESS]}
    assert openai_protocol.read_request("chat", orjson.dumps(body)).unscanned  # before: read whole


def test_what_is_left_past_the_strings_is_looked_at_within_the_objects() -> None:
    """Past `MAX_STRINGS` strings, what is left is looked at for anything that prints (when nothing does, the value was
    read whole) within the values still looked at: `"tools": [["a"] * 65,536, [{}] * 999,000]` had all 999,000 looked
    at (0.6 s of the event loop interpreted, the case the bound is for) and was read whole; now past them it is said
    not read whole. A few empty objects left are still looked at: read whole."""
    assert rendered_strings([["a"] * MAX_STRINGS, [{}] * 999_000], []) is False  # before: True, 999,000 looked at
    out: list[str] = []
    assert rendered_strings([["a"] * MAX_STRINGS, [{}] * 9], out) is True and len(out) == MAX_STRINGS
    assert rendered_strings([["a"] * MAX_STRINGS, [{}] * 9, ADDRESS], []) is False

"""A Responses input's `configuration_update` item (openai's `ResponseConfigurationUpdateItemParamParam`: "an update to
the conversation's response configuration", each setting "in effect until a later update replaces it"), whose
`text.format` is the JSON schema OpenAI holds the responses after it to, is read as the call's own `text` is (helper
fields17, 2026-12-07):

- its schema whole, keys and numbers too: a property named `ana@example.org` is `pii:email` (before, read as content,
  its strings alone: the name went on unlabelled);
- a `pattern` in it (or a grammar: `schema_program`) is a program that writes text standing nowhere in it
  (`^alice\\x40example\\.com$`), `scan:truncated`, as the call's own `text.format` holding one is (before: read as
  text, the call unmarked).

Failing before (main, bf6830b3): 4 of 5 (2 end to end through the openai SDK's Responses route to the vLLM-like
server, 200 where 403; 2 reading); the control (the call's own `text.format`, marked before and after) passes on both."""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest

from proxy.protocols.openai import read_request
from tests.servers.vllm_like import SERVED
from tests.test_anthropic_unread_content import CONFIG

PATTERN = {"type": "json_schema", "name": "reply", "strict": True,
           "schema": {"type": "object", "properties": {"to": {"type": "string", "pattern": "^alice\\x40example\\.com$"}},
                      "required": ["to"], "additionalProperties": False}}  # fmt: skip
NAMED = {"type": "json_schema", "name": "reply",
         "schema": {"type": "object", "properties": {"ana@example.org": {"type": "string"}}}}  # fmt: skip


def _input(text_format: dict[str, Any]) -> list[Any]:
    update = {"type": "configuration_update", "text": {"format": text_format}}
    return [{"role": "user", "content": "who do I write to?"}, update]


CASES = {"a pattern": (PATTERN, "scan:truncated"), "a property named by an address": (NAMED, "pii:email")}


@pytest.mark.parametrize(("text_format", "label"), CASES.values(), ids=CASES.keys())
def test_a_configuration_updates_text_format_is_read_as_the_calls_own(vllm, make_proxy, text_format, label) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=10)
    items: Any = _input(text_format)
    with pytest.raises(openai.PermissionDeniedError) as refused:  # (before: 200, unlabelled)
        client.responses.create(model=SERVED, input=items, extra_headers={"x-purpose": "ads"})
    assert label in refused.value.message
    assert server.data_requests() == []
    answered = client.responses.with_raw_response.create(
        model=SERVED, input=items, extra_headers={"x-purpose": "assistant"}
    )
    assert answered.headers["x-data-labels"] == label
    assert len(server.data_requests()) == 1


@pytest.mark.parametrize(("text_format", "label"), CASES.values(), ids=CASES.keys())
def test_read_as_the_calls_own_text_format(text_format: dict[str, Any], label: str) -> None:
    """The item's reading is the call's own `text` reading: the same texts, the same mark (the call's own: a control,
    marked and read whole before too)."""
    own = read_request("responses", orjson.dumps({"model": "m", "input": "x", "text": {"format": text_format}}))
    item = read_request("responses", orjson.dumps({"model": "m", "input": _input(text_format)}))
    assert [t for t in item.texts if t != "who do I write to?"] == [t for t in own.texts if t != "x"]
    assert item.unscanned is own.unscanned is (label == "scan:truncated")


def test_the_calls_own_text_format_is_marked() -> None:
    request = read_request("responses", orjson.dumps({"model": "m", "input": "x", "text": {"format": PATTERN}}))
    assert request.unscanned is True


# (review revfields17: the edges next to those above, held on h-fields17, each failing on main bf6830b3)
IN_DEFS = {"type": "json_schema", "name": "reply",
           "schema": {"type": "object", "properties": {"to": {"$ref": "#/$defs/address"}},
                      "$defs": {"address": {"type": "string", "pattern": "^alice\\x40example\\.com$"}}}}  # fmt: skip


def test_a_pattern_in_its_definitions_and_a_type_spelt_with_an_escape_are_marked() -> None:
    """A `pattern` where the schema's `$ref` points (`$defs`), and the item's type spelt with a JSON escape
    (`configuration\\u005fupdate`: the body then spells no `configuration_update`, and is looked through for its
    backslash)."""
    body = orjson.dumps({"model": "m", "input": _input(IN_DEFS)})
    assert read_request("responses", body).unscanned is True
    escaped = body.replace(b'"configuration_update"', b'"configuration\\u005fupdate"')
    assert b"configuration_update" not in escaped
    assert read_request("responses", escaped).unscanned is True
    assert read_request("responses", orjson.dumps({"model": "m", "input": _input(NAMED)})).unscanned is False


def test_a_call_continuing_it_carries_its_mark(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """OpenAI holds the responses after the update to its format "until a later update replaces it": a call continuing
    the stored reply (`previous_response_id`), streamed or not, carries the `scan:truncated` of the call that set it."""
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=10)
    items: Any = _input(PATTERN)
    first = client.responses.create(model=SERVED, input=items, extra_headers={"x-purpose": "assistant"})
    sent = len(server.data_requests())
    for stream in (False, True):
        with pytest.raises(openai.PermissionDeniedError) as refused:  # (main: 200, unlabelled)
            client.responses.create(model=SERVED, previous_response_id=first.id, input="and the next one?",
                                    stream=stream, extra_headers={"x-purpose": "ads"})  # fmt: skip
        assert "scan:truncated" in refused.value.message
    assert len(server.data_requests()) == sent

"""`user_strings` (a request's messages, prompts, inputs and unknown fields read for their texts) looks at no more
than `MAX_STRINGS` objects and lists a value, as the walk for keys Go takes for a field does (`nested_named_as_fields`,
cc5627f), and three more for each string taken: past them the value is not read further and the request is
`scan:truncated`. Before 2026-12-05 it looked at every one, counting only strings against the limit: 999,000 empty
blocks in one message, empty lists, or messages `{"a": 1}` took 1.2-3.1 s of the event loop in `user_strings` alone
(interpreted), now 0.05-0.17 s; a body of 999,000 empty objects in a field the proxy does not know was forwarded as read
whole after that (helper revollama2)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from proxy.protocols import MAX_STRINGS, anthropic, user_strings
from proxy.protocols import openai as openai_protocol

ADDRESS = "alice@example.com"


@pytest.mark.parametrize("empty", [{}, []], ids=["objects", "lists"])
def test_no_more_objects_than_the_limit_are_looked_at(empty: Any) -> None:
    """The list and `MAX_STRINGS` - 2 empty ones before a text: all looked at, the text read; one more, and the text
    is past them: the value is said not read whole (`scan:truncated`)."""
    at_limit: list[Any] = [[empty] * (MAX_STRINGS - 2), ADDRESS]
    out: list[str] = []
    assert user_strings(at_limit, out) is True and out == [ADDRESS]
    past: list[Any] = [[empty] * (MAX_STRINGS - 1), ADDRESS]
    assert user_strings(past, []) is False  # before: True, every object looked at


def test_a_field_of_many_empty_objects_makes_the_request_unscanned() -> None:
    """A field the proxy does not know is read as user text (an engine's own may reach the model): its objects past
    the limit are not, and the request is `scan:truncated`, as one of more texts is."""
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "extra": [{}] * 999_000}
    assert openai_protocol.read_request("chat", orjson.dumps(body)).unscanned  # before: read whole, 1.7-2.8 s
    few = {**body, "extra": [{}] * 1_000}
    assert not openai_protocol.read_request("chat", orjson.dumps(few)).unscanned


def test_a_messages_api_body_of_many_empty_blocks_is_unscanned() -> None:
    body = {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{}] * 999_000}]}
    assert anthropic.read_request(orjson.dumps(body)).unscanned  # (as it was: the key walk's bound)
    out: list[str] = []
    assert user_strings(body["messages"], out) is False  # before: True, after 999,000 objects looked at


def test_bodies_of_many_texts_under_the_strings_limit_are_read_whole() -> None:
    """Each string taken lets three objects more be looked at (a message, its blocks' list, a block): a body whose
    texts are all read is never past the objects (held before and after)."""
    blocks = [{"role": "user", "content": [{"type": "text", "text": f"t{n}"}]} for n in range(30_000)]
    body = {"model": "m", "max_tokens": 1, "messages": blocks}
    assert not anthropic.read_request(orjson.dumps(body)).unscanned
    calls = [{"role": "assistant", "tool_calls": [{"id": f"c{n}", "type": "function",
                                                   "function": {"name": "f", "arguments": "{}"}}]}
             for n in range(16_000)]  # fmt: skip
    assert not openai_protocol.read_request("chat", orjson.dumps({"model": "m", "messages": calls})).unscanned


def test_the_objects_are_counted_across_a_requests_fields() -> None:
    """The objects looked at are a request's, its fields' together (`request_strings`): 16 fields the proxy does not
    know of 62,000 empty objects each were each under the bound, 1.6 s of the event loop read as whole (interpreted)."""
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    body.update({f"x{n}": [{}] * 62_000 for n in range(16)})
    assert openai_protocol.read_request("chat", orjson.dumps(body)).unscanned

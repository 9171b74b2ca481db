"""Ollama's Responses API (`openai/responses.go`, `ResponsesFunctionCallOutput.UnmarshalJSON`) reads a
`function_call_output` whose `output` is a list of parts by writing their `input_text` (and `output_text`) texts one
after another into the tool message's content, with nothing between: `"write to ana@exa"` and `"mple.org today"`
reach its model as `write to ana@example.org today`. The proxy read each part alone, no address found, and forwarded
the call for a purpose the address's zone forbids (200). The parts of a tool call's output are now read joined as well
as each alone, as a message's text parts are; so are the parts of a message of vLLM's `previous_input_messages` (the
earlier turns given whole, which vLLM makes Harmony text one part after another) (helper fields12)."""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest

from proxy.protocols import MAX_STRINGS
from proxy.protocols.openai import read_request
from tests.servers.vllm_like import SERVED
from tests.test_anthropic_document_blocks_joined import CONFIG

CALLED = {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": "{}"}


def _output(kind: str, *texts: str) -> list[dict[str, Any]]:
    parts = [{"type": "input_text", "text": text} for text in texts]
    return [CALLED, {"type": kind, "call_id": "c1", "output": parts}]


@pytest.mark.parametrize("kind", ["function_call_output", "custom_tool_call_output"])
def test_a_value_split_across_a_tool_outputs_parts_is_found(vllm, make_proxy, kind) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="none", max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as refused:  # before: answered, the parts read one by one
        client.responses.create(model=SERVED, input=_output(kind, "write to ana@exa", "mple.org today"),  # type: ignore[arg-type]
                                extra_headers={"x-purpose": "ads"})  # fmt: skip
    assert "pii:email" in refused.value.message
    assert server.data_requests() == []
    answered = client.responses.with_raw_response.create(
        model=SERVED,
        input=_output(kind, "it is", "sunny"),  # type: ignore[arg-type]
        extra_headers={"x-purpose": "ads"},
    )
    assert answered.headers["x-data-labels"] == ""
    assert len(server.data_requests()) == 1


def test_a_tool_output_key_spelt_with_an_escape_is_joined_too() -> None:
    """`"outp\\u0075t"` is `output` to every JSON parser: the body, holding no `"output"`, is looked through all the same."""
    body = orjson.dumps({"model": "m", "input": _output("function_call_output", "ana@exa", "mple.org")})
    body = body.replace(b'"output"', b'"outp\\u0075t"')
    assert b'"output"' not in body
    assert ("ana@exa", "mple.org") in read_request("responses", body).joined


def test_parts_past_the_limit_are_not_joined_and_unread() -> None:
    parts = [{"type": "input_text", "text": "a"}] * (MAX_STRINGS + 1)
    body = orjson.dumps(
        {"model": "m", "input": [CALLED, {"type": "function_call_output", "call_id": "c1", "output": parts}]}
    )
    request = read_request("responses", body)
    assert request.unscanned is True
    assert request.joined == ()


@pytest.mark.parametrize(
    "earlier",
    [
        {
            "author": {"role": "user"},
            "content": [{"type": "text", "text": "write to ana@exa"}, {"type": "text", "text": "mple.org today"}],
        },
        {
            "role": "user",
            "content": [{"type": "text", "text": "write to ana@exa"}, {"type": "text", "text": "mple.org today"}],
        },
    ],
    ids=["harmony", "chat"],
)
def test_a_value_split_across_an_earlier_turns_parts_is_found(vllm, make_proxy, earlier) -> None:  # type: ignore[no-untyped-def]
    """vLLM's `previous_input_messages` (through the openai SDK's `extra_body`): each part's `text` becomes Harmony text,
    written one after another (before: each read alone, the call forwarded, 200)."""
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="none", max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.responses.create(model=SERVED, input="and again?", extra_body={"previous_input_messages": [earlier]},
                                extra_headers={"x-purpose": "ads"})  # fmt: skip
    assert "pii:email" in refused.value.message
    assert server.data_requests() == []


@pytest.mark.parametrize("role", [{"author": {"role": "user"}}, {"role": "user"}], ids=["harmony", "chat"])
def test_an_earlier_turns_part_without_text_parts_nothing(role: dict[str, Any]) -> None:
    """vLLM makes every part of an earlier turn Harmony text, `part.get("text", "")`, whatever its type: an image part
    between two halves is an empty text, the halves written one after another, and a part typed other than `text`
    (`input_text`) is its text (review revfields12: pinned, untested before; a part read as a message's is, an image
    taken for a break, would part them)."""
    content = [
        {"type": "input_text", "text": "write to ana@exa"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        {"type": "text", "text": "mple.org today"},
    ]
    body = orjson.dumps(
        {"model": "m", "input": "and again?", "previous_input_messages": [{**role, "content": content}]}
    )
    assert ("write to ana@exa", "", "mple.org today") in read_request("responses", body).joined

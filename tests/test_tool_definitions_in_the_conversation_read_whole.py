"""Tools defined by value inside the conversation, beside the two shapes helper fields15 read whole (a Responses
`mcp_list_tools` item, a Messages `compaction` block's `tool_changes`), are read whole too, as a call's `tools` are,
keys and numbers too (review revfields15, 2026-12-07):

- a Messages `tool_addition` block standing alone in a message's content (`BetaRequestToolAdditionBlockParam`: "a
  tool_definition object that carries an inline tool definition in definition (the same object a tools entry holds)",
  offered to the model from there on; a user's, or a `role: "system"` message's, `BetaSystemMessageParam`);
- a Messages `mcp_tool_listing` block (`BetaMCPToolListingBlockParam`: "the server's tools, exactly as the response
  listed them", which Anthropic uses in place of asking the MCP server again; the call is `scan:truncated` by its
  `mcp_servers` as before, and now its listing's schema's property names are read too, which a zone may forbid where it
  allows `scan:truncated`);
- a Responses `tool_search_output` item (the tools a tool search loaded, each a `tools` entry, no `role`) and an
  `additional_tools` item without its `role`.

Before, each was read as content: a schema's property named `ana@example.org` went on unlabelled.

Failing before (h-fields15): 5 of 6 (3 end to end, the anthropic SDK's beta Messages route and the openai SDK's
Responses route to the vLLM-like server, 200 where 403; 2 reading); the control (a tool removal, by name) passes on
both."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import orjson
import pytest

from proxy.protocols import anthropic as messages_api
from proxy.protocols import openai as openai_api
from tests.servers.vllm_like import SERVED
from tests.test_anthropic_unread_content import CONFIG

SCHEMA = {"type": "object", "properties": {"ana@example.org": {"type": "string"}}}
ADDITION = {"type": "tool_addition", "tool": {"type": "tool_definition", "definition": {"name": "mail",
                                                                                        "input_schema": SCHEMA}}}  # fmt: skip
FUNCTION = {"type": "function", "name": "mail", "parameters": SCHEMA}
MESSAGES: dict[str, Any] = {
    "a user's tool addition": [{"role": "user", "content": [ADDITION, {"type": "text", "text": "mail them"}]}],
    "a system message's tool addition": [
        {"role": "system", "content": [ADDITION]},
        {"role": "user", "content": "mail them"},
    ],
}
SEARCHED = {"type": "tool_search_output", "call_id": "ts_1", "execution": "client", "status": "completed",
            "tools": [FUNCTION]}  # fmt: skip
INPUTS: dict[str, Any] = {"a tool search's output": SEARCHED}


@pytest.fixture
def upstream(vllm, make_proxy):  # type: ignore[no-untyped-def]
    server, url = vllm
    return server, make_proxy(CONFIG, UPSTREAM=url).url


@pytest.mark.parametrize("messages", MESSAGES.values(), ids=MESSAGES.keys())
def test_a_tool_added_in_a_message_is_read_whole(upstream, messages) -> None:  # type: ignore[no-untyped-def]
    server, url = upstream
    with anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0, timeout=10) as sdk:
        with pytest.raises(anthropic.PermissionDeniedError) as refused:  # (before: 200, unlabelled)
            sdk.beta.messages.create(model=SERVED, max_tokens=8, messages=messages, extra_headers={"x-purpose": "ads"})
        assert "pii:email" in refused.value.message
        assert server.data_requests() == []
        reply = sdk.beta.messages.with_raw_response.create(
            model=SERVED, max_tokens=8, messages=messages, extra_headers={"x-purpose": "assistant"}
        )
        assert reply.headers["x-data-labels"] == "pii:email"


@pytest.mark.parametrize("item", INPUTS.values(), ids=INPUTS.keys())
def test_tools_a_search_loaded_are_read_whole(upstream, item) -> None:  # type: ignore[no-untyped-def]
    server, url = upstream
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=10)
    items: Any = [item, {"role": "user", "content": "mail them"}]
    with pytest.raises(openai.PermissionDeniedError) as refused:  # (before: 200, unlabelled)
        client.responses.create(model=SERVED, input=items, extra_headers={"x-purpose": "ads"})
    assert "pii:email" in refused.value.message
    assert server.data_requests() == []


def test_an_mcp_listing_sent_back_is_read_whole() -> None:
    """Its call is `scan:truncated` by its `mcp_servers` (as before), and the listing's schema read as tools are."""
    listing = {"type": "mcp_tool_listing", "mcp_server_name": "crm",
               "tools": [{"name": "lookup", "description": "find", "input_schema": SCHEMA}]}  # fmt: skip
    body = {"model": "m", "max_tokens": 8, "mcp_servers": [{"type": "url", "url": "https://mcp.example.com", "name": "crm"}],
            "messages": [{"role": "user", "content": "find ana"}, {"role": "assistant", "content": [listing]},
                         {"role": "user", "content": "go on"}]}  # fmt: skip
    request = messages_api.read_request(orjson.dumps(body))
    assert {"input_schema", "properties", "ana@example.org"} <= set(request.texts)
    assert request.unscanned is True


def test_an_additional_tools_item_without_its_role_is_read_whole() -> None:
    """With its `role` (`developer`, which the API requires) it was read whole already; without, it was content."""
    body = {
        "model": "m",
        "input": [{"type": "additional_tools", "tools": [FUNCTION]}, {"role": "user", "content": "x"}],
    }
    request = openai_api.read_request("responses", orjson.dumps(body))
    assert {"parameters", "properties", "ana@example.org"} <= set(request.texts)


def test_a_tool_removal_names_a_tool() -> None:
    """A control: a removal names a tool, read as content (its name), not refused (passes before and after)."""
    removal = {"type": "tool_removal", "tool": {"type": "tool_reference", "name": "mail"}}
    body = {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": [removal, {"type": "text",
                                                                                               "text": "hi"}]}]}  # fmt: skip
    request = messages_api.read_request(orjson.dumps(body))
    assert "mail" in request.texts and request.unscanned is False

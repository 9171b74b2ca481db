"""A Responses input's `mcp_list_tools` item (the tools an MCP server listed: each `name`, `description`,
`input_schema`, `annotations`; openai's `ResponseInputItemParam.McpListTools`) is read as a call's own tools are, keys
and numbers too (helper fields15, 2026-12-07). OpenAI keeps the listing in the conversation as the tools the model may
call there, so a schema's property names and its `format` reach the model as a `tools` entry's do; read as content
before, those were unread and the call went on unlabelled. Not `scan:truncated`: the listing is all in the body (an
`mcp` tool in `tools`, whose server the call reaches, is, as before).

Failing before: 3 of 4 (2 end to end through the openai SDK to the vLLM-like server, 200 where 403; 1 reading); the
control (a listing holding nothing found) passes before and after."""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest

from proxy.protocols.openai import read_request
from tests.configs import ONE_UPSTREAM
from tests.servers.vllm_like import SERVED

CONFIG = (
    ONE_UPSTREAM
    + """
zones:
  - name: mail
    labels: [pii:email]
    allow_purposes: [assistant]
detectors: [email]
"""
)


def _listing(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "mcp_list_tools",
        "id": "mcpl_68a1",
        "server_label": "crm",
        "tools": [{"name": "lookup", "description": "find a customer", "input_schema": schema,
                   "annotations": {"read_only": True}}],
    }  # fmt: skip


LISTED = {
    "a property named by an address": {"type": "object", "properties": {"alice@example.com": {"type": "string"}}},
    "an address as a format": {
        "type": "object",
        "properties": {"who": {"type": "string", "format": "bob@example.org"}},
    },
}


def _go_on(client: openai.OpenAI, schema: dict[str, Any], purpose: str) -> Any:
    items: Any = [_listing(schema), {"role": "user", "content": "look up the customer"}]
    return client.responses.with_raw_response.create(model=SERVED, input=items, extra_headers={"x-purpose": purpose})


@pytest.mark.parametrize("schema", LISTED.values(), ids=LISTED.keys())
def test_what_an_mcp_server_listed_is_read_whole(vllm, make_proxy, schema) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    client = openai.OpenAI(base_url=f"{make_proxy(CONFIG, UPSTREAM=upstream).url}/v1", api_key="unused", max_retries=0,
                           timeout=10)  # fmt: skip
    with pytest.raises(openai.PermissionDeniedError) as refused:  # (before: 200, unlabelled)
        _go_on(client, schema, "ads")
    assert "pii:email" in refused.value.message
    assert server.data_requests() == []
    assert _go_on(client, schema, "assistant").http_response.headers["x-data-labels"] == "pii:email"


def test_a_listing_holding_nothing_found_is_no_reason_to_refuse(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    client = openai.OpenAI(base_url=f"{make_proxy(CONFIG, UPSTREAM=upstream).url}/v1", api_key="unused", max_retries=0,
                           timeout=10)  # fmt: skip
    plain = {"type": "object", "properties": {"who": {"type": "string", "format": "email"}}, "required": ["who"]}
    assert _go_on(client, plain, "ads").http_response.headers["x-data-labels"] == ""
    assert len(server.data_requests()) == 1


def test_read_as_tools_are() -> None:
    """Its keys and strings in body order, as `tools`' are read (`rendered_strings`), the call not unread."""
    body = {
        "model": "m",
        "input": [_listing(LISTED["a property named by an address"]), {"role": "user", "content": "hi"}],
    }
    request = read_request("responses", orjson.dumps(body))
    assert {"input_schema", "properties", "alice@example.com", "find a customer"} <= set(request.texts)
    assert request.unscanned is False

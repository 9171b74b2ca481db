"""A Messages request's output schema (`output_config.format.schema`) is read whole, keys and numbers included, as
a chat request's `response_format` is: vLLM's Messages API hands it to the same structured decoding
(`vllm/entrypoints/anthropic/serving.py`, `_handle_output_config`: `req.response_format = ResponseFormat(type=...,
json_schema=JsonSchemaResponseFormat(schema=output_config.format.json_schema))`). Read as user data, its property
names, numbers and the values of keys the proxy takes for framing elsewhere (`format`, `url`) went unread."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.configs import ONE_UPSTREAM
from tests.servers.vllm_like import SERVED

CONFIG = (
    ONE_UPSTREAM
    + """
zones:
  - name: contact
    labels: [pii:email, pii:credit_card]
    allow_purposes: [assistant]
detectors: [email, credit_card]
"""
)

SCHEMAS = {
    "a property named by an address": {"type": "object", "properties": {"ana@example.org": {"type": "string"}}},
    "a card number as a number": {"type": "object", "properties": {"card": {"const": 4111111111111111}}},
    "an address under a framing key": {"type": "object", "properties": {"to": {"type": "string",
                                                                               "format": "ana@example.org"}}},
}  # fmt: skip


def _messages(schema: dict[str, Any]) -> dict[str, Any]:
    return {"model": SERVED, "max_tokens": 16, "messages": [{"role": "user", "content": "fill it in"}],
            "output_config": {"format": {"type": "json_schema", "schema": schema}}}  # fmt: skip


@pytest.mark.parametrize("schema", SCHEMAS.values(), ids=SCHEMAS.keys())
def test_an_output_schema_is_read_as_a_chat_response_format_is(vllm, make_proxy, schema) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    headers = {"x-purpose": "ads", "anthropic-version": "2023-06-01"}
    with httpx.Client(base_url=proxy.url, timeout=10) as client:
        chat = client.post("/v1/chat/completions", headers=headers, json={
            "model": SERVED, "messages": [{"role": "user", "content": "fill it in"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "form", "schema": schema}}})  # fmt: skip
        assert chat.status_code == 403  # (as it was)
        messages = client.post("/v1/messages", headers=headers, json=_messages(schema))
        assert messages.status_code == 403, messages.text
        assert messages.json()["error"]["code"] == "purpose_denied"
    assert server.data_requests() == []

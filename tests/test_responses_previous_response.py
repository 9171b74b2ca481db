"""A Responses call may carry its previous response whole (vLLM's `previous_response`, multi-turn without a
store): vLLM puts before its input the conversation that response's id names in its store, or, without one, the
conversation its state carrier holds (a reasoning item's `encrypted_content`, `vllm:1:<base64 of the messages'
JSON>:<signature>`, signed, not encrypted). Such a call builds on what it names as `previous_response_id` does: it
carries the labels the proxy saw that reply's call and output hold (or `scan:truncated`, a reply it did not see),
and the carrier's messages are read as its input."""

from __future__ import annotations

import base64
import json
from typing import Any

import openai
import pytest

from tests.configs import ONE_UPSTREAM
from tests.servers.vllm_like import SERVED

CONFIG = (
    ONE_UPSTREAM
    + """
zones:
  - name: health
    labels: [health]
    allow_purposes: [care]
  - name: contact
    labels: [pii:email]
    allow_purposes: [care]
detectors: [email]
"""
)


def _client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=10)


def test_a_stored_reply_carried_whole_carries_its_labels_as_its_id_does(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    client = _client(proxy.url)
    first = client.responses.create(model=SERVED, input="the diagnosis: type 2 diabetes",
                                    extra_headers={"x-purpose": "care", "x-data-labels": "health"})  # fmt: skip
    sent = len(server.data_requests())
    # named by its id, the stored conversation is the health zone's (as before)
    with pytest.raises(openai.PermissionDeniedError):
        client.responses.create(model=SERVED, previous_response_id=first.id, input="now an ad for them",
                                extra_headers={"x-purpose": "ads"})  # fmt: skip
    # carried whole, vLLM reads the same stored conversation (its `msg_store[previous_response.id]`)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client.responses.create(model=SERVED, input="now an ad for them", extra_headers={"x-purpose": "ads"},
                                extra_body={"previous_response": first.model_dump(mode="json")})  # fmt: skip
    assert "health" in caught.value.message
    assert len(server.data_requests()) == sent
    # for the purpose the zone allows it goes on, labelled as what it builds on
    reply = client.responses.with_raw_response.create(
        model=SERVED, input="go on", extra_headers={"x-purpose": "care"},
        extra_body={"previous_response": first.model_dump(mode="json")},
    )  # fmt: skip
    assert reply.http_response.headers["x-data-labels"] == "health"


def _carrier(messages: list[dict[str, Any]]) -> str:
    """vLLM's state carrier (`vllm/entrypoints/openai/responses/state.py`): the messages' JSON in base64, and an
    HMAC the proxy does not check (vLLM does)."""
    return "vllm:1:" + base64.b64encode(json.dumps(messages).encode()).decode() + ":" + "0" * 64


def _previous(carrier: str) -> dict[str, Any]:
    item = {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": carrier}
    return {"id": "resp_stateless", "object": "response", "created_at": 1, "model": SERVED, "status": "completed",
            "output": [item], "parallel_tool_calls": True, "tool_choice": "auto", "tools": []}  # fmt: skip


def test_the_conversation_a_state_carrier_holds_is_read(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    client = _client(proxy.url)
    held = _carrier([{"role": "user", "content": "write to me at ana@example.org"},
                     {"role": "assistant", "content": "noted"}])  # fmt: skip
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client.responses.create(model=SERVED, input="go on", store=False, extra_headers={"x-purpose": "ads"},
                                extra_body={"previous_response": _previous(held)})  # fmt: skip
    assert "pii:email" in caught.value.message
    assert server.data_requests() == []
    # a reply the proxy did not see answered: what its call was sent with is unknown, not absent
    reply = client.responses.with_raw_response.create(model=SERVED, input="go on", store=False,
                                                      extra_headers={"x-purpose": "care"},
                                                      extra_body={"previous_response": _previous(held)})  # fmt: skip
    assert reply.http_response.headers["x-data-labels"] == "pii:email,scan:truncated"

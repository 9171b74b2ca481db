"""The ids a router keys a conversation by are not read as data (helper fields16, 2026-12-07), as an engine's own ids
(`ENGINE_IDS`) are not:

- SGLang's `routing_key` ("routing key for routing-key schedule policy": `GenerateReqInput.routing_key`, which its
  OpenAI entrypoints fill from its gateway's `x-smg-routing-key` header) and `conversation_id` ("conversation id used
  for tracking requests", the same struct's);
- TensorRT-LLM's `conversation_params` (`openai_protocol.ConversationParams`, extra fields forbidden: a
  `conversation_id` alone, "stable multi-turn conversation id used for routing", on its chat and completion calls).

No template prints them. Read as text before, an id written in decimal (8.34% of random 63-bit ones: the card or
phone check) or naming a host labelled the call, refused where a zone forbids the label, for a text the model never
saw. Of 20,000 each of the other forms (a UUID, its hex, `conv_` and 48 hex digits, `token_urlsafe(16)`) none was
labelled.

Failing before: 6 of 8 (3 of 4 end to end through the openai SDK, 403 where 200, the fourth, an id given as a JSON
number, unlabelled before and after; 3 of 3 reading), the control (the messages still read beside them) passing
before and after."""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest

from proxy.protocols.anthropic import read_request as anthropic_read_request
from proxy.protocols.openai import read_request
from tests.servers.vllm_like import SERVED
from tests.test_engine_ids_and_trtllm_state_unread import CONFIG, unread_but_by_kserve

IDS: dict[str, dict[str, Any]] = {
    "SGLang routing_key, decimal": {"routing_key": "5082513832886728665"},
    "SGLang conversation_id naming a host": {"conversation_id": "tenant-10.20.30.40"},
    "TensorRT-LLM conversation_params": {"conversation_params": {"conversation_id": "4111111111111111"}},
    "TensorRT-LLM conversation_params, a number": {"conversation_params": {"conversation_id": 4111111111111111}},
}


def _chat(proxy: Any, extra: dict[str, Any], content: str = "hello") -> Any:
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=10)
    messages: Any = [{"role": "user", "content": content}]
    return client.chat.completions.with_raw_response.create(
        model=SERVED, messages=messages, extra_body=extra, extra_headers={"x-purpose": "ads"}
    )


@pytest.mark.parametrize("extra", IDS.values(), ids=IDS.keys())
def test_no_reason_to_refuse(vllm, make_proxy, extra) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    reply = _chat(make_proxy(CONFIG, UPSTREAM=upstream), extra)  # (before: 403, pii:credit_card or pii:ip_address)
    assert reply.http_response.headers["x-data-labels"] == ""
    assert orjson.loads(server.data_requests()[0].body).items() >= extra.items()  # forwarded as sent


def test_the_messages_beside_them_are_read(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """A control (passes before and after): a call keyed so is read as any other."""
    server, upstream = vllm
    with pytest.raises(openai.PermissionDeniedError) as refused:
        _chat(make_proxy(CONFIG, UPSTREAM=upstream), {"routing_key": "user-7"}, "call 10.0.0.9")
    assert "pii:ip_address" in refused.value.message
    assert server.data_requests() == []


@pytest.mark.parametrize("operation", ["chat", "text_completion", "responses"])
def test_read_so_by_every_api_and_still_by_kserve(operation: str) -> None:
    """Not read by the OpenAI adapter, in any API (before: read), but read where the call may reach KServe's OpenAI
    data plane, which hands its model the request whole (`kserve.openai_fields`: passes before and after)."""
    unread_but_by_kserve(operation, IDS.values(), ("5082513832886728665", "10.20.30.40", "4111111111111111"))


_ADDRESS = "ana@example.org"
_NAMED = {"routing_key": _ADDRESS, "conversation_id": _ADDRESS, "conversation_params": {"conversation_id": _ADDRESS}}
_ARGUMENTS = orjson.dumps(_NAMED).decode()
NESTED: dict[str, tuple[str, dict[str, Any]]] = {
    "a chat message's own key": ("chat", {"messages": [{"role": "user", "content": "hi", **_NAMED}]}),
    "a tool call's arguments": ("chat", {"messages": [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": _ARGUMENTS}}]}]}),
    "a tool's schema": ("chat", {"messages": [{"role": "user", "content": "hi"}], "tools": [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": _NAMED}}}]}),
    "the template's arguments": ("chat", {"messages": [{"role": "user", "content": "hi"}],
                                          "chat_template_kwargs": _NAMED}),
    "a Responses input item": ("responses", {"input": [{"role": "user", "content": "hi", **_NAMED}]}),
    "a completion's vllm_xargs": ("text_completion", {"prompt": "hi", "vllm_xargs": _NAMED}),
}  # fmt: skip


@pytest.mark.parametrize("operation, body", NESTED.values(), ids=NESTED.keys())
def test_the_names_nested_are_read(operation: str, body: dict[str, Any]) -> None:
    """Only the body's own top-level keys are the router's: the same names within a message, a tool call's arguments,
    a schema, the template's arguments, an engine's extension arguments are data, read (review revfields16: passes
    before and after, a pin)."""
    request = read_request(operation, orjson.dumps({"model": "m", **body}))
    assert any(_ADDRESS in text for text in request.texts), request.texts


def test_not_read_on_the_messages_api_either() -> None:
    """The Messages API (which SGLang serves too) reads a body's top-level fields as the OpenAI adapter does
    (`request_strings`): the ids are not read there either; within a tool use's `input`, read (review revfields16;
    failing before, on d3277da3: 1 of 1)."""
    messages = [{"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": _NAMED}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "done"}]}]  # fmt: skip
    top = {"model": "m", "max_tokens": 8, "messages": messages[:1], **IDS["SGLang routing_key, decimal"],
           **IDS["SGLang conversation_id naming a host"], **IDS["TensorRT-LLM conversation_params"]}  # fmt: skip
    assert anthropic_read_request(orjson.dumps(top)).texts == ("hi",)
    nested = anthropic_read_request(orjson.dumps({"model": "m", "max_tokens": 8, "messages": messages}))
    assert sum(_ADDRESS in text for text in nested.texts) == 3, nested.texts

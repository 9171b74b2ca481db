"""A definition or a schema given inside the conversation and read whole (a Responses `configuration_update` item's
`text`, helper fields17; a Messages `tool_addition` block's `tool`, review revfields15; a `compaction` block's
`tool_changes`, helper fields15) is read as a call's own `text` and `tools` are: every key and value, a property named
as an image or a file is (`file`, `source`, `image_url`, `input_audio`, `cache_control`) too (review revfields17,
2026-12-07).

Before, those blocks' keys went through the reading of a tool result's content, which skips an image (`_PAYLOADS`): a
schema's property named `file` was skipped whole, its description and its enum unread, where the same schema as the
call's own `text.format` or `tools` was read. An address there went on unlabelled: 200 where 403.

Failing before (h-fields17, 7ef10f8e): 10 of 11 (3 end to end through the openai SDK's Responses route and the
anthropic SDK's beta Messages route to the vLLM-like server, 200 where 403; 7 reading); the control (a tool result's
image, still skipped) passes on both."""

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

ADDRESS = "ana@example.org"


def _schema(name: str) -> dict[str, Any]:
    return {"type": "object", "properties": {name: {"type": "string", "description": f"send it to {ADDRESS}"}}}


def _text_format(name: str) -> dict[str, Any]:
    return {"format": {"type": "json_schema", "name": "reply", "schema": _schema(name)}}


def _definition(name: str) -> dict[str, Any]:
    return {"type": "tool_definition", "definition": {"name": "mail", "input_schema": _schema(name)}}


def _configured(name: str) -> dict[str, Any]:
    update = {"type": "configuration_update", "text": _text_format(name)}
    return {"model": "m", "input": [{"role": "user", "content": "who?"}, update]}


def _added(name: str) -> dict[str, Any]:
    addition = {"type": "tool_addition", "tool": _definition(name)}
    return {"model": "m", "max_tokens": 8,
            "messages": [{"role": "user", "content": [addition, {"type": "text", "text": "mail them"}]}]}  # fmt: skip


def _compacted(name: str) -> dict[str, Any]:
    changes = [{"type": "tool_addition", "tool": _definition(name)}]
    compaction = {"type": "compaction", "content": "We planned a trip.", "tool_changes": changes}
    return {"model": "m", "max_tokens": 8,
            "messages": [{"role": "assistant", "content": [compaction]}, {"role": "user", "content": "go on"}]}  # fmt: skip


def _own_text(name: str) -> dict[str, Any]:
    return {"model": "m", "input": "who?", "text": _text_format(name)}


def _own_tools(name: str) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 8, "tools": [{"name": "mail", "input_schema": _schema(name)}],
            "messages": [{"role": "user", "content": "mail them"}]}  # fmt: skip


NAMES = ["file", "source", "image_url", "input_audio", "cache_control"]


@pytest.mark.parametrize("name", NAMES)
def test_a_configuration_updates_schema_is_read_as_the_calls_own(name: str) -> None:
    own = openai_api.read_request("responses", orjson.dumps(_own_text(name)))
    item = openai_api.read_request("responses", orjson.dumps(_configured(name)))
    assert f"send it to {ADDRESS}" in own.texts  # (the call's own `text`: read before too)
    assert [t for t in item.texts if t != "who?"] == [t for t in own.texts if t != "who?"]


@pytest.mark.parametrize("body", [_added, _compacted], ids=["a tool addition", "a compaction's tool changes"])
def test_a_tool_defined_in_the_conversation_is_read_as_the_calls_own(body: Any) -> None:
    own = messages_api.read_request(orjson.dumps(_own_tools("file")))
    given = messages_api.read_request(orjson.dumps(body("file")))
    assert {"file", f"send it to {ADDRESS}"} <= set(own.texts) & set(given.texts)


def test_a_tool_results_image_is_still_not_read() -> None:
    """A control: a tool result's content skips an image (its base64), before and after."""
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "aGk" + ADDRESS}}
    result = {"type": "tool_result", "tool_use_id": "t1", "content": [image, {"type": "text", "text": "seen"}]}
    called = {"type": "tool_use", "id": "t1", "name": "look", "input": {}}
    body = {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "look"},
            {"role": "assistant", "content": [called]}, {"role": "user", "content": [result]}]}  # fmt: skip
    request = messages_api.read_request(orjson.dumps(body))
    assert "seen" in request.texts and not any(ADDRESS in t for t in request.texts)


@pytest.fixture
def upstream(vllm, make_proxy):  # type: ignore[no-untyped-def]
    server, url = vllm
    return server, make_proxy(CONFIG, UPSTREAM=url).url


def test_through_the_responses_route(upstream) -> None:  # type: ignore[no-untyped-def]
    server, url = upstream
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=10)
    items: Any = _configured("file")["input"]
    with pytest.raises(openai.PermissionDeniedError) as refused:  # (before: 200, unlabelled)
        client.responses.create(model=SERVED, input=items, extra_headers={"x-purpose": "ads"})
    assert "pii:email" in refused.value.message
    assert server.data_requests() == []


@pytest.mark.parametrize("body", [_added, _compacted], ids=["a tool addition", "a compaction's tool changes"])
def test_through_the_messages_route(upstream, body) -> None:  # type: ignore[no-untyped-def]
    server, url = upstream
    sdk = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0, timeout=10)
    with sdk, pytest.raises(anthropic.PermissionDeniedError) as refused:  # (before: 200, unlabelled)
        sdk.beta.messages.create(model=SERVED, max_tokens=8, messages=body("source")["messages"],
                                 extra_headers={"x-purpose": "ads"})  # fmt: skip
    assert "pii:email" in refused.value.message
    assert server.data_requests() == []

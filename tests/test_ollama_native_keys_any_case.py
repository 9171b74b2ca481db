"""Ollama reads a body with Go's `encoding/json`, which takes a key for a struct field whatever its case (`Tools` is
`tools`; `ſ` is `s` and the Kelvin sign `k` too, Unicode's simple folding), the last such key winning. The proxy reads
Ollama's fields by name: before 2026-12-05 `"Tools"` with an address in a schema's key was read as a field of no
meaning (its keys unread) and reached the model as `tools`, for a purpose the address's zone forbids; `"Context"`
(token ids) left the call without `scan:truncated`, and `"Model"` beside `"model"` had the call routed and recorded
for one model and served by another. Such a key is refused, 400, and nothing reaches Ollama."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from tests import test_ollama_native as native
from tests.configs import EMAIL_ZONE_STORED
from tests.harness import ProxyHandle, proxy_error
from tests.servers.ollama import MODEL, Ollama
from tests.servers.otlp_receiver import OtlpReceiver
from tests.servers.vllm_like import SERVED
from tests.test_ollama_native import ADDRESS
from tests.test_tool_arguments_exponent_numbers import CONFIG as CARD_ZONE

# the fixtures of test_ollama_native: the server, the proxy in front of it
ollama = native.ollama
proxy = native.proxy


def tools(key: str) -> dict[str, Any]:
    schema = {"type": "object", "properties": {ADDRESS: {"type": "string"}}}  # the address a key, printed to the model
    return {key: [{"type": "function", "function": {"name": "mail", "parameters": schema}}]}


def chat(**more: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **more}


def called(arguments_key: str = "arguments", calls_key: str = "tool_calls") -> dict[str, Any]:
    call = {"function": {"name": "mail", arguments_key: {ADDRESS: "sent"}}}
    messages = [{"role": "assistant", "content": "", calls_key: [call]}, {"role": "user", "content": "hi"}]
    return {"model": MODEL, "messages": messages}


SPELT = {
    "Tools": ("/api/chat", chat(**tools("Tools")), "tools"),
    "TOOLS": ("/api/chat", chat(**tools("TOOLS")), "tools"),
    "long s": ("/api/chat", chat(**tools("tool\u017f")), "tools"),
    "Format": ("/api/chat", chat(Format={"type": "object", "properties": {ADDRESS: {}}}), "format"),
    "Arguments": ("/api/chat", called(arguments_key="Arguments"), "arguments"),
    "Tool_Calls": ("/api/chat", called(calls_key="Tool_Calls"), "tool_calls"),
    "Kelvin sign": ("/api/generate", {"model": MODEL, "prompt": "hi", "\u212aeep_alive": ADDRESS}, "keep_alive"),
    "Context": ("/api/generate", {"model": MODEL, "prompt": "hi", "Context": [15339, 1917]}, "context"),
    "Model": ("/api/chat", chat(Model="other-model"), "model"),
}


@pytest.mark.parametrize("call", list(SPELT.values()), ids=list(SPELT))
def test_a_key_go_takes_for_a_field_it_is_not_spelt_as_is_refused(
    ollama: Ollama, proxy: ProxyHandle, otlp: OtlpReceiver, call: tuple[str, dict[str, Any], str]
) -> None:
    path, body, field = call
    sent = json.dumps(body, ensure_ascii=False).encode()
    reply = httpx.post(f"{proxy.url}{path}", content=sent, headers={"x-purpose": "ads"}, timeout=30)
    assert reply.status_code == 400, reply.text
    error = proxy_error(reply)
    assert error["code"] == "invalid_request" and f"write it '{field}'" in error["message"], error
    assert ollama.received == []  # nothing reached the model
    span = otlp.by_trace(reply.headers["x-trace-id"]).attributes
    assert span["lineage.decision"] == "deny", span  # recorded as refused


@pytest.mark.parametrize("path", ["/api/chat", "/api/generate"])
def test_keys_spelt_as_ollama_spells_them_are_read_as_before(ollama: Ollama, proxy: ProxyHandle, path: str) -> None:
    """The same calls spelt as Ollama's clients spell them: the address found (refused for `ads`, 403), a generate's
    `context` unread (`scan:truncated`, forwarded for `care`)."""
    body = chat(**tools("tools")) if path == "/api/chat" else {"model": MODEL, "prompt": "hi", "context": [15339]}
    reply = httpx.post(f"{proxy.url}{path}", json=body, headers={"x-purpose": "ads"}, timeout=30)
    if path == "/api/chat":
        assert reply.status_code == 403 and proxy_error(reply)["code"] == "purpose_denied", reply.text
        assert ollama.received == []
    else:
        assert reply.status_code == 200 and reply.headers["x-data-labels"] == "scan:truncated", reply.text
        assert len(ollama.received) == 1


@pytest.mark.parametrize(
    "more",
    [tools("Tools"), {"Response_Format": {"type": "json_schema", "json_schema": {"schema": {"properties": {ADDRESS: {}}}}}},
     {"Model": "other-model"}, {"\u017ftream": True}],
    ids=["Tools", "Response_Format", "Model", "long s"],
)  # fmt: skip
def test_a_top_level_key_go_takes_for_an_openai_field_is_refused(vllm, make_proxy, more: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    """Ollama's OpenAI-compatible API reads its body with Go too (`"Tools"` is its `tools`, printed to the model): such
    a key, sent as the openai SDK sends a body's extra fields, is refused before anything is forwarded."""
    server, upstream = vllm
    proxy = make_proxy(EMAIL_ZONE_STORED, UPSTREAM=upstream)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="none", max_retries=0)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=SERVED, messages=[{"role": "user", "content": "hi"}], extra_body=more,
                                       extra_headers={"x-purpose": "ads"})  # fmt: skip
    assert refused.value.code == "invalid_request" and "Go's encoding/json" in refused.value.message
    assert server.data_requests() == []
    exact = {key.lower().replace("\u017f", "s"): value for key, value in more.items()}
    if "model" not in exact and "stream" not in exact:  # spelt as the SDK spells it, the address is read: refused 403
        with pytest.raises(openai.PermissionDeniedError):
            client.chat.completions.create(model=SERVED, messages=[{"role": "user", "content": "hi"}],
                                           extra_body=exact, extra_headers={"x-purpose": "ads"})  # fmt: skip
        assert server.data_requests() == []


def test_a_top_level_key_go_takes_for_a_messages_api_field_is_refused(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """Ollama's Anthropic-compatible API (`/v1/messages`) reads its body with Go too: `"Tools"` is its `tools`."""
    server, upstream = vllm
    proxy = make_proxy(EMAIL_ZONE_STORED, UPSTREAM=upstream)
    schema = {"type": "object", "properties": {ADDRESS: {"type": "string"}}}
    body = {"model": SERVED, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    for key, status, code in (("Tools", 400, "invalid_request"), ("tools", 403, "purpose_denied")):
        tool = {"name": "mail", "description": "sends mail", "input_schema": schema}
        reply = httpx.post(f"{proxy.url}/v1/messages", json={**body, key: [tool]}, headers={"x-purpose": "ads"},
                           timeout=30)  # fmt: skip
        assert reply.status_code == status and reply.json()["error"]["code"] == code, reply.text
    assert server.data_requests() == []


@pytest.mark.parametrize(
    "block",
    [{"type": "tool_use", "id": "t1", "name": "mail", "Input": {ADDRESS: 1}},
     {"Type": "tool_use", "id": "t1", "name": "mail", "input": {ADDRESS: 1}},
     {"type": "tool_use", "id": "t1", "name": "mail", "INPUT": {ADDRESS: 1}}],
    ids=["Input", "Type", "INPUT"],
)  # fmt: skip
def test_a_content_block_key_go_takes_for_a_messages_api_field_is_refused(vllm, make_proxy, block) -> None:  # type: ignore[no-untyped-def]
    """Ollama's Anthropic-compatible API decodes each message and its content blocks into structs too (`MessageParam`,
    `ContentBlock`): a tool_use block's `"Input"` is its `input`, the arguments its template prints whole, keys and
    numbers; read as a field of no meaning, the address in a key went unread (and `"Type"` left the block's `input` read
    as content is, its keys unread)."""
    server, upstream = vllm
    proxy = make_proxy(EMAIL_ZONE_STORED, UPSTREAM=upstream)
    messages = [{"role": "user", "content": "mail bob"}, {"role": "assistant", "content": [block]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "sent"}]}]  # fmt: skip
    body = {"model": SERVED, "max_tokens": 8, "messages": messages}
    reply = httpx.post(f"{proxy.url}/v1/messages", json=body, headers={"x-purpose": "ads"}, timeout=30)
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "invalid_request", reply.text
    assert "Go's encoding/json" in reply.json()["error"]["message"], reply.text
    exact = {"type": "tool_use", "id": "t1", "name": "mail", "input": {ADDRESS: 1}}  # as the SDK spells it: read, 403
    messages[1] = {"role": "assistant", "content": [exact]}
    reply = httpx.post(f"{proxy.url}/v1/messages", json=body, headers={"x-purpose": "ads"}, timeout=30)
    assert reply.status_code == 403 and reply.json()["error"]["code"] == "purpose_denied", reply.text
    assert server.data_requests() == []


def test_a_message_key_go_takes_for_a_messages_api_field_is_refused(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """A message's `"Content"` is its `content` to Go (`MessageParam`): refused as a block's key is."""
    server, upstream = vllm
    proxy = make_proxy(EMAIL_ZONE_STORED, UPSTREAM=upstream)
    block = {"type": "tool_use", "id": "t1", "name": "mail", "input": {"to": 1}}
    body = {"model": SERVED, "max_tokens": 8, "messages": [{"role": "assistant", "Content": [block]}]}
    reply = httpx.post(f"{proxy.url}/v1/messages", json=body, headers={"x-purpose": "ads"}, timeout=30)
    assert reply.status_code == 400 and "write it 'content'" in reply.json()["error"]["message"], reply.text
    assert server.data_requests() == []


@pytest.mark.parametrize(
    "spelt", [("Text", "content", "type"), ("text", "Content", "type"), ("text", "content", "Type")],
    ids=["part's Text", "message's Content", "part's Type"],
)  # fmt: skip
def test_a_responses_input_key_go_takes_for_a_field_is_refused(vllm, make_proxy, spelt: tuple[str, str, str]) -> None:  # type: ignore[no-untyped-def]
    """Ollama's Responses API decodes each input item and its content parts into structs (`ResponsesInputMessage`,
    `ResponsesTextContent`) and runs a message's text parts together: `alice@` and `"Text": "example.com"` reached its
    model as the address, which the proxy, reading only `text` as a part's, read as two texts, neither an address."""
    text, content, kind = spelt
    server, upstream = vllm
    proxy = make_proxy(EMAIL_ZONE_STORED, UPSTREAM=upstream)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="none", max_retries=0)
    local, domain = ADDRESS.split("@")

    def parts(text: str, kind: str) -> list[dict[str, Any]]:
        return [{"type": "input_text", "text": f"{local}@"}, {kind: "input_text", text: domain}]

    spelt_input = [{"type": "message", "role": "user", content: parts(text, kind)}]
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model=SERVED, input=spelt_input, extra_headers={"x-purpose": "ads"})  # type: ignore[arg-type]
    assert refused.value.code == "invalid_request" and "Go's encoding/json" in refused.value.message
    exact = [{"type": "message", "role": "user", "content": parts("text", "type")}]  # the parts joined: the address
    with pytest.raises(openai.PermissionDeniedError):
        client.responses.create(model=SERVED, input=exact, extra_headers={"x-purpose": "ads"})  # type: ignore[arg-type]
    assert server.data_requests() == []


def _tool_call_chat(**spelt: str) -> dict[str, Any]:
    """An assistant's tool call whose arguments hold a card written with an exponent (Ollama prints the number as Go
    parses it, `4111111111111111`), then the user's turn; `spelt`: a key of the message, the call or its function
    written otherwise (`arguments="Arguments"`)."""
    names = {"arguments": "arguments", "function": "function", "tool_calls": "tool_calls", **spelt}
    function = {"name": "pay", names["arguments"]: '{"card": 4.111111111111111e15}'}
    call = {"id": "c1", "type": "function", names["function"]: function}
    assistant = {"role": "assistant", "content": "", names["tool_calls"]: [call]}
    return {"model": SERVED, "messages": [assistant, {"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("spelt", "field"),
    [({"arguments": "Arguments"}, "arguments"), ({"arguments": "ARGUMENTS"}, "arguments"),
     ({"function": "Function"}, "function"), ({"tool_calls": "Tool_Calls"}, "tool_calls"),
     ({"tool_calls": "tool_call\u017f"}, "tool_calls")],
    ids=["Arguments", "ARGUMENTS", "Function", "Tool_Calls", "long s"],
)  # fmt: skip
def test_a_tool_call_key_go_takes_for_a_chat_field_is_refused(vllm, make_proxy, spelt, field) -> None:  # type: ignore[no-untyped-def]
    """Ollama's OpenAI-compatible chat decodes each message, its tool calls and their functions into structs
    (`Message`, `ToolCall`): a function's `"Arguments"` is its `arguments`, whose numbers Ollama parses and prints to
    the model (`4.111111111111111e15` as the card `4111111111111111`); the proxy reads a number written with an
    exponent as printed again only under `arguments`, so the call went through for a purpose the card's zone forbids."""
    server, upstream = vllm
    proxy = make_proxy(CARD_ZONE, UPSTREAM=upstream)
    spelt_body, exact_body = _tool_call_chat(**spelt), _tool_call_chat()
    reply = httpx.post(f"{proxy.url}/v1/chat/completions", json=spelt_body, headers={"x-purpose": "marketing"},
                       timeout=30)  # fmt: skip
    assert reply.status_code == 400, reply.text
    error = proxy_error(reply)
    assert error["code"] == "invalid_request" and f"write it '{field}'" in error["message"], error
    assert "Go's encoding/json" in error["message"], error
    reply = httpx.post(f"{proxy.url}/v1/chat/completions", json=exact_body, headers={"x-purpose": "marketing"},
                       timeout=30)  # fmt: skip
    assert reply.status_code == 403 and proxy_error(reply)["code"] == "purpose_denied", reply.text  # the card read
    assert server.data_requests() == []


@pytest.mark.parametrize(
    ("message", "field"),
    [({"role": "user", "Content": f"mail {ADDRESS}"}, "content"),
     ({"ROLE": "user", "content": "hi"}, "role"),
     ({"role": "user", "content": [{"type": "text", "Text": ADDRESS}]}, "text"),
     ({"role": "user", "content": [{"Type": "text", "text": ADDRESS}]}, "type"),
     ({"role": "user", "content": [{"type": "image_url", "Image_Url": {"url": "data:image/png;base64,AA=="}}]},
      "image_url")],
    ids=["message's Content", "message's ROLE", "part's Text", "part's Type", "part's Image_Url"],
)  # fmt: skip
def test_a_message_or_part_key_go_takes_for_a_chat_field_is_refused(vllm, make_proxy, message, field) -> None:  # type: ignore[no-untyped-def]
    """A chat message's `"Content"` is Go's `content` (`Message`), and a content part's `"Text"`, `"Type"` or
    `"Image_Url"` its field to a server that decodes parts into structs: refused as a tool call's keys are."""
    server, upstream = vllm
    proxy = make_proxy(EMAIL_ZONE_STORED, UPSTREAM=upstream)
    body = {"model": SERVED, "messages": [{"role": "system", "content": "be brief"}, message]}
    reply = httpx.post(f"{proxy.url}/v1/chat/completions", json=body, headers={"x-purpose": "ads"}, timeout=30)
    assert reply.status_code == 400, reply.text
    error = proxy_error(reply)
    assert error["code"] == "invalid_request" and f"write it '{field}'" in error["message"], error
    assert server.data_requests() == []


def test_an_ordinary_chat_is_read_as_before(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """Messages, parts and tool calls spelt as OpenAI's SDK spells them (and the keys it sends beside them: `refusal`,
    `audio`, `name`) are forwarded for a purpose their zones allow, as before."""
    server, upstream = vllm
    proxy = make_proxy(EMAIL_ZONE_STORED, UPSTREAM=upstream)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="none", max_retries=0)
    call = {"id": "c1", "type": "function", "function": {"name": "mail", "arguments": '{"to": "bob"}'}}
    messages: Any = [
        {"role": "system", "content": "be brief", "name": "ops"},
        {"role": "user", "content": [{"type": "text", "text": "mail bob"}]},
        {"role": "assistant", "content": None, "refusal": None, "audio": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "sent"},
    ]
    reply = client.chat.completions.create(model=SERVED, messages=messages, extra_headers={"x-purpose": "ads"})
    assert reply.choices and len(server.data_requests()) == 1


# a 1x1 PNG, as an image block's base64 source carries one
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


@pytest.mark.parametrize(
    "source",
    [{"type": "base64", "media_type": "image/png", "Data": PIXEL},
     {"Type": "base64", "media_type": "image/png", "data": PIXEL},
     {"type": "base64", "Media_Type": "image/png", "data": PIXEL},
     {"type": "url", "URL": "https://example.com/a.png"}],
    ids=["Data", "Type", "Media_Type", "URL"],
)  # fmt: skip
def test_an_image_source_key_go_takes_for_a_messages_api_field_is_refused(vllm, make_proxy, source) -> None:  # type: ignore[no-untyped-def]
    """An image block's `source` is a struct of Go's too in Ollama's Anthropic-compatible API (`ImageSource`: `type`,
    `media_type`, `data`, `url`; it decodes `data` as the image when `type` is `base64`): a key spelt otherwise is
    refused as a block's is, nothing forwarded; spelt as the SDK spells it, the image is forwarded. (Ollama's system
    blocks, a tool result's blocks and a tool use's `input` are maps to Go, their keys matched exactly: not structs.)"""
    server, upstream = vllm
    proxy = make_proxy(EMAIL_ZONE_STORED, UPSTREAM=upstream)
    image = {"type": "image", "source": source}
    body = {"model": SERVED, "max_tokens": 8,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "what is it?"}, image]}]}  # fmt: skip
    reply = httpx.post(f"{proxy.url}/v1/messages", json=body, headers={"x-purpose": "ads"}, timeout=30)
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "invalid_request", reply.text
    field = next(key.lower() for key in source if key != key.lower())
    assert f"write it '{field}'" in reply.json()["error"]["message"], reply.text
    assert server.data_requests() == []
    image["source"] = {key.lower(): value for key, value in source.items()}
    reply = httpx.post(f"{proxy.url}/v1/messages", json=body, headers={"x-purpose": "ads"}, timeout=30)
    assert reply.status_code == 200, reply.text
    assert len(server.data_requests()) == 1


@pytest.mark.parametrize(
    "message",
    [{"role": "user", "content": "hi", "URL": "x"},
     {"role": "user", "content": "hi", "Text": "x", "Source": "y"},
     {"role": "user", "content": [{"type": "text", "text": "hi", "Data": "x", "Media_Type": "y"}]},
     {"role": "user", "content": [{"type": "text", "text": "what is it?"},
                                  {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                               "data": PIXEL, "Text": "x", "Content": "y"}}]},
     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                   "content": [{"type": "text", "text": "sent", "Text": "x", "Input": {"a": 1}}]}]},
     {"role": "user", "content": [{"type": "text", "text": "hi", "Cache_Control": {"type": "ephemeral"}}]}],
    ids=["message URL", "message Text", "text block Data", "source Text", "tool result block Text", "Cache_Control"],
)  # fmt: skip
def test_a_key_go_matches_to_no_field_at_its_level_is_forwarded(vllm, make_proxy, message) -> None:  # type: ignore[no-untyped-def]
    """Each level of a Messages API body is its own struct to Go (`MessageParam`: `role`, `content`; `ContentBlock`;
    an image's `ImageSource`: `type`, `media_type`, `data`, `url`), and a tool result's blocks are maps (exact keys):
    a key that is no field of its level's struct in any case is ignored by Ollama, so it is forwarded, read as user
    text as any unknown key is. Before 2026-12-05 one field set served every level and the walk went into a tool
    result's blocks: a message's `"URL"`, a text block's `"Data"` were refused, 400."""
    server, upstream = vllm
    proxy = make_proxy(EMAIL_ZONE_STORED, UPSTREAM=upstream)
    body = {"model": SERVED, "max_tokens": 8, "messages": [message]}
    reply = httpx.post(f"{proxy.url}/v1/messages", json=body, headers={"x-purpose": "ads"}, timeout=30)
    assert reply.status_code == 200, reply.text
    assert len(server.data_requests()) == 1

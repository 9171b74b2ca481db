"""Ollama reads its native API's bodies, its OpenAI chat's and its Responses API's with Go's `encoding/json`, a struct at
each level (`api/types.go`: `ChatRequest`, `GenerateRequest`, `Message`, `ToolCall`, `ToolCallFunction`;
`openai/openai.go`: `Message`, `ToolCall` and its `Function`; `openai/responses.go`: the input items, the content
parts), each taking a key for one of ITS fields whatever the key's case. The proxy refuses such a key (400): before
2026-12-05 one field set served every level of these bodies, so a key matching a field of another level only (a native
message's `"Model"`, a chat message's `"Text"`, a Responses part's `"Role"`), which Go ignores where it is, was refused
too. Now each level is checked against its own struct's fields (helper nativekeys): such a key is forwarded, and read as
user text as any key the proxy does not know is; a key Go takes for a field of its own level is still refused."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests import test_ollama_native as native
from tests.configs import EMAIL_ZONE_STORED
from tests.harness import ProxyHandle, proxy_error
from tests.servers.ollama import MODEL, Ollama
from tests.servers.vllm_like import SERVED
from tests.test_ollama_native import ADDRESS

# the fixtures of test_ollama_native: the server, the proxy in front of it (`ads` may not have an address)
ollama = native.ollama
proxy = native.proxy

HEADERS = {"x-purpose": "ads", "content-type": "application/json"}
V = "@@value@@"  # (where the value under the key tested goes: a plain word, then the address)


def _sent(body: dict[str, Any], value: str) -> bytes:
    return json.dumps(body, ensure_ascii=False).replace(V, value).encode()


def _forwarded_and_read(ollama: Ollama, proxy: ProxyHandle, path: str, body: dict[str, Any]) -> None:
    """`body` posted to `path` with a plain word under the key tested: forwarded; with the address: refused, not
    forwarded."""
    reply = httpx.post(f"{proxy.url}{path}", content=_sent(body, "bob"), headers=HEADERS, timeout=30)
    assert reply.status_code == 200, reply.text
    assert len(ollama.received) == 1
    # read as user text as any key the proxy does not know: the address under it refused for `ads`
    reply = httpx.post(f"{proxy.url}{path}", content=_sent(body, ADDRESS), headers=HEADERS, timeout=30)
    assert reply.status_code == 403 and proxy_error(reply)["code"] == "purpose_denied", reply.text
    assert len(ollama.received) == 1


def _refused(ollama: Ollama, proxy: ProxyHandle, path: str, body: dict[str, Any]) -> httpx.Response:
    """`body` posted to `path` with a plain word under the key tested: refused 400, not forwarded; the reply."""
    reply = httpx.post(f"{proxy.url}{path}", content=_sent(body, "bob"), headers=HEADERS, timeout=30)
    assert reply.status_code == 400, reply.text
    assert ollama.received == []
    return reply


def _native_call(**spelt: Any) -> dict[str, Any]:
    """An Ollama chat with a tool call; `message`, `call`, `function`: more keys at that level."""
    function = {"name": "mail", "arguments": {"to": "bob"}, **spelt.get("function", {})}
    call = {"function": function, **spelt.get("call", {})}
    assistant = {"role": "assistant", "content": "", "tool_calls": [call], **spelt.get("message", {})}
    return {"model": MODEL, "messages": [{"role": "user", "content": "mail bob"}, assistant]}


def _native_chat(**more: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **more}


# a key Go's structs have at another level only, where it is: ignored by Ollama there
NATIVE_ELSEWHERE = {
    "message's Model": ("/api/chat", _native_call(message={"Model": V})),
    "message's Prompt": ("/api/chat", _native_call(message={"Prompt": V})),
    "message's Name": ("/api/chat", _native_call(message={"Name": V})),
    "chat's Role": ("/api/chat", _native_chat(Role=V)),
    "chat's Prompt": ("/api/chat", _native_chat(Prompt=V)),
    "chat's System": ("/api/chat", _native_chat(System=V)),
    "generate's Messages": ("/api/generate", {"model": MODEL, "prompt": "hi", "Messages": V}),
    "generate's message's Content": (
        "/api/generate",
        {"model": MODEL, "prompt": "hi", "messages": [{"role": "user", "Content": V}]},
    ),
    "embed's Content": ("/api/embed", {"model": MODEL, "input": "hi", "Content": V}),
    "tool call's Name": ("/api/chat", _native_call(call={"Name": V})),
    "tool call's Content": ("/api/chat", _native_call(call={"Content": V})),
    "function's Content": ("/api/chat", _native_call(function={"Content": V})),
    "function's Id": ("/api/chat", _native_call(function={"Id": V})),
}


@pytest.mark.parametrize("call", list(NATIVE_ELSEWHERE.values()), ids=list(NATIVE_ELSEWHERE))
def test_a_native_key_of_another_levels_field_is_forwarded_and_read(
    ollama: Ollama, proxy: ProxyHandle, call: tuple[str, dict[str, Any]]
) -> None:
    _forwarded_and_read(ollama, proxy, *call)


# a key Go takes for a field of its own level: refused as before
NATIVE_OWN = {
    "chat's Messages": ("/api/chat", {"model": MODEL, "Messages": [{"role": "user", "content": V}]}, "messages"),
    "message's Content": ("/api/chat", {"model": MODEL, "messages": [{"role": "user", "Content": V}]}, "content"),
    "message's Thinking": ("/api/chat", _native_call(message={"Thinking": V}), "thinking"),
    "message's Tool_Name": ("/api/chat", _native_call(message={"Tool_Name": V}), "tool_name"),
    "tool call's Function": (
        "/api/chat",
        {"model": MODEL, "messages": [{"role": "assistant", "tool_calls": [{"Function": {"name": V}}]}]},
        "function",
    ),
    "tool call's ID": ("/api/chat", _native_call(call={"ID": V}), "id"),
    "function's Name": ("/api/chat", _native_call(function={"Name": V}), "name"),
    "generate's System": ("/api/generate", {"model": MODEL, "prompt": "hi", "System": V}, "system"),
    "generate's Template": ("/api/generate", {"model": MODEL, "prompt": "hi", "TEMPLATE": V}, "template"),
    "embed's Input": ("/api/embed", {"model": MODEL, "Input": V}, "input"),
    "embeddings' Prompt": ("/api/embeddings", {"model": MODEL, "Prompt": V}, "prompt"),
}


@pytest.mark.parametrize("call", list(NATIVE_OWN.values()), ids=list(NATIVE_OWN))
def test_a_native_key_of_its_own_levels_field_is_refused(
    ollama: Ollama, proxy: ProxyHandle, call: tuple[str, dict[str, Any], str]
) -> None:
    path, body, field = call
    error = proxy_error(_refused(ollama, proxy, path, body))
    assert error["code"] == "invalid_request" and f"write it '{field}'" in error["message"], error


def _chat_call(**spelt: Any) -> dict[str, Any]:
    """An OpenAI chat with a content part and a tool call; `message`, `part`, `call`, `function`: more keys there."""
    function = {"name": "mail", "arguments": '{"to": "bob"}', **spelt.get("function", {})}
    call = {"id": "c1", "type": "function", "function": function, **spelt.get("call", {})}
    user = {"role": "user", "content": [{"type": "text", "text": "mail bob", **spelt.get("part", {})}]}
    assistant = {"role": "assistant", "content": None, "tool_calls": [call], **spelt.get("message", {})}
    return {"model": SERVED, "messages": [user, assistant, {"role": "tool", "tool_call_id": "c1", "content": "sent"}]}


def _items(**spelt: Any) -> dict[str, Any]:
    """A Responses call's input: a message of a text part; `item`, `part`: more keys there."""
    part = {"type": "input_text", "text": "hi", **spelt.get("part", {})}
    return {"model": SERVED, "input": [{"type": "message", "role": "user", "content": [part], **spelt.get("item", {})}]}


# a key Go's structs (Ollama's OpenAI-compatible API) have at another level only, or none of them has
OPENAI_ELSEWHERE = {
    "chat message's Text": ("chat/completions", _chat_call(message={"Text": V})),
    "chat message's Arguments": ("chat/completions", _chat_call(message={"Arguments": V})),
    "chat message's Refusal": ("chat/completions", _chat_call(message={"Refusal": V})),
    "chat message's Function_Call": ("chat/completions", _chat_call(message={"Function_Call": V})),
    "chat part's Role": ("chat/completions", _chat_call(part={"Role": V})),
    "chat part's Content": ("chat/completions", _chat_call(part={"Content": V})),
    "tool call's Name": ("chat/completions", _chat_call(call={"Name": V})),
    "tool call's Content": ("chat/completions", _chat_call(call={"Content": V})),
    "function's Type": ("chat/completions", _chat_call(function={"Type": V})),
    "function's Role": ("chat/completions", _chat_call(function={"Role": V})),
    "input item's Text": ("responses", _items(item={"Text": V})),
    "input item's Detail": ("responses", _items(item={"Detail": V})),
    "part's Role": ("responses", _items(part={"Role": V})),
    "part's Call_Id": ("responses", _items(part={"Call_Id": V})),
}


@pytest.mark.parametrize("call", list(OPENAI_ELSEWHERE.values()), ids=list(OPENAI_ELSEWHERE))
def test_an_openai_key_of_another_levels_field_is_forwarded_and_read(  # type: ignore[no-untyped-def]
    vllm, make_proxy, call: tuple[str, dict[str, Any]]
) -> None:
    server, upstream = vllm
    proxy = make_proxy(EMAIL_ZONE_STORED, UPSTREAM=upstream)
    path, body = call
    url = f"{proxy.url}/v1/{path}"
    reply = httpx.post(url, content=_sent(body, "bob"), headers=HEADERS, timeout=30)
    assert reply.status_code == 200, reply.text
    assert len(server.data_requests()) == 1
    reply = httpx.post(url, content=_sent(body, ADDRESS), headers=HEADERS, timeout=30)
    assert reply.status_code == 403 and proxy_error(reply)["code"] == "purpose_denied", reply.text
    assert len(server.data_requests()) == 1


OPENAI_OWN = {
    "chat message's Reasoning": ("chat/completions", _chat_call(message={"Reasoning": V}), "reasoning"),
    "chat message's Name": ("chat/completions", _chat_call(message={"NAME": V}), "name"),
    "chat part's Refusal": ("chat/completions", _chat_call(part={"Refusal": V}), "refusal"),
    "tool call's Index": ("chat/completions", _chat_call(call={"Index": 0}), "index"),
    "function's Name": ("chat/completions", _chat_call(function={"Name": V}), "name"),
    "input item's Call_Id": ("responses", _items(item={"Call_Id": V}), "call_id"),
    "input item's Action": ("responses", _items(item={"Action": {"type": "search", "query": V}}), "action"),
    "part's Filename": ("responses", _items(part={"FileName": V}), "filename"),
}


@pytest.mark.parametrize("call", list(OPENAI_OWN.values()), ids=list(OPENAI_OWN))
def test_an_openai_key_of_its_own_levels_field_is_refused(  # type: ignore[no-untyped-def]
    vllm, make_proxy, call: tuple[str, dict[str, Any], str]
) -> None:
    server, upstream = vllm
    proxy = make_proxy(EMAIL_ZONE_STORED, UPSTREAM=upstream)
    path, body, field = call
    reply = httpx.post(f"{proxy.url}/v1/{path}", content=_sent(body, "bob"), headers=HEADERS, timeout=30)
    assert reply.status_code == 400, reply.text
    error = proxy_error(reply)
    assert error["code"] == "invalid_request" and f"write it '{field}'" in error["message"], error
    assert server.data_requests() == []

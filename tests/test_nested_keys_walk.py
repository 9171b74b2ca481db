"""`nested_named_as_fields`, the walk that refuses a key Go's `encoding/json` takes for a field in a chat's messages,
an Ollama chat's, a Messages API body's and a Responses call's input items: its Python work does not grow with the
number of messages (an agent's history of hundreds of tool calls), and what it refuses and what it passes over are
the same at every depth, beside values that are no object (2026-12-05, helper revokeys)."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import pytest

import proxy.protocols as protocols
from proxy.errors import InvalidRequest
from proxy.protocols import Target, anthropic, ollama, openai
from tests.test_scan_cost import python_lines


def _chat_history(calls: int) -> list[Any]:
    """An OpenAI chat agent's history: a system and a user message, then `calls` tool calls and their results."""
    messages: list[Any] = [{"role": "system", "content": "You are an agent."}, {"role": "user", "content": "go"}]
    for i in range(calls):
        function = {"name": "run", "arguments": json.dumps({"cmd": f"ls {i}"})}
        messages.append({"role": "assistant", "content": None,
                         "tool_calls": [{"id": f"c{i}", "type": "function", "function": function}]})  # fmt: skip
        messages.append({"role": "tool", "tool_call_id": f"c{i}", "content": [{"type": "text", "text": f"f{i}"}]})
    return messages


def _blocks_history(calls: int) -> list[Any]:
    """A Messages API agent's history: `tool_use` blocks and `tool_result`s of text blocks."""
    messages: list[Any] = [{"role": "user", "content": "go"}]
    for i in range(calls):
        use = {"type": "tool_use", "id": f"t{i}", "name": "run", "input": {"Cmd": f"ls {i}"}}
        messages.append({"role": "assistant", "content": [{"type": "text", "text": "ok"}, use]})
        result = {"type": "tool_result", "tool_use_id": f"t{i}", "content": [{"type": "text", "text": f"f{i}"}]}
        messages.append({"role": "user", "content": [result]})
    return messages


def _items_history(calls: int) -> list[Any]:
    """A Responses call's input: function calls and their outputs given as parts."""
    items: list[Any] = [{"role": "user", "content": [{"type": "input_text", "text": "go"}]}]
    for i in range(calls):
        items.append({"type": "function_call", "call_id": f"c{i}", "name": "run", "arguments": "{}"})
        items.append({"type": "function_call_output", "call_id": f"c{i}",
                      "output": [{"type": "input_text", "text": f"r{i}"}]})  # fmt: skip
    return items


WALKS = {
    "chat": (_chat_history, openai._MESSAGE_NAMED, openai._MESSAGE_INNER, openai._MESSAGE_BELOW),
    "ollama": (_chat_history, ollama._MESSAGE_FIELDS, ollama._CALLS, ollama._BELOW),
    "anthropic": (_blocks_history, anthropic._MESSAGE_NAMED, anthropic._CONTENT, anthropic._BELOW),
    "responses": (_items_history, openai._INPUT_NAMED, openai._PARTS, openai._INPUT_BELOW),
}


@pytest.mark.interpreted  # (lines of Python counted)
@pytest.mark.parametrize("api", list(WALKS))
def test_the_walk_costs_no_python_per_message(api: str) -> None:
    """Each object was looked at in Python (a 200-message chat history: 20,732 instructions of the walk, a tenth of
    `read_request`'s); now a level of them at a time, its keys and children gathered in C. A chat's four levels, each
    its own struct's since 2026-12-05 (messages, parts, tool calls, functions): 100 lines whatever their number."""
    history, fields, inner, below = WALKS[api]
    walk = protocols.nested_named_as_fields
    lines = {
        calls: python_lines(partial(walk, history(calls), fields, inner, below), protocols.__file__)
        for calls in (10, 1_000)
    }
    assert lines[1_000] == lines[10] < 110, lines


def _refused(walk: str, items: list[Any]) -> str:
    with pytest.raises(InvalidRequest) as refused:
        protocols.nested_named_as_fields(items, *WALKS[walk][1:])
    return str(refused.value.param)


def test_a_key_go_takes_for_a_field_is_refused_at_every_depth_whatever_sits_beside_it() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "pay", "Arguments": "{}"}}
    beside: list[Any] = ["text", 3, None, [{"Content": "in a list in a list: no struct of Go's"}]]
    assert _refused("chat", [*beside, {"role": "assistant", "tool_calls": [*beside, call]}]) == "arguments"
    assert _refused("chat", [{"role": "user", "content": [*beside, {"type": "text", "Text": "x"}]}]) == "text"
    assert _refused("ollama", [{"role": "assistant", "tool_calls": [{"function": {"Name": "pay"}}]}]) == "name"
    assert _refused("anthropic", [{"role": "user", "content": [*beside, {"type": "text", "Text": "x"}]}]) == "text"
    image = {"type": "image", "source": {"type": "base64", "Data": "x"}}
    assert _refused("anthropic", [{"role": "user", "content": [image]}]) == "data"
    output = {"type": "computer_call_output", "call_id": "c", "output": {"type": "input_image", "Image_Url": "x"}}
    assert _refused("responses", [output]) == "image_url"


def test_what_is_no_struct_of_go_is_passed_over() -> None:
    """A tool call's input and arguments, an image's URL object, a list in a list, what is under a key the walk
    does not follow: a user's own keys, never refused."""
    own = {"Name": "x", "Content": "y", "Text": "z"}
    call = {"id": "c1", "type": "function", "function": {"name": "pay", "arguments": own}}
    part = {"type": "image_url", "image_url": {"url": "data:,", **own}}
    messages: list[Any] = [[own], "text", {"role": "user", "content": [part, [own]], "audio": own}]
    for walk in ("chat", "ollama"):
        protocols.nested_named_as_fields([*messages, {"role": "assistant", "tool_calls": [call, [own]]}],
                                         *WALKS[walk][1:])  # fmt: skip
    use = {"type": "tool_use", "id": "t", "name": "run", "input": own}
    protocols.nested_named_as_fields([{"role": "assistant", "content": [use]}], *WALKS["anthropic"][1:])
    # (a tool result's blocks are maps to Go, exact keys; a message's, a block's, a source's keys of no field of theirs)
    result = {"type": "tool_result", "tool_use_id": "t", "content": [own, {"type": "text", "text": "x", **own}]}
    image = {"type": "image", "source": {"type": "base64", "data": "x", "Text": "y", "Content": "z"}}
    message = {"role": "user", "content": [result, image, {"type": "text", "text": "x", "Data": "y"}], "URL": "z"}
    protocols.nested_named_as_fields([message], *WALKS["anthropic"][1:])
    item = {"type": "local_shell_call", "call_id": "c", "action": own}
    protocols.nested_named_as_fields([item, [own]], *WALKS["responses"][1:])


def test_read_request_refuses_through_each_api() -> None:
    """The walk as each adapter calls it (a chat, an Ollama chat, a Messages API body, a Responses call)."""
    chat = {"model": "m", "messages": [*_chat_history(3), {"role": "user", "CONTENT": "x"}]}
    with pytest.raises(InvalidRequest, match="'content'"):
        openai.read_request("chat", json.dumps(chat).encode())
    with pytest.raises(InvalidRequest, match="'content'"):
        ollama.read_request(Target("chat"), json.dumps(chat).encode())
    blocks = {"model": "m", "max_tokens": 9, "messages": [*_blocks_history(3), {"role": "user", "Content": "x"}]}
    with pytest.raises(InvalidRequest, match="'content'"):
        anthropic.read_request(json.dumps(blocks).encode())
    items = {"model": "m", "input": [*_items_history(3), {"type": "message", "role": "user", "Content": "x"}]}
    with pytest.raises(InvalidRequest, match="'content'"):
        openai.read_request("responses", json.dumps(items).encode())
    assert openai.read_request("chat", json.dumps({"model": "m", "messages": _chat_history(3)}).encode()).texts
    assert anthropic.read_request(json.dumps({**blocks, "messages": _blocks_history(3)}).encode()).texts
    assert openai.read_request("responses", json.dumps({**items, "input": _items_history(3)}).encode()).texts

"""Content the server stores and a call names by id is content the proxy cannot read (`scan:truncated`), as a stored
conversation is: a file (a chat `file` part's `file.file_id`, a Responses `input_file`'s `file_id`, in a message or
in a tool call's output given as parts: the server reads the uploaded file's text to its model) and a Responses prompt template (`prompt: {"id": ...}`: the server puts its
stored instructions and messages before the input). Before, each went on unlabelled, for any purpose, though the
proxy never saw what the model read."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import orjson
import pytest

from tests.configs import ONE_UPSTREAM
from tests.servers.vllm_like import SERVED

CONFIG = (
    ONE_UPSTREAM
    + """
zones:
  - name: unread
    labels: [scan:truncated]
    allow_purposes: [assistant]
detectors: [email]
"""
)

ASK = {"type": "input_text", "text": "Summarise it"}
FILE_BY_ID = {"type": "input_file", "file_id": "file-1"}
FILE_BY_URL = {"type": "input_file", "file_url": "https://example.com/a.pdf"}
CALLED = {"type": "function_call", "call_id": "c1", "name": "fetch", "arguments": "{}"}
CUSTOM = {"type": "custom_tool_call", "call_id": "c1", "name": "fetch", "input": "a.pdf"}


def _chat(client: openai.OpenAI, part: dict[str, Any], purpose: str) -> Any:
    messages: Any = [{"role": "user", "content": [{"type": "text", "text": "Summarise it"}, part]}]
    return client.chat.completions.with_raw_response.create(
        model=SERVED, messages=messages, extra_headers={"x-purpose": purpose}
    )


def _responses(client: openai.OpenAI, extra: dict[str, Any], purpose: str) -> Any:
    given: Any = extra.pop("input", "Summarise it")
    return client.responses.with_raw_response.create(
        model=SERVED, input=given, extra_headers={"x-purpose": purpose}, **extra
    )


def _chat_after_audio(client: openai.OpenAI, purpose: str) -> Any:
    """A chat whose assistant turn is a previous audio reply, named by id (OpenAI's audio models)."""
    messages: Any = [
        {"role": "user", "content": "Read me the note"},
        {"role": "assistant", "audio": {"id": "audio_abc123"}},
        {"role": "user", "content": "Again, slower"},
    ]
    return client.chat.completions.with_raw_response.create(
        model=SERVED, messages=messages, extra_headers={"x-purpose": purpose}
    )


MCP_SERVER: Any = {"type": "url", "url": "https://calendar.example/mcp", "name": "calendar"}
VECTOR_SEARCH: Any = {"type": "file_search", "vector_store_ids": ["vs_1"]}
TURN: Any = {"role": "user", "content": "Summarise it"}
SKILL: Any = {"type": "skill_reference", "skill_id": "skill_1"}
SHELL_SKILL: Any = {"type": "shell", "environment": {"type": "container_auto", "skills": [SKILL]}}
MCP_TOOL: Any = {"type": "mcp", "server_label": "crm", "server_url": "https://crm.example/mcp"}
CALLS = {
    "chat file part by id": lambda client, purpose: _chat(
        client, {"type": "file", "file": {"file_id": "file-1"}}, purpose
    ),
    # a previous audio reply named by id: OpenAI puts its audio, stored, into the context; until 2026-12-07 unlabelled
    "chat previous audio by id": _chat_after_audio,
    "responses input_file by id": lambda client, purpose: _responses(
        client, {"input": [{"role": "user", "content": [ASK, {"type": "input_file", "file_id": "file-1"}]}]}, purpose
    ),
    # a file the server fetches (OpenAI's `input_file.file_url`): read by the model, never seen by the proxy
    "responses input_file by url": lambda client, purpose: _responses(
        client,
        {
            "input": [
                {"role": "user", "content": [ASK, {"type": "input_file", "file_url": "https://example.com/a.pdf"}]}
            ]
        },
        purpose,
    ),
    # a tool call's output given as parts (`function_call_output`, `custom_tool_call_output`): OpenAI reads its file to
    # the model as a message's; until 2026-12-07 its `output` was not looked at, the call forwarded unlabelled
    "responses function output file by id": lambda client, purpose: _responses(
        client, {"input": [CALLED, {"type": "function_call_output", "call_id": "c1", "output": [FILE_BY_ID]}]}, purpose
    ),
    "responses function output file by url": lambda client, purpose: _responses(
        client, {"input": [CALLED, {"type": "function_call_output", "call_id": "c1", "output": [FILE_BY_URL]}]}, purpose
    ),
    "responses custom tool output file by id": lambda client, purpose: _responses(
        client,
        {"input": [CUSTOM, {"type": "custom_tool_call_output", "call_id": "c1", "output": [ASK, FILE_BY_ID]}]},
        purpose,
    ),
    # tools that read the model stored or fetched content (OpenAI's file search over vector stores, a code interpreter
    # with files, an MCP server's tools and results): until 2026-12-07 their text alone was read
    "responses file search": lambda client, purpose: _responses(
        client, {"tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]}, purpose
    ),
    "responses code interpreter with files": lambda client, purpose: _responses(
        client,
        {"tools": [{"type": "code_interpreter", "container": {"type": "auto", "file_ids": ["file-1"]}}]},
        purpose,
    ),
    "responses code interpreter container by id": lambda client, purpose: _responses(
        client, {"tools": [{"type": "code_interpreter", "container": "cntr_1"}]}, purpose
    ),
    "responses mcp server": lambda client, purpose: _responses(
        client,
        {
            "tools": [{"type": "mcp", "server_label": "crm", "server_url": "https://crm.example/mcp"}],
            "tool_choice": "none",
        },
        purpose,
    ),
    "responses mcp connector": lambda client, purpose: _responses(
        client,
        {"tools": [{"type": "mcp", "server_label": "mail", "connector_id": "connector_gmail", "authorization": "t"}]},
        purpose,
    ),
    # a compaction item: the earlier conversation, summarised and encrypted, which OpenAI decrypts into the model's
    # context; until 2026-12-07 its ciphertext was skipped as framing, the call unlabelled
    "responses compaction": lambda client, purpose: _responses(
        client,
        {
            "input": [
                {"type": "compaction", "encrypted_content": "gAAAAABo-ciphertext"},
                {"role": "user", "content": "go on"},
            ]
        },
        purpose,
    ),
    "responses stored prompt": lambda client, purpose: _responses(
        client, {"prompt": {"id": "pmpt_1", "variables": {"topic": "billing"}}}, purpose
    ),
    # such tools given in an input item (a developer's `additional_tools`, a tool search's `tool_search_output`), not in
    # `tools`: until review revfields12 read as their text alone, the call unlabelled
    "responses additional file search": lambda client, purpose: _responses(
        client, {"input": [{"type": "additional_tools", "role": "developer", "tools": [VECTOR_SEARCH]}, TURN]}, purpose
    ),
    # a hosted shell whose container holds files or skills (stored, named by id): until review revfields12 unlabelled
    "responses shell with files": lambda client, purpose: _responses(
        client,
        {"tools": [{"type": "shell", "environment": {"type": "container_auto", "file_ids": ["file-1"]}}]},
        purpose,
    ),
    "responses shell container by id": lambda client, purpose: _responses(
        client,
        {"tools": [{"type": "shell", "environment": {"type": "container_reference", "container_id": "cntr_1"}}]},
        purpose,
    ),
    "responses shell skill": lambda client, purpose: _responses(
        client, {"tools": [SHELL_SKILL], "tool_choice": "none"}, purpose
    ),
    "responses tool search output mcp": lambda client, purpose: _responses(
        client, {"input": [TURN, {"type": "tool_search_output", "call_id": "ts1", "tools": [MCP_TOOL]}]}, purpose
    ),
}


@pytest.mark.parametrize("call", list(CALLS))
def test_content_named_by_id_is_unread(vllm, make_proxy, call) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=10)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        CALLS[call](client, "ads")
    assert "scan:truncated" in caught.value.message
    assert server.data_requests() == []
    reply = CALLS[call](client, "assistant")
    assert reply.http_response.headers["x-data-labels"] == "scan:truncated"
    assert len(server.data_requests()) == 1


def test_a_file_sent_whole_and_a_prompt_without_an_id_are_read_as_before(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """A file sent whole is read itself (tests/test_file_sent_whole.py): a text file holding nothing found is clean."""
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=10)
    whole = {"type": "file", "file": {"filename": "notes.txt", "file_data": "data:text/plain;base64,bm90ZXMK"}}
    assert _chat(client, whole, "ads").http_response.headers["x-data-labels"] == ""
    reply = client.completions.with_raw_response.create(
        model=SERVED, prompt="hello", extra_headers={"x-purpose": "ads"}
    )
    assert reply.http_response.headers["x-data-labels"] == ""


@pytest.mark.parametrize(
    "tools",
    [
        {"tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}], "tool_choice": "none"},
        {"tools": [{"type": "code_interpreter", "container": {"type": "auto"}}]},
        {
            "tools": [{"type": "code_interpreter", "container": {"type": "auto", "file_ids": ["file-1"]}}],
            "tool_choice": "none",
        },
        {"tools": [{"type": "web_search"}, {"type": "function", "name": "f", "parameters": {"type": "object"}}]},
        {"tools": [{"type": "shell", "environment": {"type": "container_auto"}}]},
        {
            "tools": [{"type": "shell", "environment": {"type": "container_auto", "file_ids": ["file-1"]}}],
            "tool_choice": "none",
        },
        {
            "tools": [
                {
                    "type": "shell",
                    "environment": {"type": "local", "skills": [{"name": "n", "description": "d", "path": "p"}]},
                }
            ]
        },
    ],
    ids=[
        "file search, no call",
        "code interpreter without files",
        "code interpreter, no call",
        "web search, function",
        "shell without files",
        "shell, no call",
        "local shell with skills",
    ],
)
def test_tools_that_read_nothing_stored_are_read_as_before(vllm, make_proxy, tools) -> None:  # type: ignore[no-untyped-def]
    """A tool the choice cannot call, a container holding no files, a web search (public pages, not stored content)
    and a function (the caller's own results come back in a later call, read there) are read as their text."""
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=10)
    assert _responses(client, dict(tools), "ads").http_response.headers["x-data-labels"] == ""


def test_an_item_whose_type_is_no_string_is_read_not_raised_at() -> None:
    """A Responses input item's `type` that is a list or an object (no API's, hostile) is no tool call output: before
    the reading of a tool call's output's parts was guarded, looking it up in a set raised (unhashable), a 500."""
    from proxy.protocols.openai import read_request

    for kind in (["function_call_output"], {"a": 1}):
        body = orjson.dumps({"model": "m", "input": [{"type": kind, "output": [FILE_BY_ID]}]})
        assert read_request("responses", body).unscanned is False


@pytest.mark.parametrize(("servers", "unread"), [([MCP_SERVER], True), ([], False)], ids=["server", "none"])
def test_messages_mcp_servers_are_unread(vllm, make_proxy, servers, unread) -> None:  # type: ignore[no-untyped-def]
    """Through the real `anthropic` SDK (its MCP connector, a beta): Anthropic lists the servers' tools into the model's
    context and reads their results to it, as OpenAI does an `mcp` tool's; until 2026-12-07 only their URLs and names
    were read, and the call was forwarded for any purpose. An empty list names none."""
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    client = anthropic.Anthropic(base_url=proxy.url, api_key="unused", max_retries=0, timeout=10)
    try:
        call = client.beta.messages.with_raw_response.create(
            model=SERVED,
            max_tokens=8,
            messages=[{"role": "user", "content": "What is on my calendar?"}],
            mcp_servers=servers,
            betas=["mcp-client-2025-04-04"],
            extra_headers={"x-purpose": "ads"},
        )
        assert not unread, call.headers
        assert call.headers["x-data-labels"] == ""
    except anthropic.PermissionDeniedError as refused:
        assert unread
        assert "scan:truncated" in refused.message
        assert server.data_requests() == []
    finally:
        client.close()


HELD_TOOL: Any = {
    "type": "function",
    "name": "send",
    "parameters": {"type": "object", "properties": {"to": {"type": "string", "pattern": "^alice\\x40example\\.com$"}}},
}


@pytest.mark.parametrize(
    ("item", "choice", "unread"),
    [
        ({"type": "additional_tools", "role": "developer", "tools": [VECTOR_SEARCH]}, None, True),
        ({"type": "additional_tools", "role": "developer", "tools": [VECTOR_SEARCH]}, "none", False),
        ({"type": "tool_search_output", "tools": [MCP_TOOL]}, "none", True),  # (listed into the context first)
        ({"type": "additional_tools", "role": "developer", "tools": [HELD_TOOL]}, None, True),
        (
            {"type": "tool_search_output", "tools": [{"type": "namespace", "name": "n", "tools": [HELD_TOOL]}]},
            None,
            True,
        ),
        ({"type": "additional_tools", "role": "developer", "tools": [HELD_TOOL]}, "none", False),
        ({"type": "additional_tools", "role": "developer", "tools": [{**HELD_TOOL, "parameters": {}}]}, None, False),
        ({"type": ["additional_tools"], "tools": [MCP_TOOL]}, None, False),  # (no API's type: not raised at)
    ],
    ids=[
        "file search",
        "file search, no call",
        "mcp, no call",
        "pattern",
        "pattern in a namespace",
        "pattern, no call",
        "function",
        "type a list",
    ],
)
def test_tools_given_in_an_input_item_are_read_as_the_calls_own(item: Any, choice: Any, unread: bool) -> None:
    """OpenAI's `additional_tools` input item (a developer's tools, available from that item on) and `tool_search_output`
    (the tools a tool search loaded) give the model tools as `tools` does: one reading stored content (a file search
    over vector stores, an MCP server), or whose schema holds a `pattern` the server holds a call's arguments to, is
    unread, `scan:truncated`, as the request's own would be (review revfields12: before, read as their text alone)."""
    from proxy.protocols.openai import read_request

    body: dict[str, Any] = {"model": "m", "input": [item, {"role": "user", "content": "go on"}]}
    if choice is not None:
        body["tool_choice"] = choice
    assert read_request("responses", orjson.dumps(body)).unscanned is unread

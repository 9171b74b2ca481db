"""The walk that refuses a key Go's `encoding/json` takes for a field (`nested_named_as_fields`) looks at no more than
`MAX_STRINGS` objects, its levels' together, and a request with more is `scan:truncated`, as one of more texts is.
Before 2026-12-05 it looked at every one, bounded only by the 1,000,000 objects and arrays a body may hold: a body of a
million tiny objects (messages, blocks, tool calls) took 0.2-0.7 s of the event loop in the walk alone; now 10-65 ms
(helper ollamakeys2)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest

from proxy.errors import InvalidRequest
from proxy.protocols import MAX_STRINGS, anthropic, nested_named_as_fields
from proxy.protocols import ollama as ollama_protocol
from proxy.protocols import openai as openai_protocol
from tests.servers.vllm_like import SERVED
from tests.test_agent_session_read_whole import CONFIG

BLOCKS = (anthropic._MESSAGE_NAMED, anthropic._CONTENT, anthropic._BELOW)


def _messages(count: int) -> list[Any]:
    return [{"role": "user"} for _ in range(count)]


def _blocks(count: int) -> list[Any]:
    """One message (an object looked at) of `count` - 1 blocks."""
    return [{"role": "user", "content": [{"type": "text"} for _ in range(count - 1)]}]


def _sources(count: int) -> list[Any]:
    """One message of images, each with its source: `count` objects in all (an odd number)."""
    return [{"role": "user", "content": [{"type": "image", "source": {"type": "base64"}}
                                         for _ in range((count - 1) // 2)]}]  # fmt: skip


# the key Go takes for a field of the last object's level (a message's, a block's, an image source's)
_SPELT = {"messages": ("Content", "content"), "blocks": ("Text", "text"), "sources": ("Data", "data")}


@pytest.mark.parametrize("shape", [_messages, _blocks, _sources], ids=list(_SPELT))
def test_the_walk_looks_at_no_more_than_the_limit(shape: Any) -> None:
    """As many objects as the limit (the sources' shape: one fewer) are looked at, every one: a key Go takes for a
    field of the last one's level refused; one more, and the walk says it left some, a key in the last one not looked
    at."""
    key, field = _SPELT[shape.__name__.strip("_")]
    at_limit = shape(MAX_STRINGS)
    assert nested_named_as_fields(at_limit, *BLOCKS) is True
    past = shape(MAX_STRINGS + 2)
    assert nested_named_as_fields(past, *BLOCKS) is False
    last = at_limit[-1] if shape is _messages else at_limit[0]["content"][-1]
    if shape is _sources:
        last = last["source"]
    last[key] = "alice@example.com"
    with pytest.raises(InvalidRequest, match=f"write it '{field}'"):
        nested_named_as_fields(at_limit, *BLOCKS)
    last = past[-1] if shape is _messages else past[0]["content"][-1]
    if shape is _sources:
        last = last["source"]
    last[key] = "alice@example.com"  # (past the limit: not looked at)
    assert nested_named_as_fields(past, *BLOCKS) is False


def test_a_million_tiny_objects_are_not_all_looked_at() -> None:
    """A body's worth (a million objects and arrays, the most a body may hold): the walk stops at the limit, whatever
    the API's fields."""
    walks = [(openai_protocol._MESSAGE_NAMED, openai_protocol._MESSAGE_INNER, openai_protocol._MESSAGE_BELOW),
             (ollama_protocol._MESSAGE_FIELDS, ollama_protocol._CALLS, ollama_protocol._BELOW), BLOCKS]  # fmt: skip
    for fields, inner, below in walks:
        calls = [{"tool_calls": [{"function": {}}], "content": [{}]} for _ in range(199_000)]
        calls[-1]["tool_calls"][0]["function"]["Name"] = "past the limit"  # (not looked at)
        assert nested_named_as_fields(calls, fields, inner, below) is False


def test_a_chat_past_the_walks_limit_is_scan_truncated(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """An OpenAI chat of 22,000 tool calls of no text to speak of (44,000 texts, 22,001 messages: within the limits of
    texts and of messages and parts) holds 66,001 objects the walk would look at: `scan:truncated`, refused where a
    zone forbids it (before: read as whole, forwarded unlabelled), forwarded so labelled where it allows it."""
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=60)
    call = {"id": "", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages: Any = [{"role": "assistant", "content": None, "tool_calls": [call]} for _ in range(22_000)]
    messages.append({"role": "user", "content": "go"})
    request = openai_protocol.read_request("chat", orjson.dumps({"model": SERVED, "messages": messages}))
    assert len(request.texts) < MAX_STRINGS and request.unscanned
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model=SERVED, messages=messages, extra_headers={"x-purpose": "ads"})
    assert server.data_requests() == []
    reply = client.chat.completions.with_raw_response.create(
        model=SERVED, messages=messages, extra_headers={"x-purpose": "assistant"}
    )
    assert reply.http_response.headers["x-data-labels"] == "scan:truncated"
    assert len(server.data_requests()) == 1


def test_the_readme_states_the_limit() -> None:
    readme = re.sub(r"\s+", " ", (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8"))
    assert f"or more than {MAX_STRINGS:,} objects among its messages" in readme

"""Pins of a Messages web search result's ciphertext (`encrypted_content`) at the edges helper fields15's tests left
(review revfields15, 2026-12-07): what Anthropic would decrypt is any ciphertext not empty (a string of a space too; a
value no string, which the API refuses, fail-safe), the result where it stands (in a `tool_result`'s content too) and
the block's type spelt with a JSON escape (the body's search for `web_search_tool_result`, `_ESCAPE` beside it), and a
streamed call is refused before the stream as a whole one is; null, empty and absent are no ciphertext (a result
without one is read as before). Pins: all pass on h-fields15; on main the 5 marked cases and the streamed refusal fail
(6 of 9)."""

from __future__ import annotations

from typing import Any

import anthropic
import orjson
import pytest

from proxy.protocols.anthropic import read_request
from tests.servers.vllm_like import SERVED
from tests.test_anthropic_unread_content import CONFIG

PAGE = {"type": "web_search_result", "url": "https://example.com/team", "title": "Team"}


def _messages(result: dict[str, Any], in_tool_result: bool = False) -> list[Any]:
    found = {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": [result]}
    if in_tool_result:
        return [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [found]}]}]
    search = {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "the team"}}
    return [{"role": "user", "content": "who?"}, {"role": "assistant", "content": [search, found]},
            {"role": "user", "content": "and?"}]  # fmt: skip


def _body(messages: list[Any]) -> bytes:
    return orjson.dumps({"model": "m", "max_tokens": 8, "messages": messages})


MARKED = {
    "a space": _body(_messages({**PAGE, "encrypted_content": " "})),
    "an object": _body(_messages({**PAGE, "encrypted_content": {"data": "EqgfCioI"}})),
    "in a tool result": _body(_messages({**PAGE, "encrypted_content": "EqgfCioI"}, in_tool_result=True)),
    "its type escaped": _body(_messages({**PAGE, "encrypted_content": "EqgfCioI"})).replace(
        b'"web_search_tool_result"', b'"web\\u005fsearch_tool_result"'
    ),
    "a number": _body(_messages({**PAGE, "encrypted_content": 1})),
}
READ = {
    "null": _body(_messages({**PAGE, "encrypted_content": None})),
    "empty": _body(_messages({**PAGE, "encrypted_content": ""})),
    "absent": _body(_messages(PAGE)),
}


@pytest.mark.parametrize("body", MARKED.values(), ids=MARKED.keys())
def test_ciphertext_is_marked(body: bytes) -> None:
    assert b"web_search_tool_result" in body or b"\\u005f" in body
    assert read_request(body).unscanned is True


@pytest.mark.parametrize("body", READ.values(), ids=READ.keys())
def test_no_ciphertext_is_read(body: bytes) -> None:
    request = read_request(body)
    assert request.unscanned is False
    assert "https://example.com/team" in request.texts


def test_a_streamed_call_is_refused_before_its_stream(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    messages: Any = _messages({**PAGE, "encrypted_content": "EqgfCioI"})
    with (
        anthropic.Anthropic(base_url=proxy.url, api_key="unused", max_retries=0, timeout=10) as sdk,
        pytest.raises(anthropic.PermissionDeniedError) as refused,
        sdk.messages.stream(
            model=SERVED, max_tokens=8, messages=messages, extra_headers={"x-purpose": "ads"}
        ) as stream,
    ):
        stream.until_done()
    assert "scan:truncated" in refused.value.message
    assert server.data_requests() == []

"""Messages API content a call carries encrypted, and a compaction's tool changes (helper fields15, 2026-12-07).

- A web search's results sent back in the history (`web_search_tool_result`) whose page is encrypted (a
  `web_search_result`'s `encrypted_content`, not empty), which Anthropic decrypts into the model's context on the
  turns after, as an `encrypted_code_execution_result`'s output: `scan:truncated`, what the page says unseen (its `url`
  and `title` read, as before). Before, the ciphertext was framing and the call went on unlabelled whatever the page
  held. A result without ciphertext, and a search's error, are read as before.
- A `compaction` block's `tool_changes` (the `tool_addition`s, a tool's definition by value as a `tools` entry, which
  Anthropic applies to the call's tools for the turns after): read whole, as `tools` are, keys and numbers too. Before,
  read as content: a schema's property named by an address went on unlabelled.
- A result holding a page encrypted but no `type` (or one the proxy does not know): marked alike, looked at by its
  ciphertext (helper fields16; failing before, on d3277da3: 1 of 1, 200 where 403).
- Left as it was, and pinned here: a citation's `encrypted_index` (where in a result's page the `cited_text`, read,
  stands: no text hidden).
- An advisor's advice sent back encrypted (an `advisor_tool_result` holding an `advisor_redacted_result`'s
  `encrypted_content`, not empty), which Anthropic decrypts into the executor's prompt on the turns after: left unread
  and unmarked by fields15 (the ciphertext framing), pinned so, and `scan:truncated` since helper fields16 (another
  model's text, written over the transcript as it stood when asked, which the call may no longer carry). Failing
  before, on d3277da3: 1 of 1 (through the anthropic SDK, 200 where 403); advice in clear, and none encrypted, read as
  before.
- Advice looked at by its ciphertext as a page is, whatever its `type`, alone or in a list, and a search's content a
  result alone (review revfields16). Failing before, on h-fields16 (1634b14b): 7 of 30 (4 end to end, 200 where 403:
  advice without its type, of a type not known, in a list, a page alone; 3 reading: advice untyped holding a string, a
  space, a number); the spellings of no ciphertext (empty, null, 0, false, []) read before and after.

Failing before: 4 of 7 (3 end to end through the anthropic SDK's beta Messages route to the vLLM-like server, 200
where 403; 1 reading); the 3 controls pass before and after."""

from __future__ import annotations

from typing import Any

import anthropic
import orjson
import pytest

from proxy.protocols.anthropic import read_request
from tests.servers.vllm_like import SERVED
from tests.test_anthropic_unread_content import CONFIG

PAGE = {"type": "web_search_result", "url": "https://example.com/team", "title": "Team",
        "encrypted_content": "EqgfCioIARgBIiQ3YjEwNGU5Yy04", "page_age": "April 30, 2025"}  # fmt: skip
SCHEMA = {"type": "object", "properties": {"ana@example.org": {"type": "string"}}}
ADDED = [{"type": "tool_addition",
          "tool": {"type": "tool_definition", "definition": {"name": "mail", "input_schema": SCHEMA}}}]  # fmt: skip


def _searched(*results: Any) -> Any:
    search = {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "the team"}}
    found = {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": list(results)}
    return [{"role": "user", "content": "who is on the team?"},
            {"role": "assistant", "content": [search, found, {"type": "text", "text": "Three people."}]},
            {"role": "user", "content": "and their roles?"}]  # fmt: skip


def _searched_given(content: Any) -> Any:
    """A search's result block holding `content` as it is (the API's is a list of results, or an error alone)."""
    messages = _searched()
    messages[1]["content"][1]["content"] = content
    return messages


def _compacted(**block: Any) -> Any:
    return [{"role": "assistant", "content": [{"type": "compaction", "content": "We planned a trip.", **block}]},
            {"role": "user", "content": "Go on"}]  # fmt: skip


HIDDEN = {"type": "advisor_redacted_result", "encrypted_content": "EqgfCioIARgBIiQ3"}
IN_CLEAR = {"type": "advisor_result", "text": "Book the train first."}


def _advised(result: Any = HIDDEN) -> Any:
    advice = {"type": "advisor_tool_result", "tool_use_id": "srvtoolu_2", "content": result}
    return [{"role": "user", "content": "plan it"},
            {"role": "assistant", "content": [
                {"type": "server_tool_use", "id": "srvtoolu_2", "name": "advisor", "input": {}}, advice,
                {"type": "text", "text": "Planned.", "citations": [
                    {"type": "web_search_result_location", "url": "https://example.com", "title": "A",
                     "encrypted_index": "Eo8BCioIAhgB", "cited_text": "a plan"}]}]},
            {"role": "user", "content": "Go on"}]  # fmt: skip


def _call(client: anthropic.Anthropic, messages: Any, purpose: str) -> Any:
    return client.beta.messages.with_raw_response.create(
        model=SERVED, max_tokens=8, messages=messages, extra_headers={"x-purpose": purpose}
    )


UNREAD = {
    "a page encrypted": _searched(PAGE),
    "a page encrypted after one not": _searched({**PAGE, "encrypted_content": ""}, PAGE),
    "an advisor's advice encrypted": _advised(),
    "a page encrypted, its type left out": _searched({key: value for key, value in PAGE.items() if key != "type"}),
    # (review revfields16: advice looked at by its ciphertext as a page is, whatever its type or shape)
    "an advisor's advice encrypted, its type left out": _advised({"encrypted_content": HIDDEN["encrypted_content"]}),
    "an advisor's advice encrypted, of a type not known": _advised({**HIDDEN, "type": "advisor_redacted_result_v2"}),
    "an advisor's advice encrypted, in a list": _advised([HIDDEN]),
    "a page encrypted, alone (no list)": _searched_given(PAGE),
}
LABELLED = {"tool changes": _compacted(tool_changes=ADDED)}
_ERRED: Any = {"type": "web_search_tool_result_error", "error_code": "unavailable"}
READ = {
    "no page encrypted": _searched({**PAGE, "encrypted_content": ""}),
    "a search's error": [
        {
            **message,
            "content": [
                {**b, "content": _ERRED} if b["type"] == "web_search_tool_result" else b for b in message["content"]
            ],
        }
        if message["role"] == "assistant"
        else message
        for message in _searched()
    ],
    "an advisor's advice in clear, a citation's index": _advised(IN_CLEAR),
    "an advisor's advice with no ciphertext": _advised({**HIDDEN, "encrypted_content": ""}),
}


@pytest.fixture
def client(vllm, make_proxy):  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    with anthropic.Anthropic(base_url=proxy.url, api_key="unused", max_retries=0, timeout=10) as sdk:
        yield server, sdk


def _refused_for_ads_labelled(client: tuple[Any, anthropic.Anthropic], messages: Any, label: str) -> None:
    """`messages` refused for `ads` naming `label`, nothing forwarded; for `assistant` forwarded, labelled `label`."""
    server, sdk = client
    with pytest.raises(anthropic.PermissionDeniedError) as refused:  # (before: 200, unlabelled)
        _call(sdk, messages, "ads")
    assert label in refused.value.message
    assert server.data_requests() == []
    assert _call(sdk, messages, "assistant").headers["x-data-labels"] == label


@pytest.mark.parametrize("messages", UNREAD.values(), ids=UNREAD.keys())
def test_a_page_anthropic_decrypts_is_unread(client, messages) -> None:  # type: ignore[no-untyped-def]
    _refused_for_ads_labelled(client, messages, "scan:truncated")


@pytest.mark.parametrize("messages", LABELLED.values(), ids=LABELLED.keys())
def test_a_compactions_tool_changes_are_read_whole(client, messages) -> None:  # type: ignore[no-untyped-def]
    _refused_for_ads_labelled(client, messages, "pii:email")


@pytest.mark.parametrize("messages", READ.values(), ids=READ.keys())
def test_read_as_before(client, messages) -> None:  # type: ignore[no-untyped-def]
    server, sdk = client
    assert _call(sdk, messages, "ads").headers["x-data-labels"] == ""
    assert len(server.data_requests()) == 1


SPELT = {"a string": ("EqgfCioIARgBIiQ3", True), "a space": (" ", True), "a number": (7, True),
         "an empty string": ("", False), "null": (None, False), "zero": (0, False), "false": (False, False),
         "an empty list": ([], False)}  # fmt: skip


@pytest.mark.parametrize("result", ["advice", "page"])
@pytest.mark.parametrize("spelt", SPELT.values(), ids=SPELT.keys())
def test_ciphertext_is_what_is_not_empty(result: str, spelt: tuple[Any, bool]) -> None:
    """Any value JSON holds true is ciphertext, in advice as in a page; an empty one (or none) leaves it read (review
    revfields16: advice without its type went unmarked; these spellings held before)."""
    ciphertext, marked = spelt
    for typed in (True, False):
        given: dict[str, Any] = {"type": "advisor_redacted_result"} if result == "advice" else {**PAGE}
        given["encrypted_content"] = ciphertext
        if not typed:
            del given["type"]
        messages = _advised(given) if result == "advice" else _searched(given)
        request = read_request(orjson.dumps({"model": "m", "max_tokens": 8, "messages": messages}))
        assert request.unscanned is marked, (typed, request.texts)


def test_tool_changes_read_as_tools_are() -> None:
    request = read_request(orjson.dumps({"model": "m", "max_tokens": 8, "messages": _compacted(tool_changes=ADDED)}))
    assert {"input_schema", "properties", "ana@example.org", "mail", "We planned a trip."} <= set(request.texts)
    assert request.unscanned is False

"""A long coding agent's session is read whole, not `scan:truncated` by the limit of texts a request is read up to
(`MAX_STRINGS`). Every turn of a tool call counts several texts (the model's line, the call's id, name and arguments,
its result; an Anthropic call's input keys and values, its result's blocks read whole): at 10,000, a session of
~830 Anthropic tool calls (~270 KiB) or ~1,900 OpenAI ones was unread past there, so a zone that forbids
`scan:truncated` for a purpose refused it 403 mid-work, and an address in its last message was not read."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import openai
import orjson

from proxy.protocols import MAX_STRINGS
from proxy.protocols import anthropic as anthropic_protocol
from proxy.protocols import openai as openai_protocol
from tests.agent_session import anthropic_session, openai_session
from tests.configs import ONE_UPSTREAM
from tests.servers.vllm_like import SERVED

CONFIG = (
    ONE_UPSTREAM
    + """
zones:
  - name: unread
    labels: [scan:truncated]
    allow_purposes: [assistant]
detectors: [email, phone, credit_card, ip_address, iban]
"""
)
# 2,000 tool calls: ~750,000 characters of text, ~200,000 tokens (a long session's context, Claude Code's or Codex's)
CALLS = 2_000
LAST = "Send the summary to ana@example.org when the tests pass."


def _text_size(texts: tuple[str, ...]) -> int:
    return sum(map(len, texts))


def test_the_sessions_are_long() -> None:
    """The sessions built here are what the limit cut: past 10,000 texts, ~200,000 tokens of context."""
    chat = openai_protocol.read_request("chat", orjson.dumps(openai_session(CALLS, LAST)))
    messages = anthropic_protocol.read_request(orjson.dumps(anthropic_session(CALLS, LAST)))
    for request in (chat, messages):
        assert len(request.texts) > 10_000
        assert 700_000 < _text_size(request.texts) < 1_000_000  # (within limits.scan_max_chars, read whole)
        assert LAST in request.texts
        assert not request.unscanned


def test_a_long_openai_agent_session_is_read_whole(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=60)
    session = openai_session(CALLS, LAST)
    reply = client.chat.completions.with_raw_response.create(
        model=SERVED, messages=session["messages"], tools=session["tools"], extra_headers={"x-purpose": "ads"}
    )
    assert reply.http_response.status_code == 200
    assert reply.http_response.headers["x-data-labels"] == "pii:email"  # the last message's address: read, all of it
    assert len(server.data_requests()) == 1


def test_a_long_anthropic_agent_session_is_read_whole(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    session = anthropic_session(CALLS, LAST) | {"model": SERVED}
    headers = {"x-purpose": "ads", "anthropic-version": "2023-06-01", "x-api-key": "unused"}
    with httpx.Client(base_url=proxy.url, timeout=60) as client:  # (the anthropic SDK is not in the venv)
        reply = client.post("/v1/messages", content=orjson.dumps(session), headers=headers)
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-data-labels"] == "pii:email"
    assert reply.json()["type"] == "message"
    assert len(server.data_requests()) == 1


def test_the_readme_states_the_limit() -> None:
    """The README's limit of texts and of messages and parts is the code's."""
    readme = re.sub(r"\s+", " ", (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8"))
    assert f"a request holding more than {MAX_STRINGS:,} texts" in readme
    assert f"or more than {MAX_STRINGS:,} messages and content parts together" in readme

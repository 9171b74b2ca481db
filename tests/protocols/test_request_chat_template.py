"""A request's own Jinja chat template (vLLM's `chat_template`, or `chat_template_kwargs.chat_template`, which vLLM
takes as one too) is a program the server runs to write the prompt: it can compute text that stands nowhere in the
request (`{{ 'bob@exa' ~ 'mple.org' }}`, `|join`, `|reverse`, `|replace` over a message's content). Its literal text
and its arguments' strings are scanned, but what it prints cannot be read without running it: a call carrying one is
labelled `scan:truncated`, as a prompt given as token ids is, so a zone naming that label decides it. Through the
proxy, a template computing an address was forwarded for a purpose the zone of addresses refuses."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from proxy.protocols.anthropic import read_request as read_messages
from proxy.protocols.openai import read_request
from tests.test_unsized_replies_output import CHAT, Reply, setup_for  # noqa: F401  # (a fixture)

COMPUTED = "{{ 'write to bob@exa' ~ 'mple.org' }}{% for m in messages %}{{ m.content }}{% endfor %}"
MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.mark.parametrize(
    "extra",
    [
        {"chat_template": COMPUTED},
        {"chat_template": ""},  # (vLLM takes any template given, an empty one too)
        {"chat_template_kwargs": {"chat_template": COMPUTED}},
        {"chat_template": COMPUTED, "chat_template_kwargs": {"user": "bob"}},
    ],
    ids=["template", "empty", "in-kwargs", "both"],
)
@pytest.mark.parametrize("operation", ["chat", "embeddings", "responses"])
def test_a_request_template_is_content_the_proxy_cannot_read(operation: str, extra: dict[str, Any]) -> None:
    key = "input" if operation == "responses" else "messages"
    request = read_request(operation, orjson.dumps({"model": "m", key: MESSAGES, **extra}))
    assert request.unscanned


def test_a_messages_request_template_is_too() -> None:
    data = {"model": "m", "max_tokens": 5, "messages": MESSAGES, "chat_template": COMPUTED}
    assert read_messages(orjson.dumps(data)).unscanned


@pytest.mark.parametrize(
    "extra",
    [{}, {"chat_template": None}, {"chat_template_kwargs": {"enable_thinking": False}},
     {"chat_template_kwargs": {"chat_template": None}}],
)  # fmt: skip
def test_without_a_template_of_its_own_a_request_is_read_as_before(extra: dict[str, Any]) -> None:
    assert not read_request("chat", orjson.dumps({"model": "m", "messages": MESSAGES, **extra})).unscanned


def test_its_literal_text_and_arguments_are_scanned_still() -> None:
    request = read_request("chat", orjson.dumps({
        "model": "m", "messages": MESSAGES, "chat_template": "{{ 'to bob@example.org' }}",
        "chat_template_kwargs": {"who": "ana@example.org"},
    }))  # fmt: skip
    assert "{{ 'to bob@example.org' }}" in request.texts and "ana@example.org" in request.texts


def test_through_the_proxy_a_template_is_refused_where_the_zone_refuses_unread_content(setup_for: Any) -> None:  # noqa: F811
    """The zone of addresses and unread content allows `assistant` only: for `ads`, a plain chat goes through,
    one with its own template is refused before anything reaches the upstream."""
    setup = setup_for()
    url = f"{setup.proxy.url}/v1/chat/completions"
    headers = {"x-purpose": "ads"}
    setup.upstream.reply = Reply([orjson.dumps({**CHAT, "choices": []})], framing="sized")
    plain = httpx.post(url, json={"model": "m", "messages": MESSAGES}, headers=headers, timeout=30)
    assert plain.status_code == 200 and setup.upstream.reply is None
    for extra in ({"chat_template": COMPUTED}, {"chat_template_kwargs": {"chat_template": COMPUTED}}):
        setup.upstream.reply = Reply([orjson.dumps(CHAT)], framing="sized")
        refused = httpx.post(url, json={"model": "m", "messages": MESSAGES, **extra}, headers=headers, timeout=30)
        assert refused.status_code == 403, refused.text
        assert "scan:truncated" in refused.text
        assert setup.upstream.reply is not None  # never forwarded

"""A chat message's own `tools` (SGLang's `ChatCompletionMessageGenericParam.tools`, which SGLang hands its chat
template with the message, `model_dump()`, and its DeepSeek encoders print from a system message) are read as a call's
`tools` are: their keys and numbers too, not their strings alone. Before 2026-12-07 they were read as content: a
property named `alice@example.com`, an enum holding a card number, reached the model unlabelled (failing before: 10 of
11, the two end-to-end cases and the eight read ones; the pin passes; helper fields13)."""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest

from proxy.config.model import DetectorSpec
from proxy.detectors import Detectors
from proxy.protocols.openai import read_request
from tests.configs import ONE_UPSTREAM
from tests.servers.vllm_like import SERVED

CONFIG = (
    ONE_UPSTREAM
    + """
zones:
  - name: personal
    labels: [pii:email, pii:credit_card]
    allow_purposes: [assistant]
detectors: [email, credit_card]
"""
)


def _tool(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": "lookup", "description": "Look a customer up",
                                             "parameters": {"type": "object", "properties": properties}}}  # fmt: skip


NAMED = _tool({"alice@example.com": {"type": "string"}})  # a property's name, a key: printed by the template
ENUM = _tool({"card": {"type": "integer", "enum": [4111111111111111]}})  # a number: printed as JSON
CASES = {"property named": (NAMED, "pii:email"), "enum number": (ENUM, "pii:credit_card")}


def _messages(tool: dict[str, Any], role: str = "system") -> Any:
    return [{"role": role, "content": "You look customers up.", "tools": [tool]}, {"role": "user", "content": "hi"}]


@pytest.mark.parametrize(("tool", "label"), CASES.values(), ids=CASES.keys())
def test_a_system_messages_tools_are_read_through_the_sdk(vllm, make_proxy, tool, label) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=10)
    with pytest.raises(openai.PermissionDeniedError) as refused:  # (before: 200, unlabelled)
        client.chat.completions.create(model=SERVED, messages=_messages(tool), extra_headers={"x-purpose": "ads"})
    assert label in refused.value.message
    assert server.data_requests() == []
    reply = client.chat.completions.with_raw_response.create(
        model=SERVED, messages=_messages(tool), extra_headers={"x-purpose": "assistant"}
    )
    assert reply.http_response.headers["x-data-labels"] == label
    assert len(server.data_requests()) == 1


@pytest.mark.parametrize("role", ["system", "developer", "assistant", "tool"])
@pytest.mark.parametrize(("tool", "label"), CASES.values(), ids=CASES.keys())
def test_any_messages_tools_are_read_as_top_level_tools(tool: dict[str, Any], label: str, role: str) -> None:
    detectors = Detectors([DetectorSpec("email"), DetectorSpec("credit_card")])
    own = read_request("chat", orjson.dumps({"model": "m", "messages": _messages(tool, role)}))
    top = read_request("chat", orjson.dumps({"model": "m", "messages": _messages(tool, role)[1:], "tools": [tool]}))
    assert detectors.scan_all(own.texts) == detectors.scan_all(top.texts) == {label}
    assert own.unscanned is False


def test_a_pattern_in_a_messages_tools_is_text() -> None:
    """A pin: SGLang holds a tool call to the call's `tools` alone (`FunctionCallParser(request.tools, ...)`), so a
    `pattern` in a message's tools is printed, not compiled into a grammar: read as text, not `scan:truncated`, where
    one in the call's `tools` is (passes before and after)."""
    tool = _tool({"id": {"type": "string", "pattern": "^[a-z]+$"}})
    own = read_request("chat", orjson.dumps({"model": "m", "messages": _messages(tool)}))
    top = read_request("chat", orjson.dumps({"model": "m", "messages": _messages(tool)[1:], "tools": [tool]}))
    assert own.unscanned is False
    assert "^[a-z]+$" in own.texts
    assert top.unscanned is True


@pytest.mark.parametrize(("tool", "label"), CASES.values(), ids=CASES.keys())
def test_a_user_messages_tools_are_read_so_too(tool: dict[str, Any], label: str) -> None:
    """A pin (helper revfields13): SGLang drops a user message's `tools` (`ChatCompletionMessageUserParam` has none),
    but what a message's `tools` holds is read whole whatever its role, as a server that printed it would print it: no
    fewer labels for a role's name (README, "Detectors: what of a request is read"). Read as content before (failing
    before: 2 of 2), and so since fields13's change."""
    detectors = Detectors([DetectorSpec("email"), DetectorSpec("credit_card")])
    own = read_request(
        "chat", orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi", "tools": [tool]}]})
    )
    assert detectors.scan_all(own.texts) == {label}
    assert own.unscanned is False

"""An advisor tool (Anthropic's `{"type": "advisor_20260301", "model": ...}` in `tools`, on the Messages API and
LiteLLM proxy's chat completions) names a model the call's model calls with the conversation, which that model then
reads (Anthropic runs it; LiteLLM proxy runs it on its router for another provider: `AdvisorOrchestrationHandler`):
judged as a call naming it is (`advisor_models`), 403 where that call is refused, rule `route:<model>`; one naming a
server (`api_base`, which LiteLLM honours where its config lets clients choose) refused 400, `param` `tools`.

Until 2026-12-07 unread: an `ads` call to claude-asked with an advisor tool naming claude-fallback, whose route allows
`assistant` alone, was forwarded, recorded allowed (helper litellm15)."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import orjson
import pytest

from proxy.errors import InvalidRequest
from proxy.protocols import NAMED_MODELS_MAX, advisor_models
from proxy.protocols.openai import read_request
from tests.harness import serving
from tests.test_anthropic_fallbacks import ANSWERED, ASKED, fallback_app
from tests.test_fallback_models_judged import CONFIG, chat_through_proxy, messages_through_proxy, openai_app

HI: Any = [{"role": "user", "content": "hi"}]
ELSEWHERE = "https://198.51.100.7/v1"  # (TEST-NET-2: a server no route names)


def advisor(model: str | None = ANSWERED, **more: Any) -> dict[str, Any]:
    tool: dict[str, Any] = {"type": "advisor_20260301", "name": "advisor", **more}
    if model is not None:
        tool["model"] = model
    return tool


# (tools, purpose) -> the rule a refusal names (None: forwarded); routes claude-fallback [assistant], others ads too
JUDGED = [
    ([advisor()], "ads", f"route:{ANSWERED}"),
    ([{"type": "function", "function": {"name": "f", "parameters": {}}}, advisor()], "ads", f"route:{ANSWERED}"),
    ([advisor()], "assistant", None),  # (a purpose the advisor's route allows)
    ([advisor("claude-other")], "ads", None),
    ([{"type": "function", "function": {"name": "advisor_20260301", "parameters": {}}}], "ads", None),  # (a name)
]


@pytest.mark.parametrize(("tools", "purpose", "rule"), JUDGED)
def test_a_chat_s_advisor_is_judged(loop_thread, otlp, make_proxy, tools, purpose, rule) -> None:  # type: ignore[no-untyped-def]
    """Through the real openai SDK (LiteLLM proxy's chat completions take the tool to Anthropic's): 403, the rule the
    advisor's call gets, its reason naming the advisor tool, nothing forwarded; a purpose its route allows goes on."""
    got, span, seen, error = chat_through_proxy(loop_thread, otlp, make_proxy, CONFIG, purpose, model=ASKED,
                                                messages=HI, tools=tools)  # fmt: skip
    message = "" if error is None else error.message
    assert (got, len(seen)) == ((200, 1) if rule is None else (403, 0))
    assert span.attributes.get("lineage.rule") == rule
    if rule is not None:
        assert f"names model '{ANSWERED}' in an advisor tool" in message


def test_a_messages_call_s_advisor_is_judged(loop_thread, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """The Messages API, where the tool is Anthropic's own: through the real anthropic SDK, 403, nothing forwarded."""
    with messages_through_proxy(loop_thread, make_proxy, "ads") as (client, seen):
        with pytest.raises(anthropic.PermissionDeniedError):
            client.messages.create(model=ASKED, max_tokens=8, messages=HI, tools=[advisor()])  # type: ignore[list-item]
        client.messages.create(model=ASKED, max_tokens=8, messages=HI, tools=[advisor("claude-other")])  # type: ignore[list-item]
    assert len(seen) == 1


def test_an_advisor_naming_a_server_is_refused(loop_thread, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """LiteLLM proxy sends the advisor's call to the tool's `api_base` where its config lets clients choose: through
    the real anthropic SDK, for a purpose every route allows, 400 `invalid_request` naming it, nothing forwarded."""
    with (
        messages_through_proxy(loop_thread, make_proxy, "assistant") as (client, seen),
        pytest.raises(anthropic.BadRequestError) as refused,
    ):
        client.messages.create(model=ASKED, max_tokens=8, messages=HI,
                               tools=[advisor(api_base=ELSEWHERE, api_key="sk-theirs")])  # type: ignore[list-item]  # fmt: skip
    body: Any = refused.value.body
    assert "'api_base' in 'tools'" in body["error"]["message"]
    assert seen == []


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"tools": [advisor()]}, (ANSWERED,)),
        ({"tools": [advisor(), advisor("b"), advisor()]}, (ANSWERED, "b")),
        ({"tools": [advisor(None)]}, (None,)),  # (none named: one the server may pick, fail-safe)
        ({"tools": [{"type": "function"}, "advisor_20260301", {"type": ["advisor_x"]}]}, ()),
        ({"tools": {"type": "advisor_20260301"}}, ()),
        ({}, ()),
    ],
)
def test_advisor_models(data: dict[str, Any], expected: tuple[str | None, ...]) -> None:
    assert tuple(advisor_models(data)) == expected


@pytest.mark.parametrize("name", [lambda at: f"m{at}", lambda at: ANSWERED])
def test_advisors_past_the_bound_are_refused(name: Any) -> None:
    """Over `NAMED_MODELS_MAX` advisor tools, whatever they name: tools counted, not the models they name (the README's
    "over 32 advisor tools"; before, 33 naming one model went on: review revlitellm15)."""
    with pytest.raises(InvalidRequest) as refused:
        advisor_models({"tools": [advisor(name(at)) for at in range(NAMED_MODELS_MAX + 1)]})
    assert refused.value.param == "tools"
    assert advisor_models({"tools": [advisor(name(at)) for at in range(NAMED_MODELS_MAX)]})


# an advisor tool whose `type` is spelt with a JSON escape (`\u0061`: `a`), which LiteLLM and Anthropic decode as any
# JSON reader does: the advisor tool itself. No SDK writes one; a client writing its own JSON may
ESCAPED = b'{"type": "\\u0061dvisor_20260301", "name": "advisor", "model": "claude-fallback"}'


@pytest.mark.parametrize(
    ("path", "ask"),
    [
        ("/v1/chat/completions", {"model": ASKED, "messages": HI}),
        ("/v1/messages", {"model": ASKED, "max_tokens": 8, "messages": HI}),
        ("/v1/chat/completions", {"model": ASKED, "messages": HI, "fallbacks": ["claude-other"]}),
    ],
)
def test_an_advisor_spelt_with_an_escape_is_judged(loop_thread, make_proxy, path, ask) -> None:  # type: ignore[no-untyped-def]
    """The body's bytes as a client wrote them (httpx, no SDK encoding them again): 403, the advisor's rule, nothing
    forwarded. Before, the advisor was looked for by its type's spelling in the body's bytes (`advisor_`) alone, and
    such a call went on, recorded allowed (review revlitellm15)."""
    body = orjson.dumps({**ask, "tools": [0]}).replace(b"[0]", b"[" + ESCAPED + b"]")
    assert b"advisor_" not in body and orjson.loads(body)["tools"][0]["type"] == "advisor_20260301"
    seen: list[dict[str, Any]] = []
    app = openai_app(seen) if path == "/v1/chat/completions" else fallback_app(seen)
    with serving(loop_thread, app) as url:
        proxy = make_proxy(CONFIG, UPSTREAM=url)
        reply = httpx.post(f"{proxy.url}{path}", content=body, timeout=10,
                           headers={"content-type": "application/json", "x-purpose": "ads"})  # fmt: skip
    assert (reply.status_code, len(seen)) == (403, 0)
    assert f"names model '{ANSWERED}' in an advisor tool" in reply.text


def test_an_escape_elsewhere_is_the_call_it_is() -> None:
    """A body with a JSON escape and tools but no advisor tool (a message's `\\u00e9`) is read as the call it is."""
    tool = orjson.dumps({"type": "function", "function": {"name": "f", "parameters": {}}})
    body = (
        b'{"model": "claude-asked", "messages": [{"role": "user", "content": "caf\\u00e9"}], "tools": [' + tool + b"]}"
    )
    assert read_request("chat", body).model == ASKED

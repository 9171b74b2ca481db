"""An advisor tool given the model a call reaches other than in the body's own `tools` is judged as a top-level one is
(`advisor_models`): in an object LiteLLM proxy lays into the call as the body's own keys (`extra_body`, or its JSON
text, `litellm_params_template`: its keys reach the upstream's body as its own), and in a fallback object's own `tools`
(LiteLLM's router lays a fallback object over the call's keys, `run_async_fallback`: `kwargs.update(mg)`, so the
fallback's model calls that advisor). What "inside `extra_body`" means is what the openai SDK puts on the wire: its
`extra_body={"tools": [...]}` is merged into the body's top (read already); `extra_body={"extra_body": {...}}` sends a
key `extra_body` of its own, the nesting read here.

Until 2026-12-07 the nested ones went unread: an `ads` chat to claude-asked whose `extra_body` or fallback object held
an advisor tool naming claude-fallback (route: assistant alone) was forwarded, recorded allowed (helper models16)."""

from __future__ import annotations

import anthropic
import orjson
import pytest

from tests.test_advisor_models_judged import ELSEWHERE, HI, advisor
from tests.test_anthropic_fallbacks import ANSWERED, ASKED
from tests.test_fallback_models_judged import CONFIG, chat_through_proxy, messages_through_proxy

OTHER = "claude-other"  # (the "*" route's: ads allowed)

# the openai SDK's `extra_body` (what it puts on the wire) -> (status, rule, the refusal's words); 200: forwarded
CASES = [
    ({"extra_body": {"tools": [advisor()]}}, 403, f"route:{ANSWERED}", f"names model '{ANSWERED}' in an advisor tool"),
    ({"extra_body": orjson.dumps({"tools": [advisor()]}).decode()}, 403, f"route:{ANSWERED}", "an advisor tool"),
    ({"litellm_params_template": {"tools": [advisor()]}}, 403, f"route:{ANSWERED}", "an advisor tool"),
    ({"fallbacks": [{"model": OTHER, "tools": [advisor()]}]}, 403, f"route:{ANSWERED}", "an advisor tool"),
    ({"content_policy_fallbacks": [{"model": OTHER, "tools": [advisor()]}]}, 403, f"route:{ANSWERED}", "advisor"),
    # a server named by the nested advisor: refused as a top-level one's is, `param` the body's key holding it
    ({"extra_body": {"tools": [advisor(api_base=ELSEWHERE)]}}, 400, None, "'api_base' in 'extra_body'"),
    ({"fallbacks": [{"model": OTHER, "tools": [advisor(api_base=ELSEWHERE)]}]}, 400, None, "'api_base' in 'fallbacks'"),
    # wherever `named_models` reads a fallback object (review revmodels16: until then unread there, forwarded): in a
    # `{"<model>": [...]}` map's lists, in a fallback object's own fallbacks, in `router_settings_override`'s, and in a
    # fallback object's `extra_body` (laid over the call's, then into the upstream's body)
    ({"fallbacks": [{ASKED: [{"model": OTHER, "tools": [advisor()]}]}]}, 403, f"route:{ANSWERED}", "an advisor tool"),
    ({"fallbacks": [{"model": OTHER, "fallbacks": [{"model": OTHER, "tools": [advisor()]}]}]}, 403,
     f"route:{ANSWERED}", "an advisor tool"),
    ({"router_settings_override": {"fallbacks": [{"model": OTHER, "tools": [advisor()]}]}}, 403, f"route:{ANSWERED}",
     "an advisor tool"),
    ({"fallbacks": [{"model": OTHER, "extra_body": {"tools": [advisor()]}}]}, 403, f"route:{ANSWERED}",
     "an advisor tool"),
    ({"router_settings_override": {"fallbacks": [{"model": OTHER, "tools": [advisor(api_base=ELSEWHERE)]}]}}, 400, None,
     "'api_base' in 'router_settings_override'"),
    # forwarded on both: the SDK's own extra_body merged into the top is a top-level tool (judged already, allowed
    # here); advisors naming a model every route allows ads for; a fallback object's function tool
    ({"tools": [advisor(OTHER)]}, 200, None, ""),
    ({"extra_body": {"tools": [advisor(OTHER)]}}, 200, None, ""),
    ({"fallbacks": [{"model": OTHER, "tools": [advisor(OTHER)]}]}, 200, None, ""),
    ({"fallbacks": [{ASKED: [{"model": OTHER, "tools": [advisor(OTHER)]}]}]}, 200, None, ""),
    ({"fallbacks": [{"model": OTHER, "tools": [{"type": "function", "function": {"name": "advisor_x"}}]}]}, 200, None,
     ""),
]  # fmt: skip


@pytest.mark.parametrize(("extra", "status", "rule", "words"), CASES)
def test_a_nested_advisor_is_judged(loop_thread, otlp, make_proxy, extra, status, rule, words) -> None:  # type: ignore[no-untyped-def]
    """Through the real openai SDK for `ads`: 403 with the advisor's route's rule, nothing forwarded, the reason naming
    the advisor tool; a server named 400; the controls forwarded as sent (the nesting on the wire as the SDK put it)."""
    got, span, seen, error = chat_through_proxy(loop_thread, otlp, make_proxy, CONFIG, "ads", model=ASKED, messages=HI,
                                                extra_body=extra)  # fmt: skip
    assert (got, len(seen)) == (status, 1 if status == 200 else 0)
    assert span.attributes.get("lineage.rule") == rule
    if status == 200:
        assert {key: seen[0][key] for key in extra} == extra
    else:
        assert error is not None and words in error.message


def test_a_messages_call_s_nested_advisor_is_judged(loop_thread, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """The Messages API (LiteLLM proxy's `/v1/messages` spreads `extra_body` as its chat does): through the real
    anthropic SDK, an advisor in the body's `extra_body` object 403, one naming a model ads may reach forwarded."""
    with messages_through_proxy(loop_thread, make_proxy, "ads") as (client, seen):
        with pytest.raises(anthropic.PermissionDeniedError) as refused:
            client.messages.create(model=ASKED, max_tokens=8, messages=HI,
                                   extra_body={"extra_body": {"tools": [advisor()]}})  # fmt: skip
        assert f"names model '{ANSWERED}' in an advisor tool" in str(refused.value.body)
        client.messages.create(model=ASKED, max_tokens=8, messages=HI,
                               extra_body={"extra_body": {"tools": [advisor(OTHER)]}})  # fmt: skip
    assert len(seen) == 1

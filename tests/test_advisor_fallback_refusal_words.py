"""A refusal of an advisor tool's model says which model calls it, and, where the tool is not in the body's own `tools`,
the body's key holding it, as the refusal of a server an object names does ("'api_base' in 'fallbacks'"): one in a
fallback object (LiteLLM's router lays the object over the call's keys, so the fallback's model calls it) is called by
that object's `model`, should the call's own decline or fail; one in `extra_body`'s object by the call's own model.

Until 2026-12-07 every advisor's refusal read "which model 'claude-asked' calls with the conversation", the call's own
model, though the one calling a fallback object's advisor is the fallback's (helper models17)."""

from __future__ import annotations

import anthropic
import pytest

from tests.test_advisor_models_judged import HI, advisor
from tests.test_anthropic_fallbacks import ANSWERED, ASKED
from tests.test_fallback_models_judged import CONFIG, chat_through_proxy, messages_through_proxy

OTHER = "claude-other"  # (the "*" route's: ads allowed)
TOP = f"names model '{ANSWERED}' in an advisor tool, which model '{ASKED}' calls with the conversation"
BY_OTHER = (f"names model '{ANSWERED}' in an advisor tool of a fallback object in '{{key}}', which model '{OTHER}' "
            f"calls with the conversation should model '{ASKED}' decline or fail")  # fmt: skip
BY_ITS_OWN = (f"names model '{ANSWERED}' in an advisor tool of a fallback object in 'fallbacks', which its model calls "
              f"with the conversation should model '{ASKED}' decline or fail")  # fmt: skip

# the openai SDK's `extra_body` -> the refusal's words
CASES = [
    ({"tools": [advisor()]}, TOP),
    ({"extra_body": {"tools": [advisor()]}},
     f"names model '{ANSWERED}' in an advisor tool in 'extra_body', which model '{ASKED}' calls with the conversation"),
    ({"fallbacks": [{"model": OTHER, "tools": [advisor()]}]}, BY_OTHER.format(key="fallbacks")),
    ({"content_policy_fallbacks": [{"model": OTHER, "tools": [advisor()]}]},
     BY_OTHER.format(key="content_policy_fallbacks")),
    ({"fallbacks": [{ASKED: [{"model": OTHER, "tools": [advisor()]}]}]}, BY_OTHER.format(key="fallbacks")),
    ({"fallbacks": [{"model": OTHER, "extra_body": {"tools": [advisor()]}}]}, BY_OTHER.format(key="fallbacks")),
    ({"router_settings_override": {"fallbacks": [{"model": OTHER, "tools": [advisor()]}]}},
     BY_OTHER.format(key="router_settings_override")),
    # a map's fallback object naming no model (its advisor's model named beside the server's pick: review revmodels17)
    ({"fallbacks": [{ASKED: [{"tools": [advisor()]}]}]}, BY_ITS_OWN),
]  # fmt: skip


@pytest.mark.parametrize(("extra", "words"), CASES)
def test_an_advisor_s_refusal_names_its_caller(loop_thread, otlp, make_proxy, extra, words) -> None:  # type: ignore[no-untyped-def]
    """Through the real openai SDK for `ads`: 403, rule the advisor's route's, nothing forwarded, the reason naming the
    model that calls the advisor and the key holding it."""
    got, span, seen, error = chat_through_proxy(loop_thread, otlp, make_proxy, CONFIG, "ads", model=ASKED, messages=HI,
                                                extra_body=extra)  # fmt: skip
    assert (got, len(seen), span.attributes.get("lineage.rule")) == (403, 0, f"route:{ANSWERED}")
    assert error is not None and words in error.message, error.message


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"fallbacks": [{"model": OTHER, "tools": [advisor()]}]}, BY_OTHER.format(key="fallbacks")),
        ({"fallbacks": [{ASKED: [{"tools": [advisor()]}]}]}, BY_ITS_OWN),
    ],
)  # fmt: skip
def test_a_messages_call_s_advisor_refusal_names_its_caller(loop_thread, make_proxy, extra, words) -> None:  # type: ignore[no-untyped-def]
    """The Messages API (`anthropic.read_request`'s three `OthersNamed` raises hand the same mapping on), through the
    real anthropic SDK for `ads`: 403, nothing forwarded, the same words; one in a map's fallback object naming no model
    said to be called by "its model" (review revmodels17: pinned, untested before)."""
    with (
        messages_through_proxy(loop_thread, make_proxy, "ads") as (client, seen),
        pytest.raises(anthropic.PermissionDeniedError) as refused,
    ):
        client.messages.create(model=ASKED, max_tokens=8, messages=HI, extra_body=extra)  # type: ignore[arg-type]
    assert seen == [] and words in refused.value.message, refused.value.message

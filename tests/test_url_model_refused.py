"""A model name naming a server by URL (`huggingface/http://...`, as LiteLLM reads one: a comma-separated part, or
that part past its provider's `/`, beginning `http://` or `https://`), which LiteLLM's providers send the call to
(its proxy's newest versions refuse it unless its config allows that host; earlier ones forwarded it where a
wildcard deployment served any name), is no model the `"*"` route describes: 404 `model_not_found`, rule `routes`,
nothing forwarded (`policy.names_url`). A route of its own, naming it exactly, serves it.

Until 2026-12-07 it was the `"*"` route's call, forwarded and recorded as that upstream's (helper litellm15)."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.policy import names_url
from tests.test_anthropic_fallbacks import ASKED
from tests.test_fallback_models_judged import CONFIG, chat_through_proxy

HI: Any = [{"role": "user", "content": "hi"}]
OWN = "hf/http://198.51.100.9/v1"  # (a route of its own)
ROUTED = CONFIG.replace('  - model: "*"\n', f'  - model: "{OWN}"\n    upstream: vendor\n  - model: "*"\n')

# (model, extra body) -> the rule a refusal names (None: forwarded)
CASES = [
    ("huggingface/http://198.51.100.7:8000", {}, "routes"),
    ("https://198.51.100.7/generate", {}, "routes"),
    ("HuggingFace/HTTPS://198.51.100.7", {}, "routes"),  # (LiteLLM lowers it first)
    ("oobabooga/http://198.51.100.7:5000", {}, "routes"),
    # a Hugging Face task's prefix, which LiteLLM's Hugging Face provider takes off before it reads the URL (its
    # `get_hf_task_for_model`, then `"https" in model`: before, forwarded by the '*' route: review revlitellm15)
    ("huggingface/text-generation-inference/https://198.51.100.7", {}, "routes"),
    ("huggingface/conversational/https://198.51.100.7", {}, "routes"),
    # a fallback or a batch naming one: judged as a call naming it is
    (ASKED, {"fallbacks": ["huggingface/http://198.51.100.7"]}, "routes"),
    (f"{ASKED}, huggingface/http://198.51.100.7", {}, "routes"),
    # forwarded: a provider's prefix (the gateway's deployments decide), `://` not at a name's start, a route's own
    ("openai/gpt-x", {}, None),
    ("my-model://v2", {}, None),
    (OWN, {}, None),
]


@pytest.mark.parametrize(("model", "extra", "rule"), CASES)
def test_a_model_naming_a_server_is_refused(loop_thread, otlp, make_proxy, model, extra, rule) -> None:  # type: ignore[no-untyped-def]
    """Through the real openai SDK, for a purpose every route allows: 404 `model_not_found`, rule `routes`, nothing
    forwarded; a name naming no server goes on by the `"*"` route."""
    status, span, seen, error = chat_through_proxy(loop_thread, otlp, make_proxy, ROUTED, "assistant", model=model,
                                                   messages=HI, extra_body=extra)  # fmt: skip
    body: Any = None if error is None else error.body
    got = (200, None) if error is None else (status, body["code"])
    assert (got, len(seen)) == (((200, None), 1) if rule is None else ((404, "model_not_found"), 0))
    assert span.attributes.get("lineage.rule") == rule


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("huggingface/http://h", True),
        ("http://h", True),
        ("a, https://h", True),
        ("a,b/HTTPS://h", True),
        ("a/b/http://h", True),  # (a Hugging Face task's `huggingface/<task>/https://...`: review revlitellm15)
        ("huggingface/ https://h", True),
        ("huggingface/text-generation-inference/HTTPS://h", True),
        ("openai/gpt-4o", False),
        ("x://y", False),
        ("", False),
    ],
)
def test_names_url(model: str, expected: bool) -> None:
    assert names_url(model) is expected

"""A chat whose `model` names several models separated by commas (`"claude-asked,claude-fallback"`) is judged as a call
naming each would be: LiteLLM proxy runs such a chat completion as a batch, the call made to each model
(`route_request`: `model.split(",")`, each `.strip()`ped, `abatch_completion`, or `abatch_completion_fastest_response`
with `fastest_response`; its `acompletion` route alone). Where a call naming one would be refused, the call is, with
that refusal's code and rule (`route:<model>`), its reason naming the model and the batch; nothing reaches the
upstream. The call is otherwise routed as today: the whole string is its model (the `"*"` route's).

Until 2026-12-07 the whole string was judged as one name: with routes `claude-fallback` (assistant) and `"*"` (ads
allowed), an `ads` chat to `"claude-asked,claude-fallback"` was forwarded, recorded allowed, and LiteLLM ran it on
claude-fallback too (review of fallback13's fix; helper commas13)."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import openai
import orjson
import pytest
from aiohttp import web

from proxy.errors import InvalidRequest
from proxy.protocols import NAMED_MODELS_MAX, OthersNamed, batch_models
from proxy.protocols.openai import read_request
from tests.harness import serving
from tests.test_anthropic_fallbacks import ANSWERED, ASKED
from tests.test_fallback_models_judged import ALIAS, AUDIT, CONFIG, NAMED_ONLY, chat_through_proxy, openai_app

BATCH = f"{ASKED},{ANSWERED}"
HI = [{"role": "user", "content": "hi"}]


def _app(seen: list[dict[str, Any]]) -> web.Application:
    """A LiteLLM proxy (LiteLLM batches chats alone): the fallback tests' gateway, its models `owned_by: openai`."""
    return openai_app(seen, owned_by="openai")


def _client(url: str, purpose: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=10,
                         default_headers={"x-purpose": purpose})  # fmt: skip


# (model, extra body, purpose, config) -> (status, rule): 200 forwarded, else the refusal's code's status
CASES = [
    (BATCH, {}, "ads", CONFIG, 403, f"route:{ANSWERED}"),
    (f"{ASKED}, {ANSWERED}", {}, "ads", CONFIG, 403, f"route:{ANSWERED}"),  # (each part stripped, as LiteLLM does)
    (f" {ANSWERED} ,claude-other", {}, "ads", CONFIG, 403, f"route:{ANSWERED}"),
    (f"{ASKED},\u00a0{ANSWERED}\t", {}, "ads", CONFIG, 403, f"route:{ANSWERED}"),  # (str.strip: Unicode spaces)
    (BATCH, {"fastest_response": True}, "ads", CONFIG, 403, f"route:{ANSWERED}"),
    (f"{ASKED},{ALIAS}", {}, "ads", CONFIG, 403, f"route:{ANSWERED}"),  # (the weights a name runs on: `_held`)
    (BATCH, {"fallbacks": ["claude-other"]}, "ads", CONFIG, 403, f"route:{ANSWERED}"),  # (read with fallbacks too)
    (BATCH, {"stream": False}, "ads", AUDIT, 200, f"route:{ANSWERED}"),  # (audit: forwarded as audit-deny)
    # forwarded: every model named may be used for the purpose; the whole string routed as today
    (BATCH, {}, "assistant", CONFIG, 200, None),
    (f"{ASKED},claude-other", {}, "ads", CONFIG, 200, None),
    (f"{ASKED},", {}, "ads", CONFIG, 200, None),  # (an empty part: the name "", the "*" route's)
    (BATCH, {}, "assistant", NAMED_ONLY, 404, "routes"),  # (no "*" route: the whole string is no route's, as before)
]


@pytest.mark.parametrize(("model", "extra", "purpose", "config", "status", "rule"), CASES)
def test_a_batch_chat_is_judged_for_each_model(loop_thread, otlp, make_proxy, model, extra, purpose, config, status,
                                               rule) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    """Through the real openai SDK: a chat whose `model` names a model a call naming directly would be refused for is
    refused so (403 `purpose_denied`, rule `route:claude-fallback`), the upstream never reached, the reason naming the
    model and the batch; in audit mode it goes on as audit-deny; one whose models all may be used goes on, its
    `model` forwarded whole."""
    got, span, seen, _ = chat_through_proxy(loop_thread, otlp, make_proxy, config, purpose, owned_by="openai",
                                            model=model, messages=HI, extra_body=extra)  # (`_app`'s gateway)  # fmt: skip
    assert got == status
    assert [body["model"] for body in seen] == ([model] if status == 200 else [])
    decision = "audit-deny" if config is AUDIT else "deny" if status != 200 else "allow"
    assert span.attributes.get("lineage.decision") == decision
    assert span.attributes.get("lineage.rule") == rule
    if rule is not None and rule.startswith("route:"):
        reason = span.attributes["lineage.reason"]
        assert "batch" in reason and "LiteLLM" in reason
        assert repr(ALIAS if ALIAS in model else ANSWERED) in reason


def test_a_completion_naming_models_so_is_not_a_batch(loop_thread, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """LiteLLM batches chat completions alone (its `acompletion` route): a text completion's `model` with a comma is one
    name, the `"*"` route's, as before (a pin: passes before and now)."""
    seen: list[dict[str, Any]] = []
    with serving(loop_thread, _app(seen)) as url:
        proxy = make_proxy(CONFIG, UPSTREAM=url)
        client = _client(proxy.url, "ads")
        try:
            client.completions.create(model=BATCH, prompt="hi")
        finally:
            client.close()
    assert [body["model"] for body in seen] == [BATCH]


@pytest.mark.parametrize(("count", "status"), [(NAMED_MODELS_MAX, 200), (NAMED_MODELS_MAX + 1, 400)])
def test_a_batch_of_too_many_models_is_refused(loop_thread, make_proxy, count: int, status: int) -> None:  # type: ignore[no-untyped-def]
    """Each model is judged as a call: a `model` naming over `NAMED_MODELS_MAX` (32) is refused 400 `invalid_request`,
    param `model`, before any is judged, through the openai SDK; 32 go on."""
    seen: list[dict[str, Any]] = []
    model = ",".join(f"m{index}" for index in range(count))
    with serving(loop_thread, _app(seen)) as url:
        proxy = make_proxy(CONFIG, UPSTREAM=url)
        client = _client(proxy.url, "ads")
        try:
            client.chat.completions.create(model=model, messages=HI)
            got, code, param = 200, None, None
        except openai.BadRequestError as error:
            got, code, param = error.status_code, error.code, error.param
        finally:
            client.close()
    assert (got, code, param) == ((200, None, None) if status == 200 else (400, "invalid_request", "model"))
    assert len(seen) == (1 if status == 200 else 0)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("a,b", ("a", "b")),
        (" a , b ,a", ("a", "b")),
        ("a,", ("a", "")),
        (",", ("",)),
        ("a,\u2003b\n", ("a", "b")),
    ],
)
def test_batch_models(model: str, expected: tuple[str, ...]) -> None:
    """The parts LiteLLM calls (`split(",")`, each `strip()`ped), each once in order."""
    assert batch_models(model) == expected


def test_the_reader_raises_for_a_chat_alone() -> None:
    """`read_request` raises `OthersNamed` for a chat's comma-separated model, its parts the batch; not for another
    operation, nor when reading again (`others` False)."""
    body = b'{"model": "a, b", "messages": [{"role": "user", "content": "hi"}], "prompt": "hi", "input": "hi"}'
    with pytest.raises(OthersNamed) as named:
        read_request("chat", body)
    assert (named.value.models, named.value.batch) == (("a", "b"), ("a", "b"))
    assert named.value.again().model == "a, b"
    assert read_request("text_completion", body).model == "a, b"
    assert read_request("embeddings", body).model == "a, b"
    with pytest.raises(InvalidRequest):
        batch_models(",".join(["m"] * (NAMED_MODELS_MAX + 1)))
    assert batch_models(",".join(["m"] * NAMED_MODELS_MAX)) == ("m",)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig"])
def test_a_batch_read_as_utf8_is_judged_too(loop_thread, make_proxy, encoding: str) -> None:  # type: ignore[no-untyped-def]
    """A chat body in a form servers read as UTF-8 JSON all the same (UTF-16, a byte order mark first), read again by
    the adapter as UTF-8 (`Exchange._read_as_utf8`), is judged for its batch as one in UTF-8 is: 403, nothing
    forwarded (by raw HTTP: the SDK sends UTF-8)."""
    seen: list[dict[str, Any]] = []
    body = orjson.dumps({"model": BATCH, "messages": HI}).decode().encode(encoding)
    with serving(loop_thread, _app(seen)) as url:
        proxy = make_proxy(CONFIG, UPSTREAM=url)
        request = urllib.request.Request(f"{proxy.url}/v1/chat/completions", data=body, method="POST",
                                         headers={"content-type": "application/json", "x-purpose": "ads"})  # fmt: skip
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        error = orjson.loads(refused.value.read())["error"]
    assert (refused.value.code, error["code"]) == (403, "purpose_denied")
    assert "batch" in error["message"]
    assert seen == []

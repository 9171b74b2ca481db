"""A request that names other models to serve it should its own decline or fail (a fallback) is judged as a call naming
each would be: Anthropic's Messages API beta `fallbacks` (`[{"model": ...}]`, or `"default"`: the models the model asked
for names itself), OpenRouter's `models` and `route: "fallback"` (without `models`: a model it picks), LiteLLM proxy's
`fallbacks`, `context_window_fallbacks` and `content_policy_fallbacks`. Where a call naming one would be refused, the
call is, with that refusal's code and rule (`route:<model>`), and its reason names the model; nothing reaches the
upstream. A model the server picks may be any: every route's, and one no route names (the `"*"` route's).

Until 2026-12-07 only the call's `model` was judged: routes `claude-asked` (purposes assistant, ads) and
`claude-fallback` (assistant): an `ads` call naming `claude-fallback` directly was 403, but one to `claude-asked` with
`fallbacks: [{"model": "claude-fallback"}]` was forwarded, recorded allowed, and served by `claude-fallback` (helper
anth13's reproduction; helper fallback13's fix)."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anthropic
import openai
import orjson
import pytest
from aiohttp import web

from proxy.errors import InvalidRequest
from proxy.protocols import NAMED_MODELS_MAX, named_models
from tests.harness import serving
from tests.test_anthropic_cached_input_tokens import TELEMETRY
from tests.test_anthropic_fallbacks import ANSWERED, ASKED, fallback_app

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - name: vendor
    url: ${UPSTREAM}
routes:
  - model: claude-asked
    upstream: vendor
    purposes: [assistant, ads]
  - model: claude-fallback
    upstream: vendor
    purposes: [assistant]
  - model: "*"
    upstream: vendor
    purposes: [assistant, ads]
policy:
  anonymous: allow
  default_purpose: assistant
"""
AUDIT = CONFIG.replace("  default_purpose: assistant\n", "  default_purpose: assistant\n  mode: audit\n")
# no "*" route: a model the server picks may be one no route names
NAMED_ONLY = CONFIG.replace('  - model: "*"\n    upstream: vendor\n    purposes: [assistant, ads]\n', "")
BETA = ["server-side-fallback-2026-07-01"]
ALIAS = "fallback-alias"  # (another name the gateway serves `claude-fallback`'s weights by: `openai_app`)
ASK: Any = {"model": ASKED, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}


def _anthropic(url: str, purpose: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0, timeout=10,
                               default_headers={"x-purpose": purpose})  # fmt: skip


@contextmanager
def messages_through_proxy(
    loop_thread: Any, make_proxy: Any, purpose: str
) -> Iterator[tuple[anthropic.Anthropic, list[dict[str, Any]]]]:
    """The real anthropic SDK, for `purpose`, to a proxy made with `CONFIG` in front of `fallback_app`: (the client, the
    bodies the upstream saw), the client closed on leaving."""
    seen: list[dict[str, Any]] = []
    with serving(loop_thread, fallback_app(seen)) as url:
        proxy = make_proxy(CONFIG, UPSTREAM=url)
        client = _anthropic(proxy.url, purpose)
        try:
            yield client, seen
        finally:
            client.close()


# (how the SDK sends it, fallbacks, purpose, config) -> (status, rule): 200 forwarded, else the refusal's code's status
ANTHROPIC_CASES = [
    ("typed", [{"model": ANSWERED}], "ads", CONFIG, 403, f"route:{ANSWERED}"),
    ("extra_body", [{"model": ANSWERED}], "ads", CONFIG, 403, f"route:{ANSWERED}"),
    ("streamed", [{"model": ANSWERED}], "ads", CONFIG, 403, f"route:{ANSWERED}"),
    ("typed", [{"model": "claude-other"}, {"model": ANSWERED}], "ads", CONFIG, 403, f"route:{ANSWERED}"),
    ("typed", "default", "ads", CONFIG, 403, f"route:{ANSWERED}"),
    ("typed", "default", "assistant", NAMED_ONLY, 404, "routes"),
    # forwarded: every model named may be used for the purpose
    ("typed", [{"model": ANSWERED}], "assistant", CONFIG, 200, None),
    ("streamed", [{"model": ANSWERED}], "assistant", CONFIG, 200, None),
    ("typed", "default", "assistant", CONFIG, 200, None),
    ("typed", [{"model": "claude-other"}], "ads", CONFIG, 200, None),
    ("typed", [{"model": ASKED}], "ads", CONFIG, 200, None),
    ("typed", None, "ads", CONFIG, 200, None),
]


@pytest.mark.parametrize(("how", "fallbacks", "purpose", "config", "status", "rule"), ANTHROPIC_CASES)
def test_anthropic_fallbacks_are_judged(loop_thread, otlp, make_proxy, how, fallbacks, purpose, config, status,
                                        rule) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    """Through the real anthropic SDK (the beta's typed `fallbacks`, `extra_body` on the Messages API, the beta's
    stream helper): a call whose fallback a call naming directly would be refused for is refused so (403
    `purpose_denied`, rule `route:claude-fallback`; `"default"` where no `"*"` route is: 404 `model_not_found`), the
    upstream never reached, its record a denial naming that model; one whose models all may be used goes on."""
    seen: list[dict[str, Any]] = []
    with serving(loop_thread, fallback_app(seen)) as url:
        proxy = make_proxy(config + TELEMETRY, UPSTREAM=url, OTLP=f"http://127.0.0.1:{otlp.port}")
        client = _anthropic(proxy.url, purpose)
        given: Any = dict(ASK)
        if fallbacks is not None and how == "extra_body":
            given["extra_body"] = {"fallbacks": fallbacks}
        elif fallbacks is not None:
            given.update(fallbacks=fallbacks, betas=BETA)
        try:
            if how == "streamed":
                with client.beta.messages.stream(**given) as events:
                    events.get_final_message()
                    trace = events.response.headers["x-trace-id"]
            elif how == "extra_body":
                trace = client.messages.with_raw_response.create(**given).headers["x-trace-id"]
            else:
                trace = client.beta.messages.with_raw_response.create(**given).headers["x-trace-id"]
            got = 200
        except anthropic.APIStatusError as error:
            got, trace = error.status_code, error.response.headers["x-trace-id"]
            assert ANSWERED in error.message or "'*'" in error.message
        finally:
            client.close()
        span = otlp.by_trace(trace)
    assert got == status
    assert len(seen) == (1 if status == 200 else 0)  # a refused call never reaches the upstream
    attributes = span.attributes
    assert attributes.get("lineage.decision") == ("allow" if status == 200 else "deny")
    assert attributes.get("lineage.rule") == rule
    if rule is not None and rule.startswith("route:"):
        assert f"names model {ANSWERED!r}" in attributes["lineage.reason"] or "pick" in attributes["lineage.reason"]


def test_anthropic_direct_call_is_refused_as_its_fallback_is(loop_thread, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """The refusal a fallback gets is the one a call naming it directly gets: 403 for `ads` (a pin, passes before and
    now)."""
    seen: list[dict[str, Any]] = []
    with serving(loop_thread, fallback_app(seen)) as url:
        proxy = make_proxy(CONFIG, UPSTREAM=url)
        client = _anthropic(proxy.url, "ads")
        try:
            with pytest.raises(anthropic.PermissionDeniedError):
                client.messages.create(**{**ASK, "model": ANSWERED})
        finally:
            client.close()
    assert seen == []


def test_anthropic_audit_mode_forwards_as_audit_deny(loop_thread, otlp, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """In audit mode the call goes on, recorded `audit-deny` with the rule a call naming the fallback would have."""
    seen: list[dict[str, Any]] = []
    with serving(loop_thread, fallback_app(seen)) as url:
        proxy = make_proxy(AUDIT + TELEMETRY, UPSTREAM=url, OTLP=f"http://127.0.0.1:{otlp.port}")
        client = _anthropic(proxy.url, "ads")
        try:
            raw = client.beta.messages.with_raw_response.create(**ASK, fallbacks=[{"model": ANSWERED}], betas=BETA)
        finally:
            client.close()
        span = otlp.by_trace(raw.headers["x-trace-id"])
    assert raw.headers["x-lineage-decision"] == "audit-deny"
    assert len(seen) == 1
    assert (span.attributes.get("lineage.decision"), span.attributes.get("lineage.rule")) == (
        "audit-deny",
        f"route:{ANSWERED}",
    )


def openai_app(seen: list[dict[str, Any]], owned_by: str = "vllm") -> web.Application:
    """An OpenAI-compatible gateway's chat and completions endpoints (OpenRouter's, LiteLLM proxy's: `owned_by:
    openai`, as LiteLLM writes it) answering every call whole, and its model list (`GET /v1/models`; vLLM's `root`
    naming the weights: `fallback-alias` another served name of `claude-fallback`'s)."""

    async def answer(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append(body)
        choice: Any = {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
        if request.path.endswith("/v1/completions"):
            choice = {"index": 0, "text": "hi", "finish_reason": "stop"}
        return web.json_response({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": body["model"], "choices": [choice],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        })  # fmt: skip

    async def models(request: web.Request) -> web.Response:
        roots = {ASKED: "org/asked", ANSWERED: "org/fallback", ALIAS: "org/fallback", "claude-other": "org/other"}
        listed = [{"id": name, "object": "model", "owned_by": owned_by, "root": root} for name, root in roots.items()]
        return web.json_response({"object": "list", "data": listed})

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", answer)
    app.router.add_post("/v1/completions", answer)
    return app


Chat = tuple[int, Any, list[dict[str, Any]], openai.APIStatusError | None]  # (status, span, seen, refusal)


def chat_through_proxy(
    loop_thread: Any, otlp: Any, make_proxy: Any, config: str, purpose: str, *, owned_by: str = "vllm", **ask: Any
) -> Chat:
    """A chat through the real openai SDK (`with_raw_response`: the reply's `x-trace-id`) to a proxy made with `config`
    in front of `openai_app`, for `purpose`: (status, the call's span, the bodies the upstream saw, the refusal or
    None). With `otlp` None, no telemetry and no span."""
    seen: list[dict[str, Any]] = []
    with serving(loop_thread, openai_app(seen, owned_by)) as url:
        if otlp is None:
            proxy = make_proxy(config, UPSTREAM=url)
        else:
            proxy = make_proxy(config + TELEMETRY, UPSTREAM=url, OTLP=f"http://127.0.0.1:{otlp.port}")
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=10,
                               default_headers={"x-purpose": purpose})  # fmt: skip
        try:
            raw = client.chat.completions.with_raw_response.create(**ask)
            status, trace, error = 200, raw.headers["x-trace-id"], None
        except openai.APIStatusError as refused:
            status, trace, error = refused.status_code, refused.response.headers["x-trace-id"], refused
        finally:
            client.close()
        span = None if otlp is None else otlp.by_trace(trace)
    return status, span, seen, error


OPENAI_CASES = [
    # a name the upstream serves with a limited route's weights is held to that route's purposes, named so too
    ({"fallbacks": [ALIAS]}, "ads", CONFIG, 403, f"route:{ANSWERED}"),
    ({"fallbacks": [ALIAS]}, "assistant", CONFIG, 200, None),
    ({"models": [ASKED, ANSWERED]}, "ads", CONFIG, 403, f"route:{ANSWERED}"),  # OpenRouter
    ({"models": [ANSWERED], "route": "fallback"}, "ads", CONFIG, 403, f"route:{ANSWERED}"),
    ({"route": "fallback"}, "ads", CONFIG, 403, f"route:{ANSWERED}"),  # (OpenRouter picks: any)
    ({"route": "fallback"}, "assistant", NAMED_ONLY, 404, "routes"),
    ({"fallbacks": [ANSWERED]}, "ads", CONFIG, 403, f"route:{ANSWERED}"),  # LiteLLM
    (
        {"fallbacks": [{"model": ANSWERED, "messages": [{"role": "user", "content": "hi"}]}]},
        "ads",
        CONFIG,
        403,
        f"route:{ANSWERED}",
    ),
    ({"context_window_fallbacks": [{ASKED: [ANSWERED]}]}, "ads", CONFIG, 403, f"route:{ANSWERED}"),
    ({"content_policy_fallbacks": [{ASKED: [ANSWERED]}]}, "ads", CONFIG, 403, f"route:{ANSWERED}"),
    # forwarded
    ({"models": [ASKED, ANSWERED]}, "assistant", CONFIG, 200, None),
    ({"fallbacks": ["claude-other"]}, "ads", CONFIG, 200, None),
    ({"route": "fallback"}, "assistant", CONFIG, 200, None),
    ({"models": [ANSWERED], "route": "fallback"}, "assistant", CONFIG, 200, None),
    ({"fallbacks": None, "models": []}, "ads", CONFIG, 200, None),
    ({}, "ads", CONFIG, 200, None),
]


@pytest.mark.parametrize(("extra", "purpose", "config", "status", "rule"), OPENAI_CASES)
def test_openai_fallback_models_are_judged(loop_thread, otlp, make_proxy, extra, purpose, config, status,
                                           rule) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    """Through the real openai SDK (`extra_body`): OpenRouter's `models` and `route`, LiteLLM's `fallbacks` (names,
    or objects naming a model) and its maps (`{"<model>": [fallbacks]}`) are judged as Anthropic's are."""
    got, span, seen, _ = chat_through_proxy(loop_thread, otlp, make_proxy, config, purpose, model=ASKED,
                                            messages=[{"role": "user", "content": "hi"}], extra_body=extra)  # fmt: skip
    assert got == status
    assert len(seen) == (1 if status == 200 else 0)
    assert span.attributes.get("lineage.decision") == ("allow" if status == 200 else "deny")
    assert span.attributes.get("lineage.rule") == rule


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"fallbacks": [{"model": "a"}, {"model": "b", "max_tokens": 5}]}, ("a", "b")),
        ({"fallbacks": "default"}, (None,)),
        ({"fallbacks": None}, ()),
        ({"fallbacks": []}, ()),
        ({"fallbacks": ["a", "a", {"model": "b"}]}, ("a", "b")),
        ({"fallbacks": [{"a": ["b", "c"]}]}, ("b", "c")),
        ({"fallbacks": [{"a": ["b", 7]}]}, ("b", None)),
        ({"fallbacks": [7]}, (None,)),
        ({"fallbacks": {"model": "a"}}, (None,)),
        ({"models": ["a", "b"], "route": "fallback"}, ("a", "b")),
        ({"route": "fallback"}, (None,)),
        ({"route": "other"}, ()),
        ({"models": [], "route": "fallback"}, (None,)),
    ],
)
def test_named_models(data: dict[str, Any], expected: tuple[str | None, ...]) -> None:
    """The models a body names, each once in body order, None for one the server picks or a form not known."""
    keys = frozenset({"fallbacks", "models", "route"})
    assert named_models(data, keys) == expected


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig"])
def test_a_body_read_as_utf8_is_judged_too(loop_thread, make_proxy, encoding: str) -> None:  # type: ignore[no-untyped-def]
    """A body in a form servers read as UTF-8 JSON all the same (UTF-16, a byte order mark first), which the adapter
    reads again as UTF-8 (`Exchange._read_as_utf8`), names its fallbacks as one in UTF-8 does: refused 403 alike."""
    seen: list[dict[str, Any]] = []
    body = orjson.dumps({**ASK, "fallbacks": [{"model": ANSWERED}]}).decode().encode(encoding)
    with serving(loop_thread, fallback_app(seen)) as url:
        proxy = make_proxy(CONFIG, UPSTREAM=url)
        request = urllib.request.Request(f"{proxy.url}/v1/messages", data=body, method="POST", headers={
            "content-type": "application/json", "x-purpose": "ads", "anthropic-version": "2023-06-01"})  # fmt: skip
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        code = orjson.loads(refused.value.read())["error"]["code"]
    assert (refused.value.code, code) == (403, "purpose_denied")
    assert seen == []


# the gateway in the EU, and a second one in the US that `claude-fallback` is routed to; data labelled `personal` may
# only go to the EU
REGIONS = """
listen: {http: 127.0.0.1:0}
upstreams:
  - name: vendor
    url: ${UPSTREAM}
    region: eu
  - name: vendor-us
    url: ${UPSTREAM}
    region: us
routes:
  - model: claude-asked
    upstream: vendor
  - model: claude-fallback
    upstream: vendor-us
zones:
  - name: personal
    labels: [personal]
    allow_purposes: [assistant]
    regions: [eu]
policy:
  anonymous: allow
  default_purpose: assistant
"""


@pytest.mark.parametrize(("labels", "status"), [("personal", 403), ("public", 200)])
def test_a_fallback_routed_outside_the_data_regions_is_refused(loop_thread, make_proxy, labels, status) -> None:  # type: ignore[no-untyped-def]
    """A zone's regions: data a call naming `claude-fallback` (routed to the US) could not send is refused with the
    code that call gets (403 `region_denied`), through the openai SDK; data no zone holds goes on."""
    seen: list[dict[str, Any]] = []
    with serving(loop_thread, openai_app(seen)) as url:
        proxy = make_proxy(REGIONS, UPSTREAM=url)
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=10,
                               default_headers={"x-data-labels": labels})  # fmt: skip
        try:
            client.chat.completions.create(model=ASKED, messages=[{"role": "user", "content": "hi"}],
                                           extra_body={"fallbacks": [ANSWERED]})  # fmt: skip
            got, code = 200, None
        except openai.APIStatusError as error:
            got, code = error.status_code, error.code
        finally:
            client.close()
    assert (got, code) == (status, "region_denied" if status == 403 else None)
    assert len(seen) == (1 if status == 200 else 0)


APPROVED = """
version: 1
flows:
  - {caller: anonymous, purpose: assistant, labels: [], checkpoints: [org/asked, org/other]}
"""


@pytest.mark.parametrize(("fallbacks", "status"), [([ANSWERED], 403), (["claude-other"], 200), (None, 200)])
def test_a_fallback_the_baseline_does_not_approve_is_refused(loop_thread, make_proxy, tmp_path, fallbacks,
                                                             status) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    """With `lineage.on_unapproved: block`, a fallback whose flow (the checkpoint its name runs on: `org/fallback`) the
    baseline does not approve refuses the call (403 `flow_not_approved`), as a call naming it is; one it approves goes
    on (`org/other`), through the openai SDK."""
    baseline = tmp_path / "approved.yaml"
    baseline.write_text(APPROVED)
    config = CONFIG + "lineage:\n  store: ${STORE}\n  baseline: ${BASELINE}\n  on_unapproved: block\n"
    seen: list[dict[str, Any]] = []
    with serving(loop_thread, openai_app(seen)) as url:
        proxy = make_proxy(config, UPSTREAM=url, BASELINE=str(baseline))
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=3, timeout=10)
        try:
            given: Any = {"model": ASKED, "messages": [{"role": "user", "content": "hi"}]}
            client.chat.completions.create(**given)  # (its checkpoint known: retried while 503 `checkpoint_unknown`)
            extra = {} if fallbacks is None else {"fallbacks": fallbacks}
            try:
                client.chat.completions.create(**given, extra_body=extra)
                got, code = 200, None
            except openai.APIStatusError as error:
                got, code = error.status_code, error.code
        finally:
            client.close()
    assert (got, code) == (status, "flow_not_approved" if status == 403 else None)
    assert len(seen) == (2 if status == 200 else 1)


def rerank_app(seen: list[dict[str, Any]]) -> web.Application:
    """A gateway's rerank endpoint (LiteLLM proxy's `/v1/rerank` and `/rerank`, Cohere's shape: its router runs a rerank
    through `async_function_with_fallbacks`, the request's `fallbacks` too), beside the chat one (`openai_app`)."""

    async def rerank(request: web.Request) -> web.Response:
        seen.append(await request.json())
        return web.json_response({"id": "rerank-1", "results": [{"index": 0, "relevance_score": 0.5}]})

    app = openai_app(seen)
    app.router.add_post("/v1/rerank", rerank)
    app.router.add_post("/rerank", rerank)
    return app


@pytest.mark.parametrize(
    ("path", "extra", "purpose", "status"),
    [
        ("/v1/rerank", {"fallbacks": [ANSWERED]}, "ads", 403),
        ("/rerank", {"context_window_fallbacks": [{ASKED: [ANSWERED]}]}, "ads", 403),
        ("/v1/rerank", {"fallbacks": [ANSWERED]}, "assistant", 200),
        ("/v1/rerank", {}, "ads", 200),
    ],
)
def test_a_rerank_names_its_fallbacks_too(loop_thread, make_proxy, path, extra, purpose, status) -> None:  # type: ignore[no-untyped-def]
    """The openai adapter's paths read as llama.cpp's native ones (`read_native`: `/v1/rerank`, `/rerank`, which LiteLLM
    proxy serves too, its router falling back there as for a chat) judge the models a request names to serve it as the
    OpenAI ones do: 403 `purpose_denied`, nothing forwarded (by raw HTTP: no SDK in the test extra speaks rerank).
    Before (review revfallback13), only `read_request`'s paths did: this rerank was forwarded, recorded allowed."""
    seen: list[dict[str, Any]] = []
    body = orjson.dumps({"model": ASKED, "query": "q", "documents": ["d"], **extra})
    with serving(loop_thread, rerank_app(seen)) as url:
        proxy = make_proxy(CONFIG, UPSTREAM=url)
        request = urllib.request.Request(f"{proxy.url}{path}", data=body, method="POST",
                                         headers={"content-type": "application/json", "x-purpose": purpose})  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                got, code, rule = reply.status, None, None
        except urllib.error.HTTPError as refused:
            error = orjson.loads(refused.read())["error"]
            got, code, rule = refused.code, error["code"], ANSWERED in error["message"]
    assert (got, code, rule) == ((403, "purpose_denied", True) if status == 403 else (200, None, None))
    assert len(seen) == (1 if status == 200 else 0)


@pytest.mark.parametrize(
    "extra",
    [
        {"fallbacks": [ANSWERED]},  # (LiteLLM's form, on its Anthropic-compatible `/v1/messages`)
        {"models": [ANSWERED]},  # (OpenRouter's, ElectronHub's: their Messages endpoints take it too)
        {"context_window_fallbacks": [{ASKED: [ANSWERED]}]},
        {"content_policy_fallbacks": [{ASKED: [ANSWERED]}]},
        {"route": "fallback"},
    ],
)
def test_a_messages_call_names_its_fallbacks_as_a_gateway_reads_them(loop_thread, otlp, make_proxy, extra) -> None:  # type: ignore[no-untyped-def]
    """A Messages call is read for the keys a gateway serving the Messages API acts on (LiteLLM proxy's `/v1/messages`,
    its router's fallbacks; OpenRouter's `models`), not only Anthropic's own `fallbacks`: 403, rule
    `route:claude-fallback`, through the anthropic SDK (`extra_body`). Before (review revfallback13), `fallbacks` alone
    was: these were forwarded, recorded allowed."""
    seen: list[dict[str, Any]] = []
    with serving(loop_thread, fallback_app(seen)) as url:
        proxy = make_proxy(CONFIG + TELEMETRY, UPSTREAM=url, OTLP=f"http://127.0.0.1:{otlp.port}")
        client = _anthropic(proxy.url, "ads")
        try:
            with pytest.raises(anthropic.PermissionDeniedError) as refused:
                client.messages.create(**ASK, extra_body=extra)
        finally:
            client.close()
        span = otlp.by_trace(refused.value.response.headers["x-trace-id"])
    assert seen == []
    assert span.attributes.get("lineage.rule") == f"route:{ANSWERED}"


@pytest.mark.parametrize(("count", "status"), [(NAMED_MODELS_MAX, 200), (NAMED_MODELS_MAX + 1, 400)])
def test_a_request_naming_too_many_models_is_refused(loop_thread, make_proxy, count: int, status: int) -> None:  # type: ignore[no-untyped-def]
    """Each model a request names is judged as a call (`decide`, ~50 us interpreted): a body naming over
    `NAMED_MODELS_MAX` entries (32; LiteLLM tries 5 by default, ElectronHub takes 3) is refused 400 `invalid_request`,
    param the key, before any is judged, through the openai SDK; 32 go on. Before (review revfallback13), every one was: 20,000 names
    (220 KB) held the event loop 1 s, 100,000 (1.1 MB) 5 s, where a plain body of that size took 13 and 37 ms."""
    seen: list[dict[str, Any]] = []
    names = [ASKED if index % 2 else "claude-other" for index in range(count)]  # (each entry counts, named twice too)
    with serving(loop_thread, openai_app(seen)) as url:
        proxy = make_proxy(CONFIG, UPSTREAM=url)
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=10)
        try:
            client.chat.completions.create(model=ASKED, messages=[{"role": "user", "content": "hi"}],
                                           extra_body={"fallbacks": names})  # fmt: skip
            got, code, param = 200, None, None
        except openai.BadRequestError as error:
            got, code, param = error.status_code, error.code, error.param
        finally:
            client.close()
    assert (got, code, param) == ((200, None, None) if status == 200 else (400, "invalid_request", "fallbacks"))
    assert len(seen) == (1 if status == 200 else 0)


@pytest.mark.parametrize(
    "data",
    [
        {"fallbacks": [f"m{index}" for index in range(NAMED_MODELS_MAX + 1)]},
        {"fallbacks": ["m"] * (NAMED_MODELS_MAX + 1)},  # (each entry counts: the work is the list's)
        {"fallbacks": [{f"k{index}": [] for index in range(NAMED_MODELS_MAX + 1)}]},
        {"models": [f"m{index}" for index in range(20)], "fallbacks": [{"a": [f"n{index}" for index in range(20)]}]},
    ],
)
def test_named_models_over_the_most(data: dict[str, Any]) -> None:
    """Over `NAMED_MODELS_MAX` entries under the keys, together (names, objects, a map's keys and names): refused."""
    with pytest.raises(InvalidRequest):
        named_models(data, frozenset({"fallbacks", "models", "route"}))

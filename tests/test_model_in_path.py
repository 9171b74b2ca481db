"""A call on a route that names its model in the path (LiteLLM proxy's Azure-compatible routes, which the openai SDK's
`AzureOpenAI` client calls: `/openai/deployments/{model}/chat/completions`, `.../completions`, `.../embeddings`, and
`/engines/{model}/...`) is read as the chat, completion or embeddings call it is, routed and judged by the model its
path names (the one LiteLLM runs: `data["model"] = ... or model or data.get("model")`, the path's before the body's),
and by its body's `model` too where that names another; recorded with the path's model; forwarded at its path as sent.

Until 2026-12-07 such a path was data the proxy does not read: under `policy.passthrough: auto`, while a route limits
purposes, refused 403 `endpoint_denied` whatever it named; with `forward`, forwarded by the `"*"` route, so an `ads`
call reached `claude-fallback`, whose route allows only `assistant` (helper paths15)."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from typing import Any

import openai
import orjson
import pytest
from aiohttp import web

from proxy.errors import InvalidRequest
from proxy.protocols import HTTP_ADAPTERS, OthersNamed, Target
from proxy.protocols.openai import IN_PATH, read_request
from tests.harness import serving
from tests.test_anthropic_cached_input_tokens import TELEMETRY
from tests.test_anthropic_fallbacks import ANSWERED, ASKED
from tests.test_expect_refused_same_code import raw_send
from tests.test_fallback_models_judged import AUDIT, CONFIG, NAMED_ONLY

FORWARD = CONFIG + "  passthrough: forward\n"  # (data the proxy does not read forwarded: main's way through)
API_VERSION = "2024-10-21"
HI = [{"role": "user", "content": "hi"}]
BATCH = f"{ASKED},{ANSWERED}"
ADVISOR = {"type": "advisor_20260301", "name": "advisor", "model": ANSWERED}
# LiteLLM proxy's routes (`proxy_server.py`), in the order it registers them: Starlette tries them in turn, its
# `{model:path}` any text, `/` too, so `/openai/deployments/a/chat/completions` is the chat's (model `a`), though
# `.../{model:path}/completions` matches it too (model `a/chat`)
_OPERATIONS = (("chat/completions", "chat"), ("completions", "completion"), ("embeddings", "embeddings"))
_PREFIXES = ("", "/v1", "/engines/{model:.*}", "/openai/deployments/{model:.*}")


def litellm_app(seen: list[tuple[str, str, dict[str, Any]]]) -> web.Application:
    """LiteLLM proxy's OpenAI and Azure-compatible routes: the model it runs is the path's, else the body's (its
    `base_process_llm_request`); each call noted as (the target as it came, the model run, the body). On a route whose
    path names none, its handler's `model` argument is the query's (FastAPI: the last value), where not empty."""

    def answering(operation: str) -> Any:
        async def answer(request: web.Request) -> web.StreamResponse:
            body = await request.json()
            queried = request.query.getall("model", [])
            model = request.match_info.get("model") or (queried[-1] if queried else None) or body.get("model")
            seen.append((request.raw_path, model, body))
            usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
            if operation == "embeddings":
                data = [{"object": "embedding", "index": 0, "embedding": [0.5, 0.25]}]
                return web.json_response({"object": "list", "data": data, "model": model, "usage": usage})
            if operation == "completion":
                choice: Any = {"index": 0, "text": "hi", "finish_reason": "stop"}
                return web.json_response({"id": "cmpl-1", "object": "text_completion", "created": 1, "model": model,
                                          "choices": [choice], "usage": usage})  # fmt: skip
            if body.get("stream") is True:
                reply = web.StreamResponse(headers={"content-type": "text/event-stream"})
                await reply.prepare(request)
                delta = {"role": "assistant", "content": "hi"}
                chunk: Any = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model,
                              "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}  # fmt: skip
                await reply.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
                chunk["choices"] = [{"index": 0, "delta": {}, "finish_reason": "stop"}]
                await reply.write(b"data: " + orjson.dumps(chunk) + b"\n\ndata: [DONE]\n\n")
                await reply.write_eof()
                return reply
            choice = {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
            return web.json_response({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model,
                                      "choices": [choice], "usage": usage})  # fmt: skip

        return answer

    async def models(request: web.Request) -> web.Response:
        listed = [{"id": name, "object": "model", "owned_by": "openai"} for name in (ASKED, ANSWERED, "claude-other")]
        return web.json_response({"object": "list", "data": listed})

    app = web.Application()
    app.router.add_get("/v1/models", models)
    for path, operation in _OPERATIONS:
        for prefix in _PREFIXES:
            app.router.add_post(f"{prefix}/{path}", answering(operation))
    return app


def _azure(url: str, purpose: str, deployment: str | None = None) -> openai.AzureOpenAI:
    return openai.AzureOpenAI(azure_endpoint=url, azure_deployment=deployment, api_version=API_VERSION,
                              api_key="unused", max_retries=0, timeout=10,
                              default_headers={"x-purpose": purpose})  # fmt: skip


def _call(client: openai.OpenAI, operation: str, model: str, extra: dict[str, Any]) -> Any:
    """The raw reply of the SDK's call, read whole (a stream's events too)."""
    if operation == "chat":
        raw = client.chat.completions.with_raw_response.create(model=model, messages=HI, extra_body=extra,
                                                               stream=extra.pop("stream", False))  # fmt: skip
    elif operation == "completion":
        raw = client.completions.with_raw_response.create(model=model, prompt="hi", extra_body=extra)
    else:
        raw = client.embeddings.with_raw_response.create(model=model, input="hi", extra_body=extra)
    parsed = raw.parse()
    if isinstance(parsed, openai.Stream):
        list(parsed)
    return raw


# (the client's deployment, the call's model, operation, extra body, purpose, config) -> (status, rule, the model the
# gateway ran): 200 forwarded, else the refusal's code's status
AZURE_CASES = [
    (None, ANSWERED, "chat", {}, "ads", CONFIG, 403, f"route:{ANSWERED}"),
    (None, ANSWERED, "chat", {}, "ads", FORWARD, 403, f"route:{ANSWERED}"),
    (None, ANSWERED, "chat", {"stream": True}, "ads", CONFIG, 403, f"route:{ANSWERED}"),
    (None, ANSWERED, "completion", {}, "ads", CONFIG, 403, f"route:{ANSWERED}"),
    (None, ANSWERED, "embeddings", {}, "ads", CONFIG, 403, f"route:{ANSWERED}"),
    # the path's model is the one run: the body's, allowed, does not make the call allowed
    (ANSWERED, ASKED, "chat", {}, "ads", CONFIG, 403, f"route:{ANSWERED}"),
    # the body's model, where another: judged too (a server reading the body's runs it)
    (ASKED, ANSWERED, "chat", {}, "ads", CONFIG, 403, f"route:{ANSWERED}"),
    (None, ASKED, "chat", {"fallbacks": [ANSWERED]}, "ads", CONFIG, 403, f"route:{ANSWERED}"),
    (None, ANSWERED, "chat", {}, "ads", AUDIT, 200, f"route:{ANSWERED}"),  # (audit: forwarded as audit-deny)
    # forwarded: every model named may be used for the purpose
    (None, ANSWERED, "chat", {}, "assistant", CONFIG, 200, None),
    (None, ANSWERED, "chat", {"stream": True}, "assistant", CONFIG, 200, None),
    (None, ANSWERED, "completion", {}, "assistant", CONFIG, 200, None),
    (None, ANSWERED, "embeddings", {}, "assistant", CONFIG, 200, None),
    (None, ASKED, "chat", {}, "ads", CONFIG, 200, None),
    (ASKED, "claude-other", "chat", {}, "ads", CONFIG, 200, None),
    (None, "claude-other", "chat", {}, "ads", NAMED_ONLY, 404, "routes"),  # (no route: as a call naming it)
]


@pytest.mark.parametrize(("deployment", "model", "operation", "extra", "purpose", "config", "status", "rule"),
                         AZURE_CASES)  # fmt: skip
def test_azure_routes_are_read_and_judged(loop_thread, otlp, make_proxy, deployment, model, operation, extra, purpose,
                                          config, status, rule) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    """Through the real openai SDK's `AzureOpenAI` (its path `/openai/deployments/{model}/...?api-version=...`, the
    client's deployment or the call's model): a call whose path's model (or body's, where another) a call naming it
    directly would be refused for is refused so (403 `purpose_denied`, rule `route:claude-fallback`), the gateway never
    reached; one allowed goes to the gateway at its path as sent, recorded as the chat, completion or embeddings call
    of the path's model."""
    seen: list[tuple[str, str, dict[str, Any]]] = []
    with serving(loop_thread, litellm_app(seen)) as url:
        proxy = make_proxy(config + TELEMETRY, UPSTREAM=url, OTLP=f"http://127.0.0.1:{otlp.port}")
        client = _azure(proxy.url, purpose, deployment)
        try:
            raw = _call(client, operation, model, dict(extra))
            got, trace = 200, raw.headers["x-trace-id"]
        except openai.APIStatusError as error:
            got, trace = error.status_code, error.response.headers["x-trace-id"]
        finally:
            client.close()
        span = otlp.by_trace(trace)
    path_model = deployment or model
    assert got == status
    suffix = "chat/completions" if operation == "chat" else "completions" if operation == "completion" else operation
    sent = f"/openai/deployments/{path_model}/{suffix}?api-version={API_VERSION}"
    assert [(target, ran) for target, ran, _ in seen] == ([(sent, path_model)] if status == 200 else [])
    attributes = span.attributes
    decision = "audit-deny" if config is AUDIT else "deny" if status != 200 else "allow"
    assert attributes.get("lineage.decision") == decision
    assert attributes.get("lineage.rule") == rule
    assert attributes.get("lineage.protocol") == "openai"
    assert attributes.get("gen_ai.request.model") == path_model
    assert attributes.get("gen_ai.operation.name") == ("text_completion" if operation == "completion" else operation)
    if rule is not None and rule.startswith("route:") and path_model != ANSWERED:
        assert f"names model {ANSWERED!r}" in attributes["lineage.reason"]
        if model == ANSWERED:  # (the body's: named so)
            assert f"in its body's 'model', its path naming model {ASKED!r}" in attributes["lineage.reason"]


@pytest.mark.parametrize(("operation", "purpose", "status"), [("chat", "ads", 403), ("completion", "ads", 403),
                                                              ("embeddings", "ads", 403), ("chat", "assistant", 200),
                                                              ("embeddings", "assistant", 200)])  # fmt: skip
def test_engines_routes_are_read_and_judged(loop_thread, make_proxy, operation: str, purpose: str,
                                            status: int) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    """LiteLLM's `/engines/{model}/...` (the openai SDK with its base URL there): judged by the path's model as the
    Azure routes are."""
    seen: list[tuple[str, str, dict[str, Any]]] = []
    with serving(loop_thread, litellm_app(seen)) as url:
        proxy = make_proxy(CONFIG, UPSTREAM=url)
        client = openai.OpenAI(base_url=f"{proxy.url}/engines/{ANSWERED}", api_key="unused", max_retries=0,
                               timeout=10, default_headers={"x-purpose": purpose})  # fmt: skip
        try:
            _call(client, operation, ANSWERED, {})
            got = 200
        except openai.PermissionDeniedError as error:
            got = error.status_code
            assert error.code == "purpose_denied"
            assert f"model {ANSWERED!r}" in error.message
        finally:
            client.close()
    assert got == status
    assert [ran for _, ran, _ in seen] == ([ANSWERED] if status == 200 else [])


def _post(url: str, path: str, body: Any, purpose: str) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    request = urllib.request.Request(f"{url}{path}", data=data, method="POST",
                                     headers={"content-type": "application/json", "x-purpose": purpose})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, orjson.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, orjson.loads(error.read())


# (path, body, purpose) -> (status, code, the model the gateway ran)
ROUTED = f"/openai/deployments/{ANSWERED}/chat/completions"
UTF16 = orjson.dumps({"model": ANSWERED, "messages": HI}).decode().encode("utf-16")
RAW_CASES = [
    # a body naming no model: the path's (LiteLLM's `model or data.get("model")`)
    (ROUTED, {"messages": HI}, "ads", 403, "purpose_denied", None),
    (ROUTED, {"messages": HI}, "assistant", 200, None, ANSWERED),
    (ROUTED, {"model": None, "messages": HI}, "assistant", 200, None, ANSWERED),
    (ROUTED, {"model": 5, "messages": HI}, "assistant", 400, "invalid_request", None),
    # a path's model naming several, separated by commas: LiteLLM runs the chat on each (a batch)
    (f"/openai/deployments/{BATCH}/chat/completions", {"messages": HI}, "ads", 403, "purpose_denied", None),
    (f"/openai/deployments/{BATCH}/chat/completions", {"messages": HI}, "assistant", 200, None, BATCH),
    # escapes decoded, as Starlette decodes the path it matches
    ("/openai/deployments/claude%2Dfallback/chat/completions", {"messages": HI}, "ads", 403, "purpose_denied", None),
    # a body of a content coding servers read as UTF-8 JSON all the same: read again, judged the same
    (f"/openai/deployments/{ASKED}/chat/completions", UTF16, "ads", 403, "purpose_denied", None),
    # an advisor tool naming a model the call may not reach, with the body's model the path's or another (the lead's
    # merge of paths15 beside litellm15: the body naming another raised before its tools were read)
    (
        f"/openai/deployments/{ASKED}/chat/completions",
        {"messages": HI, "tools": [ADVISOR]},
        "ads",
        403,
        "purpose_denied",
        None,
    ),
    (
        f"/openai/deployments/{ASKED}/chat/completions",
        {"model": "claude-other", "messages": HI, "tools": [ADVISOR]},
        "ads",
        403,
        "purpose_denied",
        None,
    ),
    (
        f"/openai/deployments/{ASKED}/chat/completions",
        {"model": "claude-other", "messages": HI, "tools": [ADVISOR]},
        "assistant",
        200,
        None,
        ASKED,
    ),
]


@pytest.mark.parametrize(("path", "body", "purpose", "status", "code", "ran"), RAW_CASES)
def test_raw_calls_on_model_paths(loop_thread, make_proxy, path: str, body: Any, purpose: str, status: int,
                                  code: str | None, ran: str | None) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    """By raw HTTP: what the SDK does not send (no `model`, one not a string, a batch, escapes, UTF-16)."""
    seen: list[tuple[str, str, dict[str, Any]]] = []
    with serving(loop_thread, litellm_app(seen)) as url:
        proxy = make_proxy(CONFIG, UPSTREAM=url)
        got, reply = _post(proxy.url, path, body, purpose)
    assert (got, reply.get("error", {}).get("code")) == (status, code)
    assert [model for _, model, _ in seen] == ([ran] if ran is not None else [])


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("/openai/deployments/m/chat/completions", ("chat", "m")),
        ("/openai/deployments/m/completions", ("text_completion", "m")),
        ("/openai/deployments/m/embeddings", ("embeddings", "m")),
        ("/engines/m/chat/completions", ("chat", "m")),
        ("/engines/m/completions", ("text_completion", "m")),
        ("/engines/m/embeddings", ("embeddings", "m")),
        # `{model:path}`: any text, `/` too, the longest that leaves the operation (Starlette's `.*`, greedy); the
        # chat's route first
        ("/openai/deployments/org/m/chat/completions", ("chat", "org/m")),
        ("/openai/deployments/m/chat/completions/chat/completions", ("chat", "m/chat/completions")),
        ("/openai/deployments/chat/completions", ("text_completion", "chat")),
        ("/openai/deployments/m/embeddings/completions", ("text_completion", "m/embeddings")),
        # not such a route: passthrough's, as before
        ("/openai/deployments/m/images/generations", None),
        ("/openai/deployments/m/audio/speech", None),
        ("/openai/deployments/m", None),
        ("/openai/deployments/completions", None),
        ("/engines/completions", None),
        ("/v1/engines/m/completions", None),
        ("/openai/deployments/m/chat/completions/", None),
    ],
)
def test_matched(path: str, target: tuple[str, str] | None) -> None:
    """Which adapter reads a POST to `path`, and what its target names: the model the path names for LiteLLM's routes
    (`IN_PATH`), read by the OpenAI adapter; a GET is none of them."""
    matched = next((adapter, found) for adapter in HTTP_ADAPTERS if (found := adapter.match("POST", path)) is not None)
    adapter, found = matched
    if target is None:
        assert adapter.name == "passthrough"
        return
    assert (adapter is IN_PATH, adapter.name, found.operation, found.model) == (True, "openai", *target)
    assert IN_PATH.match("GET", path) is None


def test_the_reader_takes_the_paths_model() -> None:
    """`read_request` with the path's model: the call is that model's; a body naming another raises `OthersNamed` with
    it (`asked`), and reads again as the path's model's call; a body naming none or the same reads as that call."""
    body = b'{"model": "b", "messages": [{"role": "user", "content": "hi"}]}'
    with pytest.raises(OthersNamed) as named:
        read_request("chat", body, path_model="a")
    assert (named.value.models, named.value.batch, named.value.asked) == (("b",), (), "b")
    assert named.value.again().model == "a"
    assert read_request("chat", b'{"messages": []}', path_model="a").model == "a"
    assert read_request("chat", b'{"model": "a", "messages": []}', path_model="a").model == "a"
    with pytest.raises(OthersNamed) as named:  # (a batch its path names: read again as the path's model's call too)
        read_request("chat", b'{"messages": []}', path_model="a,b")
    assert (named.value.models, named.value.again().model) == (("a", "b"), "a,b")
    with pytest.raises(OthersNamed) as named:
        read_request("chat", b'{"messages": [], "fallbacks": ["d"]}', path_model="a")
    assert (named.value.models, named.value.again().model) == (("d",), "a")
    with pytest.raises(OthersNamed) as named:
        read_request("chat", b'{"model": "c", "messages": [], "fallbacks": ["d"]}', path_model="a,b")
    assert (set(named.value.models), named.value.batch, named.value.asked) == ({"a", "b", "c", "d"}, ("a", "b"), "c")
    with pytest.raises(InvalidRequest):
        read_request("chat", b'{"model": ["b"], "messages": []}', path_model="a")
    with pytest.raises(InvalidRequest) as refused:
        read_request("chat", b'{"model": "b", "messages": [], "api_base": "http://elsewhere"}', path_model="a")
    assert refused.value.param == "api_base"
    assert Target("chat", "a").model == "a"


def _send(port: int, path: str, body: bytes, *, expect: bool) -> tuple[int, str]:
    """One `ads` request on a raw socket (`raw_send`)."""
    return raw_send(port, path, body, "x-purpose: ads\r\n", expect=expect)


@pytest.mark.parametrize("path_model, body_model", [(ANSWERED, None), (ASKED, ANSWERED)])
def test_a_request_waiting_for_100_gets_the_code_it_gets_sent_whole(loop_thread, make_proxy, path_model: str,
                                                                    body_model: str | None) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    """With `Expect: 100-continue`, the path's model refused is refused at the head (`refused_by_head`: the path names
    the model), as sent whole; one whose body's model is refused waits for its body, and is refused as sent whole."""
    seen: list[tuple[str, str, dict[str, Any]]] = []
    body = orjson.dumps({"model": body_model, "messages": HI})
    path = f"/openai/deployments/{path_model}/chat/completions"
    with serving(loop_thread, litellm_app(seen)) as url:
        proxy = make_proxy(CONFIG, UPSTREAM=url)
        port = proxy.bound.http.port
        assert _send(port, path, body, expect=False) == (403, "purpose_denied")
        assert _send(port, path, body, expect=True) == (403, "purpose_denied")
    assert seen == []


# (target, purpose) -> (status, the model the gateway ran): an `ads` chat, completion or embeddings call whose body names
# claude-asked (`ads` allowed) with a query naming claude-fallback, which LiteLLM runs
QUERY_CASES = [
    (f"/v1/chat/completions?model={ANSWERED}", "chat", 400, None),
    (f"/chat/completions?model={ANSWERED}", "chat", 400, None),
    (f"/v1/completions?model={ANSWERED}", "completion", 400, None),
    (f"/v1/embeddings?model={ANSWERED}", "embeddings", 400, None),
    (f"/v1/chat/completions?mode%6C={ANSWERED}", "chat", 400, None),  # (its name decoded, as FastAPI reads it)
    (f"/v1/chat/completions?model={ASKED}&model={ANSWERED}", "chat", 400, None),  # (the last: FastAPI's)
    # what held: an empty one is none (LiteLLM runs the body's); a path naming the model takes it from the path
    ("/v1/chat/completions?model=", "chat", 200, ASKED),
    (f"/openai/deployments/{ASKED}/chat/completions?model={ANSWERED}", "chat", 200, ASKED),
    (f"/v1/chat/completions?models={ANSWERED}", "chat", 200, ASKED),
    # a path naming the model: no server there reads a model_version (LiteLLM's and Azure's handlers take none), so it
    # goes on; until 2026-12-07 refused in MLServer's words (helper models16)
    (f"/openai/deployments/{ASKED}/chat/completions?model_version=1", "chat", 200, ASKED),
    (f"/engines/{ASKED}/embeddings?model_version=1", "embeddings", 200, ASKED),
]


@pytest.mark.parametrize(("target", "operation", "status", "ran"), QUERY_CASES)
def test_a_query_naming_the_model_is_refused(loop_thread, make_proxy, target: str, operation: str, status: int,
                                             ran: str | None) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    """A query naming `model` on OpenAI's chat, completions or embeddings path whose body names the model: LiteLLM
    proxy runs the query's (its handler's `model` argument, from the query where the path names none), so it is
    refused 400 `invalid_request`, as a query naming an OIP model's `model_version` is, the gateway never reached.
    Until review revpaths15 the body's model was judged, and the query's run: an `ads` call reached claude-fallback."""
    seen: list[tuple[str, str, dict[str, Any]]] = []
    body: dict[str, Any] = {"model": ASKED}
    body.update({"chat": {"messages": HI}, "completion": {"prompt": "hi"}, "embeddings": {"input": "hi"}}[operation])
    with serving(loop_thread, litellm_app(seen)) as url:
        proxy = make_proxy(CONFIG, UPSTREAM=url)
        got, reply = _post(proxy.url, target, body, "ads")
    assert got == status, reply
    if status == 400:
        assert reply["error"]["code"] == "invalid_request"
        assert "the query may not name a model" in reply["error"]["message"]
    assert [model for _, model, _ in seen] == ([ran] if ran is not None else [])


def test_the_sdks_extra_query_naming_the_model_is_refused(loop_thread, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """Through the real openai SDK (`extra_query`): refused, the gateway never reached."""
    seen: list[tuple[str, str, dict[str, Any]]] = []
    with serving(loop_thread, litellm_app(seen)) as url:
        proxy = make_proxy(CONFIG, UPSTREAM=url)
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=10,
                               default_headers={"x-purpose": "ads"})  # fmt: skip
        try:
            with pytest.raises(openai.BadRequestError) as refused:
                client.chat.completions.create(model=ASKED, messages=HI, extra_query={"model": ANSWERED})
        finally:
            client.close()
    assert refused.value.code == "invalid_request"
    assert seen == []


def test_the_azure_clients_extra_query_naming_a_model_version_goes_on(loop_thread, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """Through the real AzureOpenAI client (`extra_query`, beside its `api-version`): a `model_version` on a path naming
    the model is read by no server there, so the call is the path's, forwarded with its query as sent; before, 400 in
    MLServer's words ("MLServer runs the version it names"), which no server on the path is (helper models16)."""
    seen: list[tuple[str, str, dict[str, Any]]] = []
    with serving(loop_thread, litellm_app(seen)) as url:
        proxy = make_proxy(CONFIG, UPSTREAM=url)
        client = _azure(proxy.url, "ads", ASKED)
        try:
            client.chat.completions.create(model=ASKED, messages=HI, extra_query={"model_version": "1"})
        finally:
            client.close()
    assert [model for _, model, _ in seen] == [ASKED]


KEY = "sk-caller-azure"
KEYED = CONFIG.replace("  anonymous: allow\n", "  anonymous: deny\n") + (
    f"callers:\n  - name: app\n    api_key_sha256: {hashlib.sha256(KEY.encode()).hexdigest()}\n"
    "    purposes: [assistant, ads]\n"
)


@pytest.mark.parametrize(("how", "status"), [("azure_ad_token", 200), ("api_key", 401)])
def test_the_azure_clients_key_is_read_from_authorization(loop_thread, make_proxy, how: str,
                                                          status: int) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    """The caller's key is read from `Authorization: Bearer` alone: the `AzureOpenAI` client sends it there as its
    `azure_ad_token`; its `api_key` goes in an `api-key` field, which is not read (a call sending only that one is
    anonymous's: refused 401 under `anonymous: deny`), as `x-api-key` is not but on the Anthropic API's paths."""
    seen: list[tuple[str, str, dict[str, Any]]] = []
    with serving(loop_thread, litellm_app(seen)) as url:
        proxy = make_proxy(KEYED, UPSTREAM=url)
        client = openai.AzureOpenAI(azure_endpoint=proxy.url, api_version=API_VERSION, max_retries=0, timeout=10,
                                    default_headers={"x-purpose": "assistant"}, **{how: KEY})  # fmt: skip
        try:
            client.chat.completions.create(model=ASKED, messages=HI)
            got = 200
        except openai.APIStatusError as error:
            got = error.status_code
        finally:
            client.close()
    assert got == status
    assert [ran for _, ran, _ in seen] == ([ASKED] if status == 200 else [])


def test_a_responses_query_naming_a_model_goes_on(loop_thread, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """The Responses API's `?model=` is not LiteLLM proxy's model: its `responses_api` takes no `model` argument
    (`base_process_llm_request(..., model=None)`), so the body's runs, the one judged. Through the real openai SDK
    (`extra_query`), forwarded, query and all; a pin (forwarded on main too: chat's refusal is for the handlers that
    take one)."""
    seen: list[tuple[str, str]] = []

    async def respond(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append((request.query.get("model", ""), body["model"]))
        return web.json_response({"id": "resp_1", "object": "response", "created_at": 1, "model": body["model"],
                                  "status": "completed", "output": []})  # fmt: skip

    async def models(request: web.Request) -> web.Response:
        listed = [{"id": name, "object": "model", "owned_by": "o"} for name in (ASKED, ANSWERED)]
        return web.json_response({"object": "list", "data": listed})

    app = web.Application()
    app.router.add_post("/v1/responses", respond)
    app.router.add_get("/v1/models", models)
    with serving(loop_thread, app) as url:
        proxy = make_proxy(CONFIG, UPSTREAM=url)
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=10,
                               default_headers={"x-purpose": "ads"})  # fmt: skip
        try:
            raw = client.responses.with_raw_response.create(model=ASKED, input="hi", extra_query={"model": ANSWERED})
        finally:
            client.close()
    assert raw.status_code == 200
    assert seen == [(ANSWERED, ASKED)]

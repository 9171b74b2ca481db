"""A request body naming the server its call is to be sent to, or a router of its own, in place of the upstream's
(`SENT_ELSEWHERE`: LiteLLM proxy's `api_base`, `base_url`, `user_config`, `model_list`, a provider's endpoint; at the
body's top or in an object LiteLLM lays into the call, `extra_body`) is refused 400 `invalid_request`, its `param` the
key, nothing forwarded: LiteLLM proxy sends the call there where its config lets clients choose
(`general_settings.allow_client_side_credentials`, a deployment's `configurable_clientside_auth_params`; before 2026
any `api_key` beside `api_base` did), a server no route or zone describes, which no record would name.

Until 2026-12-07 such a body was forwarded and recorded as a call the route's upstream served: a chat for a purpose its
route allows, with `api_base` naming another server, was forwarded, recorded allowed (helper litellm14)."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import anthropic
import orjson
import pytest

from proxy.errors import InvalidRequest
from proxy.protocols import SENT_ELSEWHERE, named_models
from proxy.protocols.anthropic import read_request as read_messages
from proxy.protocols.openai import _OTHERS as OPENAI_OTHERS
from proxy.protocols.openai import read_native, read_request
from tests.harness import serving
from tests.test_anthropic_fallbacks import ANSWERED, ASKED
from tests.test_fallback_models_judged import CONFIG, chat_through_proxy, messages_through_proxy, rerank_app

ELSEWHERE = "http://198.51.100.7:8000/v1"  # (TEST-NET-2: a server no route names)
HI: Any = [{"role": "user", "content": "hi"}]
USER_CONFIG = {"model_list": [{"model_name": ASKED, "litellm_params": {"model": "openai/x", "api_base": ELSEWHERE}}]}

# (extra body) -> the key refused (None: forwarded)
CASES = [
    ({"api_base": ELSEWHERE}, "api_base"),
    ({"base_url": ELSEWHERE}, "base_url"),
    ({"api_key": "sk-theirs", "api_base": ELSEWHERE}, "api_base"),  # (LiteLLM before 2026: let through with a key)
    ({"user_config": USER_CONFIG}, "user_config"),
    ({"aws_bedrock_runtime_endpoint": ELSEWHERE}, "aws_bedrock_runtime_endpoint"),
    ({"sagemaker_base_url": ELSEWHERE}, "sagemaker_base_url"),
    ({"deployment_url": ELSEWHERE}, "deployment_url"),
    ({"model_list": USER_CONFIG["model_list"]}, "model_list"),
    ({"oci_endpoint_id": "ocid1.generativeaiendpoint.oc1..x"}, "oci_endpoint_id"),
    # the region a provider's endpoint is in, which LiteLLM lets any client set: not the one a zone judged
    ({"aws_region_name": "us-east-1"}, "aws_region_name"),
    ({"vertex_location": "us-central1"}, "vertex_location"),
    ({"extra_body": {"vertex_ai_location": "us-central1"}}, "extra_body"),
    # in an object LiteLLM lays into the call as the body's own keys (its JSON text too): `param` that key
    ({"extra_body": {"api_base": ELSEWHERE}}, "extra_body"),
    ({"extra_body": orjson.dumps({"base_url": ELSEWHERE}).decode()}, "extra_body"),
    ({"litellm_params_template": {"api_base": ELSEWHERE, "api_key": "x"}}, "litellm_params_template"),
    ({"api_base": None}, "api_base"),  # (present: LiteLLM refuses it so too)
    # the provider, the deployed model or the stored credential in place of the deployment's, which LiteLLM lets any
    # client set (helper litellm15): before, forwarded
    ({"custom_llm_provider": "anthropic"}, "custom_llm_provider"),
    ({"deployment_id": "gpt-4o-other"}, "deployment_id"),
    ({"azure": True}, "azure"),
    ({"litellm_credential_name": "other-account"}, "litellm_credential_name"),
    ({"vertex_project": "someone-elses"}, "vertex_project"),
    ({"extra_body": {"vertex_ai_project": "someone-elses"}}, "extra_body"),
    ({"vertex_credentials": '{"project_id": "someone-elses"}'}, "vertex_credentials"),
    ({"fallbacks": [{"model": ANSWERED, "custom_llm_provider": "anthropic"}]}, "fallbacks"),
    # LiteLLM's names for them on any cloud provider (`region_name`: Bedrock's `aws_region_name`, Vertex's
    # `vertex_location`; `project`: Vertex's `vertex_project`; `pre_process_optional_params`), and watsonx's server
    # (`url`, or in `watsonx_credentials`, `wx_credentials`: `get_watsonx_credentials`): before, forwarded (review
    # revlitellm15)
    ({"region_name": "eu-central-1"}, "region_name"),
    ({"project": "someone-elses"}, "project"),
    ({"url": ELSEWHERE}, "url"),
    ({"extra_body": {"watsonx_credentials": {"url": ELSEWHERE, "apikey": "x"}}}, "extra_body"),
    # the S3 server LiteLLM's Bedrock modules upload a call's files to (its newest ban list): before, forwarded (helper
    # models16)
    ({"s3_endpoint_url": ELSEWHERE}, "s3_endpoint_url"),
    ({"extra_body": {"s3_endpoint_url": ELSEWHERE}}, "extra_body"),
    # watsonx's other names for its region (`get_api_params`), as `region_name` (helper models16)
    ({"region": "eu-de"}, "region"),
    ({"watsonx_region_name": "eu-de"}, "watsonx_region_name"),
    ({"fallbacks": [{"model": ANSWERED, "watsonx_region": "eu-de"}]}, "fallbacks"),
    ({"fallbacks": ["claude-other"], "base_url": ELSEWHERE}, "base_url"),  # (before the fallbacks are judged)
    ({"base_url": ELSEWHERE, "api_base": ELSEWHERE}, "base_url"),  # (the first in the body)
    # forwarded: a key of the caller's own to the provider, which names no server, and a plain body
    ({"api_key": "sk-theirs"}, None),
    # the caller's own account at the same provider, host and model (AWS's keys and role, as `api_key`), headers sent
    # to the deployment's server, an organization, and metadata (LiteLLM's callbacks read it, the call does not)
    ({"aws_access_key_id": "AKIAEXAMPLE", "aws_secret_access_key": "x", "aws_role_name": "r"}, None),
    # LiteLLM bans these too (credentials), but the call still reaches the deployment's Bedrock host, region and model:
    # the STS server a web identity token is exchanged at is sent the token, not the call (helper models16)
    ({"aws_role_name": "r", "aws_web_identity_token": "t", "aws_sts_endpoint": ELSEWHERE}, None),
    # watsonx's project or space a foundation model's call is billed to: the same host and model (helper models16)
    ({"project_id": "p", "watsonx_project": "p", "space_id": "s"}, None),
    ({"extra_headers": {"x-title": "t"}, "organization": "org-theirs"}, None),
    ({"metadata": {"tags": ["t"], "api_base": ELSEWHERE}}, None),
    ({"user": "someone"}, None),
    ({"extra_body": {"seed": 7}}, None),
    ({"extra_body": "not json"}, None),
    ({}, None),
]


def _refused(loop_thread: Any, make_proxy: Any, extra: dict[str, Any]) -> tuple[tuple[Any, ...], list[dict[str, Any]]]:
    """A chat to claude-asked with `extra` as its `extra_body`, for a purpose every route allows (`chat_through_proxy`,
    no telemetry): ((200, None, None) or (status, code, param) of the refusal, the bodies the upstream saw)."""
    status, _, seen, error = chat_through_proxy(loop_thread, None, make_proxy, CONFIG, "assistant", model=ASKED,
                                                messages=HI, extra_body=extra)  # fmt: skip
    return ((200, None, None) if error is None else (status, error.code, error.param)), seen


@pytest.mark.parametrize(("extra", "key"), CASES)
def test_a_chat_naming_another_server_is_refused(loop_thread, make_proxy, extra, key) -> None:  # type: ignore[no-untyped-def]
    """Through the real openai SDK (`extra_body`), for a purpose the route allows: 400 `invalid_request`, `param` the
    key, nothing forwarded; a body naming no server goes on."""
    got, seen = _refused(loop_thread, make_proxy, extra)
    assert got == ((200, None, None) if key is None else (400, "invalid_request", key))
    assert len(seen) == (1 if key is None else 0)


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"api_base": ELSEWHERE}, "api_base"),
        ({"custom_llm_provider": "bedrock"}, "custom_llm_provider"),
        ({"litellm_credential_name": "other-account"}, "litellm_credential_name"),
        ({}, None),
    ],
)
def test_a_messages_call_naming_another_server_is_refused(loop_thread, make_proxy, extra, key) -> None:  # type: ignore[no-untyped-def]
    """LiteLLM proxy's `/v1/messages` takes the same keys (its check runs on every LLM route): through the real
    anthropic SDK (`extra_body`), 400 `invalid_request`, nothing forwarded."""
    with messages_through_proxy(loop_thread, make_proxy, "assistant") as (client, seen):
        try:
            client.messages.create(model=ASKED, max_tokens=8, messages=HI, extra_body=extra)
            got: tuple[Any, ...] = (200, None)
        except anthropic.BadRequestError as error:
            body: Any = error.body
            got = (error.status_code, body["error"]["type"], f"'{key}'" in body["error"]["message"])
    assert got == ((200, None) if key is None else (400, "invalid_request_error", True))
    assert len(seen) == (1 if key is None else 0)


@pytest.mark.parametrize(("extra", "key"), [({"user_config": USER_CONFIG}, "user_config"), ({}, None)])
def test_a_rerank_naming_another_server_is_refused(loop_thread, make_proxy, extra, key) -> None:  # type: ignore[no-untyped-def]
    """The paths read as llama.cpp's native ones (`read_native`: LiteLLM proxy's `/v1/rerank`) too, by raw HTTP."""
    seen: list[dict[str, Any]] = []
    body = orjson.dumps({"model": ASKED, "query": "q", "documents": ["d"], **extra})
    with serving(loop_thread, rerank_app(seen)) as url:
        proxy = make_proxy(CONFIG, UPSTREAM=url)
        request = urllib.request.Request(f"{proxy.url}/v1/rerank", data=body, method="POST",
                                         headers={"content-type": "application/json", "x-purpose": "assistant"})  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                got: tuple[Any, ...] = (reply.status, None, None)
        except urllib.error.HTTPError as refused:
            error = orjson.loads(refused.read())["error"]
            got = (refused.code, error["code"], error["param"])
    assert got == ((200, None, None) if key is None else (400, "invalid_request", key))
    assert len(seen) == (1 if key is None else 0)


# (written out, not `SENT_ELSEWHERE`'s: a key dropped from it fails here)
KEYS = ["api_base", "base_url", "user_config", "model_list", "aws_bedrock_runtime_endpoint", "sagemaker_base_url",
        "deployment_url", "oci_endpoint_id", "oci_serving_mode", "aws_region_name", "vertex_location",
        "vertex_ai_location", "custom_llm_provider", "deployment_id", "azure", "litellm_credential_name",
        "vertex_project", "vertex_ai_project", "vertex_credentials", "vertex_ai_credentials", "region_name", "project",
        "url", "watsonx_credentials", "wx_credentials", "s3_endpoint_url", "region", "watsonx_region_name",
        "watsonx_region"]  # fmt: skip


def test_the_keys_are_these() -> None:
    assert frozenset(KEYS) == SENT_ELSEWHERE


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("operation", ["chat", "text_completion", "embeddings", "responses"])
def test_each_key_is_refused_on_each_operation(key: str, operation: str) -> None:
    """Every key, on each OpenAI-compatible operation (LiteLLM proxy checks the body on each), and on the Messages API
    and the native paths: an InvalidRequest naming it."""
    fields: dict[str, Any] = {"chat": {"messages": HI}, "text_completion": {"prompt": "hi"}, "embeddings": {"input": "hi"},
              "responses": {"input": "hi"}}[operation]  # fmt: skip
    body = orjson.dumps({"model": ASKED, **fields, key: ELSEWHERE})
    with pytest.raises(InvalidRequest) as refused:
        read_request(operation, body)
    assert refused.value.param == key
    with pytest.raises(InvalidRequest):
        read_messages(orjson.dumps({"model": ASKED, "max_tokens": 8, "messages": HI, key: ELSEWHERE}))
    with pytest.raises(InvalidRequest):
        read_native("rerank", orjson.dumps({"model": ASKED, "query": "q", "documents": ["d"], key: ELSEWHERE}))


# (extra body, purpose) -> the rule a refusal names (None: forwarded); routes claude-fallback [assistant], others ads too
OVERRIDES = [
    ({"router_settings_override": {"fallbacks": [{ASKED: [ANSWERED]}]}}, "ads", f"route:{ANSWERED}"),
    (
        {"router_settings_override": {"context_window_fallbacks": [{ASKED: [ANSWERED]}], "num_retries": 2}},
        "ads",
        f"route:{ANSWERED}",
    ),
    ({"router_settings_override": {"content_policy_fallbacks": [{ASKED: [ANSWERED]}]}}, "ads", f"route:{ANSWERED}"),
    # forwarded: the body's own fallbacks, which LiteLLM keeps over the override's; settings naming no model; a purpose
    # the fallback's route allows
    ({"fallbacks": ["claude-other"], "router_settings_override": {"fallbacks": [{ASKED: [ANSWERED]}]}}, "ads", None),
    ({"router_settings_override": {"timeout": 30, "num_retries": 1}}, "ads", None),
    ({"router_settings_override": {"fallbacks": [{ASKED: [ANSWERED]}]}}, "assistant", None),
]


@pytest.mark.parametrize(("extra", "purpose", "rule"), OVERRIDES)
def test_router_settings_override_fallbacks_are_judged(loop_thread, otlp, make_proxy, extra, purpose, rule) -> None:  # type: ignore[no-untyped-def]
    """LiteLLM proxy's `route_request` lays a body's `router_settings_override` fallbacks into the call where the body
    sets none itself (a key's or team's router settings replace it; a client's stays where neither has any): they are
    judged as the body's `fallbacks` are, through the real openai SDK: 403, rule `route:claude-fallback`, nothing
    forwarded. Before, unread: the `ads` chat was forwarded, recorded allowed, and LiteLLM fell back to claude-fallback."""
    got, span, seen, _ = chat_through_proxy(loop_thread, otlp, make_proxy, CONFIG, purpose, model=ASKED, messages=HI,
                                            extra_body=extra)  # fmt: skip
    assert (got, len(seen)) == ((200, 1) if rule is None else (403, 0))
    assert span.attributes.get("lineage.rule") == rule


def test_a_messages_call_s_router_settings_override_is_judged(loop_thread, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """LiteLLM proxy's `/v1/messages` runs through the same `route_request`: through the real anthropic SDK, 403."""
    with (
        messages_through_proxy(loop_thread, make_proxy, "ads") as (client, seen),
        pytest.raises(anthropic.PermissionDeniedError),
    ):
        client.messages.create(model=ASKED, max_tokens=8, messages=HI,
                               extra_body={"router_settings_override": {"fallbacks": [ANSWERED]}})  # fmt: skip
    assert seen == []


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"router_settings_override": {"fallbacks": [{"a": ["b"]}], "num_retries": 2}}, ("b",)),
        ({"router_settings_override": {"fallbacks": ["b"], "content_policy_fallbacks": [{"a": ["c"]}]}}, ("b", "c")),
        ({"fallbacks": ["x"], "router_settings_override": {"fallbacks": ["b"]}}, ("x",)),  # (the body's kept)
        ({"router_settings_override": {"timeout": 3}}, ()),
        ({"router_settings_override": "fallbacks"}, ()),  # (LiteLLM: `key in override_settings` finds none to set)
        ({"router_settings_override": None}, ()),
    ],
)
def test_named_models_reads_router_settings_override(data: dict[str, Any], expected: tuple[str, ...]) -> None:
    assert named_models(data, OPENAI_OTHERS) == expected


# a fallback given as an object, which LiteLLM's router lays over the call's keys (`run_async_fallback`:
# `kwargs.update(mg)`): (extra body) -> the key refused (None: forwarded), for a purpose every route allows
TARGETS = [
    ({"fallbacks": [{"model": ANSWERED, "api_base": ELSEWHERE}]}, "fallbacks"),
    ({"fallbacks": [{ASKED: [{"model": ANSWERED, "base_url": ELSEWHERE}]}]}, "fallbacks"),
    ({"context_window_fallbacks": [{ASKED: [{"api_base": ELSEWHERE}]}]}, "context_window_fallbacks"),  # (no `model`)
    ({"fallbacks": [{ASKED: [{"model": ANSWERED, "model_list": USER_CONFIG["model_list"]}]}]}, "fallbacks"),
    (
        {"router_settings_override": {"fallbacks": [{ASKED: [{"model": ANSWERED, "api_base": ELSEWHERE}]}]}},
        "router_settings_override",
    ),
    # in the object's `extra_body` (or its JSON text), the call's once the object is laid over it: until review
    # revmodels16 forwarded
    ({"fallbacks": [{"model": ANSWERED, "extra_body": {"api_base": ELSEWHERE}}]}, "fallbacks"),
    (
        {"fallbacks": [{ASKED: [{"model": ANSWERED, "extra_body": orjson.dumps({"base_url": ELSEWHERE}).decode()}]}]},
        "fallbacks",
    ),
    (
        {"router_settings_override": {"fallbacks": [{"model": ANSWERED, "litellm_params_template": {"region": "eu"}}]}},
        "router_settings_override",
    ),
    # forwarded: an object naming no server
    ({"fallbacks": [{ASKED: [{"model": ANSWERED}]}]}, None),
    ({"fallbacks": [{"model": ANSWERED, "temperature": 0.2}]}, None),
    ({"fallbacks": [{"model": ANSWERED, "extra_body": {"seed": 1}}]}, None),
]


@pytest.mark.parametrize(("extra", "key"), TARGETS)
def test_a_fallback_object_naming_another_server_is_refused(loop_thread, make_proxy, extra, key) -> None:  # type: ignore[no-untyped-def]
    """LiteLLM's router lays a fallback object's keys over the call's (its own newest check looks there too): its
    `api_base` sends the fallback's call to that server. Through the real openai SDK, for a purpose the fallback's
    route allows: 400 `invalid_request`, `param` the body's key, nothing forwarded. Before, forwarded, the server
    unread (review revlitellm14)."""
    got, seen = _refused(loop_thread, make_proxy, extra)
    assert got == ((200, None, None) if key is None else (400, "invalid_request", key))
    assert len(seen) == (1 if key is None else 0)


def test_a_messages_call_s_fallback_object_naming_another_server_is_refused(loop_thread, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """The Messages API reads the same fallbacks (LiteLLM proxy's `/v1/messages`): through the real anthropic SDK."""
    with (
        messages_through_proxy(loop_thread, make_proxy, "assistant") as (client, seen),
        pytest.raises(anthropic.BadRequestError) as refused,
    ):
        client.messages.create(model=ASKED, max_tokens=8, messages=HI,
                               extra_body={"fallbacks": [{"model": ANSWERED, "api_base": ELSEWHERE}]})  # fmt: skip
    assert refused.value.status_code == 400
    assert seen == []


# a fallback object's own fallbacks, the router's next round (`kwargs.update(mg)` sets the call's `fallbacks`):
# (extra body, purpose) -> the rule a refusal names (None: forwarded); routes claude-fallback [assistant], others ads too
ROUNDS = [
    ({"fallbacks": [{"model": "claude-other", "fallbacks": [ANSWERED]}]}, "ads", f"route:{ANSWERED}"),
    (
        {
            "fallbacks": [
                {ASKED: [{"model": "claude-other", "content_policy_fallbacks": [{"claude-other": [ANSWERED]}]}]}
            ]
        },
        "ads",
        f"route:{ANSWERED}",
    ),
    ({"fallbacks": [{"model": "claude-other", "fallbacks": [ANSWERED]}]}, "assistant", None),
    ({"fallbacks": [{"model": "claude-other", "num_retries": 1}]}, "ads", None),
]


@pytest.mark.parametrize(("extra", "purpose", "rule"), ROUNDS)
def test_a_fallback_object_s_own_fallbacks_are_judged(loop_thread, otlp, make_proxy, extra, purpose, rule) -> None:  # type: ignore[no-untyped-def]
    """LiteLLM's router, falling back to an object, lays its keys over the call's, `fallbacks` among them: should that
    model fail too, the router falls back to those. Judged as the body's own, through the real openai SDK: 403, rule
    `route:claude-fallback`, nothing forwarded. Before, only the object's `model` was read: the `ads` chat was
    forwarded, recorded allowed (review revlitellm14)."""
    got, span, seen, _ = chat_through_proxy(loop_thread, otlp, make_proxy, CONFIG, purpose, model=ASKED, messages=HI,
                                            extra_body=extra)  # fmt: skip
    assert (got, len(seen)) == ((200, 1) if rule is None else (403, 0))
    assert span.attributes.get("lineage.rule") == rule


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"fallbacks": [{"model": "b", "fallbacks": ["c"]}]}, ("b", "c")),
        (
            {
                "fallbacks": [
                    {"a": [{"model": "b", "fallbacks": [{"model": "c", "context_window_fallbacks": [{"c": ["d"]}]}]}]}
                ]
            },
            ("b", "c", "d"),
        ),
        ({"fallbacks": [{"a": [{"model": "b"}, "c"]}]}, ("b", "c")),  # (an object in a map's list: its `model`)
        ({"fallbacks": [{"a": [{"temperature": 1}]}]}, (None,)),  # (no `model`: the call's stays, fail-safe)
    ],
)
def test_named_models_reads_fallback_objects(data: dict[str, Any], expected: tuple[str | None, ...]) -> None:
    assert named_models(data, OPENAI_OTHERS) == expected


def test_fallback_objects_nested_past_the_bound_are_refused() -> None:
    """Each round's entries count toward `NAMED_MODELS_MAX`: a chain 100 objects deep is refused, not followed."""
    deep: dict[str, Any] = {"model": "z"}
    for at in range(100):
        deep = {"model": f"m{at}", "fallbacks": [deep]}
    with pytest.raises(InvalidRequest) as refused:
        named_models({"router_settings_override": {"fallbacks": [deep]}}, OPENAI_OTHERS)
    assert refused.value.param == "router_settings_override"


def test_a_key_at_the_top_is_named_before_a_fallback_object_s() -> None:
    """The README's order: a key at the body's top is checked before the fallbacks are read, wherever it stands."""
    body = {
        "model": ASKED,
        "messages": HI,
        "fallbacks": [{"model": ANSWERED, "api_base": ELSEWHERE}],
        "base_url": ELSEWHERE,
    }
    with pytest.raises(InvalidRequest) as refused:
        read_request("chat", orjson.dumps(body))
    assert refused.value.param == "base_url"
    del body["base_url"]
    with pytest.raises(InvalidRequest) as refused:
        read_request("chat", orjson.dumps(body))
    assert refused.value.param == "fallbacks"

"""An object LiteLLM proxy lays into the upstream's body as the body's own keys (`extra_body`, or its JSON text: what the
openai SDK sends for `extra_body={"extra_body": {...}}`; LiteLLM keeps it whole as the provider call's `extra_body`,
which the openai SDK lays over the body it builds) was read as text alone: a `response_format` whose schema holds a
`pattern` there went on unmarked where the same key at the top is `scan:truncated`; a tool there whose property is
*named* `ana@example.org` went on unlabelled, where top-level tools are read whole (keys too); parts run together,
a Responses `text` schema, an `item_reference`, a `tool_choice` replacing the body's, a Messages `output_format`: each
unread as its rule reads it at the top. And an engine's id there (`request_id`) was read as text, where at the top it
is not (`ENGINE_IDS`). Now such a body is read as LiteLLM hands it on (the spread keys laid over the body's), and less
its spread objects, by the same reader (helper spread17)."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import anthropic as anthropic_sdk
import openai
import orjson
import pytest

from proxy.errors import InvalidRequest
from proxy.protocols import OthersNamed, anthropic
from proxy.protocols.openai import read_request
from tests.configs import ONE_UPSTREAM
from tests.harness import ProxyHandle
from tests.servers.vllm_like import SERVED, VllmLike
from tests.test_grammar_own_unread import CONFIG

PATTERN = "^alice\\x40example\\.com$"  # no string of it is the address
HELD = {"type": "object", "properties": {"to": {"type": "string", "pattern": PATTERN}}, "required": ["to"]}
NAMED_BY_ADDRESS = {"type": "object", "properties": {"ana@example.org": {"type": "string"}}}
TOOLS = [{"type": "function", "function": {"name": "send", "parameters": NAMED_BY_ADDRESS}}]
HELD_TOOLS = [{"type": "function", "function": {"name": "send", "parameters": HELD}}]
MESSAGES: Any = [{"role": "user", "content": "Write it."}]
SPLIT = [
    {"role": "user", "content": [{"type": "text", "text": "mail alice"}, {"type": "text", "text": "@example.com"}]}
]
UNREAD, MAIL = "scan:truncated", "pii:email"
TOOLS_SPREAD: dict[str, Any] = {"tools": TOOLS}

# (the spread object, the keys beside it at the body's top, the label its reading gives: None for none)
CHAT: list[tuple[str, dict[str, Any], dict[str, Any], str | None]] = [
    ("response_format", {"response_format": {"type": "json_schema", "json_schema": {"name": "m", "schema": HELD}}},
     {}, UNREAD),
    ("guided_json", {"guided_json": HELD}, {}, UNREAD),
    ("grammar", {"grammar": 'root ::= "alice\\x40example.com"'}, {}, UNREAD),
    ("structured_outputs regex", {"structured_outputs": {"regex": "alice\\x40example\\.com"}}, {}, UNREAD),
    ("tools read whole", TOOLS_SPREAD, {}, MAIL),
    ("tool_choice replacing the body's", {"tool_choice": "required"}, {"tools": HELD_TOOLS, "tool_choice": "none"},
     UNREAD),
    ("messages run together", {"messages": SPLIT}, {}, MAIL),
    ("an engine's id unread", {"request_id": "ana@example.org"}, {}, None),
    ("a parameter", {"seed": 7}, {}, None),
]  # fmt: skip


def _holds(texts: tuple[str, ...]) -> bool:
    """Whether a text read holds the address a property is named (as JSON text, the whole object is one text)."""
    return any("ana@example.org" in text for text in texts)


@pytest.mark.parametrize("as_text", [False, True], ids=["object", "JSON text"])
@pytest.mark.parametrize(("spread", "beside", "label"), [case[1:] for case in CHAT], ids=[case[0] for case in CHAT])
def test_a_chat_spread_object_is_read_as_its_keys_at_the_top(
    spread: dict[str, Any], beside: dict[str, Any], label: str | None, as_text: bool
) -> None:
    """The reader's verdict on the body LiteLLM hands on: what the same keys at the top give."""
    top = read_request("chat", orjson.dumps({"model": "m", "messages": MESSAGES, **beside, **spread}))
    value = orjson.dumps(spread).decode() if as_text else spread
    request = read_request("chat", orjson.dumps({"model": "m", "messages": MESSAGES, **beside, "extra_body": value}))
    assert request.unscanned is top.unscanned is (label == UNREAD)
    assert _holds(request.texts) is _holds(top.texts) is (spread is TOOLS_SPREAD)
    assert request.joined == top.joined or set(top.joined) <= set(request.joined)


@pytest.mark.parametrize(("spread", "beside", "label"), [case[1:] for case in CHAT], ids=[case[0] for case in CHAT])
def test_a_chat_spread_object_through_the_openai_sdk(
    spread: dict[str, Any], beside: dict[str, Any], label: str | None, vllm: tuple[VllmLike, str], make_proxy: Any
) -> None:
    """Through the real `openai` SDK (`extra_body={"extra_body": {...}}` puts the object on the wire): refused before
    the model for a purpose the zone of its label forbids (before: 200, unmarked; an engine's id: before 403,
    `pii:email`, a label of text no server prints)."""
    server, upstream = vllm
    proxy: ProxyHandle = make_proxy(CONFIG, UPSTREAM=upstream)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=30)
    try:
        if label is None:
            reply = client.chat.completions.with_raw_response.create(
                model=SERVED, messages=MESSAGES, extra_headers={"x-purpose": "marketing"},
                extra_body={**beside, "extra_body": spread},
            )  # fmt: skip
            assert reply.http_response.status_code == 200
            assert reply.http_response.headers["x-data-labels"] == ""
            assert len(server.data_requests()) == 1
            return
        with pytest.raises(openai.PermissionDeniedError) as refused:
            client.chat.completions.create(model=SERVED, messages=MESSAGES, extra_headers={"x-purpose": "marketing"},
                                           extra_body={**beside, "extra_body": spread})  # fmt: skip
        assert label in refused.value.response.text
        assert server.data_requests() == []
    finally:
        client.close()


RESPONSES: list[tuple[str, dict[str, Any], str]] = [
    ("text format", {"text": {"format": {"type": "json_schema", "name": "m", "schema": HELD}}}, UNREAD),
    ("input item_reference", {"input": [{"type": "item_reference", "id": "msg_1"}]}, UNREAD),
    ("tools read whole", {"tools": [{"type": "function", "name": "send", "parameters": NAMED_BY_ADDRESS}]}, MAIL),
]


@pytest.mark.parametrize(("spread", "label"), [case[1:] for case in RESPONSES], ids=[case[0] for case in RESPONSES])
def test_a_responses_spread_object_through_the_openai_sdk(
    spread: dict[str, Any], label: str, vllm: tuple[VllmLike, str], make_proxy: Any
) -> None:
    server, upstream = vllm
    proxy: ProxyHandle = make_proxy(CONFIG, UPSTREAM=upstream)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=30)
    try:
        with pytest.raises(openai.PermissionDeniedError) as refused:
            client.responses.create(model=SERVED, input="Write it.", extra_headers={"x-purpose": "marketing"},
                                    extra_body={"extra_body": spread})  # fmt: skip
        assert label in refused.value.response.text
        assert server.data_requests() == []
    finally:
        client.close()


def test_a_completions_spread_grammar_through_the_openai_sdk(vllm: tuple[VllmLike, str], make_proxy: Any) -> None:
    server, upstream = vllm
    proxy: ProxyHandle = make_proxy(CONFIG, UPSTREAM=upstream)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=30)
    try:
        with pytest.raises(openai.PermissionDeniedError) as refused:
            client.completions.create(model=SERVED, prompt="Write it.", extra_headers={"x-purpose": "marketing"},
                                      extra_body={"extra_body": {"guided_regex": "alice\\x40example\\.com"}})  # fmt: skip
        assert UNREAD in refused.value.response.text
        assert server.data_requests() == []
    finally:
        client.close()


MESSAGES_API: list[tuple[str, dict[str, Any], str]] = [
    ("output_format", {"output_format": {"type": "json_schema", "schema": HELD}}, UNREAD),
    ("tools read whole", {"tools": [{"name": "send", "input_schema": NAMED_BY_ADDRESS}]}, MAIL),
    ("system run together", {"system": [{"type": "text", "text": "mail alice"}, {"type": "text", "text": "@example.com"}]},
     MAIL),
]  # fmt: skip


@pytest.mark.parametrize(
    ("spread", "label"), [case[1:] for case in MESSAGES_API], ids=[case[0] for case in MESSAGES_API]
)
def test_a_messages_spread_object_through_the_anthropic_sdk(
    spread: dict[str, Any], label: str, vllm: tuple[VllmLike, str], make_proxy: Any
) -> None:
    top = anthropic.read_request(orjson.dumps({"model": "m", "max_tokens": 8, "messages": MESSAGES, **spread}))
    assert top.unscanned is (label == UNREAD)  # (the same keys at the top)
    server, upstream = vllm
    proxy: ProxyHandle = make_proxy(CONFIG, UPSTREAM=upstream)
    client = anthropic_sdk.Anthropic(base_url=proxy.url, api_key="unused", max_retries=0, timeout=30)
    try:
        with pytest.raises(anthropic_sdk.PermissionDeniedError) as refused:
            client.messages.create(model=SERVED, max_tokens=8, messages=MESSAGES,
                                   extra_headers={"x-purpose": "marketing"},
                                   extra_body={"extra_body": spread})  # fmt: skip
        assert label in refused.value.message
        assert server.data_requests() == []
    finally:
        client.close()


@pytest.mark.parametrize("as_text", [False, True], ids=["object", "JSON text"])
def test_a_spread_model_other_than_the_bodys_is_refused(
    as_text: bool, vllm: tuple[VllmLike, str], make_proxy: Any
) -> None:
    """A spread object's `model` replaces the body's in what LiteLLM sends the upstream (the openai SDK lays
    `extra_body` over the body it builds, `model` too): the server runs that model, the proxy having judged and
    recorded the body's. Refused 400 `invalid_request`, `param` the spread key, before the model (before: forwarded,
    200); the body's own model there goes on."""
    server, upstream = vllm
    proxy: ProxyHandle = make_proxy(CONFIG, UPSTREAM=upstream)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=30)
    other: Any = orjson.dumps({"model": "claude-elsewhere"}).decode() if as_text else {"model": "claude-elsewhere"}
    try:
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(model=SERVED, messages=MESSAGES, extra_body={"extra_body": other})
        assert refused.value.body["param"] == "extra_body"  # type: ignore[index]
        assert "claude-elsewhere" in refused.value.message
        assert server.data_requests() == []
        same = client.chat.completions.with_raw_response.create(
            model=SERVED, messages=MESSAGES, extra_body={"extra_body": {"model": SERVED}}
        )
        assert same.http_response.status_code == 200
    finally:
        client.close()
    messages_client = anthropic_sdk.Anthropic(base_url=proxy.url, api_key="unused", max_retries=0, timeout=30)
    try:
        with pytest.raises(anthropic_sdk.BadRequestError) as refused_messages:
            messages_client.messages.create(model=SERVED, max_tokens=8, messages=MESSAGES,
                                            extra_body={"extra_body": other})  # fmt: skip
        assert "claude-elsewhere" in refused_messages.value.message
    finally:
        messages_client.close()


def test_state_and_token_ids_in_a_spread_object_are_read_as_at_the_top() -> None:
    """A Responses `previous_response_id` (the reply it builds on) and `conversation` there, and token ids as a
    completion's `prompt`: what the same keys at the top give (before: no reply built on, read whole)."""
    spread = {"previous_response_id": "resp_1", "conversation": "conv_1"}
    request = read_request("responses", orjson.dumps({"model": "m", "input": "hi", "extra_body": spread}))
    assert (request.builds_on, request.unscanned) == ("resp_1", True)
    tokens = read_request(
        "text_completion", orjson.dumps({"model": "m", "prompt": "hi", "extra_body": {"prompt": [1]}})
    )
    assert tokens.unscanned


SPREAD_KEYS = ("extra_body", "litellm_embedding_config", "litellm_params_template")
NESTED = [(outer, inner) for outer in ("extra_body", "litellm_params_template") for inner in SPREAD_KEYS]


@pytest.mark.parametrize("as_text", [False, True], ids=["object", "JSON text"])
@pytest.mark.parametrize(("outer", "inner"), NESTED, ids=[f"{outer}.{inner}" for outer, inner in NESTED])
def test_a_spread_objects_own_spread_key_is_read_as_text(outer: str, inner: str, as_text: bool) -> None:
    """A spread object's own `extra_body` (or other `_SPREAD` key) is a key of the upstream's body, not spread again,
    and read as text alone as before 2026-12-07: the spread reading dropped it, its text read nowhere (review
    revspread17: 12 of 12 failing before)."""
    held: Any = {inner: {"note": "ana@example.org"}}
    value = orjson.dumps(held).decode() if as_text else held
    for operation, body in (("chat", {"messages": MESSAGES}), ("responses", {"input": "hi"}),
                            ("text_completion", {"prompt": "hi"})):  # fmt: skip
        request = read_request(operation, orjson.dumps({"model": "m", **body, outer: value}))
        assert _holds(request.texts), operation
    messages = anthropic.read_request(orjson.dumps({"model": "m", "max_tokens": 8, "messages": MESSAGES, outer: value}))
    assert _holds(messages.texts)


def test_a_spread_objects_own_extra_body_through_the_openai_sdk(vllm: tuple[VllmLike, str], make_proxy: Any) -> None:
    """Through the real `openai` SDK: an address in `extra_body`'s own `extra_body` is labelled, refused for a purpose
    its zone forbids, before the model (review revspread17: before, 200 unlabelled)."""
    server, upstream = vllm
    proxy: ProxyHandle = make_proxy(CONFIG, UPSTREAM=upstream)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=30)
    try:
        with pytest.raises(openai.PermissionDeniedError) as refused:
            client.chat.completions.create(model=SERVED, messages=MESSAGES, extra_headers={"x-purpose": "marketing"},
                                           extra_body={"extra_body": {"extra_body": {"note": "ana@example.org"}}})  # fmt: skip
        assert MAIL in refused.value.response.text
        assert server.data_requests() == []
    finally:
        client.close()


@pytest.mark.parametrize(
    "spread_lora", [[{"id": 1, "scale": 1}], [], None], ids=["another adapter", "none named", "null"]
)
def test_a_spread_lora_is_the_version_recorded(spread_lora: Any) -> None:
    """llama.cpp's per-request `lora` in a spread object replaces the body's in what LiteLLM hands on, so the server
    applies the object's adapters: the call's version is theirs, as the same `lora` at the top gives (review
    revspread17: the body's own, `lora:0=1.0`, was recorded where id 1 ran; 3 of 3 failing before)."""
    own = {"model": "m", "messages": MESSAGES, "lora": [{"id": 0, "scale": 1}]}
    request = read_request("chat", orjson.dumps({**own, "extra_body": {"lora": spread_lora}}))
    assert request.version == read_request("chat", orjson.dumps({**own, "lora": spread_lora})).version
    assert request.version != "lora:0=1.0"


def _deep(levels: int) -> bytes:
    return b"[" * levels + b"1" + b"]" * levels


@pytest.mark.parametrize("levels", [1_005, 1_020])
def test_a_spread_body_nested_past_what_json_writes_is_refused(levels: int) -> None:
    """A body nested past the levels Python's `json` writes (orjson, writing 254, reads 1,024) cannot be handed on
    re-written: refused, an InvalidRequest (review revspread17: a RecursionError, 2 of 2 failing before)."""
    chat = b'{"model":"m","messages":[{"role":"user","content":"hi"}],"extra_body":{"x":' + _deep(levels) + b"}}"
    with pytest.raises(InvalidRequest, match="nested too deeply"):
        read_request("chat", chat)
    messages = chat.replace(b'"model":"m",', b'"model":"m","max_tokens":8,')
    with pytest.raises(InvalidRequest, match="nested too deeply"):
        anthropic.read_request(messages)


def test_a_spread_body_nested_deeply_through_the_proxy(vllm: tuple[VllmLike, str], make_proxy: Any) -> None:
    """By raw HTTP: 400 `invalid_request`, the model sent nothing (review revspread17: before, the reader's
    RecursionError failed the call, 500; 1 of 1 failing before). One nested 300 levels (past orjson's 254) is read."""
    server, upstream = vllm
    proxy: ProxyHandle = make_proxy(CONFIG, UPSTREAM=upstream)
    got = []
    for levels in (1_010, 300):
        body = b'{"model":"%s","messages":[{"role":"user","content":"hi"}],"extra_body":{"x":%s}}' % (
            SERVED.encode(),
            _deep(levels),
        )
        request = urllib.request.Request(f"{proxy.url}/v1/chat/completions", data=body, method="POST",
                                         headers={"content-type": "application/json", "x-purpose": "assistant"})  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                got.append((reply.status, None))
        except urllib.error.HTTPError as refused:
            got.append((refused.code, orjson.loads(refused.read())["error"]["code"]))
    assert got == [(400, "invalid_request"), (200, None)]
    assert len(server.data_requests()) == 1


@pytest.mark.parametrize("own", [{"temperature": 0.1, "max_tokens": 16}, {}], ids=["the body's replaced", "alone"])
def test_a_spread_parameter_is_recorded_as_run(own: dict[str, Any]) -> None:
    """A parameter in a spread object replaces the body's in what LiteLLM hands on: recorded (the span's
    `gen_ai.request.*`) as the same keys at the top give (review revspread17: the body's own, 0.1 and 16 recorded
    where 1.5 and 512 ran, or none where only the object set them; 2 of 2 failing before)."""
    spread = {"temperature": 1.5, "max_completion_tokens": 512}
    body = {"model": "m", "messages": MESSAGES, **own}
    request = read_request("chat", orjson.dumps({**body, "extra_body": spread}))
    top = read_request("chat", orjson.dumps({**body, **spread}))
    assert dict(request.params) == dict(top.params) == {"temperature": 1.5, "max_tokens": 512}


def test_a_spread_parameter_on_the_span(vllm: tuple[VllmLike, str], otlp: Any, make_proxy: Any) -> None:
    """Through the real `openai` SDK to a real OTLP receiver: the span says the temperature the server ran with
    (review revspread17: 0.1, the body's; 1 of 1 failing before)."""
    _, upstream = vllm
    telemetry = "telemetry:\n  exporter: otlp\n  endpoint: ${OTLP}\n  protocol: grpc\n"
    proxy: ProxyHandle = make_proxy(ONE_UPSTREAM + telemetry, UPSTREAM=upstream, OTLP=f"http://127.0.0.1:{otlp.port}")
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=30)
    try:
        reply = client.chat.completions.with_raw_response.create(
            model="llama-3.1-8b", messages=MESSAGES, temperature=0.1, extra_body={"extra_body": {"temperature": 1.5}}
        )
    finally:
        client.close()
    assert otlp.by_trace(reply.http_response.headers["x-trace-id"]).attributes["gen_ai.request.temperature"] == 1.5


@pytest.mark.parametrize("as_text", [False, True], ids=["object", "JSON text"])
def test_a_fallbacks_spread_model_other_than_its_own_is_refused(as_text: bool) -> None:
    """LiteLLM's router lays a fallback object over the call's keys (`kwargs.update(mg)`), its `extra_body` too, which
    the openai SDK lays over the body it sends: `{"model": "b", "extra_body": {"model": "z"}}` runs `z` where `b` was
    judged. Refused, `param` the body's key (review revspread17: 2 of 2 failing before); its own model there goes on."""
    other: Any = orjson.dumps({"model": "z"}).decode() if as_text else {"model": "z"}
    with pytest.raises(InvalidRequest, match="'z'") as refused:
        read_request("chat", orjson.dumps({"model": "m", "messages": MESSAGES,
                                           "fallbacks": [{"model": "b", "extra_body": other}]}))  # fmt: skip
    assert refused.value.param == "fallbacks"
    same = {"model": "m", "messages": MESSAGES, "fallbacks": [{"model": "b", "extra_body": {"model": "b"}}]}
    with pytest.raises(OthersNamed) as named:  # (judged as the call naming `b` it is)
        read_request("chat", orjson.dumps(same))
    assert "b" in named.value.models

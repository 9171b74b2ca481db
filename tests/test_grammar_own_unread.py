"""A grammar or a regular expression a request holds the model's output to (llama-cpp-python's and llama.cpp's GBNF
`grammar`, vLLM's `guided_grammar`, `guided_regex`, `structured_outputs`' `grammar` and `regex`) is a program, as a
chat template of the request's own is: it writes text standing nowhere in it. The proxy read its literal text alone,
so a GBNF escape (`"alice\\x40example.com"`), literals run together (`"alice" "@" "example.com"`) or a class (`[@]`)
took the real llama-cpp-python server's model to write `alice@example.com` for a purpose the zone of addresses
forbids, the request unlabelled (the reply labelled, after the model wrote it). Such a request is now
`scan:truncated`, its literal text read as before; a JSON schema is read whole, as the text it is. So is a TGI
call whose `parameters.grammar` is a regular expression (`{"type": "regex", "value": "alice@example\\.com"}`)."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import orjson
import pytest

from proxy.protocols.openai import NATIVE, read_native, read_request
from tests.harness import LLAMACPP_HEAD, ProxyHandle
from tests.servers.tgi import Tgi
from tests.servers.vllm_like import SERVED, VllmLike
from tests.test_tgi_native import tgi

__all__ = ["tgi"]  # (the fixture, shared)

ADDRESS = "alice@example.com"
CONFIG = (
    LLAMACPP_HEAD
    + """zones:
  - name: mail
    labels: [pii:email]
    allow_purposes: [assistant]
  - name: unread
    labels: [scan:truncated]
    allow_purposes: [assistant]
detectors: [email]
lineage:
  store: ${STORE}
"""
)
# each holds the model to the address, written so that no string of it is one
GRAMMARS = {
    "escape": 'root ::= "alice\\x40example.com"',
    "literals": 'root ::= "alice" "@" "example.com"',
    "class": 'root ::= "alice" [@] "example.com"',
}
# SGLang's `CustomLogitProcessor.to_str()`: the class serialized with dill, which its server loads and runs over the
# logits of each step (`--enable-custom-logit-processor`), with the call's `custom_params`: it may force any token
PROCESSOR = '{"callable": "8004952d000000000000008c0a64696c6c2e5f64696c6c948c0c5f6372656174655f74797065949394"}'
BODY: dict[str, Any] = {"model": "smollm2", "messages": [{"role": "user", "content": "Write it."}], "max_tokens": 24,
                        "temperature": 0, "seed": 7}  # fmt: skip


@pytest.mark.realserver
@pytest.mark.parametrize("grammar", list(GRAMMARS.values()), ids=list(GRAMMARS))
def test_a_grammar_of_the_requests_own_is_refused_where_unread_data_is(
    grammar: str, llama: str, make_proxy: Any
) -> None:
    body = {**BODY, "grammar": grammar}
    direct = httpx.post(f"{llama}/v1/chat/completions", json=body, timeout=120)
    assert direct.json()["choices"][0]["message"]["content"] == ADDRESS  # what the real server's model writes
    proxy: ProxyHandle = make_proxy(CONFIG, UPSTREAM=llama)
    url = f"{proxy.url}/v1/chat/completions"
    refused = httpx.post(url, json=body, headers={"x-purpose": "marketing"}, timeout=120)
    assert refused.status_code == 403, refused.text  # (before: 200, the address written)
    assert "scan:truncated" in refused.json()["error"]["message"]
    allowed = httpx.post(url, json=body, timeout=120)  # for the purpose the zones allow: as directly
    assert allowed.status_code == 200 and allowed.json()["choices"][0]["message"]["content"] == ADDRESS
    assert "scan:truncated" in allowed.headers["x-data-labels"].split(",")


@pytest.mark.realserver
def test_a_json_schema_is_read_whole_not_unread(llama: str, make_proxy: Any) -> None:
    proxy: ProxyHandle = make_proxy(CONFIG, UPSTREAM=llama)
    body = {**BODY, "response_format": {"type": "json_object", "schema": {"type": "string", "enum": ["red", "blue"]}}}
    reply = httpx.post(f"{proxy.url}/v1/chat/completions", json=body, headers={"x-purpose": "marketing"}, timeout=120)
    assert reply.status_code == 200 and reply.headers["x-data-labels"] == "", reply.headers


@pytest.mark.parametrize(
    ("fields", "unread"),
    [
        ({"grammar": GRAMMARS["literals"]}, True),
        ({"guided_grammar": GRAMMARS["class"]}, True),
        ({"guided_regex": "alice@example\\.com"}, True),
        ({"structured_outputs": {"regex": "alice@example\\.com"}}, True),
        ({"structured_outputs": {"grammar": GRAMMARS["escape"]}}, True),
        ({"response_format": {"type": "regex", "value": "alice@example\\.com"}}, True),  # TGI's chat API's
        ({"regex": "alice@example\\.com"}, True),  # SGLang's (its OpenAI API's `regex` and `ebnf`)
        ({"ebnf": GRAMMARS["literals"]}, True),
        ({"custom_logit_processor": PROCESSOR}, True),  # SGLang's: a dill-serialized class run over the logits
        ({"custom_logit_processor": ""}, False),
        ({"response_format": {"type": "regex", "value": ""}}, False),  # (none, as an empty `grammar`)
        ({"response_format": {"type": "json_object"}}, False),
        ({"response_format": {"type": "json", "value": {"enum": ["red"]}}}, False),
        ({"structured_outputs": {"choice": ["red", "blue"]}}, False),  # its literals, read as they are
        ({"structured_outputs": {"json": {"type": "string"}}}, False),
        ({"guided_json": {"type": "string"}}, False),
        ({"grammar": ""}, False),  # (none: llama-cpp-python's default)
        ({"grammar": None}, False),
        ({}, False),
    ],
)
def test_a_request_holding_a_grammar_is_unread(fields: dict[str, Any], unread: bool) -> None:
    for operation, content in (("chat", {"messages": BODY["messages"]}), ("text_completion", {"prompt": "Write it."})):
        request = read_request(operation, orjson.dumps({"model": "m", **content, **fields}))
        assert request.unscanned is unread, (operation, fields)
    native = read_native(NATIVE["/completion"], orjson.dumps({"prompt": "Write it.", **fields}))
    assert native.unscanned is unread, fields


@pytest.mark.parametrize(
    ("grammar", "unread"),
    [
        ({"type": "regex", "value": "alice@example\\.com"}, True),
        ({"type": "json", "value": {"enum": ["red", "blue"]}}, False),  # read whole
        ({"type": "regex", "value": ""}, False),  # (none, as an empty `grammar`)
    ],
)
def test_a_tgi_regex_grammar_is_unread(grammar: dict[str, Any], unread: bool, tgi: Tgi, make_proxy: Any) -> None:
    """TGI holds the output to `parameters.grammar`; a regular expression writes `alice@example.com` from
    `alice@example\\.com`, which the proxy read as text alone (before: forwarded for a purpose the zone of addresses
    refuses, unlabelled)."""
    proxy: ProxyHandle = make_proxy(CONFIG, UPSTREAM=tgi.url)
    body = {"inputs": "Write it.", "parameters": {"grammar": grammar, "max_new_tokens": 8}}
    reply = httpx.post(f"{proxy.url}/generate", json=body, headers={"x-purpose": "marketing"}, timeout=30)
    assert (reply.status_code == 403) is unread, reply.text
    assert ("scan:truncated" in reply.text) is unread
    assert (tgi.received == []) is unread  # nothing reached the model


@pytest.mark.parametrize(("processor", "unread"), [(PROCESSOR, True), ("", False)], ids=["processor", "empty"])
def test_a_custom_logit_processor_is_refused_before_the_vllm_like_server(
    processor: str, unread: bool, vllm: tuple[VllmLike, str], make_proxy: Any
) -> None:
    """Through the real `openai` SDK (`extra_body`, as SGLang's documentation sends it): SGLang runs the class over the
    logits, a program writing what it likes, so the call is `scan:truncated` and refused where unread data is (before:
    forwarded, 200, unlabelled); an empty one is none (SGLang's default)."""
    server, upstream = vllm
    proxy: ProxyHandle = make_proxy(CONFIG, UPSTREAM=upstream)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=30)
    messages: Any = [{"role": "user", "content": "Write it."}]
    try:
        reply = client.chat.completions.with_raw_response.create(
            model=SERVED,
            messages=messages,
            extra_headers={"x-purpose": "marketing"},
            extra_body={"custom_logit_processor": processor, "custom_params": {"token_id": 5}},
        )
        status = reply.http_response.status_code
    except openai.PermissionDeniedError as refused:
        assert "scan:truncated" in refused.response.text
        status = refused.status_code
    assert (status == 403) is unread
    assert (server.data_requests() == []) is unread

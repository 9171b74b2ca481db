"""A JSON schema's `pattern` (and `patternProperties`' keys) is a regular expression the server's schema decoding holds
the model's output to (vLLM's xgrammar and outlines, llama.cpp's json-schema-to-grammar, TGI's outlines), and a vLLM
structural tag may nest xgrammar's `grammar` and `regex` formats: programs, as `own_grammar`'s grammars are, which
write text standing nowhere in the request (`"^alice\\x40example\\.com$"`, `alice@example\\.com`). The proxy read
their text alone, so such a request went to the model unlabelled for a purpose the zone of addresses forbids. Now it
is `scan:truncated` wherever the server holds the output to the schema: `response_format`'s schema, `guided_json`,
`structured_outputs`' `json` and `structural_tag`, TGI's json grammar, a tool's `parameters` unless `tool_choice` is
`"none"`. A schema without one, a property named `pattern` or `patternProperties`, stays read whole."""

from __future__ import annotations

import gzip
import json
from typing import Any

import anthropic as anthropic_sdk
import httpx
import openai
import orjson
import pytest

from proxy import protocols
from proxy.protocols import anthropic
from proxy.protocols.openai import NATIVE, read_native, read_request
from tests.harness import ProxyHandle
from tests.servers.tgi import Tgi
from tests.servers.vllm_like import SERVED, VllmLike
from tests.test_grammar_own_unread import CONFIG
from tests.test_tgi_native import tgi

__all__ = ["tgi"]  # (the fixture, shared)

PATTERN = "^alice\\x40example\\.com$"  # no string of it is the address; the decoding writes `alice@example.com`
HELD = {"type": "object", "properties": {"to": {"type": "string", "pattern": PATTERN}}, "required": ["to"]}
KEYED = {"type": "object", "patternProperties": {"^alice@example\\.com$": {"type": "string"}}}
NAMED = {"type": "object", "properties": {"pattern": {"type": "string"}, "date": {"type": "string", "format": "date"}}}
# a tool whose parameter is named `patternProperties` (or `pattern`): names, not keywords; until 2026-12-07 the first was
# taken for the keyword, the call unread where one named `pattern` was read
NAMED_KEYWORD = {
    "type": "object",
    "properties": {"patternProperties": {"type": "string"}},
    "required": ["patternProperties"],
}
# the keyword itself under such a name, or in a definition named so: still a regular expression
KEYED_NAMED = {"type": "object", "properties": {"patternProperties": KEYED}}
KEYED_DEFINED = {"$defs": {"patternProperties": KEYED}, "properties": {"a": {"$ref": "#/$defs/patternProperties"}}}
TAG_GRAMMAR = {"type": "structural_tag", "format": {"type": "grammar", "grammar": 'root ::= "alice" "@" "example.com"'}}
TAG_REGEX = {"type": "structural_tag", "format": {"type": "regex", "pattern": "alice@example\\.com"}}


def _tools(schema: dict[str, Any], choice: Any = None) -> dict[str, Any]:
    tools = [{"type": "function", "function": {"name": "send", "parameters": schema}}]
    return {"tools": tools} if choice is None else {"tools": tools, "tool_choice": choice}


NAMED_CHOICE: dict[str, Any] = {"type": "function", "function": {"name": "send"}}
CASES: list[tuple[str, dict[str, Any], bool]] = [
    ("json_schema", {"response_format": {"type": "json_schema", "json_schema": {"name": "m", "schema": HELD}}}, True),
    ("json_object schema", {"response_format": {"type": "json_object", "schema": HELD}}, True),  # llama.cpp's
    ("tgi json", {"response_format": {"type": "json", "value": HELD}}, True),  # TGI's chat API's
    ("tgi json text", {"response_format": {"type": "json", "value": json.dumps(HELD)}}, True),  # (TGI parses it)
    ("tgi json text without", {"response_format": {"type": "json", "value": json.dumps(NAMED)}}, False),
    # (`json_object`: TGI's alias of `json`, its text parsed as well; until review revfields12 read as text alone)
    ("tgi json_object text", {"response_format": {"type": "json_object", "value": json.dumps(HELD)}}, True),
    ("tgi json_object text without", {"response_format": {"type": "json_object", "value": json.dumps(NAMED)}}, False),
    ("guided_json", {"guided_json": HELD}, True),
    ("guided_json text", {"guided_json": json.dumps(HELD)}, True),  # (vLLM takes a schema as JSON text too)
    ("structured json", {"structured_outputs": {"json": HELD}}, True),
    ("patternProperties", {"guided_json": KEYED}, True),
    ("tool required", _tools(HELD, "required"), True),
    ("tool named", _tools(HELD, NAMED_CHOICE), True),
    ("tool auto", _tools(HELD), True),  # (llama.cpp holds a tool call's arguments to its schema, lazily)
    ("tag grammar", {"response_format": TAG_GRAMMAR}, True),
    ("tag regex", {"response_format": TAG_REGEX}, True),
    ("structured tag text", {"structured_outputs": {"structural_tag": json.dumps(TAG_GRAMMAR)}}, True),
    ("llama.cpp json_schema", {"json_schema": HELD}, True),  # (its /completion's, and its chat's, copied through)
    ("tool choice object none", _tools(HELD, {"type": "none"}), True),  # (llama.cpp: not a string, so "auto")
    ("functions named", {"functions": [{"name": "send", "parameters": HELD}], "function_call": {"name": "send"}}, True),
    ("whitespace pattern", {"guided_json": NAMED, "guided_whitespace_pattern": "(alice@example\\.com)?"}, True),
    (
        "structured whitespace",
        {"structured_outputs": {"json": NAMED, "whitespace_pattern": "(alice@example\\.com)?"}},
        True,
    ),
    ("tool none", _tools(HELD, "none"), False),
    (
        "functions none",
        {"functions": [{"name": "send", "parameters": HELD}], "function_call": "none"},
        False,
    ),  # (no tool call: nothing held to the schema)
    ("property named pattern", _tools(NAMED, "required"), False),
    ("property named patternProperties", _tools(NAMED_KEYWORD, "required"), False),
    ("definition named patternProperties", {"guided_json": {"$defs": {"patternProperties": NAMED}}}, False),
    ("dependency named patternProperties", {"guided_json": {"dependentRequired": {"patternProperties": ["a"]}}}, False),
    ("patternProperties in a property so named", _tools(KEYED_NAMED, "required"), True),
    ("patternProperties in a definition so named", {"guided_json": KEYED_DEFINED}, True),
    ("pattern in a property named patternProperties", _tools({"properties": {"patternProperties": HELD}}), True),
    ("no pattern", {"response_format": {"type": "json_schema", "json_schema": {"name": "m", "schema": NAMED}}}, False),
    ("empty pattern", {"guided_json": {"type": "string", "pattern": ""}}, False),
    ("guided_json not JSON", {"guided_json": "{pattern"}, False),  # (the server refuses it)
]


@pytest.mark.parametrize(("fields", "unread"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_a_schema_holding_a_pattern_is_unread(fields: dict[str, Any], unread: bool) -> None:
    for operation, content in (("chat", {"messages": [{"role": "user", "content": "Write it."}]}),
                               ("text_completion", {"prompt": "Write it."})):  # fmt: skip
        request = read_request(operation, orjson.dumps({"model": "m", **content, **fields}))
        assert request.unscanned is unread, (operation, fields)
    native = read_native(NATIVE["/completion"], orjson.dumps({"prompt": "Write it.", **fields}))
    assert native.unscanned is unread, fields


@pytest.mark.parametrize(("schema", "unread"), [(HELD, True), (NAMED, False)], ids=["pattern", "none"])
def test_a_responses_text_format_holding_a_pattern_is_unread(schema: dict[str, Any], unread: bool) -> None:
    """The Responses API's structured output, `text.format` (vLLM's, held to as `response_format`'s is)."""
    body = {
        "model": "m",
        "input": "Write it.",
        "text": {"format": {"type": "json_schema", "name": "m", "schema": schema}},
    }
    assert read_request("responses", orjson.dumps(body)).unscanned is unread


@pytest.mark.parametrize(
    ("choice", "unread"), [("required", True), ("auto", True), ("none", False)], ids=["required", "auto", "none"]
)
def test_a_responses_custom_tool_grammar_is_unread(choice: str, unread: bool) -> None:
    """The Responses API's custom tool with a grammar format (`syntax` `regex` or `lark`): OpenAI holds the tool
    call's input to its `definition`, a program as `guided_regex` is, unless the tool choice calls none."""
    grammar = {"type": "grammar", "syntax": "regex", "definition": "alice\\x40example\\.com"}
    body = {"model": "m", "input": "Write it.", "tools": [{"type": "custom", "name": "send", "format": grammar}],
            "tool_choice": choice}  # fmt: skip
    assert read_request("responses", orjson.dumps(body)).unscanned is unread


@pytest.mark.parametrize(("schema", "unread"), [(HELD, True), (NAMED, False)], ids=["pattern", "none"])
@pytest.mark.parametrize("field", ["output_config", "output_format"])
def test_a_messages_output_schema_holding_a_pattern_is_unread(schema: dict[str, Any], unread: bool, field: str) -> None:
    """The Messages API's `output_config.format` (vLLM hands it to the chat API's structured decoding), and the
    structured outputs beta's `output_format` (Anthropic's; read whole as the other is, its `pattern`s read as text
    alone until 2026-12-07)."""
    form = {"type": "json_schema", "schema": schema}
    body = {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "Write it."}],
            field: {"format": form} if field == "output_config" else form}  # fmt: skip
    assert anthropic.read_request(orjson.dumps(body)).unscanned is unread


def test_an_output_format_holding_a_pattern_is_refused_through_the_anthropic_sdk(
    vllm: tuple[VllmLike, str], make_proxy: Any
) -> None:
    """The beta's `output_format`, sent by the real `anthropic` SDK (`extra_body`: its own `output_format` argument is a
    type it parses replies into): refused before the model for a purpose the zone of unread data forbids (before: 200)."""
    server, upstream = vllm
    proxy: ProxyHandle = make_proxy(CONFIG, UPSTREAM=upstream)
    client = anthropic_sdk.Anthropic(base_url=proxy.url, api_key="unused", max_retries=0, timeout=30)
    try:
        with pytest.raises(anthropic_sdk.PermissionDeniedError) as refused:
            client.messages.create(model=SERVED, max_tokens=8, messages=[{"role": "user", "content": "Write it."}],
                                   extra_body={"output_format": {"type": "json_schema", "schema": HELD}},
                                   extra_headers={"x-purpose": "marketing"})  # fmt: skip
        assert "scan:truncated" in refused.value.message
        assert server.data_requests() == []
    finally:
        client.close()


ANTHROPIC_TOOL: dict[str, Any] = {"type": "tool", "name": "send"}


@pytest.mark.parametrize(
    ("schema", "choice", "unread"),
    [(HELD, ANTHROPIC_TOOL, True), (HELD, {"type": "auto"}, True), (HELD, {"type": "none"}, False),
     (NAMED, ANTHROPIC_TOOL, False)],
    ids=["tool", "auto", "none", "property named pattern"],
)  # fmt: skip
def test_an_anthropic_tool_schema_holding_a_pattern_is_refused_before_the_vllm_like_server(
    schema: dict[str, Any], choice: dict[str, Any], unread: bool, vllm: tuple[VllmLike, str], make_proxy: Any
) -> None:
    """The Messages API's tools (vLLM's and llama.cpp's `/v1/messages` turn them into the chat API's, held to their
    `input_schema` as a chat's tools are)."""
    server, upstream = vllm
    proxy: ProxyHandle = make_proxy(CONFIG, UPSTREAM=upstream)
    body = {"model": SERVED, "max_tokens": 8, "messages": [{"role": "user", "content": "Write it."}],
            "tools": [{"name": "send", "input_schema": schema}], "tool_choice": choice}  # fmt: skip
    headers = {"x-purpose": "marketing", "anthropic-version": "2023-06-01", "x-api-key": "unused"}
    reply = httpx.post(f"{proxy.url}/v1/messages", json=body, headers=headers, timeout=30)
    assert (reply.status_code == 403) is unread, reply.text
    assert ("scan:truncated" in reply.text) is unread
    assert (server.data_requests() == []) is unread


@pytest.mark.parametrize(
    ("extra", "unread"),
    [
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "m", "schema": HELD}}}, True),
        (_tools(HELD, NAMED_CHOICE), True),
        ({"extra_body": {"structured_outputs": {"json": HELD}}}, True),
        (_tools(NAMED, "required"), False),
        (_tools(NAMED_KEYWORD, "required"), False),
    ],
    ids=[
        "response_format",
        "tool named",
        "structured_outputs",
        "property named pattern",
        "property named patternProperties",
    ],
)
def test_a_pattern_is_refused_before_the_vllm_like_server(
    extra: dict[str, Any], unread: bool, vllm: tuple[VllmLike, str], make_proxy: Any
) -> None:
    """Through the real `openai` SDK: a schema with a pattern never reaches the model for a purpose the zone of
    unread data forbids (before: forwarded, 200, unlabelled); one without is forwarded as before."""
    server, upstream = vllm
    proxy: ProxyHandle = make_proxy(CONFIG, UPSTREAM=upstream)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=30)
    messages: Any = [{"role": "user", "content": "Write it."}]
    try:
        reply = client.chat.completions.with_raw_response.create(
            model=SERVED, messages=messages, extra_headers={"x-purpose": "marketing"}, **extra
        )
        status = reply.http_response.status_code
    except openai.PermissionDeniedError as refused:
        assert "scan:truncated" in refused.response.text
        status = refused.status_code
    assert (status == 403) is unread
    assert (server.data_requests() == []) is unread  # nothing reached the model


@pytest.mark.parametrize(
    ("schema", "unread"),
    [(HELD, True), (NAMED, False), (json.dumps(HELD), True), (json.dumps(NAMED), False)],
    ids=["pattern", "none", "pattern as text", "none as text"],
)
@pytest.mark.parametrize("kind", ["json", "json_object"])
def test_a_tgi_json_grammar_holding_a_pattern_is_unread(
    schema: Any, unread: bool, kind: str, tgi: Tgi, make_proxy: Any
) -> None:
    """TGI's `parameters.grammar` of type `json` (or `json_object`, the alias TGI's serde reads as the same
    `GrammarType::Json`), its schema an object or JSON text (TGI parses a string value: before 2026-12-07 such text was
    read as text alone, its `pattern` unread, and the call forwarded; the alias's until review revfields12)."""
    proxy: ProxyHandle = make_proxy(CONFIG, UPSTREAM=tgi.url)
    body = {"inputs": "Write it.", "parameters": {"grammar": {"type": kind, "value": schema}, "max_new_tokens": 8}}
    reply = httpx.post(f"{proxy.url}/generate", json=body, headers={"x-purpose": "marketing"}, timeout=30)
    assert (reply.status_code == 403) is unread, reply.text
    assert (tgi.received == []) is unread


@pytest.mark.realserver
def test_a_pattern_is_refused_before_the_real_llama_cpp_python_server(llama: str, make_proxy: Any) -> None:
    """llama-cpp-python 0.3.36's server dies on a schema whose `pattern` holds `\\.` (`PROVEN` says why), so what its
    model would write cannot be seen; the proxy refuses the call before it, and the server still answers after."""
    proxy: ProxyHandle = make_proxy(CONFIG, UPSTREAM=llama)
    body = {"model": "smollm2", "messages": [{"role": "user", "content": "Write it."}], "max_tokens": 8,
            "response_format": {"type": "json_object", "schema": HELD}}  # fmt: skip
    url = f"{proxy.url}/v1/chat/completions"
    refused = httpx.post(url, json=body, headers={"x-purpose": "marketing"}, timeout=120)
    assert refused.status_code == 403 and "scan:truncated" in refused.text, refused.text
    assert httpx.get(f"{llama}/v1/models", timeout=30).status_code == 200


# what llama-cpp-python 0.3.36 holds its model to: its json-schema-to-grammar keeps a pattern's `\\.` as it stands in
# a GBNF literal (`"alice\\x40example\\.com"`), an escape GBNF does not know (`parse: error parsing grammar: unknown
# escape`), so llama.cpp's `llama_sampler_init_grammar` returns NULL, which its `add_grammar` puts in the sampler chain
# unchecked: the server dies (SIGSEGV) on the first token. `[.]` and `\\x40` it compiles, and holds the output to them
PROVEN = "^alice\\x40example[.]com$"


@pytest.mark.realserver
def test_a_pattern_the_real_llama_cpp_python_server_holds_its_output_to_is_refused(llama: str, make_proxy: Any) -> None:
    """The proof no fake gives: a schema whose one string holding `@` is no address (`^alice\\x40example[.]com$`)
    has the real server's SmolLM2 write `alice@example.com`; through the proxy the call is `scan:truncated`, refused for
    a purpose the zone of unread data forbids, and answered as directly for one it allows."""
    schema = {"type": "object", "properties": {"to": {"type": "string", "pattern": PROVEN}}, "required": ["to"]}
    body = {"model": "smollm2", "messages": [{"role": "user", "content": "Write it."}], "max_tokens": 24,
            "temperature": 0, "seed": 7, "response_format": {"type": "json_object", "schema": schema}}  # fmt: skip
    direct = httpx.post(f"{llama}/v1/chat/completions", json=body, timeout=120)
    assert "alice@example.com" in direct.json()["choices"][0]["message"]["content"], direct.text
    proxy: ProxyHandle = make_proxy(CONFIG, UPSTREAM=llama)
    url = f"{proxy.url}/v1/chat/completions"
    refused = httpx.post(url, json=body, headers={"x-purpose": "marketing"}, timeout=120)
    assert refused.status_code == 403 and "scan:truncated" in refused.text, refused.text
    allowed = httpx.post(url, json=body, timeout=120)
    assert allowed.status_code == 200, allowed.text
    assert "alice@example.com" in allowed.json()["choices"][0]["message"]["content"]
    assert "scan:truncated" in allowed.headers["x-data-labels"].split(",")


ESCAPED: list[tuple[str, bytes]] = [
    ("p\\u0061ttern", b'"guided_json": {"type": "string", "p\\u0061ttern": "^alice\\\\x40example\\\\.com$"}'),
    ("\\u0070attern", b'"response_format": {"type": "json_object", "schema": {"\\u0070attern": "^a\\\\x40b$"}}'),
    ("gr\\u0061mmar", b'"response_format": {"type": "structural_tag", "format": {"type": "grammar", '
                      b'"gr\\u0061mmar": "root ::= \\"alice\\" \\"@\\" \\"example.com\\""}}'),
    ("text p\\\\u0061ttern", b'"guided_json": "{\\"p\\\\u0061ttern\\": \\"^a\\\\\\\\x40b$\\"}"'),
    ("grammar type \\u0067rammar", b'"structured_outputs": {"structural_tag": {"type": "structural_tag", "format": '
                                   b'{"type": "\\u0067rammar", "grammar": "root ::= \\"a\\""}}}'),
]  # fmt: skip


@pytest.mark.parametrize("fields", [case[1] for case in ESCAPED], ids=[case[0] for case in ESCAPED])
def test_a_key_spelled_with_escapes_is_found(fields: bytes) -> None:
    """A JSON key may spell `pattern` or `grammar` with `\\u` escapes, which every parser reads as the key: the body
    holds neither word then, and is walked all the same. Text escaped as ASCII (`G\\u00fc`) is not such a key."""
    body = b'{"model": "m", "messages": [{"role": "user", "content": "Write it."}], ' + fields + b"}"
    assert read_request("chat", body).unscanned is True


def test_text_escaped_as_ascii_is_not_walked_for_keys() -> None:
    """A chat with tools whose text the client escaped as ASCII (`json.dumps`) stays read whole, and its tools'
    schemas are not walked for an escaped key none of them has (`_escaped_letter`)."""
    tools = _tools(NAMED, "required")["tools"]
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "Grüße 👋"}], "tools": tools}).encode()
    assert b"\\u00fc" in body and b"\\ud83d" in body
    assert read_request("chat", body).unscanned is False
    assert not protocols._escaped_letter(body)


@pytest.mark.parametrize("form", ["gzip", "utf-16", "escaped key"])
def test_a_pattern_in_a_coded_body_is_refused_before_the_vllm_like_server(
    form: str, vllm: tuple[VllmLike, str], make_proxy: Any
) -> None:
    """The body is looked through for `pattern` as the server reads it: decompressed (`Content-Encoding: gzip`), as
    UTF-8 (a UTF-16 body, which vLLM's FastAPI reads), its keys unescaped (`"p\\u0061ttern"`)."""
    server, upstream = vllm
    proxy: ProxyHandle = make_proxy(CONFIG, UPSTREAM=upstream)
    body = orjson.dumps({"model": SERVED, "messages": [{"role": "user", "content": "Write it."}], "guided_json": HELD})
    headers = {"x-purpose": "marketing", "content-type": "application/json"}
    if form == "gzip":
        body, headers["content-encoding"] = gzip.compress(body), "gzip"
    elif form == "utf-16":
        body = body.decode().encode("utf-16-le")
    else:
        body = body.replace(b'"pattern"', b'"p\\u0061ttern"')
    assert b"pattern" not in body
    reply = httpx.post(f"{proxy.url}/v1/chat/completions", content=body, headers=headers, timeout=30)
    assert reply.status_code == 403, reply.text
    assert "scan:truncated" in reply.text
    assert server.data_requests() == []

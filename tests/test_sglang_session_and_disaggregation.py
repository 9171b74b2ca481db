"""Fields of SGLang's and vLLM's that say where a call's tokens come from (helper fields13, 2026-12-07):

- SGLang's `session_params` naming a session (`{"id": ...}`): its engine continues the tokens that session holds,
  earlier calls' inputs and outputs the proxy does not see with this call, as a Responses `previous_response_id`
  does: `scan:truncated` (its OpenAI-compatible API takes the field; the versions read hand the engine `session_id`
  alone: marked all the same, as the call means to continue a session). Before, its id alone was read and the call went on unlabelled (failing before: 4 of the 4
  continued cases). `session_id` (vLLM's and SGLang's: a stable identity that "does not alter or reconstruct the
  prompt") and `session_params` naming no session are read as before.
- Disaggregated serving's state (vLLM's `kv_transfer_params`, `ec_transfer_params`; SGLang's `bootstrap_host`,
  `bootstrap_port`, `bootstrap_room`): where the KV cache of the call's own prompt is fetched from, which no server
  prints to the model. Read as text before, a prefill node's address labelled every decode call `pii:ip_address`,
  refused where a zone forbids addresses (failing before: 3 of the 3 state cases); not `scan:truncated` either.
  KServe's OpenAI data plane, which hands its model the request whole, has them read as fields the adapter does not
  read (before, the adapter read them, for every upstream). Failing before: 10 of 14 (the other APIs' 2 and KServe's
  1 too; the 4 not continued pass)."""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest

from proxy.protocols.kserve import openai_fields
from proxy.protocols.openai import read_request
from tests.configs import ONE_UPSTREAM
from tests.test_engine_ids_and_trtllm_state_unread import _chat, _client

CONFIG = (
    ONE_UPSTREAM
    + """
zones:
  - name: unread
    labels: [scan:truncated]
    allow_purposes: [assistant]
  - name: addresses
    labels: [pii:ip_address]
    allow_purposes: [assistant]
detectors: [email, ip_address]
"""
)

CONTINUED = {
    "session": {"session_params": {"id": "3f1c9a"}},
    "session at a request": {"session_params": {"id": "3f1c9a", "rid": "r1", "offset": -1, "replace": False}},
    "session of a batch": {"session_params": [None, {"id": "3f1c9a"}]},
    "empty id": {"session_params": {"id": ""}},  # (SGLang looks it up: refused there, or a session it holds)
}
NOT_CONTINUED = {
    "session_id": {"session_id": "81ee476c-8839-4110-9727-d740fad13805"},
    "no id": {"session_params": {"rid": "r1"}},
    "null id": {"session_params": {"id": None}},
    "null": {"session_params": None},
}
STATE = {
    "vllm decode": {
        "kv_transfer_params": {
            "do_remote_prefill": True,
            "remote_engine_id": "0e3c5bd1-0d4f-4e4a-9a53",
            "remote_block_ids": [1, 2, 3],
            "remote_host": "10.0.0.3",
        }
    },
    "vllm encoder cache": {"ec_transfer_params": {"remote_host": "10.0.0.4", "remote_port": 5601}},
    "sglang decode": {"bootstrap_host": "10.0.0.5", "bootstrap_port": 8998, "bootstrap_room": 1234567890123},
}


@pytest.mark.parametrize("extra", CONTINUED.values(), ids=CONTINUED.keys())
def test_a_continued_sglang_session_is_unread(vllm, make_proxy, extra) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    client = _client(make_proxy(CONFIG, UPSTREAM=upstream))
    with pytest.raises(openai.PermissionDeniedError) as refused:  # (before: 200, unlabelled)
        _chat(client, extra, "ads")
    assert "scan:truncated" in refused.value.message
    assert server.data_requests() == []
    assert _chat(client, extra, "assistant").http_response.headers["x-data-labels"] == "scan:truncated"


@pytest.mark.parametrize("extra", [*NOT_CONTINUED.values(), *STATE.values()], ids=[*NOT_CONTINUED, *STATE])
def test_a_session_id_and_disaggregated_state_are_no_reason_to_refuse(vllm, make_proxy, extra) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    client = _client(make_proxy(CONFIG, UPSTREAM=upstream))
    reply = _chat(client, extra, "ads")  # (before, the state's: 403, pii:ip_address)
    assert reply.http_response.headers["x-data-labels"] == ""
    assert orjson.loads(server.data_requests()[0].body).items() >= extra.items()  # forwarded as sent


@pytest.mark.parametrize("operation", ["text_completion", "responses"])
def test_other_apis_read_them_so_too(operation: str) -> None:
    content = {"text_completion": {"prompt": "hello"}, "responses": {"input": "hello"}}[operation]
    for extra in CONTINUED.values():
        assert read_request(operation, orjson.dumps({"model": "m", **content, **extra})).unscanned is True
    for extra in [*NOT_CONTINUED.values(), *STATE.values()]:
        request = read_request(operation, orjson.dumps({"model": "m", **content, **extra}))
        assert request.unscanned is False
        assert not any(host in text for text in request.texts for host in ("10.0.0.", "remote"))


def test_kserves_data_plane_still_reads_the_state() -> None:
    """KServe's OpenAI data plane hands its model the request whole (`kserve.openai_fields`): read there."""
    body = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hello"}], **STATE["sglang decode"]})
    fields, whole = openai_fields(body, "chat")
    assert fields is not None and "10.0.0.5" in fields and whole


# where a key named as disaggregated serving's state stands below the body's top level, it is no engine's state but
# the caller's data, printed where the object holding it is: read (helper revfields13: `NOT_DATA` is looked up only in
# `request_strings`' loop over the body's own keys; these pass before and after, a pin of that)
_HOST = {"kv_transfer_params": {"remote_host": "10.0.0.3"}, "bootstrap_host": "10.0.0.5"}
_SCHEMA = {"type": "object", "properties": _HOST}
NESTED = {
    "a message's key": ("chat", {"messages": [{"role": "user", "content": "hello", **_HOST}]}),
    "a content part's key": ("chat", {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi", **_HOST}]}]}),
    "a tool's schema": ("chat", {"messages": [{"role": "user", "content": "hi"}],
                                 "tools": [{"type": "function", "function": {"name": "f", "parameters": _SCHEMA}}]}),
    "a message's own tools": ("chat", {"messages": [{"role": "system", "content": "hi", "tools": [
        {"type": "function", "function": {"name": "f", "parameters": _SCHEMA}}]}]}),
    "a response format": ("chat", {"messages": [{"role": "user", "content": "hi"}],
                                   "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": _SCHEMA}}}),
    "a tool call's arguments": ("chat", {"messages": [{"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": _HOST}}]}, {"role": "user", "content": "hi"}]}),
    "template arguments": ("chat", {"messages": [{"role": "user", "content": "hi"}], "chat_template_kwargs": _HOST}),
    "a Responses input item": ("responses", {"input": [{"role": "user", "content": "hi", **_HOST}]}),
    "a prompt's list": ("text_completion", {"prompt": ["hi", _HOST]}),
}  # fmt: skip


@pytest.mark.parametrize(("operation", "body"), NESTED.values(), ids=NESTED.keys())
def test_the_state_named_below_the_top_level_is_read(operation: str, body: dict[str, Any]) -> None:
    request = read_request(operation, orjson.dumps({"model": "m", **body}))
    assert {"10.0.0.3", "10.0.0.5"} <= set(request.texts)
    assert request.unscanned is False


KSERVE = (
    ONE_UPSTREAM.replace("url: ${UPSTREAM}", "url: ${UPSTREAM}\n    headers_to_model: true")
    + """
zones:
  - name: mail
    labels: [pii:email]
    allow_purposes: [assistant]
detectors: [email]
"""
)
# the state, a host named as an address (the header fields read where the call may reach KServe hold the proxy's own
# host address, `127.0.0.1`, so an IP address would label every call there)
MAILED = {
    name: orjson.loads(orjson.dumps(state).replace(b'"10.0.0.', b'"ops@prefill.example.com:'))
    for name, state in STATE.items()
}


@pytest.mark.parametrize("extra", MAILED.values(), ids=MAILED.keys())
def test_a_call_that_may_reach_kserve_has_the_state_read(vllm, make_proxy, extra) -> None:  # type: ignore[no-untyped-def]
    """End to end, where the upstream says it hands its model the request whole (`headers_to_model: true`: a gateway in
    front of KServe's OpenAI data plane) the state is read, as a field the adapter does not read; where it does not
    (`test_a_session_id_and_disaggregated_state_are_no_reason_to_refuse`) it is not. Passes before and after (helper
    revfields13): the adapter read it for every upstream before."""
    server, upstream = vllm
    client = _client(make_proxy(KSERVE, UPSTREAM=upstream))
    with pytest.raises(openai.PermissionDeniedError) as refused:
        _chat(client, extra, "ads")
    assert "pii:email" in refused.value.message
    assert server.data_requests() == []
    assert _chat(client, extra, "assistant").http_response.headers["x-data-labels"] == "pii:email"

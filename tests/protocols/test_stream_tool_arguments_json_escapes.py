"""A tool call's arguments are JSON in a string, which its client parses (the SDK's accumulated `arguments`, the
tool that runs them): `bob\\u0040example.org` there is the address `bob@example.org` to it. The request side reads
such escapes decoded (`protocols.unescaped`); the reply's tool calls are read so too, streamed or whole, on every
API: OpenAI chat's `tool_calls[].function.arguments`, the Responses API's `function_call_arguments.delta`, Anthropic's
`input_json_delta` (whose whole reply, `input` an object, was read with the address in it)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.test_unsized_replies_output import BODIES, EMAIL, Reply, setup_for  # noqa: F401  # (a fixture)

ARGUMENTS = '{"to": "bob\\u0040example.org", "body": "hi"}'  # as a server (or a model) writes JSON
PIECES = ['{"to": "bob', "\\u00", '40example.org", ', '"body": "hi"}']  # the escape split across deltas
# any character escaped, as a JSON writer with ensure_ascii or a model may: folding `\u0040` and `\u002E` alone
# leaves `bob@\u0065\u0078ample.org`, no address
ESCAPED_PIECES = ['{"to": "bob\\u00', "40\\u0065\\u0078", 'ample\\u002Eorg", "body": "hi"}']


def sse(event: dict[str, Any], kind: str | None = None) -> bytes:
    return (b"event: " + kind.encode() + b"\n" if kind else b"") + b"data: " + orjson.dumps(event) + b"\n\n"


def chat_chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    return sse({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})  # fmt: skip


CHAT_WHOLE = orjson.dumps({"id": "c1", "object": "chat.completion", "created": 1, "model": "m", "choices": [
    {"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "send_mail", "arguments": ARGUMENTS}}]}}]})  # fmt: skip
ITEM = {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "send_mail", "status": "in_progress",
        "arguments": ""}  # fmt: skip


def streams(pieces: list[str]) -> dict[str, bytes]:
    """Each API's stream of one tool call whose arguments come in `pieces`."""
    arguments = "".join(pieces)
    chat = b"".join([
        chat_chunk({"role": "assistant", "content": None, "tool_calls": [
            {"index": 0, "id": "call_1", "type": "function", "function": {"name": "send_mail", "arguments": ""}}]}),
        *(chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}) for piece in pieces),
        chat_chunk({}, "tool_calls"),
        b"data: [DONE]\n\n",
    ])  # fmt: skip
    responses = b"".join([
        sse({"type": "response.created", "response": {"id": "r1", "model": "m", "status": "in_progress", "output": []}},
            "response.created"),
        sse({"type": "response.output_item.added", "output_index": 0, "item": ITEM}, "response.output_item.added"),
        *(sse({"type": "response.function_call_arguments.delta", "output_index": 0, "item_id": "fc_1", "delta": piece},
              "response.function_call_arguments.delta") for piece in pieces),
        sse({"type": "response.function_call_arguments.done", "output_index": 0, "item_id": "fc_1",
             "arguments": arguments}, "response.function_call_arguments.done"),
        sse({"type": "response.output_item.done", "output_index": 0,
             "item": ITEM | {"status": "completed", "arguments": arguments}}, "response.output_item.done"),
        sse({"type": "response.completed", "response": {"id": "r1", "model": "m", "status": "completed",
             "output": [ITEM | {"status": "completed", "arguments": arguments}]}}, "response.completed"),
    ])  # fmt: skip
    messages = b"".join([
        sse({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
             "content": [], "stop_reason": None, "usage": {"input_tokens": 3, "output_tokens": 1}}}, "message_start"),
        sse({"type": "content_block_start", "index": 0,
             "content_block": {"type": "tool_use", "id": "toolu_1", "name": "send_mail", "input": {}}},
            "content_block_start"),
        *(sse({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": piece}},
              "content_block_delta") for piece in pieces),
        sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        sse({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}},
            "message_delta"),
        sse({"type": "message_stop"}, "message_stop"),
    ])  # fmt: skip
    return {"/v1/chat/completions": chat, "/v1/responses": responses, "/v1/messages": messages}


STREAMS = streams(PIECES)


def test_the_clients_arguments_hold_the_address() -> None:
    assert json.loads("".join(PIECES)) == {"to": "bob@example.org", "body": "hi"}
    assert json.loads("".join(ESCAPED_PIECES)) == {"to": "bob@example.org", "body": "hi"}


@pytest.mark.parametrize("pieces", [PIECES, ESCAPED_PIECES], ids=["at-escaped", "all-escaped"])
@pytest.mark.parametrize("path", list(STREAMS))
def test_an_escaped_address_in_streamed_tool_arguments_labels_the_output(
    setup_for: Any,  # noqa: F811
    path: str,
    pieces: list[str],
) -> None:
    setup = setup_for()
    sent = streams(pieces)[path]
    setup.upstream.reply = Reply([sent], content_type="text/event-stream")
    flow = f"flow-escaped-{len(pieces)}-" + path.rsplit("/", 1)[1]
    with httpx.stream("POST", f"{setup.proxy.url}{path}", json={**BODIES[path], "stream": True}, timeout=30,
                      headers={"x-data-labels": flow}) as response:  # fmt: skip
        got = b"".join(response.iter_raw())
    assert response.status_code == 200 and got == sent
    assert setup.recorded(response, flow) == ([flow, EMAIL], [flow, EMAIL])


def test_an_escaped_address_in_a_whole_replys_tool_arguments_labels_the_output(setup_for: Any) -> None:  # noqa: F811
    setup = setup_for()
    path, flow = "/v1/chat/completions", "flow-escaped-whole"
    response, got = setup.call(path, flow, Reply([CHAT_WHOLE], framing="sized"))
    assert response.status_code == 200 and got == CHAT_WHOLE
    assert setup.recorded(response, flow) == ([flow, EMAIL], [flow, EMAIL])


def test_the_openai_sdk_reads_the_address_the_record_labels(setup_for: Any) -> None:  # noqa: F811
    setup = setup_for()
    setup.upstream.reply = Reply([STREAMS["/v1/chat/completions"]], content_type="text/event-stream")
    flow = "flow-escaped-sdk"
    sdk = openai.OpenAI(base_url=f"{setup.proxy.url}/v1", api_key="k", max_retries=0,
                        default_headers={"x-data-labels": flow})  # fmt: skip
    raw = sdk.chat.completions.with_raw_response.create(model="m", messages=[{"role": "user", "content": "hi"}],
                                                        stream=True)  # fmt: skip
    arguments = "".join(chunk.choices[0].delta.tool_calls[0].function.arguments or ""
                        for chunk in raw.parse() if chunk.choices and chunk.choices[0].delta.tool_calls)  # fmt: skip
    assert json.loads(arguments)["to"] == "bob@example.org"
    assert setup.recorded(raw, flow) == ([flow, EMAIL], [flow, EMAIL])

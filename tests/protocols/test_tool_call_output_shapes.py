"""What the model wrote into a tool call is scanned for the output's labels whatever kind of tool it calls: a
custom tool call (OpenAI's `type: "custom"` tools: chat `tool_calls[].custom.input`, a Responses
`custom_tool_call` item's `input`, streamed as `response.custom_tool_call_input.delta`), an MCP call's arguments
as they stream (`response.mcp_call_arguments.delta`; a whole reply's `arguments` were read already), a code
interpreter call's code (`code`, `response.code_interpreter_call_code.delta`). These replies hold the fields the
adapter reads (`choices`, `output`), so nothing falls to the reading of unknown shapes: an address there was
recorded clean. A Responses item's text is part of the output's digest, the same whole and streamed."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from proxy.flow import Outcome
from proxy.protocols.openai import ReplyObserver, ResponsesObserver

DETECTORS = Detectors((DetectorSpec("email"),), 100_000)
OUT = "bob@example.org"
EMAIL = "pii:email"


def read(observer_type: Any, reply: dict[str, Any] | list[dict[str, Any]]) -> Outcome:
    """The outcome of one reply: a dict read whole, a list of events read as an event stream (each event its
    own chunk)."""
    outcome = Outcome(started_ns=1)
    observer = observer_type(outcome, DETECTORS, False)
    streamed = isinstance(reply, list)
    kind = "text/event-stream" if streamed else "application/json"
    observer.head(200, lambda name: kind if name == "content-type" else None)
    if isinstance(reply, list):
        for event in reply:
            observer.chunk(b"data: " + orjson.dumps(event) + b"\n\n")
        observer.chunk(b"data: [DONE]\n\n" if observer_type is ReplyObserver else b"")
    else:
        observer.body(orjson.dumps(reply))
    observer.finish()
    return outcome


def chat_whole(call: dict[str, Any]) -> dict[str, Any]:
    message = {"role": "assistant", "content": None, "tool_calls": [call]}
    return {"id": "c1", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}]}  # fmt: skip


def chat_streamed(call: dict[str, Any]) -> list[dict[str, Any]]:
    def chunk(delta: dict[str, Any], reason: str | None) -> dict[str, Any]:
        return {"id": "c1", "object": "chat.completion.chunk", "model": "m",
                "choices": [{"index": 0, "delta": delta, "finish_reason": reason}]}  # fmt: skip

    return [chunk({"role": "assistant", "tool_calls": [{"index": 0, **call}]}, None), chunk({}, "tool_calls")]


CUSTOM_CALL = {"id": "call_1", "type": "custom", "custom": {"name": "send_mail", "input": f"to: {OUT}\nhello"}}


@pytest.mark.parametrize("reply", [chat_whole(CUSTOM_CALL), chat_streamed(CUSTOM_CALL)], ids=["whole", "streamed"])
def test_a_chat_custom_tool_calls_input_is_scanned(reply: Any) -> None:
    assert EMAIL in read(ReplyObserver, reply).output_detected


def test_a_chat_custom_tool_calls_name_is_scanned_as_a_functions_is() -> None:
    call = {"id": "call_1", "type": "custom", "custom": {"name": f"mail_{OUT}", "input": "hello"}}
    assert EMAIL in read(ReplyObserver, chat_whole(call)).output_detected


def test_a_chat_function_call_is_read_as_before() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "send_mail", "arguments": f'{{"to": "{OUT}"}}'}}
    assert EMAIL in read(ReplyObserver, chat_whole(call)).output_detected
    clean = {"id": "call_1", "type": "function", "function": {"name": "send_mail", "arguments": '{"to": "x"}'}}
    assert read(ReplyObserver, chat_whole(clean)).output_detected == frozenset()


def response(*items: dict[str, Any]) -> dict[str, Any]:
    return {"id": "resp_1", "object": "response", "model": "m", "status": "completed", "output": list(items)}


def item_events(item: dict[str, Any], delta_type: str, text: str) -> list[dict[str, Any]]:
    """An item streamed as the Responses API streams it: added empty, its text in two deltas, done whole."""
    empty = {**item, **{key: "" for key in ("input", "arguments", "code") if key in item}}
    half = len(text) // 2
    return [
        {"type": "response.created", "response": {**response(), "status": "in_progress", "output": []}},
        {"type": "response.output_item.added", "output_index": 0, "item": empty},
        {"type": delta_type, "output_index": 0, "item_id": item["id"], "delta": text[:half]},
        {"type": delta_type, "output_index": 0, "item_id": item["id"], "delta": text[half:]},
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.completed", "response": response(item)},
    ]


CUSTOM_ITEM = {"type": "custom_tool_call", "id": "ctc_1", "call_id": "call_1", "name": "send_mail",
               "input": f"to: {OUT}\nhello", "status": "completed"}  # fmt: skip
MCP_ITEM = {"type": "mcp_call", "id": "mcp_1", "server_label": "mail", "name": "send",
            "arguments": f'{{"to": "{OUT}"}}', "output": None}  # fmt: skip
CODE_ITEM = {"type": "code_interpreter_call", "id": "ci_1", "container_id": "cntr_1",
             "code": f"send_mail('{OUT}')", "outputs": None, "status": "completed"}  # fmt: skip
STREAMED = {
    "custom": (CUSTOM_ITEM, "response.custom_tool_call_input.delta", CUSTOM_ITEM["input"]),
    "mcp": (MCP_ITEM, "response.mcp_call_arguments.delta", MCP_ITEM["arguments"]),
    "code": (CODE_ITEM, "response.code_interpreter_call_code.delta", CODE_ITEM["code"]),
}


@pytest.mark.parametrize("kind", list(STREAMED))
def test_a_responses_tool_items_text_is_scanned_whole_and_streamed(kind: str) -> None:
    item, delta_type, text = STREAMED[kind]
    whole = read(ResponsesObserver, response(item))
    streamed = read(ResponsesObserver, item_events(item, delta_type, text))
    assert EMAIL in whole.output_detected and EMAIL in streamed.output_detected
    assert whole.output_digest is not None and whole.output_digest == streamed.output_digest


def test_a_clean_custom_tool_call_is_recorded_clean() -> None:
    item = {**CUSTOM_ITEM, "input": "to: the team\nhello"}
    assert read(ResponsesObserver, response(item)).output_detected == frozenset()
    assert read(ResponsesObserver, item_events(item, "response.custom_tool_call_input.delta", item["input"])
                ).output_detected == frozenset()  # fmt: skip

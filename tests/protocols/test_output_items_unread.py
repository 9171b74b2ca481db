"""Output in a reply the adapter knows, in an element it did not read, is scanned for the output's labels: an OpenAI
spoken reply's transcript (`message.audio.transcript`, streamed `delta.audio.transcript`), a Responses output item
that holds none of the text the adapter reads (a web search's query, a shell call's command, a message whose
`content` is a string, an item type it does not know), a Responses stream whose items' text comes in their
`response.output_item.done` or the end's `response.output` only, an Anthropic block with no text, input or
thinking (a server tool's result: code execution's `stdout`). Each was recorded clean; a reply read as before keeps
its labels and digest."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.protocols.anthropic import MessagesObserver
from proxy.protocols.openai import ReplyObserver, ResponsesObserver
from tests.protocols.test_tool_call_output_shapes import EMAIL, OUT, read, response


def chat(message: dict[str, Any]) -> dict[str, Any]:
    return {"id": "c1", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}  # fmt: skip


def chat_chunk(delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
    return {"id": "c1", "object": "chat.completion.chunk", "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": reason}]}  # fmt: skip


AUDIO = {"id": "audio_1", "data": "UklGRiQAAABXQVZFZm10", "expires_at": 1, "transcript": f"mail {OUT} today"}


@pytest.mark.parametrize(
    "reply",
    [
        chat({"role": "assistant", "content": None, "audio": AUDIO}),
        [chat_chunk({"role": "assistant", "audio": {"id": "audio_1", "transcript": "mail bob@exa"}}),
         chat_chunk({"audio": {"transcript": "mple.org today"}}), chat_chunk({}, "stop")],
    ],
    ids=["whole", "streamed"],
)  # fmt: skip
def test_a_spoken_replys_transcript_is_scanned(reply: Any) -> None:
    assert EMAIL in read(ReplyObserver, reply).output_detected


WEB_SEARCH = {"type": "web_search_call", "id": "ws_1", "status": "completed",
              "action": {"type": "search", "query": f"who is {OUT}"}}  # fmt: skip
SHELL = {"type": "local_shell_call", "id": "lsh_1", "call_id": "c", "status": "completed",
         "action": {"type": "exec", "command": ["mail", OUT], "env": {}}}  # fmt: skip
STRING_CONTENT = {"type": "message", "id": "msg_1", "role": "assistant", "content": f"write to {OUT}"}
UNKNOWN = {"type": "some_new_call", "id": "x_1", "result": {"summary": f"found {OUT}"}}


@pytest.mark.parametrize(
    "item", [WEB_SEARCH, SHELL, STRING_CONTENT, UNKNOWN], ids=["search", "shell", "string", "unknown"]
)
def test_a_responses_item_holding_no_text_the_adapter_reads_is_scanned(item: dict[str, Any]) -> None:
    assert EMAIL in read(ResponsesObserver, response(item)).output_detected
    streamed = [{"type": "response.output_item.added", "output_index": 0, "item": {**item, "status": "in_progress"}},
                {"type": "response.output_item.done", "output_index": 0, "item": item},
                {"type": "response.completed", "response": response(item)}]  # fmt: skip
    assert EMAIL in read(ResponsesObserver, streamed).output_detected


def test_an_image_generations_result_and_encrypted_reasoning_are_not_read_as_text() -> None:
    image = {"type": "image_generation_call", "id": "ig_1", "status": "completed", "result": "bob@example.org=="}
    reasoning = {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "bob@example.org"}
    assert read(ResponsesObserver, response(image, reasoning)).output_detected == frozenset()


MESSAGE = {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
           "content": [{"type": "output_text", "text": f"write to {OUT}", "annotations": []}]}  # fmt: skip


def test_a_responses_stream_whose_text_comes_only_whole_is_read_as_the_whole_reply() -> None:
    whole = read(ResponsesObserver, response(MESSAGE))
    at_done = read(ResponsesObserver, [{"type": "response.output_item.done", "output_index": 0, "item": MESSAGE},
                                       {"type": "response.completed", "response": response(MESSAGE)}])  # fmt: skip
    at_end = read(ResponsesObserver, [{"type": "response.completed", "response": response(MESSAGE)}])
    for outcome in (at_done, at_end):
        assert EMAIL in outcome.output_detected
        assert outcome.output_digest == whole.output_digest  # its text, once, as the whole reply's


def test_a_responses_stream_whose_text_streamed_is_not_read_again() -> None:
    deltas = [{"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": "write to "},
              {"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": OUT},
              {"type": "response.output_item.done", "output_index": 0, "item": MESSAGE},
              {"type": "response.completed", "response": response(MESSAGE)}]  # fmt: skip
    streamed = read(ResponsesObserver, deltas)
    assert EMAIL in streamed.output_detected
    assert streamed.output_digest == read(ResponsesObserver, response(MESSAGE)).output_digest


CODE_RESULT = {"type": "code_execution_tool_result", "tool_use_id": "srvtoolu_1",
               "content": {"type": "code_execution_result", "stdout": f"owner: {OUT}\n", "stderr": "", "return_code": 0}}  # fmt: skip


def message(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": list(blocks),
            "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 1}}  # fmt: skip


def test_an_anthropic_server_tools_result_is_scanned() -> None:
    assert EMAIL in read(MessagesObserver, message({"type": "text", "text": "ran it"}, CODE_RESULT)).output_detected
    streamed = [{"type": "message_start", "message": message()},
                {"type": "content_block_start", "index": 0, "content_block": CODE_RESULT},
                {"type": "content_block_stop", "index": 0},
                {"type": "message_stop"}]  # fmt: skip
    assert EMAIL in read(MessagesObserver, streamed).output_detected


def test_anthropic_blocks_read_as_before_are_not_read_again() -> None:
    clean = message({"type": "text", "text": "hello"}, {"type": "redacted_thinking", "data": OUT},
                    {"type": "tool_use", "id": "t", "name": "f", "input": {"q": "x"}})  # fmt: skip
    assert read(MessagesObserver, clean).output_detected == frozenset()

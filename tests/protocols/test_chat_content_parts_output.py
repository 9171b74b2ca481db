"""A chat reply whose message content is no string but a list of parts (`[{"type": "text", "text": ...}]`: Mistral's
API writes its reasoning models' replies so, and servers that echo the request's shape), or a stream whose choices
carry a whole `message` where a `delta` is expected, holds the fields the adapter reads (`choices`), so nothing
falls to the reading of unknown shapes: its text was not read at all, and an address there was recorded clean. Its
strings are scanned for the output's labels, beside the content, as an unknown shape's are."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.flow import Outcome
from proxy.protocols.openai import ReplyObserver
from tests.protocols.test_tool_call_output_shapes import EMAIL, OUT
from tests.protocols.test_tool_call_output_shapes import read as read_reply

PARTS = [{"type": "thinking", "thinking": [{"type": "text", "text": "the user wants the address"}]},
         {"type": "text", "text": f"write to {OUT} today"}]  # fmt: skip


def read(reply: dict[str, Any] | list[dict[str, Any]]) -> Outcome:
    return read_reply(ReplyObserver, reply)


def whole(content: Any) -> dict[str, Any]:
    return {"id": "c1", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}  # fmt: skip


def streamed(key: str, content: Any) -> list[dict[str, Any]]:
    return [
        {"id": "c1", "object": "chat.completion.chunk", "model": "m",
         "choices": [{"index": 0, key: {"role": "assistant", "content": content}, "finish_reason": None}]},
        {"id": "c1", "object": "chat.completion.chunk", "model": "m",
         "choices": [{"index": 0, key: {}, "finish_reason": "stop"}]},
    ]  # fmt: skip


@pytest.mark.parametrize(
    "reply",
    [whole(PARTS), streamed("delta", PARTS), streamed("message", f"write to {OUT} today"), streamed("message", PARTS)],
    ids=["whole-parts", "streamed-parts", "streamed-message", "streamed-message-parts"],
)
def test_content_in_parts_or_in_a_streamed_message_is_scanned(reply: Any) -> None:
    assert EMAIL in read(reply).output_detected


@pytest.mark.parametrize(
    "reply",
    [whole([{"type": "text", "text": "hello"}]), streamed("delta", [{"type": "text", "text": "hello"}]),
     streamed("message", "hello")],
    ids=["whole-parts", "streamed-parts", "streamed-message"],
)  # fmt: skip
def test_clean_content_in_parts_is_recorded_clean(reply: Any) -> None:
    assert read(reply).output_detected == frozenset()


def test_string_content_is_read_as_before() -> None:
    """A string content stays the output: its digest and labels as before."""
    outcome = read(whole(f"write to {OUT} today"))
    assert EMAIL in outcome.output_detected and outcome.output_digest is not None
    assert read(streamed("delta", f"write to {OUT} today")).output_digest == outcome.output_digest

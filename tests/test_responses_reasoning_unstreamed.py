"""A Responses stream whose reasoning item's summary or text comes only whole (in its `response.output_item.done`, or
the end's `response.output`), with no `response.reasoning_summary_text.delta` or `response.reasoning_text.delta` for
it, is read as the whole reply is: its summary beside the content, its text in the content (and the digest). Such an
item was skipped (reasoning items were read from their deltas only): an address in the model's reasoning summary left
the output unlabelled, where the same reply whole was labelled. A summary that streamed is not read again."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from proxy.protocols.openai import ResponsesObserver
from tests.protocols.test_tool_call_output_shapes import EMAIL, OUT, read
from tests.test_unsized_replies_output import Reply, setup_for  # noqa: F401  # (a fixture)

SUMMARY = {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": f"mail {OUT} first"}]}
TEXT = {"type": "reasoning", "id": "rs_1", "summary": [],
        "content": [{"type": "reasoning_text", "text": f"mail {OUT} first"}]}  # fmt: skip
MESSAGE = {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
           "content": [{"type": "output_text", "text": "Done.", "annotations": []}]}  # fmt: skip


def response(*items: dict[str, Any]) -> dict[str, Any]:
    return {"id": "resp_1", "object": "response", "model": "m", "status": "completed", "output": list(items)}


def at_done(reasoning: dict[str, Any]) -> list[dict[str, Any]]:
    """The reasoning item whole in its `.done` only; the message's text streamed."""
    return [
        {"type": "response.output_item.added", "output_index": 0, "item": {**reasoning, "summary": [], "content": []}},
        {"type": "response.output_item.done", "output_index": 0, "item": reasoning},
        {"type": "response.output_item.added", "output_index": 1, "item": {**MESSAGE, "content": []}},
        {"type": "response.output_text.delta", "output_index": 1, "content_index": 0, "delta": "Done."},
        {"type": "response.output_item.done", "output_index": 1, "item": MESSAGE},
        {"type": "response.completed", "response": response(reasoning, MESSAGE)},
    ]


def at_end(reasoning: dict[str, Any]) -> list[dict[str, Any]]:
    """The reasoning item, and the message after it, only in the end's `response.output`."""
    return [{"type": "response.completed", "response": response(reasoning, MESSAGE)}]


CASES = {"summary-at-done": at_done(SUMMARY), "summary-at-end": at_end(SUMMARY), "text-at-done": at_done(TEXT),
         "text-at-end": at_end(TEXT)}  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_a_reasoning_item_sent_only_whole_is_read_as_the_whole_reply(name: str) -> None:
    whole = read(ResponsesObserver, response(SUMMARY if name.startswith("summary") else TEXT, MESSAGE))
    streamed = read(ResponsesObserver, CASES[name])
    assert whole.output_detected == streamed.output_detected == {EMAIL}
    assert streamed.output_digest == whole.output_digest


def test_a_summary_that_streamed_is_read_from_its_deltas_alone() -> None:
    """OpenAI's: the summary streams, then comes whole again in the item's `.done`: read once (read twice it would
    run into itself: `example.org bob@` twice holds `bob@example.org`)."""
    split = {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "example.org bob@"}]}
    events = [
        {"type": "response.output_item.added", "output_index": 0, "item": {**split, "summary": []}},
        {"type": "response.reasoning_summary_text.delta", "output_index": 0, "summary_index": 0,
         "delta": "example.org bob@"},
        {"type": "response.output_item.done", "output_index": 0, "item": split},
        {"type": "response.completed", "response": response(split)},
    ]  # fmt: skip
    assert read(ResponsesObserver, events).output_detected == frozenset()


def test_through_the_proxy_a_summary_sent_only_whole_labels_the_output(setup_for: Any) -> None:  # noqa: F811
    setup = setup_for()
    body = b"".join(b"data: " + orjson.dumps(event) + b"\n\n" for event in at_done(SUMMARY))
    got, answer = setup.call("/v1/responses", "flow-summary", Reply([body], content_type="text/event-stream"))
    assert got.status_code == 200 and answer == body
    span, edge = setup.recorded(got, "flow-summary")
    assert set(span) == set(edge) == {"flow-summary", EMAIL}

"""A Responses stream's events that end what deltas stream carry it whole: `response.output_text.done` (`text`),
`response.content_part.done` (`part.text`, `part.refusal`), `response.function_call_arguments.done`
(`arguments`), `response.refusal.done`, `response.reasoning_summary_text.done`, and the rest of `_DONE_TEXTS`. A
server that sends an item's text in these alone (no delta, and an `output_item.done` and end that do not repeat it)
had it unread: an address there left the output unlabelled, and the output's digest was that of no text. They are
now read when no delta carried the text, and not again when one did, however many of them carry it."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from proxy.flow import Outcome
from proxy.protocols.openai import ResponsesObserver
from tests.protocols.test_tool_call_output_shapes import DETECTORS, EMAIL, OUT, read
from tests.test_unsized_replies_output import Reply, setup_for, stored_output_labels  # noqa: F401  # (a fixture)

TEXT = f"Write to {OUT} for the keys."
ARGUMENTS = orjson.dumps({"to": OUT}).decode()


def message(content: list[Any]) -> dict[str, Any]:
    return {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant", "content": content}


def response(output: list[Any]) -> dict[str, Any]:
    return {"id": "resp_1", "object": "response", "model": "m", "status": "completed", "output": output}


PART = {"type": "output_text", "text": TEXT, "annotations": []}
CALL = {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "send", "arguments": ARGUMENTS}


def stream(*, deltas: bool, repeated: bool) -> list[dict[str, Any]]:
    """A message whose text, and a function call whose arguments, stream as deltas (`deltas`) or not, then come
    whole in the `.done` events; the item's `output_item.done` and the end hold them again only when `repeated`."""
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": {**response([]), "status": "in_progress"}},
        {"type": "response.output_item.added", "output_index": 0, "item": message([])},
        {"type": "response.content_part.added", "output_index": 0, "content_index": 0,
         "part": {"type": "output_text", "text": "", "annotations": []}},
    ]  # fmt: skip
    if deltas:
        events += [{"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": TEXT[:9]},
                   {"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": TEXT[9:]}]  # fmt: skip
    events += [
        {"type": "response.output_text.done", "output_index": 0, "content_index": 0, "text": TEXT},
        {"type": "response.content_part.done", "output_index": 0, "content_index": 0, "part": PART},
        {"type": "response.output_item.done", "output_index": 0, "item": message([PART] if repeated else [])},
        {"type": "response.output_item.added", "output_index": 1, "item": {**CALL, "arguments": ""}},
    ]
    if deltas:
        events.append({"type": "response.function_call_arguments.delta", "output_index": 1, "delta": ARGUMENTS})
    events += [
        {"type": "response.function_call_arguments.done", "output_index": 1, "arguments": ARGUMENTS},
        {"type": "response.output_item.done", "output_index": 1, "item": CALL if repeated else {**CALL, "arguments": ""}},
        {"type": "response.completed", "response": response([message([PART]), CALL] if repeated else [])},
    ]  # fmt: skip
    return events


def test_text_only_in_the_done_events_labels_the_output_through_the_proxy(setup_for: Any) -> None:  # noqa: F811
    setup = setup_for()
    body = b"".join(b"event: %s\ndata: %s\n\n" % (event["type"].encode(), orjson.dumps(event))
                    for event in stream(deltas=False, repeated=False))  # fmt: skip
    setup.upstream.reply = Reply([body], content_type="text/event-stream")
    request = {"model": "m", "input": "hello", "stream": True}
    with httpx.stream("POST", f"{setup.proxy.url}/v1/responses", json=request, timeout=30,
                      headers={"x-data-labels": "flow-done"}) as reply:  # fmt: skip
        got = reply.read()
    assert reply.status_code == 200 and OUT.encode() in got  # what the client has: the address
    setup.loop_thread.run(setup.proxy.process.runtime.sinks.flush())
    assert EMAIL in stored_output_labels(setup.store)["flow-done"]


def whole() -> Outcome:
    return read(ResponsesObserver, response([message([PART]), CALL]))


@pytest.mark.parametrize(("deltas", "repeated"), [(False, False), (False, True), (True, False), (True, True)])
def test_the_text_is_read_once_as_the_whole_reply_s(deltas: bool, repeated: bool) -> None:
    """However the text comes (deltas or not, the `.done` events, the item and the end repeating it or not), the
    output is labelled and its digest is the whole reply's: read once."""
    outcome = read(ResponsesObserver, stream(deltas=deltas, repeated=repeated))
    assert EMAIL in outcome.output_detected
    assert outcome.output_digest == whole().output_digest


def test_refusal_and_summary_done_events_are_read_beside_once() -> None:
    """A refusal and a reasoning summary that come only in their `.done` events (and a content part's) are read
    beside the content; once, when their deltas, or several `.done` events, carried them too."""

    def kept(events: list[dict[str, Any]]) -> tuple[str, Outcome]:
        outcome = Outcome(started_ns=1)
        observer = ResponsesObserver(outcome, DETECTORS, False)
        observer.head(200, lambda name: "text/event-stream" if name == "content-type" else None)
        for event in events:
            observer.chunk(b"data: " + orjson.dumps(event) + b"\n\n")
        text = b"".join(observer._text._asides.values()).decode() if observer._text._asides else ""  # type: ignore[union-attr]
        observer.finish()
        return text, outcome

    refused = f"I will not mail {OUT}."
    refusal_part = {"type": "refusal", "refusal": refused}
    summary = f"The user wants {OUT}."
    done = [
        {"type": "response.output_item.added", "output_index": 0, "item": message([])},
        {"type": "response.refusal.done", "output_index": 0, "content_index": 0, "refusal": refused},
        {"type": "response.content_part.done", "output_index": 0, "content_index": 0, "part": refusal_part},
        {"type": "response.output_item.done", "output_index": 0, "item": message([refusal_part])},
        {"type": "response.reasoning_summary_text.done", "output_index": 1, "summary_index": 0, "text": summary},
        {"type": "response.reasoning_summary_part.done", "output_index": 1, "summary_index": 0,
         "part": {"type": "summary_text", "text": summary}},
        {"type": "response.output_item.done", "output_index": 1,
         "item": {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": summary}]}},
        {"type": "response.completed", "response": response([])},
    ]  # fmt: skip
    text, outcome = kept(done)
    assert EMAIL in outcome.output_detected
    assert text.count(refused) == 1 and text.count(summary) == 1, text
    streamed = [
        done[0],
        {"type": "response.refusal.delta", "output_index": 0, "content_index": 0, "delta": refused},
        *done[1:4],
        {"type": "response.reasoning_summary_text.delta", "output_index": 1, "summary_index": 0, "delta": summary},
        *done[4:],
    ]
    text, outcome = kept(streamed)
    assert EMAIL in outcome.output_detected
    assert text.count(refused) == 1 and text.count(summary) == 1, text

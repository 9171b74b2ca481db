"""A Responses stream's citations (`annotations`: a `url_citation`'s title and link, a `file_citation`'s file name) that
come only in the events that end a content part or an output item (`response.content_part.done`,
`response.output_item.done`, the end's `response`), its text having streamed as deltas without any
`response.output_text.annotation.added`, are what the openai SDK hands the client (`event.item.content[0].annotations`,
`stream.get_final_response()`), and are scanned for the output's labels. They were not read: an item whose text
streamed was skipped whole at its `.done`, so an address in a cited page's title left the output unlabelled. Citations
carried by several of those events are read once."""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest

from proxy.flow import Outcome
from proxy.protocols.openai import ResponsesObserver
from tests.protocols.test_tool_call_output_shapes import DETECTORS, EMAIL, OUT, read
from tests.test_citation_output import FILE_CITATION, URL_CITATION, message, response
from tests.test_unsized_replies_output import Reply, setup_for, stored_output_labels  # noqa: F401  # (a fixture)

TEXT = "See the team page."


def stream(annotations: list[Any], where: str) -> list[dict[str, Any]]:
    """A Responses stream whose text streams as deltas and whose citations come only in the `where` event(s)."""
    added = {**message([]), "status": "in_progress", "content": []}
    part = {"type": "output_text", "text": TEXT, "annotations": annotations if where == "part" else []}
    done = message(annotations if where in ("item", "end") else [])
    return [
        {"type": "response.created", "sequence_number": 0,
         "response": {**response([]), "status": "in_progress", "output": []}},
        {"type": "response.output_item.added", "sequence_number": 1, "output_index": 0, "item": added},
        {"type": "response.content_part.added", "sequence_number": 2, "item_id": "msg_1", "output_index": 0,
         "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}},
        {"type": "response.output_text.delta", "sequence_number": 3, "item_id": "msg_1", "output_index": 0,
         "content_index": 0, "delta": TEXT, "logprobs": []},
        {"type": "response.output_text.done", "sequence_number": 4, "item_id": "msg_1", "output_index": 0,
         "content_index": 0, "text": TEXT, "logprobs": []},
        {"type": "response.content_part.done", "sequence_number": 5, "item_id": "msg_1", "output_index": 0,
         "content_index": 0, "part": part},
        {"type": "response.output_item.done", "sequence_number": 6, "output_index": 0,
         "item": done if where != "end" else message([])},
        {"type": "response.completed", "sequence_number": 7, "response": response(annotations)},
    ]  # fmt: skip


CASES = {
    "item-url": ([URL_CITATION], "item"),
    "item-file": ([FILE_CITATION], "item"),
    "part-url": ([URL_CITATION], "part"),
    "end-file": ([FILE_CITATION], "end"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_citations_only_in_the_done_events_label_the_streamed_output(setup_for: Any, name: str) -> None:  # noqa: F811
    annotations, where = CASES[name]
    setup = setup_for()
    body = b"".join(b"event: %s\ndata: %s\n\n" % (event["type"].encode(), orjson.dumps(event))
                    for event in stream(annotations, where))  # fmt: skip
    setup.upstream.reply = Reply([body], content_type="text/event-stream")
    flow = f"flow-{name}"
    client = openai.OpenAI(base_url=f"{setup.proxy.url}/v1", api_key="sk-unused", max_retries=0, timeout=30)
    shown: list[str] = []
    with client.responses.stream(model="m", input="hello", extra_headers={"x-data-labels": flow}) as events:
        for event in events:
            if event.type == "response.content_part.done" and event.part.type == "output_text":
                shown += [str(a.model_dump()) for a in event.part.annotations]
            elif event.type == "response.output_item.done" and event.item.type == "message":
                shown += [str(a.model_dump()) for c in event.item.content if c.type == "output_text"
                          for a in c.annotations]  # fmt: skip
        final = events.get_final_response()
    shown += [str(a.model_dump()) for c in final.output[0].content if c.type == "output_text" for a in c.annotations]
    assert final.output_text == TEXT
    assert any(OUT in seen for seen in shown)  # what the client has: the address in the citation
    setup.loop_thread.run(setup.proxy.process.runtime.sinks.flush())
    assert EMAIL in stored_output_labels(setup.store)[flow]


def test_citations_carried_again_are_read_once() -> None:
    """The same citations streamed (`annotation.added`) then carried whole by every event that ends the item: kept
    beside the output once."""
    events = stream([URL_CITATION], "item")
    events[5]["part"]["annotations"] = [URL_CITATION]
    events.insert(5, {"type": "response.output_text.annotation.added", "item_id": "msg_1", "output_index": 0,
                      "content_index": 0, "annotation_index": 0, "annotation": URL_CITATION})  # fmt: skip
    outcome = Outcome(started_ns=1)
    observer = ResponsesObserver(outcome, DETECTORS, False)
    observer.head(200, lambda name: "text/event-stream" if name == "content-type" else None)
    for event in events:
        observer.chunk(b"data: " + orjson.dumps(event) + b"\n\n")
    kept = b"".join(observer._text._asides.values()).decode()  # type: ignore[union-attr]  # (what is scanned beside)
    observer.finish()
    assert EMAIL in outcome.output_detected
    assert kept.count(OUT) == 1


def test_a_reply_without_citations_reads_as_before() -> None:
    assert read(ResponsesObserver, stream([], "item")).output_detected == frozenset()

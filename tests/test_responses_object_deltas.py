"""A Responses stream's reasoning deltas given as objects of text fields rather than strings (`response.reasoning.delta`
and `response.reasoning_summary.delta` as the API first defined them, `"delta": {"text": ...}`; a server that sends
`response.reasoning_summary_text.delta` so) are what the openai SDK hands the client (`event.delta`), and are scanned for
the output's labels beside the content, each delta's text run into the one before as string deltas are. They were
dropped (only a string delta was read): an address in the model's reasoning left the output unlabelled."""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest

from proxy.protocols.openai import ResponsesObserver
from tests.protocols.test_tool_call_output_shapes import EMAIL, OUT, read
from tests.test_unsized_replies_output import Reply, setup_for, stored_output_labels  # noqa: F401  # (a fixture)

DONE = {"id": "resp_1", "object": "response", "model": "m", "status": "completed", "output": []}


def stream(kind: str, deltas: list[Any]) -> list[dict[str, Any]]:
    index = "summary_index" if "summary" in kind else "content_index"
    return [
        {"type": "response.created", "sequence_number": 0, "response": {**DONE, "status": "in_progress"}},
        *({"type": kind, "sequence_number": 1 + at, "item_id": "rs_1", "output_index": 0, index: 0, "delta": delta}
          for at, delta in enumerate(deltas)),
        {"type": "response.completed", "sequence_number": 1 + len(deltas), "response": DONE},
    ]  # fmt: skip


KINDS = ["response.reasoning.delta", "response.reasoning_summary.delta", "response.reasoning_summary_text.delta"]


@pytest.mark.parametrize("kind", KINDS)
def test_an_object_delta_through_the_proxy_labels_the_output(setup_for: Any, kind: str) -> None:  # noqa: F811
    setup = setup_for()
    events = stream(kind, [{"text": "write to bob@exa"}, {"text": "mple.org today"}])  # split across two deltas
    body = b"".join(b"event: %s\ndata: %s\n\n" % (e["type"].encode(), orjson.dumps(e)) for e in events)
    setup.upstream.reply = Reply([body], content_type="text/event-stream")
    flow = f"flow-{kind.split('.')[1]}"
    client = openai.OpenAI(base_url=f"{setup.proxy.url}/v1", api_key="sk-unused", max_retries=0, timeout=30)
    got = client.responses.create(model="m", input="hello", stream=True, extra_headers={"x-data-labels": flow})
    shown = "".join(event.delta["text"] for event in got if event.type == kind)  # type: ignore[attr-defined,index]
    assert OUT in shown  # what the client has
    setup.loop_thread.run(setup.proxy.process.runtime.sinks.flush())
    assert EMAIL in stored_output_labels(setup.store)[flow]


def test_an_object_delta_is_beside_the_content_not_in_it() -> None:
    """Read beside the content: the digest is the content's (none here), and a delta without text labels nothing."""
    labelled = read(ResponsesObserver, stream(KINDS[0], [{"text": f"write to {OUT}", "type": "reasoning_text"}]))
    assert labelled.output_detected == {EMAIL}
    framing = read(ResponsesObserver, stream(KINDS[0], [{"type": OUT}]))  # a framing key's value, as in a request
    assert framing.output_detected == frozenset()
    plain = read(ResponsesObserver, stream(KINDS[0], [{"text": "nothing here"}]))
    assert labelled.output_digest == plain.output_digest


def test_an_item_delta_that_is_an_object_is_read_beside_the_content() -> None:
    """The same for the deltas of an item's text (`response.reasoning_text.delta`, ...) when a server sends an object."""
    events = stream("response.reasoning_text.delta", [{"text": "write to bob@exa"}, {"text": "mple.org"}])
    assert read(ResponsesObserver, events).output_detected == {EMAIL}

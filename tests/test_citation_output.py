"""The citations an OpenAI reply carries (`annotations`: a web search's `url_citation` with its `title` and `url`, a
`file_citation`'s `filename`) are output the client shows beside the text, and are scanned for the output's labels, whole
and streamed alike, as an Anthropic reply's citations are: a chat message's `annotations` (streamed in a delta), a
Responses output text part's `annotations` (streamed as `response.output_text.annotation.added`). They were not read:
an address in a cited page's title or link left the output unlabelled. The citation's own framing (its `type`, a file's
id, its offsets) is not read; a reply without citations is read as before."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from proxy.protocols.openai import ReplyObserver, ResponsesObserver
from tests.protocols.test_tool_call_output_shapes import EMAIL, OUT, read
from tests.test_unsized_replies_output import Reply, setup_for  # noqa: F401  # (a fixture)

CHAT_CITATION = {"type": "url_citation", "url_citation": {"start_index": 0, "end_index": 9, "title": f"Contact {OUT}",
                                                          "url": "https://example.com/team"}}  # fmt: skip
URL_CITATION = {"type": "url_citation", "start_index": 0, "end_index": 9, "title": "Our team",
                "url": f"mailto:{OUT}"}  # fmt: skip
FILE_CITATION = {"type": "file_citation", "file_id": "file-1", "filename": f"{OUT}.pdf", "index": 3}


def chat(annotations: list[Any]) -> dict[str, Any]:
    message = {"role": "assistant", "content": "See the team page.", "refusal": None, "annotations": annotations}
    return {"id": "c1", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}  # fmt: skip


def chat_stream(annotations: list[Any]) -> list[dict[str, Any]]:
    def chunk(delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
        return {"id": "c1", "object": "chat.completion.chunk", "model": "m",
                "choices": [{"index": 0, "delta": delta, "finish_reason": reason}]}  # fmt: skip

    return [chunk({"role": "assistant", "content": ""}), chunk({"content": "See the team page."}),
            chunk({"annotations": annotations}), chunk({}, "stop")]  # fmt: skip


def message(annotations: list[Any]) -> dict[str, Any]:
    return {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": "See the team page.", "annotations": annotations}]}  # fmt: skip


def response(annotations: list[Any]) -> dict[str, Any]:
    return {"id": "resp_1", "object": "response", "model": "m", "status": "completed", "output": [message(annotations)]}


def response_stream(annotations: list[Any]) -> list[dict[str, Any]]:
    added = {**message([]), "status": "in_progress", "content": []}
    events: list[dict[str, Any]] = [
        {"type": "response.output_item.added", "output_index": 0, "item": added},
        {"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": "See the team page."},
    ]
    events += [{"type": "response.output_text.annotation.added", "item_id": "msg_1", "output_index": 0,
                "content_index": 0, "annotation_index": at, "annotation": annotation}
               for at, annotation in enumerate(annotations)]  # fmt: skip
    events += [{"type": "response.output_item.done", "output_index": 0, "item": message(annotations)},
               {"type": "response.completed", "response": response(annotations)}]  # fmt: skip
    return events


CASES = {
    "chat-whole": (ReplyObserver, chat([CHAT_CITATION])),
    "chat-streamed": (ReplyObserver, chat_stream([CHAT_CITATION])),
    "responses-whole-url": (ResponsesObserver, response([URL_CITATION])),
    "responses-whole-file": (ResponsesObserver, response([FILE_CITATION])),
    "responses-streamed-url": (ResponsesObserver, response_stream([URL_CITATION])),
    "responses-streamed-file": (ResponsesObserver, response_stream([FILE_CITATION])),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_citations_title_link_or_file_name_is_scanned(name: str) -> None:
    observer, reply = CASES[name]
    cited = read(observer, reply)
    assert EMAIL in cited.output_detected
    plain = read(observer, chat([]) if observer is ReplyObserver else response([]))
    # the content's digest: citations are beside it
    assert cited.output_digest is not None and cited.output_digest == plain.output_digest


def test_a_citations_framing_is_not_read() -> None:
    framing = {"type": "file_citation", "file_id": f"file-{OUT}", "filename": "team.pdf", "index": 3}
    assert read(ResponsesObserver, response([framing])).output_detected == frozenset()
    assert read(ResponsesObserver, response_stream([framing])).output_detected == frozenset()


PATHS = {"chat": "/v1/chat/completions", "responses": "/v1/responses"}


@pytest.mark.parametrize("name", list(CASES))
def test_through_the_proxy_a_cited_address_labels_the_output(setup_for: Any, name: str) -> None:  # noqa: F811
    _, reply = CASES[name]
    setup = setup_for()
    if isinstance(reply, list):
        body = b"".join(b"data: " + orjson.dumps(event) + b"\n\n" for event in reply)
        if name.startswith("chat"):
            body += b"data: [DONE]\n\n"
        sent = Reply([body], content_type="text/event-stream")
    else:
        body = orjson.dumps(reply)
        sent = Reply([body])
    flow = f"flow-{name}"
    got, answer = setup.call(PATHS[name.split("-")[0]], flow, sent)
    assert got.status_code == 200 and answer == body
    span, edge = setup.recorded(got, flow)
    assert set(span) == set(edge) == {flow, EMAIL}

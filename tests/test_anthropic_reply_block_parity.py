"""A whole Messages reply is read as the same reply streamed is. A text block's `citations` (each `cited_text`, the
document's words the model quotes, which the client shows) were read when streamed (`citations_delta`) and skipped
in a whole reply; a tool use's `name` (the README: "tool calls' names and arguments" are scanned, as a chat reply's
are) was read in neither. An address in either went unlabelled."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.test_anthropic_event_names import MESSAGE
from tests.test_unsized_replies_output import EMAIL, OUT, Reply, setup_for  # noqa: F401  # (a fixture)

CITATION = {"type": "char_location", "cited_text": f"write to {OUT}", "document_index": 0, "document_title": "memo",
            "start_char_index": 0, "end_char_index": 24}  # fmt: skip
TEXT = {"type": "text", "text": "As the memo says.", "citations": [CITATION]}
TOOL = {"type": "tool_use", "id": "toolu_1", "name": OUT, "input": {"n": 1}}
BLOCKS = {"citation": TEXT, "tool-name": TOOL}


def whole(block: dict[str, Any]) -> Reply:
    return Reply([orjson.dumps({**MESSAGE, "content": [block], "stop_reason": "end_turn"})], framing="sized")


def streamed(block: dict[str, Any]) -> Reply:
    if block is TEXT:
        first = {"type": "text", "text": ""}
        deltas = [{"type": "citations_delta", "citation": CITATION}, {"type": "text_delta", "text": TEXT["text"]}]
    else:
        first = {**TOOL, "input": {}}
        deltas = [{"type": "input_json_delta", "partial_json": '{"n": 1}'}]
    events = [
        {"type": "message_start", "message": MESSAGE},
        {"type": "content_block_start", "index": 0, "content_block": first},
        *({"type": "content_block_delta", "index": 0, "delta": delta} for delta in deltas),
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 5}},
        {"type": "message_stop"},
    ]
    pieces = [b"event: %s\ndata: %s\n\n" % (event["type"].encode(), orjson.dumps(event)) for event in events]
    return Reply(pieces, content_type="text/event-stream")


@pytest.mark.parametrize("kind", list(BLOCKS))
@pytest.mark.parametrize("form", ["whole", "streamed"])
def test_what_a_block_holds_is_read_whole_or_streamed(setup_for: Any, kind: str, form: str) -> None:  # noqa: F811
    setup = setup_for()
    block = BLOCKS[kind]
    flow = f"flow-{kind}-{form}"
    response, body = setup.call("/v1/messages", flow, whole(block) if form == "whole" else streamed(block))
    assert response.status_code == 200 and OUT.encode() in body
    assert setup.recorded(response, flow) == ([flow, EMAIL], [flow, EMAIL])

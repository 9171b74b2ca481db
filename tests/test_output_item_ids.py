"""An output item read for its strings (a web search call, a shell call, an item type the adapter does not know)
is read for what the model wrote, not for its id: OpenAI's item ids are a prefix and 48 hex digits, whose runs of
digits are Luhn-valid card numbers about once in 400 ids, and a reply so labelled taints every call that builds on
it (`previous_response_id`)."""

from __future__ import annotations

from typing import Any

import orjson

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from proxy.flow import Outcome
from proxy.protocols.openai import ResponsesObserver

CARDS = Detectors((DetectorSpec("credit_card"),), 100_000)
# an id whose digits alone read as a card: OpenAI's hex ids (`ws_662cca3a753574000330533de…`, a Luhn-valid run
# between letters) no longer do, as digits inside a word are no card; an id need not be hex
HEX_ID = "ws:4111111111111111"
ITEM = {"type": "web_search_call", "id": HEX_ID, "status": "completed",
        "action": {"type": "search", "query": "weather in Paris"}}  # fmt: skip
REPLY = {"id": "resp_1", "object": "response", "model": "m", "status": "completed", "output": [ITEM]}


def labels(events: list[dict[str, Any]] | None) -> frozenset[str]:
    outcome = Outcome(started_ns=1)
    observer = ResponsesObserver(outcome, CARDS, False)
    kind = "application/json" if events is None else "text/event-stream"
    observer.head(200, lambda name: kind if name == "content-type" else None)
    if events is None:
        observer.body(orjson.dumps(REPLY))
    for event in events or ():
        observer.chunk(b"data: " + orjson.dumps(event) + b"\n\n")
    observer.finish()
    return outcome.output_detected


def test_an_items_id_is_not_read_as_a_card() -> None:
    assert CARDS.scan(HEX_ID) == {"pii:credit_card"}  # what the id alone reads as
    assert labels(None) == frozenset()
    assert labels([{"type": "response.output_item.added", "output_index": 0, "item": ITEM},
                   {"type": "response.output_item.done", "output_index": 0, "item": ITEM},
                   {"type": "response.completed", "response": REPLY}]) == frozenset()  # fmt: skip


def test_a_search_results_ciphertext_is_not_scanned() -> None:
    """Anthropic's web search results carry their page as `encrypted_content` (kilobytes of base64 each): scanning
    it found nothing and cost ~1.9 ms a reply of ten results (18 us without), on the event loop."""
    from proxy.protocols.anthropic import MessagesObserver

    found = "pii:credit_card"
    result = {"type": "web_search_result", "url": "https://example.com/a", "title": "A",
              "encrypted_content": "4111111111111111", "page_age": "April 30, 2025"}  # fmt: skip
    reply = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "stop_reason": "end_turn",
             "content": [{"type": "web_search_tool_result", "tool_use_id": "srvtoolu_01", "content": [result]},
                         {"type": "text", "text": "It is sunny."}]}  # fmt: skip
    outcome = Outcome(started_ns=1)
    observer = MessagesObserver(outcome, CARDS, False)
    observer.head(200, lambda name: "application/json" if name == "content-type" else None)
    observer.body(orjson.dumps(reply))
    observer.finish()
    assert found not in outcome.output_detected


def test_a_stored_replys_id_a_call_builds_on_is_not_read_as_a_card() -> None:
    """`previous_response_id` names a reply the proxy remembers (or labels `scan:truncated`): no template prints it."""
    from proxy.protocols.openai import read_request

    body = orjson.dumps({"model": "m", "input": "go on", "previous_response_id": "resp" + HEX_ID[2:]})
    read = read_request("responses", body)
    assert read.builds_on == "resp" + HEX_ID[2:]
    assert CARDS.scan_all(read.texts) == frozenset()

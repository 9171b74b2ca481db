"""A reply naming its model with a lone surrogate escape (`"model":"x\\ud800"`: Python's `json` and `JSON.parse`
read it) for a call whose checkpoint only the reply can name: the checkpoint is that name made printable, as
every other. `printable_name` raised UnicodeEncodeError on it (`urllib.parse.quote` encodes strictly) as the call
ended: the client got 500 internal_error for a reply the model had made, and the call left no record at all —
no lineage edge, no span."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from proxy.flow import printable_name
from proxy.record.store import SqliteStore
from tests.test_unsized_replies_output import CHAT, EMAIL, Reply, setup_for  # noqa: F401  # (a fixture)

ODD_MODEL = b'"model":"x\\ud800"'
CHECKPOINT = "x%ED%A0%80"  # the name's code points as UTF-8 would write them, surrogate too, percent-encoded


def test_a_name_holding_a_lone_surrogate_is_made_printable() -> None:
    assert printable_name("x\ud800") == CHECKPOINT
    assert printable_name("Qwen2.5 7B (ft ü)") == "Qwen2.5%207B%20(ft%20%C3%BC)"  # as before


def event_stream(body: bytes) -> bytes:
    chunk = dict(CHAT, object="chat.completion.chunk", choices=[
        {"index": 0, "delta": {"content": CHAT["choices"][0]["message"]["content"]}, "finish_reason": "stop"}])  # fmt: skip
    event = orjson.dumps(chunk).replace(b'"model":"m"', ODD_MODEL)
    return b"data: " + event + b"\n\ndata: [DONE]\n\n"


@pytest.mark.parametrize("framing", ["sized", "events"])
def test_a_reply_whose_model_holds_a_lone_surrogate_is_answered_and_recorded(setup_for: Any, framing: str) -> None:  # noqa: F811
    setup = setup_for()
    if framing == "events":
        body, kind = event_stream(b""), "text/event-stream"
    else:
        body, kind = orjson.dumps(CHAT).replace(b'"model":"m"', ODD_MODEL), "application/json"
    assert ODD_MODEL in body
    setup.upstream.reply = Reply([body], framing="sized", content_type=kind)
    flow = f"flow-{framing}"
    # a model the upstream's metadata does not list: only the reply names the checkpoint
    request = {"model": "unlisted", "messages": [{"role": "user", "content": "hello"}], "stream": framing == "events"}
    response = httpx.post(f"{setup.proxy.url}/v1/chat/completions", json=request, headers={"x-data-labels": flow},
                          timeout=30)  # fmt: skip
    assert response.status_code == 200 and response.content == body, response.text
    span = setup.otlp.by_trace(response.headers["x-trace-id"])
    assert span.attributes["lineage.checkpoint"] == CHECKPOINT
    assert list(span.attributes["lineage.output.labels"]) == [flow, EMAIL]
    setup.loop_thread.run(setup.proxy.process.runtime.sinks.flush())
    store = SqliteStore(setup.store, readonly=True)
    try:
        edges = {r.key.input_labels: r.key.checkpoint for r in store.rows()}
    finally:
        store.close()
    assert edges == {flow: CHECKPOINT}

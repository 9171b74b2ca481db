"""A Responses message of two content parts, the first streamed as deltas and the second sent only whole, in its
`.done` events (`response.output_text.done`, `response.content_part.done`) or only in its item's
`response.output_item.done`: the second part went unread. The adapter took "a delta carried this item's text" for
"a delta carried this part's", so an address in it left the output unlabelled (the record said the reply held no
personal data) and the output's digest was that of part of the text. Each part is now read unless its own deltas
carried it, and once, however many events repeat it. Through the proxy, from the vLLM-like server streaming so."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from proxy.protocols.openai import ResponsesObserver
from tests.harness import LoopThread, ProxyHandle
from tests.protocols.test_tool_call_output_shapes import EMAIL, OUT, read
from tests.servers.otlp_receiver import OtlpReceiver
from tests.servers.vllm_like import VllmLike

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: u, url: "${UPSTREAM}", protocol: openai, checkpoint: org/w}]
routes: [{model: "*", upstream: u}]
policy: {anonymous: allow, default_purpose: assistant}
detectors: [email]
telemetry: {exporter: otlp, endpoint: "http://127.0.0.1:${OTLP}"}
lineage: {store: null}
"""

FIRST = "Here is where to send the keys: "
SECOND = f"write to {OUT} today."
P0 = {"type": "output_text", "text": FIRST, "annotations": []}
P1 = {"type": "output_text", "text": SECOND, "annotations": []}


def message(content: list[Any]) -> dict[str, Any]:
    return {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant", "content": content}


def response(output: list[Any], status: str = "completed") -> dict[str, Any]:
    return {"id": "resp_1", "object": "response", "created_at": 1, "model": "m", "status": status, "output": output}


def stream(second: str) -> list[dict[str, Any]]:
    """Part 0 as deltas, then its `.done` events; part 1 (`second`): in its `.done` events only ("part-done"), in
    those and repeated by the item's and the end's ("repeated"), or in the item's `output_item.done` only ("item")."""
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": response([], "in_progress")},
        {"type": "response.output_item.added", "output_index": 0, "item": message([])},
        {"type": "response.content_part.added", "output_index": 0, "content_index": 0, "part": {**P0, "text": ""}},
        {"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": FIRST[:10]},
        {"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": FIRST[10:]},
        {"type": "response.output_text.done", "output_index": 0, "content_index": 0, "text": FIRST},
        {"type": "response.content_part.done", "output_index": 0, "content_index": 0, "part": P0},
    ]
    if second != "item":
        events += [
            {"type": "response.content_part.added", "output_index": 0, "content_index": 1, "part": {**P1, "text": ""}},
            {"type": "response.output_text.done", "output_index": 0, "content_index": 1, "text": SECOND},
            {"type": "response.content_part.done", "output_index": 0, "content_index": 1, "part": P1},
        ]
    whole = second != "part-done"
    events += [
        {"type": "response.output_item.done", "output_index": 0, "item": message([P0, P1] if whole else [])},
        {"type": "response.completed", "response": response([message([P0, P1])] if second == "repeated" else [])},
    ]
    return events


SECONDS = ["part-done", "repeated", "item"]


@pytest.mark.parametrize("second", SECONDS)
def test_the_second_part_labels_the_output_through_the_proxy(
    vllm: tuple[VllmLike, str],
    make_proxy: Callable[..., ProxyHandle],
    otlp: OtlpReceiver,
    loop_thread: LoopThread,
    second: str,
) -> None:
    server, upstream = vllm
    server.response_events = stream(second)
    proxy = make_proxy(CONFIG, UPSTREAM=upstream, OTLP=str(otlp.port))
    with httpx.stream("POST", f"{proxy.url}/v1/responses", json={"model": "m", "input": "hi", "stream": True},
                      timeout=30) as reply:  # fmt: skip
        got = reply.read()
    assert reply.status_code == 200 and OUT.encode() in got  # the client has the address
    loop_thread.run(proxy.process.runtime.sinks.flush())  # the span sent now, not when its batch is due
    span = otlp.by_trace(reply.headers["x-trace-id"])
    assert EMAIL in list(span.attributes["lineage.output.labels"])


@pytest.mark.parametrize("second", SECONDS)
def test_each_part_is_read_once_in_order(second: str) -> None:
    """However part 1 comes, the output is labelled and its digest is the whole reply's: each part read once."""
    outcome = read(ResponsesObserver, stream(second))
    assert EMAIL in outcome.output_detected
    assert outcome.output_digest == read(ResponsesObserver, response([message([P0, P1])])).output_digest


def test_a_part_numbered_past_the_small_ints_is_read_once() -> None:
    """The delta path tells a part's deltas by its `content_index` object (`is`): a number no parser keeps one
    object of takes the slower path on each delta, and is still read once."""
    events = [
        {"type": "response.output_item.added", "output_index": 0, "item": message([])},
        *({"type": "response.output_text.delta", "output_index": 0, "content_index": 300, "delta": piece}
          for piece in (SECOND[:5], SECOND[5:12], SECOND[12:])),
        {"type": "response.output_text.done", "output_index": 0, "content_index": 300, "text": SECOND},
        {"type": "response.output_item.done", "output_index": 0, "item": message([])},
        {"type": "response.completed", "response": response([])},
    ]  # fmt: skip
    outcome = read(ResponsesObserver, events)
    assert EMAIL in outcome.output_detected
    assert outcome.output_digest == read(ResponsesObserver, response([message([P1])])).output_digest

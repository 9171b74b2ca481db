"""A Responses message of two content parts streamed as deltas, from a server that numbers a part (`content_index`)
in some of its events only: its deltas without the number and its `.done` events (`response.output_text.done`,
`response.content_part.done`) with it, or the other way round. The adapter took an event without the number as one of
part 0, so the deltas of part 1 were "part 0's" and its `.done` events, or the item's `response.output_item.done`,
read part 1's text a second time: the output's digest was that of a text no client received. An event without the
number is now of the item's part now open (the one an event numbered, or the one after the part a `.done` event
ended), so each part is read once whichever events carry its number. Through the proxy, from the vLLM-like server
streaming so."""

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
from tests.test_responses_done_part_after_deltas import CONFIG, message, response

FIRST = "Here is where to send the keys: "
SECOND = f"write to {OUT} today."
PARTS = [{"type": "output_text", "text": text, "annotations": []} for text in (FIRST, SECOND)]
WHOLE = response([message(PARTS)])


def stream(numbered: str, added: bool = True) -> list[dict[str, Any]]:
    """Each part begun (`response.content_part.added`, unless not `added`), streamed in two deltas and ended; the part's
    number in its deltas only ("deltas"), in its other events only ("ends"), in all ("all") or in none ("none")."""
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": response([], "in_progress")},
        {"type": "response.output_item.added", "output_index": 0, "item": message([])},
    ]
    for at, part in enumerate(PARTS):
        text = part["text"]
        in_deltas = {"content_index": at} if numbered in ("deltas", "all") else {}
        in_ends = {"content_index": at} if numbered in ("ends", "all") else {}
        if added:
            events.append({"type": "response.content_part.added", "output_index": 0, **in_ends,
                           "part": {**part, "text": ""}})  # fmt: skip
        events += [
            {"type": "response.output_text.delta", "output_index": 0, **in_deltas, "delta": text[:9]},
            {"type": "response.output_text.delta", "output_index": 0, **in_deltas, "delta": text[9:]},
            {"type": "response.output_text.done", "output_index": 0, **in_ends, "text": text},
            {"type": "response.content_part.done", "output_index": 0, **in_ends, "part": part},
        ]
    events += [
        {"type": "response.output_item.done", "output_index": 0, "item": message(PARTS)},
        {"type": "response.completed", "response": WHOLE},
    ]
    return events


NUMBERED = ["deltas", "ends", "all", "none"]


@pytest.mark.parametrize("added", [True, False], ids=["added", "not-added"])
@pytest.mark.parametrize("numbered", NUMBERED)
def test_each_part_is_read_once(numbered: str, added: bool) -> None:
    """The output's digest is the whole reply's (each part once, in order), and the address in part 1 labels it."""
    outcome = read(ResponsesObserver, stream(numbered, added))
    assert EMAIL in outcome.output_detected
    assert outcome.output_digest == read(ResponsesObserver, WHOLE).output_digest


def test_a_part_sent_whole_after_unnumbered_deltas_is_read() -> None:
    """Part 0 streamed as unnumbered deltas, part 1 sent whole in its numbered `.done` events alone (no delta): the
    `.done` events that end part 0 do not make part 1 "streamed", so it is read, once."""
    events = stream("ends")
    events = [e for e in events if not (e["type"] == "response.output_text.delta" and SECOND.startswith(e["delta"]))]
    events = [e for e in events if e.get("delta") != SECOND[9:]]
    assert sum(e["type"] == "response.output_text.delta" for e in events) == 2  # part 0's deltas only
    outcome = read(ResponsesObserver, events)
    assert EMAIL in outcome.output_detected
    assert outcome.output_digest == read(ResponsesObserver, WHOLE).output_digest


@pytest.mark.parametrize("numbered", ["deltas", "ends"])
def test_the_recorded_digest_is_the_text_the_client_got_through_the_proxy(
    vllm: tuple[VllmLike, str],
    make_proxy: Callable[..., ProxyHandle],
    otlp: OtlpReceiver,
    loop_thread: LoopThread,
    numbered: str,
) -> None:
    server, upstream = vllm
    server.response_events = stream(numbered)
    proxy = make_proxy(CONFIG, UPSTREAM=upstream, OTLP=str(otlp.port))
    with httpx.stream("POST", f"{proxy.url}/v1/responses", json={"model": "m", "input": "hi", "stream": True},
                      timeout=30) as reply:  # fmt: skip
        got = reply.read()
    assert reply.status_code == 200 and OUT.encode() in got  # the client has the address
    loop_thread.run(proxy.process.runtime.sinks.flush())  # the span sent now, not when its batch is due
    span = otlp.by_trace(reply.headers["x-trace-id"])
    assert EMAIL in list(span.attributes["lineage.output.labels"])
    assert span.attributes["lineage.output.digest"] == read(ResponsesObserver, WHOLE).output_digest

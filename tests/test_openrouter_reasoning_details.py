"""OpenRouter's chat replies carry the model's reasoning as `reasoning_details` beside `reasoning`
(`[{"type": "reasoning.text", "text": ...}, {"type": "reasoning.summary", "summary": ...}, {"type":
"reasoning.encrypted", "data": ...}]`, whole or streamed). A reply whose reasoning came in the details alone had it
unread: an address the model reasoned about left the output unlabelled. The details' text and summaries are now
read beside the content, once (not again where the same message or delta's `reasoning` carried them); the
encrypted data is not read."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from proxy.flow import Outcome
from proxy.protocols.openai import ReplyObserver
from tests.protocols.test_tool_call_output_shapes import DETECTORS, EMAIL, OUT, read
from tests.test_unsized_replies_output import Reply, setup_for, stored_output_labels  # noqa: F401  # (a fixture)

THOUGHT = f"The user asks me to mail {OUT}."
DETAILS = [
    {"type": "reasoning.text", "text": THOUGHT, "format": "unknown", "index": 0},
    {"type": "reasoning.encrypted", "data": "gAAAAABo", "format": "openai-responses-v1", "index": 1},
]
SUMMARY = [{"type": "reasoning.summary", "summary": THOUGHT, "format": "anthropic-claude-v1", "index": 0}]


def whole(details: list[Any], reasoning: str | None = None) -> dict[str, Any]:
    message = {"role": "assistant", "content": "Done.", "reasoning": reasoning, "reasoning_details": details}
    return {"id": "gen-1", "object": "chat.completion", "model": "m", "provider": "OpenAI",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}  # fmt: skip


def streamed(details: list[Any], reasoning: bool = False) -> list[dict[str, Any]]:
    def chunk(delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
        return {"id": "gen-1", "object": "chat.completion.chunk", "model": "m",
                "choices": [{"index": 0, "delta": delta, "finish_reason": reason}]}  # fmt: skip

    cut = [{**detail, "text": detail["text"][:12]} if "text" in detail else detail for detail in details]
    rest = [{**detail, "text": detail["text"][12:]} for detail in details if "text" in detail]
    first = {"role": "assistant", "content": "", "reasoning_details": cut}
    second: dict[str, Any] = {"content": "", "reasoning_details": rest}
    if reasoning:
        first["reasoning"], second["reasoning"] = THOUGHT[:12], THOUGHT[12:]
    return [chunk(first), chunk(second), chunk({"content": "Done."}), chunk({}, "stop")]


def test_reasoning_only_in_its_details_labels_the_output_through_the_proxy(setup_for: Any) -> None:  # noqa: F811
    setup = setup_for()
    setup.upstream.reply = Reply([orjson.dumps(whole(DETAILS))])
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    reply = httpx.post(f"{setup.proxy.url}/v1/chat/completions", json=body, timeout=30,
                       headers={"x-data-labels": "flow-details"})  # fmt: skip
    assert reply.status_code == 200 and OUT in reply.json()["choices"][0]["message"]["reasoning_details"][0]["text"]
    setup.loop_thread.run(setup.proxy.process.runtime.sinks.flush())
    assert EMAIL in stored_output_labels(setup.store)["flow-details"]


@pytest.mark.parametrize(
    "reply", [whole(DETAILS), whole(SUMMARY), streamed(DETAILS)], ids=["text", "summary", "stream"]
)
def test_reasoning_details_alone_are_read(reply: Any) -> None:
    assert EMAIL in read(ReplyObserver, reply).output_detected


def kept(reply: dict[str, Any] | list[dict[str, Any]]) -> str:
    outcome = Outcome(started_ns=1)
    observer = ReplyObserver(outcome, DETECTORS, False)
    streamed = isinstance(reply, list)
    observer.head(
        200, lambda name: ("text/event-stream" if streamed else "application/json") if name == "content-type" else None
    )
    if isinstance(reply, list):
        for event in reply:
            observer.chunk(b"data: " + orjson.dumps(event) + b"\n\n")
    else:
        observer.body(orjson.dumps(reply))
    text = b"\n".join(observer._text._asides.values()).decode() if observer._text._asides else ""  # type: ignore[union-attr]
    observer.finish()
    assert EMAIL in outcome.output_detected
    return text


def test_reasoning_carried_by_both_is_read_once_and_encrypted_data_not_at_all() -> None:
    for reply in (whole(DETAILS, THOUGHT), streamed(DETAILS, reasoning=True), whole(DETAILS)):
        text = kept(reply)
        assert text.count(THOUGHT) == 1 and "gAAAAABo" not in text, text

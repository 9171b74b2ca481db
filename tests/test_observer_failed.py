"""What a reply reader cannot read is never recorded as clean output.

A hunt found an Anthropic stream whose block start held a number as its `text`: the reader raised, was
dropped, and the e-mail address in the next delta left the call's output labels empty, with no sign the
reply went unread. The reader now skips such a value; and a reader that fails for any reason leaves the
output labelled `scan:truncated` where detectors run."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web

from proxy.config import DetectorSpec
from proxy.detectors import TRUNCATED, Detectors
from proxy.flow import Call, Decision, Outcome
from proxy.protocols.anthropic import MessagesObserver
from tests.harness import start_app

EMAIL = Detectors([DetectorSpec(name="email")])
CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: vllm, url: "${UPSTREAM}"}]
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
detectors: [email]
lineage: {store: null}
"""


def sse(events: list[dict[str, Any]]) -> bytes:
    return b"".join(f"event: {e['type']}\n".encode() + b"data: " + orjson.dumps(e) + b"\n\n" for e in events)


def test_a_number_where_a_block_starts_with_text_does_not_stop_the_reading() -> None:
    outcome = Outcome(started_ns=1)
    observer = MessagesObserver(outcome, EMAIL, False)
    observer.chunk(sse([
        {"type": "message_start", "message": {"id": "m", "model": "claude", "content": []}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": 1}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "mail alice@example.com"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_stop"},
    ]))  # fmt: skip
    observer.finish()
    assert "pii:email" in outcome.output_detected


class Outputs:
    name = "outputs"
    durable = True

    def __init__(self) -> None:
        self.labels: list[frozenset[str]] = []

    def start(self) -> None:
        pass

    def on_end(self, call: Call, decision: Decision, outcome: Outcome, output_labels: frozenset[str]) -> None:
        self.labels.append(outcome.output_detected)


@pytest.mark.interpreted  # makes the reader fail by patching it (tests/conftest.py)
def test_a_reply_its_reader_cannot_read_is_labelled_unread(make_proxy, loop_thread, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from proxy.protocols import openai

    def broken(self: object, body: bytes) -> None:
        raise ValueError("a reply of a shape no reader expected")

    monkeypatch.setattr(openai.ReplyObserver, "body", broken)
    odd = {"id": "x", "model": "m", "choices": [{"index": 0, "message": {"content": "hello"}}]}

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.method == "GET":
            return web.json_response({"object": "list", "data": [{"id": "m", "root": "m"}]})
        return web.json_response(odd)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner, port = loop_thread.run(start_app(app))
    try:
        proxy = make_proxy(CONFIG, UPSTREAM=f"http://127.0.0.1:{port}")
        outputs = Outputs()
        proxy.process.runtime.sinks.swap(outputs.name, outputs)
        reply = httpx.post(f"{proxy.url}/v1/chat/completions", json={"model": "m", "messages": []}, timeout=10)
        assert reply.status_code == 200 and reply.json() == odd  # forwarded unchanged
        assert len(outputs.labels) == 1 and TRUNCATED in outputs.labels[0], outputs.labels
    finally:
        loop_thread.run(runner.cleanup())

"""An `error` beside a streamed chunk's `choices` (OpenRouter's mid-stream error) is a whole value, read apart from
the one before it: each event's error was appended to the last with nothing between, so an address that ended one
(`mail bob@example.org`) and a word that began the next (`end_turn`) read `…orgend_turn`, no address."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from proxy.flow import Outcome
from proxy.protocols.openai import ReplyObserver
from tests.protocols.test_unknown_reply_shapes import DETECTORS
from tests.test_unsized_replies_output import BODIES, EMAIL, Reply, setup_for  # noqa: F401  # (a fixture)

HELLO = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
         "choices": [{"index": 0, "delta": {"content": "hello"}, "finish_reason": None}]}  # fmt: skip
ERRORS = b"".join(
    b"data: " + orjson.dumps({**HELLO, "choices": [], "error": {"message": message, "code": 502}}) + b"\n\n"
    for message in ("mail bob@example.org", "end_turn")
)
STREAM = b"data: " + orjson.dumps(HELLO) + b"\n\n" + ERRORS + b"data: [DONE]\n\n"


def test_an_address_ending_one_error_is_found() -> None:
    outcome = Outcome(started_ns=1)
    observer = ReplyObserver(outcome, DETECTORS, False)
    observer.head(200, lambda name: "text/event-stream")
    observer.chunk(STREAM)
    observer.finish()
    assert outcome.output_detected == {EMAIL}


def test_through_the_proxy_the_record_has_the_address(setup_for: Any) -> None:  # noqa: F811
    setup = setup_for()
    setup.upstream.reply = Reply([STREAM], content_type="text/event-stream")
    path, flow = "/v1/chat/completions", "flow-errors-apart"
    with httpx.stream("POST", f"{setup.proxy.url}{path}", json={**BODIES[path], "stream": True}, timeout=30,
                      headers={"x-data-labels": flow}) as response:  # fmt: skip
        got = b"".join(response.iter_raw())
    assert response.status_code == 200 and got == STREAM
    assert setup.recorded(response, flow) == ([flow, EMAIL], [flow, EMAIL])

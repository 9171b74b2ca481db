"""The Messages API's server-side fallback (a beta's `fallbacks`: a call the model asked for declines is run again on
another, `[{"model": ...}]` or `"default"`) names the model that answered in the reply: a whole reply's `model` is
relabelled to it; a stream's `message_start` names the model asked for, and a `fallback` block (`from`, `to`) marks where
the next one's output begins, its `to.model` the model the SDK's stream snapshot takes as the reply's (anthropic 2.17.0,
`lib/streaming/_beta_messages.py`: "the final hop's fallback block names the model that served the response"). The
record says what the SDK says: `gen_ai.response.model` the model that answered, and the checkpoint the upstream's
listing says it is (the rule of a reply naming another model than asked for, tests/test_reply_model_other_checkpoint.py).
Until 2026-12-07 a stream's record named the model asked for, which declined and wrote none of the reply."""

from __future__ import annotations

from typing import Any

import anthropic
import orjson
import pytest
from aiohttp import web

from tests.configs import ONE_UPSTREAM
from tests.event_streams import sse
from tests.harness import serving
from tests.test_anthropic_cached_input_tokens import TELEMETRY
from tests.test_scan_cost import _streamed
from tests.test_tiny_sse_lines import observer_of

ASKED, ANSWERED = "claude-asked", "claude-fallback"
HOP: Any = {"type": "fallback", "from": {"model": ASKED}, "to": {"model": ANSWERED},
            "trigger": {"type": "refusal", "category": None}}  # fmt: skip
USAGE: Any = {"input_tokens": 5, "output_tokens": 2, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
ITERATIONS: Any = [
    {"type": "message", "model": ASKED, "input_tokens": 5, "output_tokens": 1, "cache_creation_input_tokens": 0,
     "cache_read_input_tokens": 0},
    {"type": "fallback_message", "model": ANSWERED, "input_tokens": 5, "output_tokens": 1,
     "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
]  # fmt: skip


def fallback_app(seen: list[dict[str, Any]]) -> web.Application:
    """Anthropic's Messages API where the model asked for declines and the first of the call's `fallbacks` answers (the
    wire form of anthropic 2.17.0's `BetaFallbackBlock`, `BetaFallbackMessageIterationUsage`); a call without
    `fallbacks` is answered by the model asked for. Both models listed (`GET /v1/models`)."""

    async def models(request: web.Request) -> web.Response:
        listed = [{"id": name, "type": "model"} for name in (ASKED, ANSWERED)]
        return web.json_response({"data": listed, "has_more": False})

    async def messages(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        seen.append(body)
        fell = bool(body.get("fallbacks"))
        blocks = [HOP] if fell else []
        usage = {**USAGE, "iterations": ITERATIONS} if fell else USAGE
        message = {"id": "msg_1", "type": "message", "role": "assistant", "stop_reason": None, "stop_sequence": None}
        if not body.get("stream"):  # (relabelled: the model that answered)
            return web.json_response({**message, "model": ANSWERED if fell else body["model"], "usage": usage,
                                      "content": [*blocks, {"type": "text", "text": "hi"}],
                                      "stop_reason": "end_turn"})  # fmt: skip
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        events: list[dict[str, Any]] = [
            {"type": "message_start", "message": {**message, "model": body["model"], "content": [], "usage": USAGE}}
        ]
        for index, block in enumerate(blocks):  # (a server tool's way: start and stop, no deltas)
            events += [{"type": "content_block_start", "index": index, "content_block": block},
                       {"type": "content_block_stop", "index": index}]  # fmt: skip
        at = len(blocks)
        events += [
            {"type": "content_block_start", "index": at, "content_block": {"type": "text", "text": ""}},
            {"type": "content_block_delta", "index": at, "delta": {"type": "text_delta", "text": "hi"}},
            {"type": "content_block_stop", "index": at},
            {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": usage},
            {"type": "message_stop"},
        ]
        for event in events:
            await response.write(f"event: {event['type']}\ndata: ".encode() + orjson.dumps(event) + b"\n\n")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/messages", messages)
    return app


RECORD = ("gen_ai.request.model", "gen_ai.response.model", "lineage.checkpoint", "lineage.checkpoint.source")


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("fallbacks", [[{"model": ANSWERED}], "default", None], ids=["named", "default", "none"])
def test_the_record_names_the_model_that_answered(loop_thread, otlp, make_proxy, stream, fallbacks) -> None:  # type: ignore[no-untyped-def]
    """Through the real SDK's beta route (`fallbacks`, its beta header): the span's response model is the one the SDK
    gives its caller (`BetaMessage.model`, whole or the stream's final message), the model that answered, and the
    checkpoint the one the upstream lists under that name; a call without fallbacks names the model asked for."""
    seen: list[dict[str, Any]] = []
    with serving(loop_thread, fallback_app(seen)) as url:
        proxy = make_proxy(ONE_UPSTREAM + TELEMETRY, UPSTREAM=url, OTLP=f"http://127.0.0.1:{otlp.port}")
        client = anthropic.Anthropic(base_url=proxy.url, api_key="unused", max_retries=0, timeout=10)
        given: Any = {"model": ASKED, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
        if fallbacks is not None:
            given.update(fallbacks=fallbacks, betas=["server-side-fallback-2026-07-01"])
        try:
            if stream:  # (the SDK's stream helper: its final message's model is its snapshot's)
                with client.beta.messages.stream(**given) as events:
                    trace = events.response.headers["x-trace-id"]
                    answered = events.get_final_message().model
            else:
                raw = client.beta.messages.with_raw_response.create(**given)
                trace = raw.headers["x-trace-id"]
                answered = raw.parse().model
        finally:
            client.close()
        assert seen[0].get("fallbacks") == fallbacks
        span = otlp.by_trace(trace)
    expected = ANSWERED if fallbacks is not None else ASKED
    assert answered == expected
    assert tuple(span.attributes.get(key) for key in RECORD) == (ASKED, expected, expected, "upstream")


def _events(*events: tuple[str | None, dict[str, Any]]) -> bytes:
    return b"".join(sse(event, name) for name, event in events)


START = ("message_start", {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                                                                "model": ASKED, "content": [], "usage": USAGE}})  # fmt: skip
FELL = {"type": "content_block_start", "index": 0, "content_block": HOP}
REST = _events(
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": USAGE}),
    ("message_stop", {"type": "message_stop"}),
)


@pytest.mark.parametrize(
    ("stream", "model"),
    [
        (_events(START, ("content_block_start", FELL)) + REST, ANSWERED),
        (_events(START, (None, FELL)) + REST, ASKED),  # (no `event:` line: the SDK skips it)
        (_events(START, ("content_block_start", FELL))[:-1], ASKED),  # (no blank line ends it: never dispatched)
        (_events(START, ("content_block_start", {**FELL, "content_block": {**HOP, "to": {"model": 7}}})) + REST, ASKED),
    ],
    ids=["given", "unnamed", "unended", "no model named"],
)
def test_a_fallback_block_the_sdk_never_gives_names_no_model(stream: bytes, model: str) -> None:
    """The `fallback` block's model is the record's where the SDK gives its client the event, as the model and the stop
    reason an event holds are (`SseObserver._unseen`): not from one it skips (unnamed) or never dispatches (the body
    ends before its blank line), at any read size; nor from one naming none."""
    for read in (1, 2, 7, 64, len(stream)):
        observer, outcome = observer_of("anthropic")
        _streamed(observer, stream, read)
        assert outcome.response_model == model, read

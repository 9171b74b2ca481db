"""Event streams an upstream frames by hand (`tests.test_unsized_replies_output.Reply`), and the calls that read them
through the proxy: the openai SDK's chat or Responses stream, or raw bytes with httpx; the call's span."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import openai
import orjson

from tests.test_unsized_replies_output import Reply


def sse(event: dict[str, Any], kind: str | None = None) -> bytes:
    return (b"event: %s\n" % kind.encode() if kind else b"") + b"data: " + orjson.dumps(event) + b"\n\n"


def chat(text: str, reason: str | None = None) -> bytes:
    return sse({"id": "c1", "object": "chat.completion.chunk", "model": "m",
                "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": reason}]})  # fmt: skip


def messages_pieces() -> list[bytes]:
    """An Anthropic Messages stream cut after its first delta: no `message_stop`, no stop reason."""
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [],
               "usage": {"input_tokens": 1, "output_tokens": 0}}  # fmt: skip
    block = {"type": "text", "text": ""}
    delta = {"type": "text_delta", "text": "hello"}
    return [
        sse({"type": "message_start", "message": message}, "message_start")
        + sse({"type": "content_block_start", "index": 0, "content_block": block}, "content_block_start"),
        sse({"type": "content_block_delta", "index": 0, "delta": delta}, "content_block_delta"),
    ]


def generate_pieces() -> list[bytes]:
    """Triton's `generate_stream`: two responses, no last event of its own."""
    return [sse({"model_name": "m", "model_version": "1", "text_output": "hello"}),
            sse({"model_name": "m", "model_version": "1", "text_output": " there"})]  # fmt: skip


def span_of(setup: Any, trace_id: str) -> Any:
    setup.loop_thread.run(setup.proxy.process.runtime.sinks.flush())
    return setup.otlp.by_trace(trace_id)


def openai_chat(
    setup: Any,
    flow: str | None = None,
    *,
    timeout: float = 10,
    catch: type[Exception] | tuple[type[Exception], ...] = (),
    before_close: Callable[[], object] | None = None,
) -> tuple[list[Any], Exception | None, Any]:
    """A chat stream through the proxy with the openai SDK (`flow` its labels, if any): the chunks it gave, what it
    raised of `catch` while giving them (anything else is raised), the call's span. `before_close` runs before the
    client closes, whatever happened."""
    return _openai_stream(setup, _chat_stream, flow, timeout, catch, before_close)


def openai_responses(
    setup: Any,
    flow: str | None = None,
    *,
    timeout: float = 10,
    catch: type[Exception] | tuple[type[Exception], ...] = (),
) -> tuple[list[Any], Exception | None, Any]:
    """A Responses stream through the proxy with the openai SDK, as `openai_chat`: the events it gave, what it raised
    of `catch`, the call's span."""
    return _openai_stream(setup, _responses_stream, flow, timeout, catch, None)


def _chat_stream(client: openai.OpenAI) -> Any:
    return client.chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "user", "content": "hi"}], stream=True
    )


def _responses_stream(client: openai.OpenAI) -> Any:
    return client.responses.with_raw_response.create(model="m", input="hi", stream=True)


def _openai_stream(
    setup: Any,
    create: Callable[[openai.OpenAI], Any],
    flow: str | None,
    timeout: float,
    catch: type[Exception] | tuple[type[Exception], ...],
    before_close: Callable[[], object] | None,
) -> tuple[list[Any], Exception | None, Any]:
    """The stream `create` asks of the openai SDK through the proxy (`openai_chat`, `openai_responses`)."""
    headers = {"x-data-labels": flow} if flow is not None else None
    client = openai.OpenAI(base_url=f"{setup.proxy.url}/v1", api_key="k", timeout=timeout, max_retries=0,
                           default_headers=headers)  # fmt: skip
    given: list[Any] = []
    raised: Exception | None = None
    try:
        raw = create(client)
        try:
            for item in raw.parse():
                given.append(item)
        except catch as error:
            raised = error
    finally:
        if before_close is not None:
            before_close()
        client.close()
    return given, raised, span_of(setup, raw.headers["x-trace-id"])


def chat_call(setup: Any, pieces: list[bytes], flow: str, framing: str) -> tuple[list[str | None], Any]:
    """`pieces`, an event stream framed so, through the proxy to the openai SDK's chat stream: each chunk's content,
    the call's span."""
    setup.upstream.reply = Reply(pieces, framing=framing, content_type="text/event-stream")
    chunks, _, span = openai_chat(setup, flow)
    return contents(chunks), span


def contents(chunks: list[Any]) -> list[str | None]:
    """Each chat chunk's content."""
    return [chunk.choices[0].delta.content for chunk in chunks]


def post_stream(setup: Any, path: str, body: Any, flow: str, *, raw: bool = False) -> tuple[httpx.Response, bytes]:
    """`body` posted to `path` through the proxy with httpx, the reply read whole (as sent, undecoded, if `raw`)."""
    with httpx.stream("POST", f"{setup.proxy.url}{path}", json=body, timeout=10,
                      headers={"x-data-labels": flow}) as response:  # fmt: skip
        got = b"".join(response.iter_raw() if raw else response.iter_bytes())
    return response, got

"""The openai SDK raises `APIError` at any streamed chunk whose `error` is set (`data.get("error")`), choices or not.
An upstream that reports a failure mid-stream in a chunk that also has its `choices` (OpenRouter's documented shape:
the error beside a choice whose `finish_reason` is `"error"`; OpenAI-compatible gateways pass it on) was recorded as
a call that went well: the error was looked for only in chunks without `choices`, so the application got an
`APIError` and the record no `upstream_error`, and the error's message went unread for the output's labels."""

from __future__ import annotations

from typing import Any

import openai
import orjson

from tests.test_unsized_replies_output import EMAIL, OUT, Reply, setup_for  # noqa: F401  # (a fixture)


def sse(event: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(event) + b"\n\n"


def test_an_error_beside_the_choices_is_the_upstreams_error(setup_for: Any) -> None:  # noqa: F811
    setup = setup_for()
    hello = sse({"id": "c1", "object": "chat.completion.chunk", "model": "m",
                 "choices": [{"index": 0, "delta": {"content": "hello"}, "finish_reason": None}]})  # fmt: skip
    failed = sse({"id": "c1", "object": "chat.completion.chunk", "model": "m",
                  "error": {"code": 502, "message": f"provider failed for {OUT}"},
                  "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]})  # fmt: skip
    setup.upstream.reply = Reply([hello + failed + b"data: [DONE]\n\n"], content_type="text/event-stream")
    flow = "flow-error-beside-choices"
    client = openai.OpenAI(base_url=f"{setup.proxy.url}/v1", api_key="k", timeout=10, max_retries=0,
                           default_headers={"x-data-labels": flow})  # fmt: skip
    got: list[str | None] = []
    try:
        raw = client.chat.completions.with_raw_response.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        try:
            for chunk in raw.parse():
                got.append(chunk.choices[0].delta.content)
        except openai.APIError as error:
            raised = str(error)
    finally:
        client.close()
    assert got == ["hello"] and OUT in raised  # the SDK raised at the error, as it would direct
    setup.loop_thread.run(setup.proxy.process.runtime.sinks.flush())
    span = setup.otlp.by_trace(raw.headers["x-trace-id"])
    assert span.attributes.get("error.type") == "upstream_error"
    assert list(span.attributes["lineage.output.labels"]) == [flow, EMAIL]  # what the application was given


def test_a_falsy_error_in_a_chunk_without_choices_is_no_error(setup_for: Any) -> None:  # noqa: F811
    """The SDK raises at a truthy `error` only: a chunk `{"error": null}` or `{"error": ""}` (usage alone, a gateway's
    empty field) ends nothing, and the call is no upstream error."""
    setup = setup_for()
    hello = sse({"id": "c1", "object": "chat.completion.chunk", "model": "m",
                 "choices": [{"index": 0, "delta": {"content": "hello"}, "finish_reason": "stop"}]})  # fmt: skip
    empty = sse({"id": "c1", "object": "chat.completion.chunk", "model": "m", "error": "",
                 "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})  # fmt: skip
    setup.upstream.reply = Reply([hello + empty + b"data: [DONE]\n\n"], content_type="text/event-stream")
    client = openai.OpenAI(base_url=f"{setup.proxy.url}/v1", api_key="k", timeout=10, max_retries=0)
    try:
        raw = client.chat.completions.with_raw_response.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        got = [chunk.choices[0].delta.content for chunk in raw.parse() if chunk.choices]
    finally:
        client.close()
    assert got == ["hello"]  # the SDK did not raise
    setup.loop_thread.run(setup.proxy.process.runtime.sinks.flush())
    span = setup.otlp.by_trace(raw.headers["x-trace-id"])
    assert span.attributes.get("error.type") is None

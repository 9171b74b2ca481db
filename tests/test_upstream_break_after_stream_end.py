"""An upstream that breaks off after its event stream's end (`data: [DONE]`, a Responses `response.completed`,
Anthropic's `message_stop`): the client has the whole reply, and the call is recorded complete, so the client's body
ends as it would have. Its connection was cut instead, without the chunked body's end, and a client that reads to
the body's end (the openai SDK's Responses stream, the Anthropic SDK) raised though it had every event. A break
before the end still cuts the client's connection: the reply it has is not whole."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.test_unsized_replies_output import BODIES, EMAIL, OUT, Reply, setup_for  # noqa: F401  # (a fixture)


def sse(event: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(event) + b"\n\n"


CHAT = sse({"id": "c1", "object": "chat.completion.chunk", "model": "m",
            "choices": [{"index": 0, "delta": {"content": f"write to {OUT}"}, "finish_reason": "stop"}]})  # fmt: skip


def test_a_break_after_the_end_leaves_the_client_a_whole_body(setup_for: Any) -> None:  # noqa: F811
    setup = setup_for()
    sent = CHAT + b"data: [DONE]\n\n"
    setup.upstream.reply = Reply([sent], content_type="text/event-stream", cut=True)
    path, flow = "/v1/chat/completions", "flow-break-after-end"
    with httpx.stream("POST", f"{setup.proxy.url}{path}", json={**BODIES[path], "stream": True}, timeout=30,
                      headers={"x-data-labels": flow}) as response:  # fmt: skip
        got = b"".join(response.iter_raw())
    assert response.status_code == 200 and got == sent
    assert setup.recorded(response, flow) == ([flow, EMAIL], [flow, EMAIL])
    span = setup.otlp.by_trace(response.headers["x-trace-id"])
    assert "error.type" not in span.attributes


def test_the_openai_sdk_reads_a_responses_stream_whose_upstream_breaks_after_its_end(setup_for: Any) -> None:  # noqa: F811
    setup = setup_for()
    delta = {"type": "response.output_text.delta", "sequence_number": 1, "output_index": 0, "content_index": 0,
             "item_id": "m1", "delta": f"write to {OUT}", "logprobs": []}  # fmt: skip
    completed = {"type": "response.completed", "sequence_number": 2,
                 "response": {"id": "r1", "object": "response", "created_at": 1, "model": "m", "status": "completed",
                              "output": [], "parallel_tool_calls": False, "tool_choice": "auto", "tools": []}}  # fmt: skip
    setup.upstream.reply = Reply([sse(delta) + sse(completed)], content_type="text/event-stream", cut=True)
    flow = "flow-sdk-break-after-end"
    sdk = openai.OpenAI(base_url=f"{setup.proxy.url}/v1", api_key="k", max_retries=0,
                        default_headers={"x-data-labels": flow})  # fmt: skip
    raw = sdk.responses.with_raw_response.create(model="m", input="hello", stream=True)
    kinds = [event.type for event in raw.parse()]  # read to the body's end
    assert kinds == ["response.output_text.delta", "response.completed"]
    assert setup.recorded(raw, flow) == ([flow, EMAIL], [flow, EMAIL])


def test_a_break_before_the_end_still_cuts_the_client(setup_for: Any) -> None:  # noqa: F811
    setup = setup_for()
    setup.upstream.reply = Reply([CHAT], content_type="text/event-stream", cut=True)
    path = "/v1/chat/completions"
    with (
        httpx.stream("POST", f"{setup.proxy.url}{path}", json={**BODIES[path], "stream": True}, timeout=30) as response,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        b"".join(response.iter_raw())
    span = setup.otlp.by_trace(response.headers["x-trace-id"])
    assert span.attributes["error.type"] == "upstream_reset"

"""A stream whose upstream sends an error in band, after its 200 head (vLLM, TGI and OpenAI: `data: {"error": ...}`;
Anthropic and the Responses API: an `error` event), is recorded with `error.type` `upstream_error`, as a gRPC
stream's in-band error is: it was recorded as a call that went well, though the openai SDK raises on it. Its strings
are still read for the output's labels; and when something else ends the stream (the upstream breaking off), that
is its type."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.test_unsized_replies_output import BODIES, EMAIL, OUT, Reply, setup_for  # noqa: F401  # (a fixture)


def sse(event: dict[str, Any], kind: str | None = None) -> bytes:
    return (b"event: " + kind.encode() + b"\n" if kind else b"") + b"data: " + orjson.dumps(event) + b"\n\n"


CHUNK = sse({"id": "c1", "object": "chat.completion.chunk", "model": "m",
             "choices": [{"index": 0, "delta": {"content": "hello"}, "finish_reason": None}]})  # fmt: skip
ERRORS = {
    "vllm": ("/v1/chat/completions", CHUNK + sse({"error": {"object": "error", "message": f"cannot mail {OUT}",
                                                            "type": "BadRequestError", "code": 400}})
             + b"data: [DONE]\n\n"),
    "vllm-older": ("/v1/chat/completions", CHUNK + sse({"object": "error", "message": f"cannot mail {OUT}",
                                                        "type": "InternalServerError", "code": 500})
                   + b"data: [DONE]\n\n"),
    "tgi": ("/v1/chat/completions", CHUNK + sse({"error": f"cannot mail {OUT}", "error_type": "generation"})),
    "anthropic": ("/v1/messages", sse({"type": "message_start", "message": {"id": "msg_1", "model": "m"}},
                                      "message_start")
                  + sse({"type": "error", "error": {"type": "overloaded_error", "message": f"cannot mail {OUT}"}},
                        "error")),
    "responses": ("/v1/responses", sse({"type": "response.created", "response": {"id": "r1", "model": "m",
                                                                                 "status": "in_progress"}})
                  + sse({"type": "error", "code": "server_error", "message": f"cannot mail {OUT}", "param": None})),
}  # fmt: skip


def error_type(setup: Any, response: Any, flow: str) -> tuple[str | None, list[str]]:
    labels, _ = setup.recorded(response, flow)
    return setup.otlp.by_trace(response.headers["x-trace-id"]).attributes.get("error.type"), labels


@pytest.mark.parametrize("server", list(ERRORS))
def test_an_error_in_the_stream_is_recorded_as_one(setup_for: Any, server: str) -> None:  # noqa: F811
    setup = setup_for()
    path, sent = ERRORS[server]
    setup.upstream.reply = Reply([sent], content_type="text/event-stream")
    flow = f"flow-in-band-{server}"
    with httpx.stream("POST", f"{setup.proxy.url}{path}", json={**BODIES[path], "stream": True}, timeout=30,
                      headers={"x-data-labels": flow}) as response:  # fmt: skip
        got = b"".join(response.iter_raw())
    assert response.status_code == 200 and got == sent
    assert error_type(setup, response, flow) == ("upstream_error", [flow, EMAIL])


def test_the_openai_sdk_raises_on_the_error_and_the_record_says_so(setup_for: Any) -> None:  # noqa: F811
    setup = setup_for()
    setup.upstream.reply = Reply([ERRORS["vllm"][1]], content_type="text/event-stream")
    flow = "flow-in-band-sdk"
    sdk = openai.OpenAI(base_url=f"{setup.proxy.url}/v1", api_key="k", max_retries=0,
                        default_headers={"x-data-labels": flow})  # fmt: skip
    raw = sdk.chat.completions.with_raw_response.create(model="m", messages=[{"role": "user", "content": "hi"}],
                                                        stream=True)  # fmt: skip
    with pytest.raises(openai.APIError, match="cannot mail"):
        for _ in raw.parse():
            pass
    assert error_type(setup, raw, flow) == ("upstream_error", [flow, EMAIL])


def test_a_stream_without_an_error_records_none(setup_for: Any) -> None:  # noqa: F811
    setup = setup_for()
    setup.upstream.reply = Reply([CHUNK + b"data: [DONE]\n\n"], content_type="text/event-stream")
    flow = "flow-in-band-none"
    path = "/v1/chat/completions"
    with httpx.stream("POST", f"{setup.proxy.url}{path}", json={**BODIES[path], "stream": True}, timeout=30,
                      headers={"x-data-labels": flow}) as response:  # fmt: skip
        b"".join(response.iter_raw())
    assert error_type(setup, response, flow) == (None, [flow])


def test_what_ends_the_stream_after_an_error_is_its_type(setup_for: Any) -> None:  # noqa: F811
    setup = setup_for()
    path, sent = ERRORS["anthropic"]
    setup.upstream.reply = Reply([sent], content_type="text/event-stream", cut=True)
    flow = "flow-in-band-cut"
    with (
        httpx.stream("POST", f"{setup.proxy.url}{path}", json={**BODIES[path], "stream": True}, timeout=30,
                     headers={"x-data-labels": flow}) as response,
        pytest.raises(httpx.RemoteProtocolError),
    ):  # fmt: skip
        b"".join(response.iter_raw())
    assert error_type(setup, response, flow) == ("upstream_reset", [flow, EMAIL])


def test_a_responses_stream_that_ends_failed_is_recorded_as_an_upstream_error(setup_for: Any) -> None:  # noqa: F811
    """The Responses API's own failure: the response ends `failed` (`response.failed`), its `error` saying why."""
    setup = setup_for()
    sent = (sse({"type": "response.created", "response": {"id": "r2", "model": "m", "status": "in_progress"}})
            + sse({"type": "response.failed", "response": {"id": "r2", "model": "m", "status": "failed", "output": [],
                                                           "error": {"code": "server_error", "message": "overloaded"}}}))  # fmt: skip
    setup.upstream.reply = Reply([sent], content_type="text/event-stream")
    flow = "flow-in-band-responses-failed"
    with httpx.stream("POST", f"{setup.proxy.url}/v1/responses", json={**BODIES["/v1/responses"], "stream": True},
                      timeout=30, headers={"x-data-labels": flow}) as response:  # fmt: skip
        got = b"".join(response.iter_raw())
    assert response.status_code == 200 and got == sent
    assert error_type(setup, response, flow) == ("upstream_error", [flow])

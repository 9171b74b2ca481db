"""llama.cpp's server sends an error in a stream it has begun (after its 200 head) as a line of its own, `error:
{...}` (`server_sent_event(sink, "error", error_data)`), then `data: [DONE]`: a prompt past the context size, a
failed generation. `error` is no field SSE defines, so a client (the openai SDK) ignores the line and sees a stream
that ended well: the record is the only place the failure shows. It is recorded with `error.type` `upstream_error`,
as an error vLLM, TGI, Anthropic or the Responses API sends in band is, and its strings are read for the output's
labels as theirs are: it was recorded as a call that went well, its output `scan:truncated`."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.test_stream_in_band_errors import error_type
from tests.test_unsized_replies_output import BODIES, EMAIL, OUT, Reply, setup_for  # noqa: F401  # (a fixture)

CHUNK = b"data: " + orjson.dumps({
    "choices": [{"finish_reason": None, "index": 0, "delta": {"role": "assistant", "content": None}}],
    "created": 1, "id": "chatcmpl-1", "model": "m", "system_fingerprint": "b1", "object": "chat.completion.chunk",
}) + b"\n\n"  # fmt: skip
ERROR = {"code": 500, "message": f"cannot mail {OUT}", "type": "server_error"}
EXCEEDED = {"code": 400, "message": "the request exceeds the available context size, try increasing it",
            "type": "exceed_context_size_error", "n_prompt_tokens": 5000, "n_ctx": 4096}  # fmt: skip


def stream(error: dict[str, Any], first: bytes = b"") -> bytes:
    return first + b"error: " + orjson.dumps(error) + b"\n\n" + b"data: [DONE]\n\n"


@pytest.mark.parametrize(("sent", "labels"), [(stream(ERROR, CHUNK), [EMAIL]), (stream(EXCEEDED), [])],
                         ids=["mid-stream", "before-the-first-token"])  # fmt: skip
def test_a_llama_cpp_error_line_is_an_upstream_error(setup_for: Any, sent: bytes, labels: list[str]) -> None:  # noqa: F811
    setup = setup_for()
    setup.upstream.reply = Reply([sent], content_type="text/event-stream")
    path, flow = "/v1/chat/completions", f"flow-llama-error-{len(labels)}"
    with httpx.stream("POST", f"{setup.proxy.url}{path}", json={**BODIES[path], "stream": True}, timeout=30,
                      headers={"x-data-labels": flow}) as response:  # fmt: skip
        got = b"".join(response.iter_raw())
    assert response.status_code == 200 and got == sent
    assert error_type(setup, response, flow) == ("upstream_error", [flow, *labels])


def test_the_openai_sdk_sees_a_quiet_end_and_the_record_says_it_failed(setup_for: Any) -> None:  # noqa: F811
    setup = setup_for()
    setup.upstream.reply = Reply([stream(EXCEEDED)], content_type="text/event-stream")
    flow = "flow-llama-error-sdk"
    sdk = openai.OpenAI(base_url=f"{setup.proxy.url}/v1", api_key="k", max_retries=0,
                        default_headers={"x-data-labels": flow})  # fmt: skip
    raw = sdk.chat.completions.with_raw_response.create(model="m", messages=[{"role": "user", "content": "hi"}],
                                                        stream=True)  # fmt: skip
    assert list(raw.parse()) == []  # the SDK ignores the line: no chunk, no exception
    assert error_type(setup, raw, flow) == ("upstream_error", [flow])

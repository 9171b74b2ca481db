"""TGI's chat API writes tool calls in shapes of its own, which its clients read (the openai SDK keeps what it is
given; LangChain and others take the arguments as they come): a whole reply's `function.arguments` is a JSON object,
not a string of one, and a streamed delta's `tool_calls` is one call as an object, not a list of calls
(`"tool_calls": {"index": 0, "id": "", "type": "function", "function": {"name": null, "arguments": "..."}}`, TGI
2.4). What the model wrote there is read for the output's labels as the API's own shapes are: it was passed unread,
and the call recorded clean (not even `scan:truncated`)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from tests.test_unsized_replies_output import BODIES, EMAIL, OUT, Reply, setup_for  # noqa: F401  # (a fixture)

PATH = "/v1/chat/completions"
PIECES = ['{"function": {"_name": "send_mail", "to": "', OUT[:7], OUT[7:], '"}}']  # the address across two deltas


def chunk(arguments: str) -> bytes:
    """A TGI 2.4 tool call delta, as it streams one."""
    return b"data: " + orjson.dumps({
        "object": "chat.completion.chunk", "id": "", "created": 1733213355, "model": "m",
        "system_fingerprint": "2.4.1-sha-d2ed52f",
        "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": {
            "index": 0, "id": "", "type": "function", "function": {"name": None, "arguments": arguments}}},
            "logprobs": None, "finish_reason": None}],
        "usage": None,
    }) + b"\n\n"  # fmt: skip


STREAM = b"".join(chunk(piece) for piece in PIECES) + b"data: [DONE]\n\n"
WHOLE = orjson.dumps({
    "object": "chat.completion", "id": "", "created": 1733213355, "model": "m",
    "system_fingerprint": "2.4.1-sha-d2ed52f",
    "choices": [{"index": 0, "message": {"role": "assistant", "tool_calls": [{
        "id": "0", "type": "function",
        "function": {"description": None, "name": "send_mail", "arguments": {"to": OUT, "body": "hi"}}}]},
        "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 10, "completion_tokens": 12, "total_tokens": 22},
})  # fmt: skip


def test_a_tgi_streamed_tool_call_is_read(setup_for: Any) -> None:  # noqa: F811
    setup = setup_for()
    setup.upstream.reply = Reply([STREAM], content_type="text/event-stream")
    flow = "flow-tgi-stream"
    with httpx.stream("POST", f"{setup.proxy.url}{PATH}", json={**BODIES[PATH], "stream": True}, timeout=30,
                      headers={"x-data-labels": flow}) as response:  # fmt: skip
        got = b"".join(response.iter_raw())
    assert response.status_code == 200 and got == STREAM
    assert setup.recorded(response, flow) == ([flow, EMAIL], [flow, EMAIL])


def test_a_tgi_whole_replys_object_arguments_are_read(setup_for: Any) -> None:  # noqa: F811
    setup = setup_for()
    flow = "flow-tgi-whole"
    response, got = setup.call(PATH, flow, Reply([WHOLE], framing="sized"))
    assert response.status_code == 200 and got == WHOLE
    assert setup.recorded(response, flow) == ([flow, EMAIL], [flow, EMAIL])

"""A reply of white space alone passed on as it arrives (chunked, or framed by its connection's close) is no JSON cut
short: nothing of a JSON text began. tritonclient's `InferResult` (rapidjson's `loads` of the body: "The document is
empty") and `requests`' `.json()` ("Expecting value") raise at it as at an empty body, not as at JSON cut short; the openai SDK's chat observer recorded it as no cut already. An OIP reply (`RestReplyObserver`)
so made was `upstream_incomplete` when chunked, `upstream_reset` when close-framed (`ends_early`: white space is "the
end of data" to orjson), an empty one neither; now each is recorded as an empty one is (helper sse2, 2026-12-05).
Driven with the real tritonclient and requests through the proxy against an upstream that frames by hand."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
import requests

from tests.event_streams import span_of
from tests.test_unsized_replies_output import BODIES, Reply, setup_for  # noqa: F401  # (a fixture)

WHITE = [b"\n", b" \r\n\t", b""]


@pytest.mark.parametrize("framing", ["chunked", "close"])
@pytest.mark.parametrize("body", WHITE, ids=["lf", "spaces", "empty"])
def test_an_oip_reply_of_white_space_is_no_json_cut_short(setup_for: Any, framing: str, body: bytes) -> None:  # noqa: F811
    setup = setup_for()
    setup.upstream.reply = Reply([body] if body else [], framing=framing)
    response = requests.post(
        f"{setup.proxy.url}/v2/models/iris/infer", json=BODIES["/v2/models/iris/infer"], timeout=10
    )
    assert response.status_code == 200 and response.content == body
    with pytest.raises(requests.exceptions.JSONDecodeError, match="Expecting value"):  # as an empty body
        response.json()
    assert span_of(setup, response.headers["x-trace-id"]).attributes.get("error.type") is None  # HEAD: cut, but ""

    setup.upstream.reply = Reply([body] if body else [], framing=framing)
    with pytest.raises(ValueError, match="The document is empty"):  # (tritonclient, as at an empty body)
        setup.infer()


@pytest.mark.parametrize("framing", ["chunked", "close"])
def test_a_chat_reply_of_white_space_is_no_json_cut_short_as_before(setup_for: Any, framing: str) -> None:  # noqa: F811
    setup = setup_for()
    setup.upstream.reply = Reply([b"\n"], framing=framing, content_type="application/json")
    client = openai.OpenAI(base_url=f"{setup.proxy.url}/v1", api_key="k", timeout=10, max_retries=0)
    try:
        raw = client.chat.completions.with_raw_response.create(model="m", messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(json.JSONDecodeError, match="Expecting value"):
            raw.parse()
    finally:
        client.close()
    assert span_of(setup, raw.headers["x-trace-id"]).attributes.get("error.type") is None

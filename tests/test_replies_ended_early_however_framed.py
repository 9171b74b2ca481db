"""A reply its upstream ends in good order before its end is `upstream_incomplete` however it is framed, as one framed
by its connection's close is `upstream_reset`: an Ollama stream (JSON lines) sent with a `Content-Length`, small enough
to be read whole, that ends before its `"done": true` line (the `ollama` client's iteration just ends, holding a reply
cut short); a JSON reply (a chat completion, not streamed; an OIP inference reply) sent chunked whose JSON ends before
its value does (the openai SDK raises at it as no JSON). Before 2026-12-05 each was recorded as a call that ended well.
Driven with the real `ollama` client and openai SDK through the proxy against an upstream that frames by hand."""

from __future__ import annotations

import json
from typing import Any

import httpx
import ollama
import openai
import orjson
import pytest

from tests.event_streams import span_of
from tests.test_stream_incomplete_other_ends import _last_span, _line
from tests.test_unsized_replies_output import BODIES, CHAT, INFER, Reply, pieces, setup_for  # noqa: F401  # (a fixture)


@pytest.mark.parametrize("ended", [False, True], ids=["before-its-end", "at-its-end"])
def test_a_sized_ollama_stream_ended_before_its_done_line_is_recorded_incomplete(setup_for: Any, ended: bool) -> None:  # noqa: F811
    setup = setup_for()
    pieces_ = [_line("hello"), _line(" there")] + ([_line("", done=True)] if ended else [])
    setup.upstream.reply = Reply(pieces_, framing="sized", content_type="application/x-ndjson")
    client = ollama.Client(host=setup.proxy.url, headers={"x-data-labels": f"flow-ollama-sized-{ended}"})
    got = [part.message.content for part in client.chat(model="m", messages=[{"role": "user", "content": "hi"}],
                                                         stream=True)]  # fmt: skip
    assert got == ["hello", " there"] + ([""] if ended else [])  # the client's iteration ends cleanly either way
    assert _last_span(setup).attributes.get("error.type") == (None if ended else "upstream_incomplete")


@pytest.mark.parametrize("ended", [False, True], ids=["before-its-end", "at-its-end"])
def test_a_sized_ollama_stream_longer_than_a_slice_ended_before_its_done_line_is_recorded_incomplete(
    setup_for: Any,  # noqa: F811
    ended: bool,
) -> None:
    """The same, its lines over 64 KiB: read a slice a loop turn (`Exchange.more`), its end judged after the last."""
    setup = setup_for()
    lines = [_line(f"{n:04d}" + "x" * 96) for n in range(1_000)]
    pieces_ = lines + ([_line("", done=True)] if ended else [])
    assert sum(map(len, lines)) > 64 << 10
    setup.upstream.reply = Reply(pieces_, framing="sized", content_type="application/x-ndjson")
    client = ollama.Client(host=setup.proxy.url, headers={"x-data-labels": f"flow-ollama-sliced-{ended}"})
    got = [part.message.content for part in client.chat(model="m", messages=[{"role": "user", "content": "hi"}],
                                                         stream=True)]  # fmt: skip
    assert len(got) == 1_000 + ended and got[-1] == ("" if ended else "0999" + "x" * 96)
    assert _last_span(setup).attributes.get("error.type") == (None if ended else "upstream_incomplete")


@pytest.mark.parametrize(
    ("framing", "cut", "recorded"),
    [("chunked", True, "upstream_incomplete"), ("close", True, "upstream_reset"), ("chunked", False, None)],
    ids=["chunked-cut", "close-cut", "chunked-whole"],
)
def test_a_chunked_json_reply_ended_before_its_value_is_recorded_incomplete(
    setup_for: Any,  # noqa: F811
    framing: str,
    cut: bool,
    recorded: str | None,
) -> None:
    setup = setup_for()
    body = orjson.dumps(CHAT)
    setup.upstream.reply = Reply(pieces(body[:-7] if cut else body, 40), framing=framing)
    client = openai.OpenAI(base_url=f"{setup.proxy.url}/v1", api_key="k", timeout=10, max_retries=0)
    try:
        raw = client.chat.completions.with_raw_response.create(model="m", messages=[{"role": "user", "content": "hi"}])
        if cut:
            with pytest.raises(json.JSONDecodeError):  # what the client saw: no JSON
                raw.parse()
        else:
            assert raw.parse().choices[0].message.content
    finally:
        client.close()
    assert span_of(setup, raw.headers["x-trace-id"]).attributes.get("error.type") == recorded


@pytest.mark.parametrize("cut", [True, False], ids=["cut", "whole"])
def test_a_chunked_oip_reply_ended_before_its_value_is_recorded_incomplete(setup_for: Any, cut: bool) -> None:  # noqa: F811
    setup = setup_for()
    body = orjson.dumps(INFER)
    setup.upstream.reply = Reply(pieces(body[:-5] if cut else body, 40), framing="chunked")
    response = httpx.post(f"{setup.proxy.url}/v2/models/iris/infer", json=BODIES["/v2/models/iris/infer"], timeout=10)
    assert response.status_code == 200 and response.content == (body[:-5] if cut else body)
    span = span_of(setup, response.headers["x-trace-id"])
    assert span.attributes.get("error.type") == ("upstream_incomplete" if cut else None)

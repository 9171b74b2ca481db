"""A JSON reply holding text past ASCII (as one in most languages does) that its upstream ended before its value did,
chunked or framed by its connection's close, is said to be (`ends_early`: `upstream_incomplete`, `upstream_reset`), as
an ASCII one is (helper revsse, 2026-12-05). Driven with the real openai SDK through the proxy against an upstream that
frames by hand."""

from __future__ import annotations

import json
from typing import Any

import openai
import orjson
import pytest

from tests.event_streams import span_of
from tests.test_unsized_replies_output import CHAT, Reply, pieces, setup_for  # noqa: F401  # (a fixture)


@pytest.mark.parametrize("framing", ["chunked", "close"])
@pytest.mark.parametrize("cut", [0, 1, 2])
def test_a_json_reply_cut_within_a_character_ended_before_its_value(setup_for: Any, framing: str, cut: int) -> None:  # noqa: F811
    """A reply holding text past ASCII (as one in most languages does) cut after it, or within a character's UTF-8 bytes,
    was not said to end before its value did: orjson says where it ended in characters, which were compared with its
    length in bytes, and says at 0 where bytes are no UTF-8. Its client's `json.loads` raises all the same."""
    setup = setup_for()
    reply = {**CHAT, "choices": [{**CHAT["choices"][0], "message": {"role": "assistant", "content": "写信给我" * 20}}]}
    body = orjson.dumps(reply)
    at = body.index("信".encode()) + cut  # (after `写`, or 1 or 2 of `信`'s 3 bytes)
    setup.upstream.reply = Reply(pieces(body[:at], 40), framing=framing)
    client = openai.OpenAI(base_url=f"{setup.proxy.url}/v1", api_key="k", timeout=10, max_retries=0)
    try:
        raw = client.chat.completions.with_raw_response.create(model="m", messages=[{"role": "user", "content": "hi"}])
        with pytest.raises((json.JSONDecodeError, UnicodeDecodeError)):  # (what the client saw: no JSON)
            raw.parse()
    finally:
        client.close()
    recorded = "upstream_incomplete" if framing == "chunked" else "upstream_reset"
    assert span_of(setup, raw.headers["x-trace-id"]).attributes.get("error.type") == recorded

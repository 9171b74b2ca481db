"""The keys of a `logit_bias` that are token ids (`{"50256": -100}`, OpenAI's form) are not text the proxy reads, so
they count for nothing against the scan's limit of strings (MAX_STRINGS). `tokenized_keys` checked the limit before
it looked at a key: a body holding exactly MAX_STRINGS strings and a logit_bias of token ids only was marked as read
in part (`scan:truncated`), where the same body without its logit_bias, and the same body before the keys were read
(2026-12-02), was read whole. A text key past the limit still is."""

from __future__ import annotations

import orjson

from proxy.protocols import MAX_STRINGS
from proxy.protocols.openai import read_request


def _body(bias: dict[str, int] | None) -> bytes:
    body: dict[str, object] = {
        "model": "m",
        "messages": [{"role": "user", "content": f"m{n}"} for n in range(MAX_STRINGS)],
    }
    if bias is not None:
        body["logit_bias"] = bias
    return orjson.dumps(body)


def test_token_id_keys_at_the_limit_leave_the_body_read_whole() -> None:
    assert not read_request("chat", _body(None)).unscanned
    read = read_request("chat", _body({"50256": -100, " +13": 5}))
    assert not read.unscanned and len(read.texts) == MAX_STRINGS


def test_a_text_key_past_the_limit_is_still_said() -> None:
    assert read_request("chat", _body({"50256": -100, "hello": 5})).unscanned

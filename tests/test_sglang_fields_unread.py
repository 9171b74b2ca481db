"""SGLang's OpenAI-compatible chat takes fields no other server reads, whose content reaches its model unseen by the
proxy: `input_ids`, "pre-computed prompt token IDs" that bypass the chat template (the model reads them, not the
messages, which SGLang reads for stop tokens alone), and `custom_logit_processor` given as a list (one a prompt, each
a serialized class run over the logits). Before 2026-12-07 the first was not looked at and the second was looked for
as a string only: such a call went to the model labelled by messages it never read (helper fields12)."""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest

from proxy.protocols.openai import read_request
from tests.servers.vllm_like import SERVED
from tests.test_grammar_own_unread import PROCESSOR
from tests.test_stored_content_by_id import CONFIG

FIELDS = {
    "input_ids": {"input_ids": [1, 2, 3]},
    "custom_logit_processor list": {"custom_logit_processor": [None, PROCESSOR]},
}


@pytest.mark.parametrize("extra", FIELDS.values(), ids=FIELDS.keys())
def test_sglang_fields_the_proxy_cannot_read_are_refused(vllm, make_proxy, extra) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=10)
    messages: Any = [{"role": "user", "content": "hello"}]
    with pytest.raises(openai.PermissionDeniedError) as refused:  # (before: 200, unlabelled)
        client.chat.completions.create(model=SERVED, messages=messages, extra_body=extra,
                                       extra_headers={"x-purpose": "ads"})  # fmt: skip
    assert "scan:truncated" in refused.value.message
    assert server.data_requests() == []


@pytest.mark.parametrize(
    "extra",
    [{"input_ids": None}, {"input_ids": []}, {"custom_logit_processor": [None, ""]}],
    ids=["null", "empty", "empty processors"],
)
def test_none_given_is_read_as_before(extra: dict[str, Any]) -> None:
    body = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hello"}], **extra})
    assert read_request("chat", body).unscanned is False

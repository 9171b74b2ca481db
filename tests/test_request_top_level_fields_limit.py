"""A request's top-level fields count against the limit of texts read (`MAX_STRINGS`) as a list's strings do: past
it, the rest is unread and the request `scan:truncated`. Each string field was taken without the limit counted, so
a body of a million of them was read whole (see `test_scan_cost`), and one past the limit unlabelled as such."""

from __future__ import annotations

import openai
import pytest

from proxy.protocols import MAX_STRINGS
from tests.configs import ONE_UPSTREAM
from tests.servers.vllm_like import SERVED

CONFIG = (
    ONE_UPSTREAM
    + """
zones:
  - name: unread
    labels: [scan:truncated]
    allow_purposes: [assistant]
detectors: [email]
"""
)


def test_a_field_past_the_limit_is_unread(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=30)
    messages = [{"role": "user", "content": "hello"}]
    fields = {f"k{i}": "v" for i in range(MAX_STRINGS)} | {"last": "mail ana@example.org"}  # after the message's text
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client.chat.completions.create(model=SERVED, messages=messages, extra_body=fields,  # type: ignore[arg-type]
                                       extra_headers={"x-purpose": "ads"})  # fmt: skip
    assert "scan:truncated" in caught.value.message
    assert server.data_requests() == []
    reply = client.chat.completions.with_raw_response.create(model=SERVED, messages=messages, extra_body=fields)  # type: ignore[arg-type]
    assert reply.http_response.headers["x-data-labels"] == "scan:truncated"
    # within the limit every field is read
    fields = {f"k{i}": "v" for i in range(MAX_STRINGS - 2)} | {"last": "mail ana@example.org"}
    reply = client.chat.completions.with_raw_response.create(model=SERVED, messages=messages, extra_body=fields)  # type: ignore[arg-type]
    assert reply.http_response.headers["x-data-labels"] == "pii:email"

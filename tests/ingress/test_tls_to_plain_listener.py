"""A client that speaks TLS to the plain-HTTP listener (`https://` in its base URL, no `listen.tls`): the proxy's
warning says so. It said `malformed HTTP request: Invalid method encountered` (llhttp's words for the handshake
record's first byte), which sends an operator looking for a broken client rather than a wrong URL scheme."""

from __future__ import annotations

import logging

import openai
import pytest

CONFIG = """
listen:
  http: 127.0.0.1:0
upstreams:
  - name: vllm
    url: ${UPSTREAM}
routes:
  - model: "*"
    upstream: vllm
policy:
  anonymous: allow
lineage:
  store: ${STORE}
"""


def test_tls_sent_to_the_plain_listener_is_named_as_such(vllm, make_proxy, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    caplog.set_level(logging.WARNING, "lineage_proxy")
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    client = openai.OpenAI(base_url=f"https://{proxy.bound.http}/v1", api_key="unused", max_retries=0, timeout=5)
    with pytest.raises(openai.APIConnectionError):  # its TLS stack reads the 400 as `wrong version number`
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    warnings = [r.getMessage() for r in caplog.records if "malformed HTTP request from" in r.getMessage()]
    assert len(warnings) == 1 and "a TLS handshake (ClientHello) where HTTP was expected" in warnings[0], warnings
    assert not server.data_requests()

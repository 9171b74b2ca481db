"""llama-server reads an infill's `input_prefix` and `input_suffix` as it reads a prompt (`format_infill` calls
`tokenize_mixed` on each: a string, or strings and token ids mixed), so `{"input_prefix": ["card ", 19, 20]}` gives the
model text the proxy cannot read. A prompt of token ids was labelled `scan:truncated` (a zone may refuse it), but token
ids in the prefix or the suffix were not: the call was forwarded as read whole, its unread text unlabelled."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from proxy.protocols.openai import read_native
from tests.harness import proxy_error
from tests.test_llamacpp_native_endpoints import llama  # noqa: F401 (the fixture: a llama-server's native endpoints)

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - name: llama
    url: ${UPSTREAM}
routes:
  - model: "*"
    upstream: llama
zones:
  - name: unread
    labels: [scan:truncated]
    allow_purposes: [assistant]
detectors: [email]
policy:
  anonymous: allow
telemetry: {exporter: none}
lineage:
  store: ${STORE}
"""

BODIES = {
    "prefix": {"input_prefix": ["def mail():\n    to = '", 7, 8, 9, "'\n"], "input_suffix": "\n", "prompt": ""},
    "suffix": {"input_prefix": "def f():\n", "input_suffix": [7, 8, 9], "prompt": ""},
    "prefix-ids-only": {"input_prefix": [7, 8, 9], "prompt": ""},
}


@pytest.mark.parametrize("body", BODIES.values(), ids=BODIES.keys())
def test_token_ids_in_an_infills_prefix_or_suffix_are_unread(body: dict[str, Any]) -> None:
    assert read_native("infill", orjson.dumps(body)).unscanned


def test_an_infill_of_text_alone_is_read_whole() -> None:
    body = {"input_prefix": "def f():\n", "input_suffix": "\n", "prompt": "", "input_extra": [{"text": "x = 1"}]}
    assert not read_native("infill", orjson.dumps(body)).unscanned


@pytest.mark.parametrize("body", BODIES.values(), ids=BODIES.keys())
def test_an_infill_with_token_ids_is_refused_where_unread_content_is(llama: Any, make_proxy: Any, body: Any) -> None:  # noqa: F811
    url, reached = llama
    proxy = make_proxy(CONFIG, UPSTREAM=url)
    refused = httpx.post(f"{proxy.url}/infill", json=body, headers={"x-purpose": "marketing"}, timeout=30)
    assert refused.status_code == 403, refused.text
    assert proxy_error(refused)["code"] == "purpose_denied"
    assert not reached  # nothing reached the model
    allowed = httpx.post(f"{proxy.url}/infill", json=body, headers={"x-purpose": "assistant"}, timeout=30)
    assert allowed.status_code == 200, allowed.text
    assert "scan:truncated" in allowed.headers["x-data-labels"].split(",")

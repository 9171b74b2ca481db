"""vLLM's Messages API builds the system prompt from the system's text blocks (and system-role messages') run together,
leaving out the blocks that begin `x-anthropic-billing-header` (Claude Code's per-request attribution, which would
defeat prefix caching: `vllm/entrypoints/anthropic/serving.py` `_convert_system_message`, `inline_system.py`
`_blocks_text`/`system_text`). The text on either side of such a block is then read run together: a value split
around it is a value the model reads, and is found so, as well as where the block stays (a server that keeps it)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.configs import ONE_UPSTREAM
from tests.servers.vllm_like import SERVED

CONFIG = (
    ONE_UPSTREAM
    + """
zones:
  - name: contact
    labels: [pii:email]
    allow_purposes: [assistant]
detectors: [email]
"""
)

HEADER = "x-anthropic-billing-header: cc_version=2.1.3; cc_entrypoint=cli; cch=5d1e3;"


def _request(system: Any, messages: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"model": SERVED, "max_tokens": 16, "system": system,
            "messages": messages or [{"role": "user", "content": "hello"}]}  # fmt: skip


SPLIT = {
    "in the system blocks": _request([{"type": "text", "text": "write to ana@exa"}, {"type": "text", "text": HEADER},
                                      {"type": "text", "text": "mple.org today"}]),
    "a system message between": _request([{"type": "text", "text": "write to ana@exa"}], [
        {"role": "system", "content": HEADER}, {"role": "system", "content": "mple.org today"},
        {"role": "user", "content": "hello"}]),
}  # fmt: skip


@pytest.mark.parametrize("body", SPLIT.values(), ids=SPLIT.keys())
def test_a_value_split_around_a_billing_header_block_is_found(vllm, make_proxy, body) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    headers = {"x-purpose": "ads", "anthropic-version": "2023-06-01"}
    with httpx.Client(base_url=proxy.url, timeout=10) as client:
        refused = client.post("/v1/messages", headers=headers, json=body)
        assert refused.status_code == 403, refused.text
        assert "pii:email" in refused.json()["error"]["message"]
        assert server.data_requests() == []
        # the header block alone, between text that holds nothing, is no value
        clean = _request([{"type": "text", "text": "be brief"}, {"type": "text", "text": HEADER},
                          {"type": "text", "text": "and kind"}])  # fmt: skip
        answered = client.post("/v1/messages", headers=headers, json=clean)
        assert answered.status_code == 200 and answered.headers["x-data-labels"] == ""

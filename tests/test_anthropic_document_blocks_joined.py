"""An Anthropic Messages document given as content (`{"type": "document", "source": {"type": "content", "content":
[text blocks]}}`, the API's custom-content document, kept in blocks only so that citations can point into them): the
model reads the document's blocks run together. A value split across two of its blocks (`ana@exa` + `mple.org`) was
read block by block, so no detector found it and the call reached the model for a purpose its zone forbids. The
blocks are now a run, as a tool result's are, in a message and in a tool result that holds such a document."""

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


def document(*texts: str) -> dict[str, Any]:
    blocks = [{"type": "text", "text": text} for text in texts]
    return {"type": "document", "source": {"type": "content", "content": blocks}, "title": "notes"}


def _request(content: list[dict[str, Any]]) -> dict[str, Any]:
    return {"model": SERVED, "max_tokens": 16, "messages": [{"role": "user", "content": content}]}


def in_tool_result(*texts: str) -> list[dict[str, Any]]:
    return [{"type": "tool_result", "tool_use_id": "t1", "content": [document(*texts)]},
            {"type": "text", "text": "summarise it"}]  # fmt: skip


SPLIT = {
    "in a message": _request([document("write to ana@exa", "mple.org today"), {"type": "text", "text": "summarise"}]),
    "in a tool result": _request(in_tool_result("write to ana@exa", "mple.org today")),
}


@pytest.mark.parametrize("body", SPLIT.values(), ids=SPLIT.keys())
def test_a_value_split_across_a_documents_blocks_is_found(vllm, make_proxy, body) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    headers = {"x-purpose": "ads", "anthropic-version": "2023-06-01"}
    with httpx.Client(base_url=proxy.url, timeout=10) as client:
        refused = client.post("/v1/messages", headers=headers, json=body)
        assert refused.status_code == 403, refused.text
        assert "pii:email" in refused.json()["error"]["message"]
        assert server.data_requests() == []
        # a document whose blocks hold nothing, run together or not, is answered
        clean = _request([document("be brief", "and kind"), {"type": "text", "text": "summarise"}])
        answered = client.post("/v1/messages", headers=headers, json=clean)
        assert answered.status_code == 200 and answered.headers["x-data-labels"] == ""

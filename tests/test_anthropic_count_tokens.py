"""`POST /v1/messages/count_tokens` (Claude Code asks it before its calls; llama.cpp's server answers it) is read as
the Messages request its body is: checked as the call it counts for would be, and recorded. Unread, it was refused
while zones were configured (403 endpoint_denied) however clean its prompt, and forwarded unchecked where none were."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
from aiohttp import web

from tests.harness import serving

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: engine, url: "${UPSTREAM}", checkpoint: "org/claude-like@1"}]
routes: [{model: "*", upstream: engine}]
policy: {anonymous: allow, default_purpose: assistant}
zones:
  - name: contact
    labels: [pii:email]
    allow_purposes: [assistant]
detectors: [email]
lineage: {store: "${STORE}"}
"""


def body(text: str) -> dict[str, Any]:
    return {"model": "claude-like", "messages": [{"role": "user", "content": text}]}


def test_count_tokens_is_read_checked_and_forwarded(loop_thread, make_proxy) -> None:  # type: ignore[no-untyped-def]
    counted: list[dict[str, Any]] = []

    async def count(request: web.Request) -> web.Response:
        counted.append(orjson.loads(await request.read()))
        return web.json_response({"input_tokens": 12})

    app = web.Application()
    app.router.add_post("/v1/messages/count_tokens", count)
    with serving(loop_thread, app) as url:
        proxy = make_proxy(CONFIG, wait="started", UPSTREAM=url)
        with httpx.Client(base_url=proxy.url, timeout=10) as client:
            clean = client.post("/v1/messages/count_tokens", json=body("how many tokens is this?"),
                                headers={"x-purpose": "ads", "anthropic-version": "2023-06-01"})  # fmt: skip
            assert clean.status_code == 200 and clean.json() == {"input_tokens": 12}
            assert clean.headers["x-lineage-decision"] == "allow"
            mail = client.post("/v1/messages/count_tokens", json=body("write to ana@example.org"),
                               headers={"x-purpose": "ads", "anthropic-version": "2023-06-01"})  # fmt: skip
            assert mail.status_code == 403 and mail.json()["error"]["code"] == "purpose_denied"
            allowed = client.post("/v1/messages/count_tokens", json=body("write to ana@example.org"),
                                  headers={"x-purpose": "assistant"})  # fmt: skip
            assert allowed.status_code == 200 and allowed.headers["x-data-labels"] == "pii:email"
    assert [c["messages"][0]["content"] for c in counted] == ["how many tokens is this?", "write to ana@example.org"]

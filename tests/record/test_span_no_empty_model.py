"""A call that names no model (a model listing, an OIP server's health or metadata RPC) has no
`gen_ai.request.model` on its span: the GenAI conventions ask for it "if available", and an empty string is none.
Before, such spans carried `gen_ai.request.model=""`, which Jaeger shows and indexes as a model named by nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.harness import ProxyHandle
from tests.servers.otlp_receiver import OtlpReceiver
from tests.servers.vllm_like import SERVED

CONFIG = """
listen: {http: "127.0.0.1:0"}
upstreams: [{name: vllm, url: "${UPSTREAM}"}]
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
telemetry: {exporter: otlp, endpoint: "${OTLP}", protocol: grpc}
lineage: {store: "${STORE}"}
"""


def test_a_call_naming_no_model_has_no_request_model(
    vllm: Any, otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle]
) -> None:
    _, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream, OTLP=f"http://127.0.0.1:{otlp.port}")
    listing = httpx.get(f"{proxy.url}/v1/models", timeout=10)
    chat = httpx.post(f"{proxy.url}/v1/chat/completions", timeout=10,
                      json={"model": SERVED, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    assert (listing.status_code, chat.status_code) == (200, 200)
    models = otlp.by_trace(listing.headers["x-trace-id"])
    called = otlp.by_trace(chat.headers["x-trace-id"])
    assert models.name == "models" and models.attributes["gen_ai.operation.name"] == "models"
    assert "gen_ai.request.model" not in models.attributes, models.attributes
    assert called.attributes["gen_ai.request.model"] == SERVED  # a call that names one keeps it

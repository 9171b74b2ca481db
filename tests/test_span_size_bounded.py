"""A call's span reaches the collector whatever the call sent. Its values are the caller's: a stop sequence of
megabytes (`gen_ai.request.stop_sequences`), a model name as long (`gen_ai.request.model`, the span's name), with
`capture_content` a prompt of many long messages (each captured up to `limits.scan_max_chars`). The span was
encoded whole, over the 4 MiB a gRPC collector (the OpenTelemetry Collector's, Jaeger's) takes in one request:
the collector refused it (RESOURCE_EXHAUSTED), the exporter logged an outage, and the call was missing from the
traces — a caller could take any of its calls, a denied one too, out of them at will. Each such value is now cut to
16 KiB as the span is built (tests/test_span_values_bounded.py), so these spans are far under the 1 MiB past which a
span's values are cut again (`lineage.span.cut`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.harness import ProxyHandle
from tests.servers.otlp_receiver import OtlpReceiver
from tests.servers.vllm_like import VllmLike

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: u, url: "${UPSTREAM}", protocol: openai, checkpoint: org/w}]
routes: [{model: "*", upstream: u, purposes: [assistant]}]
policy: {anonymous: allow, default_purpose: assistant}
telemetry: {exporter: otlp, endpoint: "http://127.0.0.1:${OTLP}", capture_content: CAPTURE}
lineage: {store: null}
"""
GRPC_MAX = 4 << 20  # what a gRPC server takes in one message unless configured otherwise
VALUE_MAX = 16 << 10  # a caller's value in a span at most (`spans.VALUE_MAX_BYTES`)
HI = [{"role": "user", "content": "hi"}]

BODIES: dict[str, tuple[bool, dict[str, Any]]] = {
    "stop sequence": (False, {"model": "m", "messages": HI, "stop": ["s" * (5 << 20)]}),
    "stop sequences": (False, {"model": "m", "messages": HI, "stop": ["\U0001f600" * 40_000] * 64}),
    "parameter of another shape": (False, {"model": "m", "messages": HI, "temperature": ["t" * (5 << 20)]}),
    "model name": (False, {"model": "m" * (5 << 20), "messages": HI}),
    "denied call": (False, {"model": "m", "messages": HI, "stop": ["s" * (5 << 20)]}),
    "captured prompt": (True, {"model": "m", "messages": [{"role": "user", "content": "a" * 800_000}] * 6}),
}


@pytest.mark.parametrize("what", sorted(BODIES))
def test_the_span_of_a_call_with_huge_values_reaches_the_collector(
    vllm: tuple[VllmLike, str], make_proxy: Callable[..., ProxyHandle], otlp: OtlpReceiver, what: str
) -> None:
    _, upstream = vllm
    capture, body = BODIES[what]
    config = CONFIG.replace("CAPTURE", "true" if capture else "false")
    proxy = make_proxy(config, UPSTREAM=upstream, OTLP=str(otlp.port))
    headers = {"x-purpose": "ads"} if what == "denied call" else {}  # a purpose the route refuses
    sent = httpx.post(f"{proxy.url}/v1/chat/completions", json=body, headers=headers, timeout=60)
    if what == "denied call":
        assert sent.status_code == 403 and sent.json()["error"]["code"] == "purpose_denied"
    span = otlp.by_trace(sent.headers["x-trace-id"])
    assert span.attributes["lineage.decision"] == ("deny" if what == "denied call" else "allow")
    size = sum(len(str(v).encode()) for v in span.attributes.values()) + len(span.name.encode())
    assert size < GRPC_MAX
    assert all(len(v.encode()) <= VALUE_MAX for v in span.attributes.values() if isinstance(v, str))
    after = httpx.post(f"{proxy.url}/v1/chat/completions", json={"model": "m", "messages": HI}, timeout=10)
    plain = otlp.by_trace(after.headers["x-trace-id"])
    assert plain.attributes["lineage.decision"] == "allow" and "lineage.span.cut" not in plain.attributes

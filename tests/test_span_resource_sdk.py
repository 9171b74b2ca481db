"""The spans' resource as the OpenTelemetry resource conventions have it: the `telemetry.sdk` entity's three
attributes are all `Required` (`telemetry.sdk.name`, `telemetry.sdk.language`, `telemetry.sdk.version`). The
proxy, which is its own SDK (no OpenTelemetry SDK at run time), wrote the name and the language but no version,
so a backend grouping or filtering by SDK version (the Collector's `resource` processors, a vendor's "SDK
version" column) found none on the proxy's spans."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from proxy import __version__
from tests.harness import ProxyHandle
from tests.servers.otlp_receiver import OtlpReceiver
from tests.servers.vllm_like import VllmLike

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: u, url: "${UPSTREAM}", protocol: openai, checkpoint: org/w}]
routes: [{model: "*", upstream: u}]
policy: {anonymous: allow, default_purpose: assistant}
telemetry: {exporter: otlp, endpoint: "http://127.0.0.1:${OTLP}"}
lineage: {store: null}
"""


def test_the_resource_names_the_sdk_whole(
    vllm: tuple[VllmLike, str], make_proxy: Callable[..., ProxyHandle], otlp: OtlpReceiver
) -> None:
    _, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream, OTLP=str(otlp.port))
    sent = httpx.post(f"{proxy.url}/v1/chat/completions", json={"model": "m", "messages": []}, timeout=10)
    resource = otlp.by_trace(sent.headers["x-trace-id"]).resource
    assert resource["telemetry.sdk.name"] == "lineage-proxy"
    assert resource["telemetry.sdk.language"] == "python"
    assert resource.get("telemetry.sdk.version") == __version__

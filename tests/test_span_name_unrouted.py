"""A call refused before it was routed (a key no caller owns, no key where anonymous calls are denied, a model no
route serves, a body the proxy cannot read) is named by its operation alone (`chat`), not `chat <model as sent>`: a
span's name is an operation Jaeger lists and indexes, and anyone who could reach the port made one of each name they
sent, without a key, each as long as they liked. Its model stays in `gen_ai.request.model`. A routed call keeps the
GenAI conventions' `{operation} {model}`, a long name cut as the access line cuts it (512 characters, then its
length)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.harness import ProxyHandle
from tests.servers.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.servers.vllm_like import VllmLike

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: u, url: "${UPSTREAM}", protocol: openai, checkpoint: org/w}]
routes: [{model: served, upstream: u}]
callers: [{name: app, api_key_sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}]
policy: {anonymous: ANONYMOUS, default_purpose: assistant}
telemetry: {exporter: otlp, endpoint: "http://127.0.0.1:${OTLP}"}
lineage: {store: null}
"""
HI = [{"role": "user", "content": "hi"}]
MODEL = "scan-" + "x" * 600  # a name of the client's, longer than an access line shows


def _span(proxy: ProxyHandle, otlp: OtlpReceiver, path: str, status: int, **kwargs: Any) -> ReceivedSpan:
    sent = httpx.post(f"{proxy.url}{path}", timeout=10, **kwargs)
    assert sent.status_code == status, sent.text
    return otlp.by_trace(sent.headers["x-trace-id"])


@pytest.mark.parametrize(
    ("anonymous", "headers", "status"),
    [("allow", {}, 404), ("deny", {}, 401), ("allow", {"authorization": "Bearer not-a-key"}, 401)],
    ids=["no route", "no key", "unknown key"],
)
def test_a_call_refused_before_routing_is_named_by_its_operation(
    vllm: tuple[VllmLike, str],
    make_proxy: Callable[..., ProxyHandle],
    otlp: OtlpReceiver,
    anonymous: str,
    headers: dict[str, str],
    status: int,
) -> None:
    _, upstream = vllm
    config = CONFIG.replace("ANONYMOUS", anonymous)
    proxy = make_proxy(config, UPSTREAM=upstream, OTLP=str(otlp.port))
    span = _span(proxy, otlp, "/v1/chat/completions", status, json={"model": MODEL, "messages": HI}, headers=headers)
    assert span.name == "chat"
    assert span.attributes["gen_ai.request.model"] == MODEL and span.attributes["lineage.decision"] == "deny"


def test_a_body_refused_unread_is_named_by_its_operation(
    vllm: tuple[VllmLike, str], make_proxy: Callable[..., ProxyHandle], otlp: OtlpReceiver
) -> None:
    """An OIP call names its model in its path: a body the proxy cannot read is refused before any route is."""
    _, upstream = vllm
    proxy = make_proxy(CONFIG.replace("ANONYMOUS", "allow"), UPSTREAM=upstream, OTLP=str(otlp.port))
    span = _span(proxy, otlp, f"/v2/models/{MODEL}/infer", 400, content=b"{not json")
    assert span.name == span.attributes["gen_ai.operation.name"]
    assert MODEL not in span.name and span.attributes["lineage.decision"] == "deny"


def test_a_routed_call_keeps_its_model_in_the_name_cut_as_the_access_line_cuts_it(
    vllm: tuple[VllmLike, str], make_proxy: Callable[..., ProxyHandle], otlp: OtlpReceiver
) -> None:
    _, upstream = vllm
    config = CONFIG.replace("ANONYMOUS", "allow").replace("model: served", 'model: "*"')
    proxy = make_proxy(config, UPSTREAM=upstream, OTLP=str(otlp.port))
    assert _span(proxy, otlp, "/v1/chat/completions", 200, json={"model": "served", "messages": HI}).name == (
        "chat served"
    )
    long = _span(proxy, otlp, "/v1/chat/completions", 200, json={"model": MODEL, "messages": HI})
    assert long.name == f"chat {MODEL[:512]}... ({len(MODEL):,} characters)"
    # refused after it was routed (a purpose the route does not serve): named by its model, as routed calls are
    config = config.replace('model: "*", upstream: u', 'model: "*", upstream: u, purposes: [assistant]')
    proxy = make_proxy(config, UPSTREAM=upstream, OTLP=str(otlp.port))
    denied = _span(proxy, otlp, "/v1/chat/completions", 403, json={"model": "served", "messages": HI},
                   headers={"x-purpose": "ads"})  # fmt: skip
    assert denied.name == "chat served"

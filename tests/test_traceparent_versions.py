"""A caller's `traceparent` is read as W3C Trace Context says (§ Versioning of traceparent, and the W3C test suite,
test/test.py): a header of a version after 00 is read by the 00 layout when it has one, its own fields after a `-`
(`cc-<trace>-<parent>-01-what-the-future-will-be-like`): the proxy joins that trace, as every OpenTelemetry
propagator does, so the call's span is in the caller's trace; a version that is not two hex digits (`.0`, `0.`,
`zz`) is no version: the trace is a new one. Over the wire, as a client sends it: the span, `x-trace-id` and the
traceparent the upstream gets say the same trace."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from proxy.record.spans import trace_context
from tests.configs import ONE_UPSTREAM

TRACE = "12345678901234567890123456789012"
PARENT = "1234567890123456"
STATE = "vendor=opaque"
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
TELEMETRY = "telemetry:\n  exporter: otlp\n  endpoint: ${OTLP}\n  protocol: grpc\n"

JOINED = [
    f"cc-{TRACE}-{PARENT}-01",
    f"cc-{TRACE}-{PARENT}-01-what-the-future-will-be-like",
]
RESTARTED = [
    f".0-{TRACE}-{PARENT}-01",
    f"0.-{TRACE}-{PARENT}-01",
    f"zz-{TRACE}-{PARENT}-01",
    f"0A-{TRACE}-{PARENT}-01",
    f"cc-{TRACE}-{PARENT}-01.what-the-future-will-be-like",
    f"00-{TRACE}-{PARENT}-01-what-the-future-will-be-like",
    f"ff-{TRACE}-{PARENT}-01",
]


@pytest.mark.parametrize("traceparent", JOINED)
def test_a_later_version_s_traceparent_is_joined_span_and_upstream_alike(
    vllm: Any, otlp: Any, make_proxy: Any, traceparent: str
) -> None:
    server, upstream = vllm
    proxy = make_proxy(ONE_UPSTREAM + TELEMETRY, UPSTREAM=upstream, OTLP=f"http://127.0.0.1:{otlp.port}")
    reply = httpx.post(f"{proxy.url}/v1/chat/completions", json=CHAT, timeout=10,
                       headers={"traceparent": traceparent, "tracestate": STATE})  # fmt: skip
    assert reply.status_code == 200
    assert reply.headers["x-trace-id"] == TRACE
    span = otlp.by_trace(TRACE)
    assert span.parent_span_id == PARENT
    seen = server.data_requests()[-1].headers
    assert seen["traceparent"] == f"00-{TRACE}-{span.span_id}-01"  # the upstream is sent the version the proxy speaks
    assert seen["tracestate"] == STATE


@pytest.mark.parametrize("traceparent", RESTARTED)
def test_a_traceparent_of_no_valid_version_starts_a_new_trace(vllm: Any, make_proxy: Any, traceparent: str) -> None:
    server, upstream = vllm
    proxy = make_proxy(ONE_UPSTREAM, UPSTREAM=upstream)
    reply = httpx.post(f"{proxy.url}/v1/chat/completions", json=CHAT, timeout=10,
                       headers={"traceparent": traceparent, "tracestate": STATE})  # fmt: skip
    assert reply.status_code == 200
    assert reply.headers["x-trace-id"] != TRACE
    seen = server.data_requests()[-1].headers
    assert seen["traceparent"].split("-")[1] == reply.headers["x-trace-id"]
    assert "tracestate" not in seen


def test_the_sampled_flag_of_a_later_version_is_kept() -> None:
    unsampled = trace_context(f"cc-{TRACE}-{PARENT}-00-more", None, 1.0)
    sampled = trace_context(f"cc-{TRACE}-{PARENT}-01-more", None, 0.0)
    assert (unsampled.trace_id_hex, unsampled.parent_span_id, unsampled.sampled) == (TRACE, int(PARENT, 16), False)
    assert (sampled.trace_id_hex, sampled.sampled) == (TRACE, True)

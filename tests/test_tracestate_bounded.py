"""A caller's `tracestate` went into the call's span whole, up to the 32 KiB header limit, and on to the upstream. Now
it is kept as the OpenTelemetry SDK keeps one (`TraceState.from_header`, behind its propagator's 8192-character
check): at most 8192 characters and 32 list-members, each a W3C `key=value`, no key twice; any other is dropped whole,
from the span and from what is forwarded, the trace still joined (the SDK's services drop it so, and propagate none)."""

from __future__ import annotations

from concurrent import futures
from typing import Any

import grpc
import httpx
import pytest

from proxy.record.spans import trace_context
from tests.configs import ONE_GRPC_UPSTREAM, ONE_UPSTREAM
from tests.test_caller_keys import SERVICE, Recording, _infer

TRACE = "0af7651916cd43dd8448eb211c80319c"
VALID = f"00-{TRACE}-b7ad6b7169203331-01"
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
MEMBERS_32 = ",".join(f"k{i}=v{i}" for i in range(32))
DROPPED = {
    "over-8192": ",".join(f"k{i}=" + "v" * 250 for i in range(32)) + ("," * 200),  # 32 valid members, 8,349 characters
    "33-members": MEMBERS_32 + ",k32=v",
    "malformed-member": "a=1,B=2",
    "key-twice": "a=1,a=2",
    "value-past-256": "a=" + "v" * 257,
    "header-limit": ("a=" + "v" * 256 + ",") * 60,  # 15 KiB, as a span held before
}
KEPT = {"plain": "vendor=opaque,other=1", "32-members": MEMBERS_32, "spaces-and-empties": " a=1 ,, t@s=x y\t",
        "8157-characters": ",".join(f"k{i}=" + "v" * 250 for i in range(32)) + ("," * 8)}  # fmt: skip


@pytest.mark.parametrize("state", list(DROPPED.values()), ids=list(DROPPED))
def test_a_tracestate_the_sdk_drops_is_not_kept(state: str) -> None:
    trace = trace_context(VALID, state, 1.0)
    assert f"{trace.trace_id:032x}" == TRACE  # the trace is joined all the same
    assert trace.tracestate is None


@pytest.mark.parametrize("state", list(KEPT.values()), ids=list(KEPT))
def test_a_tracestate_the_sdk_keeps_is_kept_as_it_came(state: str) -> None:
    assert len(state) <= 8192
    assert trace_context(VALID, state, 1.0).tracestate == state
    assert trace_context(VALID, state, 1.0).tracestate == state  # (kept by value: the same the second time)


def test_http_a_dropped_tracestate_is_not_forwarded(vllm: Any, make_proxy: Any) -> None:
    server, upstream = vllm
    proxy = make_proxy(ONE_UPSTREAM, UPSTREAM=upstream)
    for state, forwarded in ((DROPPED["33-members"], None), (DROPPED["header-limit"], None), (MEMBERS_32, MEMBERS_32)):
        headers = {"traceparent": VALID, "tracestate": state}
        reply = httpx.post(f"{proxy.url}/v1/chat/completions", json=CHAT, headers=headers, timeout=10)
        assert reply.status_code == 200 and reply.headers["x-trace-id"] == TRACE
        seen = server.data_requests()[-1].headers
        assert seen["traceparent"].split("-")[1] == TRACE
        assert seen.get("tracestate") == forwarded


def test_grpc_a_dropped_tracestate_is_not_forwarded(make_proxy: Any) -> None:
    upstream = Recording()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((upstream,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        config = ONE_GRPC_UPSTREAM + "policy: {anonymous: allow, default_purpose: assistant}\n"
        proxy = make_proxy(config, wait="none", UPSTREAM=f"127.0.0.1:{port}")
        with grpc.insecure_channel(proxy.grpc) as channel:
            infer = channel.unary_unary(SERVICE + "ModelInfer")
            for state in (DROPPED["33-members"], MEMBERS_32):
                infer(_infer(), metadata=(("traceparent", VALID), ("tracestate", state)), timeout=10)
        seen = [one for one in upstream.metadata if "traceparent" in one]  # not the proxy's own probes
        assert [one.get("tracestate") for one in seen] == [None, MEMBERS_32]
    finally:
        server.stop(0)

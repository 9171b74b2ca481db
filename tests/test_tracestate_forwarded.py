"""The caller's `tracestate` goes on to the upstream with the trace it belongs to: when the proxy joins the caller's
trace (a valid `traceparent`), as sent; when it starts a new one (no traceparent, or a malformed one), never, as W3C
Trace Context says (a tracestate without its traceparent is discarded), over HTTP and gRPC alike, as the
proxy's own span keeps it only of a trace it joined."""

from __future__ import annotations

from concurrent import futures
from typing import Any

import grpc
import httpx
import pytest

from tests.configs import ONE_GRPC_UPSTREAM, ONE_UPSTREAM
from tests.test_caller_keys import SERVICE, Recording, _infer

TRACE = "0af7651916cd43dd8448eb211c80319c"
VALID = f"00-{TRACE}-b7ad6b7169203331-01"
STATE = "vendor=opaque,other=1"
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
# (the caller's traceparent, None: none sent; whether the trace is joined)
CASES = [(VALID, True), (None, False), (f"00-{TRACE}-b7ad6b71692033-01", False), (f"00-{'0' * 32}-b7ad6b7169203331-01", False)]  # fmt: skip


@pytest.mark.parametrize(("traceparent", "joined"), CASES, ids=["valid", "none", "malformed", "zero-trace"])
def test_http_tracestate_only_with_its_trace(vllm: Any, make_proxy: Any, traceparent: str | None, joined: bool) -> None:
    server, upstream = vllm
    proxy = make_proxy(ONE_UPSTREAM, UPSTREAM=upstream)
    headers = {"tracestate": STATE, **({"traceparent": traceparent} if traceparent else {})}
    reply = httpx.post(f"{proxy.url}/v1/chat/completions", json=CHAT, headers=headers, timeout=10)
    assert reply.status_code == 200
    seen = server.data_requests()[-1].headers
    assert (reply.headers["x-trace-id"] == TRACE) is joined
    assert seen["traceparent"].split("-")[1] == reply.headers["x-trace-id"]
    assert seen.get("tracestate") == (STATE if joined else None)


@pytest.mark.parametrize(("traceparent", "joined"), CASES, ids=["valid", "none", "malformed", "zero-trace"])
def test_grpc_tracestate_only_with_its_trace(make_proxy: Any, traceparent: str | None, joined: bool) -> None:
    upstream = Recording()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((upstream,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        config = ONE_GRPC_UPSTREAM + "policy: {anonymous: allow, default_purpose: assistant}\n"
        proxy = make_proxy(config, wait="none", UPSTREAM=f"127.0.0.1:{port}")
        metadata = (("tracestate", STATE), *((("traceparent", traceparent),) if traceparent else ()))
        with grpc.insecure_channel(proxy.grpc) as channel:
            _, call = channel.unary_unary(SERVICE + "ModelInfer").with_call(_infer(), metadata=metadata, timeout=10)
        trace_id = dict(call.trailing_metadata())["x-trace-id"]
        assert (trace_id == TRACE) is joined
        seen = [one for one in upstream.metadata if "traceparent" in one]  # not the proxy's own probes
        assert len(seen) == 1 and seen[0]["traceparent"].split("-")[1] == trace_id
        assert seen[0].get("tracestate") == (STATE if joined else None)
    finally:
        server.stop(0)

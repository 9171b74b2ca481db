"""An upstream's own `traceparent` (and `traceresponse`, W3C Trace Context level 2's reply header) is not passed to
the client: the reply's trace is the proxy's, said by `x-trace-id`. The upstream's names its own span (a child of the
proxy's when it joined the trace it was sent; another trace when it did not), and beside `x-trace-id` a client, or a
tracing library that reads it, would take it for the call's: before 2026-12-05 both went to the client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import openai
import orjson
import pytest
from aiohttp import web

from tests.configs import ONE_UPSTREAM
from tests.harness import serving
from tests.ingress.grpc_proxied import proxied
from tests.ingress.test_grpc import _request  # a small ModelInferRequest
from tests.ingress.test_grpc_streams import CONFIG, SERVICE

OTHER_TRACE = "0af7651916cd43dd8448eb211c80319c"
INFER = SERVICE + "ModelInfer"


def traced_app() -> web.Application:
    """A chat server that answers with trace headers of its own: a `traceparent` naming its span in the trace it was
    sent, and a `traceresponse` naming a trace of its own."""

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "m", "object": "model", "owned_by": "me"}]})

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        trace = request.headers["traceparent"].split("-")[1]
        headers = {
            "traceparent": f"00-{trace}-00f067aa0ba902b7-01",
            "traceresponse": f"00-{OTHER_TRACE}-b7ad6b7169203331-01",
        }
        message = {"role": "assistant", "content": "hi"}
        if not body.get("stream"):
            reply = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
                     "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}  # fmt: skip
            return web.json_response(reply, headers=headers)
        response = web.StreamResponse(headers={**headers, "Content-Type": "text/event-stream"})
        await response.prepare(request)
        chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                 "choices": [{"index": 0, "delta": message, "finish_reason": "stop"}]}  # fmt: skip
        await response.write(b"data: " + orjson.dumps(chunk) + b"\n\ndata: [DONE]\n\n")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    return app


@pytest.fixture
def client(loop_thread: Any, make_proxy: Any) -> Iterator[openai.OpenAI]:
    with serving(loop_thread, traced_app()) as url:
        proxy = make_proxy(ONE_UPSTREAM, UPSTREAM=url)
        with openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0) as client:
            yield client


@pytest.mark.parametrize("stream", [False, True])
def test_the_upstreams_trace_headers_are_not_passed_on(client: openai.OpenAI, stream: bool) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "user", "content": "hello"}], stream=stream
    )
    raw.parse()  # (read whole)
    assert len(raw.headers["x-trace-id"]) == 32
    assert "traceparent" not in raw.headers and "traceresponse" not in raw.headers, dict(raw.headers)


# gRPC: the same keys in an upstream's initial and trailing metadata
TRACED = (("traceparent", f"00-{OTHER_TRACE}-00f067aa0ba902b7-01"), ("x-upstream-request-id", "r-17"))
TRAILED = (("traceresponse", f"00-{OTHER_TRACE}-b7ad6b7169203331-01"),)


class Traced(grpc.GenericRpcHandler):  # type: ignore[misc]
    """A ModelInfer that answers at once with trace metadata of its own, initial and trailing."""

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        return grpc.unary_unary_rpc_method_handler(self._unary) if details.method == INFER else None

    async def _unary(self, request: bytes, context: Any) -> bytes:
        await context.send_initial_metadata(TRACED)
        context.set_trailing_metadata(TRAILED)
        return b""


def test_the_upstreams_trace_metadata_is_not_passed_on(loop_thread: Any, otlp: Any, make_proxy: Any) -> None:
    with proxied(loop_thread, otlp, make_proxy, CONFIG, Traced()) as proxy, grpc.insecure_channel(proxy.grpc) as ch:
        _, call = ch.unary_unary(INFER).with_call(_request(), timeout=10)
    initial, trailing = dict(call.initial_metadata() or ()), dict(call.trailing_metadata() or ())
    assert initial.get("x-upstream-request-id") == "r-17"  # (its own keys are)
    assert "traceparent" not in initial and "traceresponse" not in trailing, (initial, trailing)
    assert len(trailing["x-trace-id"]) == 32

"""The benchmark's vLLM-like upstreams.

- nginx serving vLLM-shaped replies from memory (`/v1/models`, a ~1 KB `/v1/chat/completions` reply):
  the cheapest possible upstream, so what is measured is the hops, not the model server.
- `python -m benchmarks.upstreams stream PORT`: an SSE chat stream like vLLM's (CHUNKS events,
  INTERVAL_MS apart), for time to first and last byte.
- `python -m benchmarks.upstreams grpc PORT`: an OIP v2 gRPC server answering ModelInfer with a fixed
  small reply (and ModelMetadata), written on generic handlers so it needs no generated code.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import orjson

MODEL = "llama-3.1-8b"
ROOT = "meta-llama/Llama-3.1-8B-Instruct"
CHUNKS = 32
INTERVAL_MS = 5

MODELS_JSON = orjson.dumps(
    {
        "object": "list",
        "data": [{"id": MODEL, "object": "model", "created": 1, "owned_by": "vllm", "root": ROOT, "parent": None}],
    }
).decode()
REPLY_TEXT = (
    "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. It is named after the "
    "engineer Gustave Eiffel, whose company designed and built the tower from 1887 to 1889. Locally nicknamed "
    "'La dame de fer', it was constructed as the centerpiece of the 1889 World's Fair, and to crown the centennial "
    "anniversary of the French Revolution. Although initially criticised by some of France's leading artists and "
    "intellectuals for its design, it has since become a global cultural icon of France."
)
CHAT_JSON = orjson.dumps(
    {
        "id": "chatcmpl-bench-0001",
        "object": "chat.completion",
        "created": 1730000000,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": REPLY_TEXT, "tool_calls": []},
                "logprobs": None,
                "finish_reason": "stop",
                "stop_reason": None,
            }
        ],
        "usage": {"prompt_tokens": 212, "total_tokens": 330, "completion_tokens": 118},
    }
).decode()


def _nginx_conf(name: str, prefix: str, http: str) -> str:
    """A foreground one-worker nginx whose files all live under `prefix`, named after `name`."""
    return f"""
worker_processes 1;
daemon off;
pid {prefix}/{name}.pid;
error_log {prefix}/{name}-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/{name}-body; proxy_temp_path {prefix}/{name}-proxy;
    fastcgi_temp_path {prefix}/{name}-f; uwsgi_temp_path {prefix}/{name}-u; scgi_temp_path {prefix}/{name}-s;
    keepalive_requests 1000000;
{http}
}}
"""


def nginx_streaming_upstream_conf(port: int, prefix: str, stream_port: int) -> str:
    """The upstream, with `?s=1` chat calls passed to the SSE stream server on `stream_port`."""
    return nginx_upstream_conf(port, prefix).replace(
        "location = /v1/chat/completions { client_body_buffer_size 64k; return 200",
        f"location @stream {{ proxy_pass http://127.0.0.1:{stream_port}; proxy_buffering off; proxy_http_version 1.1; }}\n"
        "        location = /v1/chat/completions { client_body_buffer_size 64k; error_page 418 = @stream; "
        "if ($arg_s) { return 418; } return 200",
    )


def nginx_upstream_conf(port: int, prefix: str) -> str:
    def js(s: str) -> str:
        return s.replace("\\", "\\\\").replace("'", "\\'")

    return _nginx_conf(
        "upstream",
        prefix,
        f"""
    server {{
        listen 127.0.0.1:{port} reuseport;
        default_type application/json;
        location = /v1/models {{ return 200 '{js(MODELS_JSON)}'; }}
        location = /v1/chat/completions {{ client_body_buffer_size 64k; return 200 '{js(CHAT_JSON)}'; }}
    }}""",
    )


def nginx_hop_conf(port: int, upstream_port: int, prefix: str) -> str:
    return _nginx_conf(
        "hop",
        prefix,
        f"""
    upstream model {{ server 127.0.0.1:{upstream_port}; keepalive 256; }}
    server {{
        listen 127.0.0.1:{port} reuseport;
        location / {{
            proxy_pass http://model;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
        }}
    }}""",
    )


def nginx_grpc_hop_conf(port: int, upstream_port: int, prefix: str) -> str:
    """The gRPC reference hop: `grpc_pass` over h2c (HTTP/2 without TLS both ways), upstream keep-alive.
    Needs an nginx built with the http_v2 and grpc modules (Debian's `nginx` package has both)."""
    return _nginx_conf(
        "grpc-hop",
        prefix,
        f"""
    upstream grpc_model {{ server 127.0.0.1:{upstream_port}; keepalive 64; keepalive_requests 1000000; }}
    server {{
        listen 127.0.0.1:{port} http2 reuseport;
        location / {{ grpc_pass grpc://grpc_model; }}
    }}""",
    )


async def serve_stream(port: int) -> None:
    from aiohttp import web

    async def models(_: web.Request) -> web.Response:
        return web.Response(text=MODELS_JSON, content_type="application/json")

    async def chat(request: web.Request) -> web.StreamResponse:
        await request.read()
        reply = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await reply.prepare(request)
        words = REPLY_TEXT.split(" ")
        for i in range(CHUNKS):
            event = {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1730000000, "model": MODEL,
                     "choices": [{"index": 0, "delta": {"content": " " + words[i % len(words)]}, "finish_reason": None}]}  # fmt: skip
            await reply.write(b"data: " + orjson.dumps(event) + b"\n\n")
            await asyncio.sleep(INTERVAL_MS / 1000)
        await reply.write(b"data: [DONE]\n\n")
        await reply.write_eof()
        return reply

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


def _infer_reply() -> bytes:
    # ModelInferResponse{model_name="simple", model_version="1", id="b", outputs=[{name="OUT", datatype="FP32",
    # shape=[1,4]}], raw_output_contents=[16 bytes]} hand-encoded (field numbers: protos/grpc_predict_v2.proto)
    def ld(field: int, payload: bytes) -> bytes:
        return bytes([field << 3 | 2, len(payload)]) + payload

    tensor = ld(1, b"OUT") + ld(2, b"FP32") + ld(3, bytes([1, 4]))
    return ld(1, b"simple") + ld(2, b"1") + ld(3, b"b") + ld(5, tensor) + ld(6, bytes(16))


async def serve_grpc(port: int) -> None:
    import grpc
    import grpc.aio

    reply = _infer_reply()
    metadata = bytes([0x0A, 6]) + b"simple" + bytes([0x12, 1]) + b"1"

    async def infer(request: bytes, context: object) -> bytes:
        return reply

    async def meta(request: bytes, context: object) -> bytes:
        return metadata

    await serve_handlers(port, grpc.method_handlers_generic_handler("inference.GRPCInferenceService", {
        "ModelInfer": grpc.unary_unary_rpc_method_handler(infer),
        "ModelMetadata": grpc.unary_unary_rpc_method_handler(meta),
    }))  # fmt: skip


async def serve_otlp(port: int) -> None:
    """A live OTLP/gRPC trace receiver that accepts every export and only counts bytes: the cost of
    the record is the proxy's, not a Python decoder's on the load generator's core."""
    import grpc
    import grpc.aio

    received = [0, 0]

    async def export(request: bytes, context: object) -> bytes:
        received[0] += 1
        received[1] += len(request)
        return b""

    await serve_handlers(port, grpc.method_handlers_generic_handler(
        "opentelemetry.proto.collector.trace.v1.TraceService", {"Export": grpc.unary_unary_rpc_method_handler(export)}))  # fmt: skip


async def serve_handlers(port: int, handler: Any) -> None:
    """A grpc.aio server on 127.0.0.1:`port` with one generic handler; says "ready", serves until killed."""
    import grpc

    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    import uvloop

    uvloop.install()
    kind, port = sys.argv[1], int(sys.argv[2])
    serve = {"stream": serve_stream, "grpc": serve_grpc, "otlp": serve_otlp}[kind]
    asyncio.run(serve(port))

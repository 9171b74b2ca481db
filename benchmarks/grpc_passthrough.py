"""The gRPC reference hop: a bare grpc.aio passthrough, the floor of a gRPC proxy written on grpc.aio.

    python -m benchmarks.grpc_passthrough PORT UPSTREAM_TARGET

A generic handler takes any unary-unary method and forwards its request's raw bytes (no deserialising:
grpc's default identity serializers) on one shared channel to the same method upstream, and returns
the reply's bytes; an upstream error status is returned as is. No metadata is passed either way.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import grpc
import grpc.aio


class Forward(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Every method, forwarded on `channel`; one handler per method path, made on its first call."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.channel = channel
        self.handlers: dict[str, grpc.RpcMethodHandler] = {}

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method: str = details.method
        handler = self.handlers.get(method)
        if handler is None:
            call = self.channel.unary_unary(method)  # bytes in, bytes out

            async def forward(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
                try:
                    reply: bytes = await call(request)
                except grpc.aio.AioRpcError as error:
                    await context.abort(error.code(), error.details() or "")
                return reply

            handler = self.handlers[method] = grpc.unary_unary_rpc_method_handler(forward)
        return handler


async def main(port: int, upstream: str) -> None:
    from benchmarks.upstreams import serve_handlers

    await serve_handlers(port, Forward(grpc.aio.insecure_channel(upstream)))


if __name__ == "__main__":
    import uvloop

    uvloop.install()
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))

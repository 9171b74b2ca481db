"""The gRPC reference hop: a bare grpc.aio passthrough, the floor of a gRPC proxy written on grpc.aio.

    python -m benchmarks.grpc_passthrough PORT UPSTREAM_TARGET [--wire]

A generic handler takes any unary-unary method and forwards its request's raw bytes (no deserialising:
grpc's default identity serializers) on one shared channel to the same method upstream, and returns
the reply's bytes; an upstream error status is returned as is. No metadata is passed either way.

`--wire`: the same hop doing the gRPC work lineage-proxy does on every proxied call, and nothing
else: the caller's metadata forwarded with a `traceparent`, the caller's deadline passed on, the
upstream's initial and trailing metadata read, and five lineage keys sent back as trailing metadata.
It tells grpc.aio's cost for that work apart from the proxy's own Python.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import grpc
import grpc.aio

_TRANSPORT = frozenset({"content-type", "te", "user-agent", "grpc-accept-encoding", "grpc-timeout"})
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
LINEAGE = (
    ("x-trace-id", "0af7651916cd43dd8448eb211c80319c"), ("x-lineage-decision", "allow"),
    ("x-data-labels", "user-interaction"), ("x-lineage-upstream", "triton"), ("x-lineage-checkpoint", "simple:1"),
)  # fmt: skip


class Forward(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Every method, forwarded on `channel`; one handler per method path, made on its first call."""

    def __init__(self, channel: grpc.aio.Channel, wire: bool = False) -> None:
        self.channel = channel
        self.wire = wire
        self.handlers: dict[str, grpc.RpcMethodHandler] = {}

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method: str = details.method
        handler = self.handlers.get(method)
        if handler is None:
            call = self.channel.unary_unary(method)  # bytes in, bytes out

            async def forward(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
                try:
                    if not self.wire:
                        reply: bytes = await call(request)
                        return reply
                    metadata = [(k, v) for k, v in context.invocation_metadata() or () if k not in _TRANSPORT]
                    metadata.append(("traceparent", TRACEPARENT))
                    remaining = context.time_remaining()
                    rpc = call(request, metadata=metadata, timeout=30.0 if remaining is None else min(30.0, remaining))
                    reply = await rpc
                    await rpc.initial_metadata()
                    trailing = [(k, v) for k, v in await rpc.trailing_metadata() if not k.startswith("grpc-")]
                    context.set_trailing_metadata((*trailing, *LINEAGE))
                except grpc.aio.AioRpcError as error:
                    await context.abort(error.code(), error.details() or "")
                return reply

            handler = self.handlers[method] = grpc.unary_unary_rpc_method_handler(forward)
        return handler


async def main(port: int, upstream: str, wire: bool) -> None:
    from benchmarks.upstreams import serve_handlers

    await serve_handlers(port, Forward(grpc.aio.insecure_channel(upstream), wire))


if __name__ == "__main__":
    import uvloop

    uvloop.install()
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], "--wire" in sys.argv[3:]))

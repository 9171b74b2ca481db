"""The gRPC reference hop: a bare grpc.aio passthrough, the floor of a gRPC proxy written on grpc.aio.

    python -m benchmarks.grpc_passthrough PORT UPSTREAM_TARGET [--wire[=PART,...]]

A generic handler takes any unary-unary method and forwards its request's raw bytes (no deserialising:
grpc's default identity serializers) on one shared channel to the same method upstream, and returns
the reply's bytes; an upstream error status is returned as is. No metadata is passed either way.

`--wire`: the same hop doing the gRPC work lineage-proxy does on every proxied call, and nothing
else: the caller's metadata forwarded with a `traceparent`, the caller's deadline passed on, the
upstream's initial and trailing metadata read, and five lineage keys sent back as trailing metadata.
It tells grpc.aio's cost for that work apart from the proxy's own Python.

`--wire=PART,...` does only some of it, to tell what each part costs (`--wire` is all of WIRE):
  metadata  the caller's metadata forwarded, with a `traceparent`
  deadline  a timeout passed on: the caller's remaining time, at most 30 s (grpc-timeout upstream)
  initial   the upstream's initial metadata awaited (`await rpc.initial_metadata()`)
  trailing  the upstream's trailing metadata awaited, and passed back (less `grpc-` keys)
  lineage   five lineage keys sent back as trailing metadata
and, to try what lineage-proxy does otherwise or could do instead:
  fresh       a new multicallable per call (`channel.unary_unary(method)` on every call), as the proxy does
  unique      a new trace id per call in `traceparent` and `x-trace-id`, as the proxy's are
  registered  the upstream method registered with grpc's core (`_registered_method=True`, as generated stubs do)
  traceparent only a `traceparent` sent upstream (none of the caller's metadata): fewer keys than `metadata`
  trace-id    only `x-trace-id` sent back as trailing metadata: one key instead of `lineage`'s five
  forwarded   `x-forwarded-for` (the client's address) and `x-forwarded-proto` sent upstream too, as the proxy sends
              them (with `metadata` or `traceparent`): made once, so what it adds is grpc.aio's work for two keys
              more (here with its Metadata built from the list pair by pair, which the proxy's `SentMetadata` skips)
"""

from __future__ import annotations

import asyncio
import os
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
WIRE = frozenset({"metadata", "deadline", "initial", "trailing", "lineage"})
EXTRA = frozenset({"fresh", "unique", "registered", "traceparent", "trace-id", "forwarded"})
FORWARDED = (("x-forwarded-for", "127.0.0.1"), ("x-forwarded-proto", "http"))


class Forward(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Every method, forwarded on `channel`; one handler per method path, made on its first call.
    `parts`: which of the wire work (WIRE, EXTRA) each call does; none is the bare passthrough."""

    def __init__(self, channel: grpc.aio.Channel, parts: frozenset[str] = frozenset()) -> None:
        self.channel = channel
        self.parts = parts
        self.handlers: dict[str, grpc.RpcMethodHandler] = {}

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method: str = details.method
        handler = self.handlers.get(method)
        if handler is None:
            handler = self.handlers[method] = grpc.unary_unary_rpc_method_handler(
                self._wire(method) if self.parts else self._bare(method)
            )
        return handler

    def _bare(self, method: str) -> Any:
        call = self.channel.unary_unary(method)  # bytes in, bytes out

        async def forward(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
            try:
                reply: bytes = await call(request)
            except grpc.aio.AioRpcError as error:
                await context.abort(error.code(), error.details() or "")
            return reply

        return forward

    def _wire(self, method: str) -> Any:
        parts = self.parts
        metadata_, deadline, initial, trailing, lineage = (p in parts for p in ("metadata", "deadline", "initial",
                                                                                "trailing", "lineage"))  # fmt: skip
        fresh, unique, registered, traceparent, trace_id = (p in parts for p in ("fresh", "unique", "registered",
                                                                                 "traceparent", "trace-id"))  # fmt: skip
        forwarded = FORWARDED if "forwarded" in parts else ()
        channel = self.channel
        shared = channel.unary_unary(method, _registered_method=registered)

        async def forward(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
            try:
                trace = os.urandom(16).hex() if unique else ""
                metadata = None
                if metadata_ or traceparent:
                    metadata = (
                        [(k, v) for k, v in context.invocation_metadata() or () if k not in _TRANSPORT]
                        if metadata_
                        else []
                    )
                    metadata.extend(forwarded)
                    metadata.append(("traceparent", f"00-{trace}-b7ad6b7169203331-01" if unique else TRACEPARENT))
                timeout = None
                if deadline:
                    remaining = context.time_remaining()
                    timeout = 30.0 if remaining is None else min(30.0, remaining)
                call = channel.unary_unary(method, _registered_method=registered) if fresh else shared
                rpc = call(request, metadata=metadata, timeout=timeout)
                reply: bytes = await rpc
                if initial:
                    await rpc.initial_metadata()
                back: list[tuple[str, str | bytes]] = []
                if trailing:
                    back = [(k, v) for k, v in await rpc.trailing_metadata() if not k.startswith("grpc-")]
                if lineage or trace_id:
                    keys = LINEAGE if lineage else LINEAGE[:1]
                    back.extend((("x-trace-id", trace), *keys[1:]) if unique else keys)
                if trailing or lineage or trace_id:
                    context.set_trailing_metadata(tuple(back))
            except grpc.aio.AioRpcError as error:
                await context.abort(error.code(), error.details() or "")
            return reply

        return forward


def parts(argv: list[str]) -> frozenset[str]:
    """The wire work `--wire[=PART,...]` asks for (`--wire` and `--wire=all` are all of WIRE)."""
    chosen: set[str] = set()
    for arg in argv:
        if arg == "--wire":
            chosen |= WIRE
        elif arg.startswith("--wire="):
            for part in filter(None, arg.removeprefix("--wire=").split(",")):
                if part not in WIRE | EXTRA | {"all"}:
                    raise SystemExit(f"unknown wire part {part!r}: one of {', '.join(sorted(WIRE | EXTRA))}, all")
                chosen |= WIRE if part == "all" else {part}
    return frozenset(chosen)


async def main(port: int, upstream: str, wire: frozenset[str]) -> None:
    from benchmarks.upstreams import serve_handlers

    await serve_handlers(port, Forward(grpc.aio.insecure_channel(upstream), wire))


if __name__ == "__main__":
    import uvloop

    uvloop.install()
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], parts(sys.argv[3:])))

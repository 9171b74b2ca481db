"""The gRPC ingress: a grpc.aio server proxying the OIP v2 GRPCInferenceService to gRPC upstreams.

Every method is handled generically on raw bytes: ModelInfer and ModelStreamInfer go through the
pipeline (purpose checks, spans, edges); metadata and health RPCs only check the caller's key; any
other method of any service (Triton's repository, statistics, shared-memory RPCs) is passed through
as a byte stream in both directions, with its method name in a span.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
import grpc.aio

from proxy.checkpoints import MetadataStatus
from proxy.config import Address, Upstream
from proxy.errors import ProxyError, UpstreamTimeout, UpstreamUnavailable
from proxy.flow import ALLOW, Call, Decision, Outcome, TraceContext
from proxy.labels import format_labels
from proxy.pipeline import Pipeline
from proxy.protocols.oip_grpc import (
    MODEL_INFER,
    MODEL_METADATA,
    MODEL_READY,
    MODEL_STREAM_INFER,
    SERVICE,
    ReplyObserver,
    encode_model_metadata_request,
    read_infer_request,
    read_model_metadata,
    read_model_name,
)
from proxy.transport.http import PipelineRef

log = logging.getLogger("lineage_proxy.grpc")

_UNLIMITED = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
_CHANNEL_OPTIONS = [*_UNLIMITED, ("grpc.keepalive_time_ms", 30_000), ("grpc.enable_retries", 0)]
_NOT_FORWARDED = frozenset({"content-type", "te", "user-agent", "traceparent", "grpc-accept-encoding", "grpc-timeout"})
_LOOKUP_CODES = (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNIMPLEMENTED)
_STATUS = {code.name: code for code in grpc.StatusCode}
_DATA_FREE = frozenset(
    SERVICE + m for m in ("ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata")
)

Metadata = Sequence[tuple[str, str | bytes]]


class GrpcChannels:
    """One keep-alive channel per gRPC upstream."""

    def __init__(self) -> None:
        self._channels: dict[str, tuple[str, grpc.aio.Channel]] = {}

    def channel(self, upstream: Upstream) -> grpc.aio.Channel:
        assert upstream.grpc is not None
        entry = self._channels.get(upstream.name)
        if entry is not None and entry[0] == upstream.grpc:
            return entry[1]
        channel = grpc.aio.insecure_channel(upstream.grpc, options=_CHANNEL_OPTIONS)
        self._channels[upstream.name] = (upstream.grpc, channel)
        return channel

    async def model_metadata(self, upstream: Upstream, model: str) -> dict[str, Any]:
        """OIP ModelMetadata for checkpoint discovery; LookupError when the upstream does not serve it."""
        method = self.channel(upstream).unary_unary(MODEL_METADATA)
        headers = (("authorization", f"Bearer {upstream.api_key}"),) if upstream.api_key else None
        try:
            reply = await method(encode_model_metadata_request(model), timeout=min(upstream.timeout_s, 10.0),
                                 metadata=headers)  # fmt: skip
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _LOOKUP_CODES:
                raise MetadataStatus(404, f"model {model!r}") from None
            raise ConnectionError(f"{exc.code().name}: {exc.details()}") from None
        return read_model_metadata(reply)

    async def close(self) -> None:
        for _, channel in self._channels.values():
            await channel.close()
        self._channels.clear()


def _metadata(context: grpc.aio.ServicerContext[Any, Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    for key, value in context.invocation_metadata() or ():
        if isinstance(value, str):
            found[key] = value
    return found


def _code(name: str) -> grpc.StatusCode:
    return _STATUS.get(name, grpc.StatusCode.UNKNOWN)


class GrpcIngress(grpc.GenericRpcHandler):  # type: ignore[misc]
    def __init__(self, ref: PipelineRef, channels: GrpcChannels) -> None:
        self.ref = ref
        self.channels = channels
        self._server: grpc.aio.Server | None = None

    # -- lifecycle

    async def start(self, address: Address) -> Address:
        self._server = grpc.aio.server(options=[*_UNLIMITED, ("grpc.so_reuseport", 1)])
        self._server.add_generic_rpc_handlers((self,))
        port = self._server.add_insecure_port(str(address))
        await self._server.start()
        return Address(address.host, port)

    async def stop(self, grace_s: float) -> None:
        if self._server is not None:
            await self._server.stop(grace_s)

    # -- dispatch

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method: str = details.method
        if method == MODEL_INFER:
            return grpc.unary_unary_rpc_method_handler(self.model_infer)
        if method == MODEL_STREAM_INFER:
            return grpc.stream_stream_rpc_method_handler(self.model_stream_infer)
        if method in _DATA_FREE:
            # partial, not lambda: grpc.aio tells coroutines and async generators apart by inspection
            return grpc.unary_unary_rpc_method_handler(functools.partial(self.data_free, method))
        return grpc.stream_stream_rpc_method_handler(functools.partial(self.passthrough, method))

    # -- helpers

    def _upstream(self, pipeline: Pipeline, model: str) -> Upstream:
        matched = pipeline.policy.route(model)
        if matched is not None and matched[1].grpc:
            return matched[1]
        for upstream in pipeline.config.upstreams:
            if upstream.grpc:
                return upstream
        raise UpstreamUnavailable("no gRPC upstream is configured for this call")

    @staticmethod
    def _forward_metadata(md: dict[str, str], pipeline: Pipeline, trace: TraceContext, upstream: Upstream,
                          raw: Metadata) -> list[tuple[str, str | bytes]]:  # fmt: skip
        out: list[tuple[str, str | bytes]] = []
        for key, value in raw:
            if key in _NOT_FORWARDED or key.startswith(":"):
                continue
            if key == "authorization" and (pipeline.strips_auth or upstream.api_key):
                continue
            out.append((key, value))
        out.append(("traceparent", trace.traceparent()))
        if upstream.api_key:
            out.append(("authorization", f"Bearer {upstream.api_key}"))
        return out

    @staticmethod
    def _lineage(
        decision: Decision, outcome: Outcome | None, trace: TraceContext, labels: frozenset[str]
    ) -> list[tuple[str, str]]:
        md = [("x-trace-id", trace.trace_id_hex), ("x-lineage-decision", decision.action),
              ("x-data-labels", format_labels(labels))]  # fmt: skip
        if outcome is not None and outcome.checkpoint:
            md.append(("x-lineage-checkpoint", outcome.checkpoint))
        return md

    async def _abort(
        self, context: grpc.aio.ServicerContext[Any, Any], error: ProxyError, trailing: Metadata = ()
    ) -> None:
        self.ref.current.runtime.stats.errors[error.code] += 1
        await context.abort(_code(error.grpc_code), error.message, tuple(trailing))

    async def _admit(
        self, request: bytes, context: grpc.aio.ServicerContext[Any, Any], pipeline: Pipeline, trace: TraceContext,
        method: str,
    ) -> tuple[Call, Decision, Outcome]:  # fmt: skip
        started = time.time_ns()
        try:
            read = read_infer_request(request)
            call = pipeline.call(read, "oip-grpc", _metadata(context), trace)
        except ProxyError as error:
            await self._abort(context, error, (("x-trace-id", trace.trace_id_hex),))
            raise  # unreachable: abort raises
        decision = pipeline.decide(call)
        outcome = Outcome(started_ns=started, extra={"rpc.system": "grpc", "rpc.method": method.rsplit("/", 1)[-1],
                                                     "rpc.service": "inference.GRPCInferenceService"})  # fmt: skip
        if not decision.forwards:
            await _await(pipeline.finish(call, decision, outcome))
            await self._abort(context, pipeline.denial(decision), self._lineage(decision, None, trace, decision.labels))
        assert decision.upstream is not None
        if decision.upstream.grpc is None:
            outcome.error_type = "upstream_unavailable"
            await _await(pipeline.finish(call, decision, outcome))
            await self._abort(context, UpstreamUnavailable(
                f"upstream {decision.upstream.name!r} speaks HTTP only; send this call to the HTTP listener"))  # fmt: skip
        pipeline.resolve_checkpoint(decision.upstream, call, outcome)
        return call, decision, outcome

    async def _failed(
        self, exc: grpc.aio.AioRpcError, context: grpc.aio.ServicerContext[Any, Any], pipeline: Pipeline, call: Call,
        decision: Decision, outcome: Outcome,
    ) -> None:  # fmt: skip
        upstream = decision.upstream
        assert upstream is not None
        code = exc.code()
        outcome.status = code.value[0]
        if code == grpc.StatusCode.UNAVAILABLE:
            error: ProxyError | None = UpstreamUnavailable(
                f"upstream {upstream.name!r} is unavailable: {exc.details()}"
            )
        elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
            error = UpstreamTimeout(
                f"upstream {upstream.name!r} did not answer in time (timeout_s {upstream.timeout_s:g})"
            )
        else:
            error = None
        outcome.error_type = error.code if error else code.name
        await _await(pipeline.finish(call, decision, outcome))
        trailing = self._lineage(decision, outcome, call.trace, decision.labels)
        if error is not None:
            await self._abort(context, error, trailing)
        await context.abort(code, exc.details() or code.name, tuple(trailing))  # the upstream's own answer

    @staticmethod
    def _timeout(upstream: Upstream, context: grpc.aio.ServicerContext[Any, Any]) -> float:
        remaining = context.time_remaining()
        return upstream.timeout_s if remaining is None else min(upstream.timeout_s, remaining)

    # -- inference

    async def model_infer(self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        pipeline = self.ref.current
        trace = pipeline.trace(_metadata(context))
        call, decision, outcome = await self._admit(request, context, pipeline, trace, MODEL_INFER)
        upstream = decision.upstream
        assert upstream is not None
        metadata = self._forward_metadata({}, pipeline, trace, upstream, context.invocation_metadata() or ())
        rpc = self.channels.channel(upstream).unary_unary(MODEL_INFER)(
            request, metadata=metadata, timeout=self._timeout(upstream, context)
        )
        try:
            reply: bytes = await rpc
            initial = await rpc.initial_metadata()
            trailing = await rpc.trailing_metadata()
        except grpc.aio.AioRpcError as exc:
            await self._failed(exc, context, pipeline, call, decision, outcome)
            raise
        except asyncio.CancelledError:
            outcome.error_type = "client_disconnected"
            pipeline.finish(call, decision, outcome)
            raise
        outcome.status = 0
        observer = ReplyObserver(outcome, pipeline.detectors, bool(call.content))
        observer.body(reply)
        observer.finish()
        pipeline.checkpoint_from_response(outcome)
        labels = pipeline.output_labels(decision, outcome)
        await _await(pipeline.finish(call, decision, outcome))
        await context.send_initial_metadata([*_pass(initial), *self._lineage(decision, outcome, trace, labels)])
        context.set_trailing_metadata(tuple(_pass(trailing)))
        return reply

    async def model_stream_infer(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        """One stream is one call: decided on its first message, re-decided whenever a later message
        adds labels (a denial then ends the stream); the span ends when the stream does."""
        pipeline = self.ref.current
        trace = pipeline.trace(_metadata(context))
        first = await anext(aiter(requests), None)
        if first is None:
            return
        call, decision, outcome = await self._admit(first, context, pipeline, trace, MODEL_STREAM_INFER)
        upstream = decision.upstream
        assert upstream is not None
        metadata = self._forward_metadata({}, pipeline, trace, upstream, context.invocation_metadata() or ())
        remaining = context.time_remaining()
        rpc = self.channels.channel(upstream).stream_stream(MODEL_STREAM_INFER)(metadata=metadata, timeout=remaining)
        denied: list[ProxyError] = []
        request_labels = [call.labels]

        async def pump() -> None:
            await rpc.write(first)
            async for message in requests:
                read = read_infer_request(message)
                more = pipeline.call(read, "oip-grpc", _metadata(context), trace)
                if not more.labels | more.detected <= request_labels[0] | call.detected:
                    request_labels[0] = request_labels[0] | more.labels | more.detected
                    again = pipeline.decide(Call(call.protocol, call.operation, call.model, trace, call.key_sha256,
                                                 call.purpose, request_labels[0], call.detected))  # fmt: skip
                    if not again.forwards:
                        denied.append(pipeline.denial(again))
                        rpc.cancel()
                        return
                await rpc.write(message)
            await rpc.done_writing()

        observer = ReplyObserver(outcome, pipeline.detectors, bool(call.content))
        writer = asyncio.get_running_loop().create_task(pump())
        sent_metadata = False
        try:
            async for message in rpc:
                if not outcome.first_token_ns:
                    outcome.first_token_ns = time.time_ns()
                observer.stream_message(message)
                if not sent_metadata:
                    pipeline.checkpoint_from_response(outcome)
                    initial = await rpc.initial_metadata()
                    await context.send_initial_metadata(
                        [*_pass(initial), *self._lineage(decision, outcome, trace, decision.labels)]
                    )
                    sent_metadata = True
                yield message
            outcome.status = 0
        except asyncio.CancelledError:
            if not denied:
                outcome.error_type = "client_disconnected"
                observer.finish()
                pipeline.finish(call, decision, outcome)
                writer.cancel()
                raise
        except grpc.aio.AioRpcError as exc:
            if not denied:
                writer.cancel()
                observer.finish()
                await self._failed(exc, context, pipeline, call, decision, outcome)
        finally:
            if not writer.done():
                writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError, ProxyError):
                await writer
        observer.finish()
        if denied:
            outcome.error_type = denied[0].code
            await _await(pipeline.finish(call, decision, outcome))
            await self._abort(context, denied[0], self._lineage(decision, outcome, trace, request_labels[0]))
        await _await(pipeline.finish(call, decision, outcome))

    # -- everything else

    async def data_free(self, method: str, request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        """Health and metadata RPCs: the caller's key is checked, nothing is recorded."""
        pipeline = self.ref.current
        md = _metadata(context)
        trace = pipeline.trace(md)
        try:
            pipeline.identify_only(md)
            model = read_model_name(request) if method in (MODEL_READY, MODEL_METADATA) else ""
            upstream = self._upstream(pipeline, model)
        except ProxyError as error:
            await self._abort(context, error, (("x-trace-id", trace.trace_id_hex),))
            raise
        metadata = self._forward_metadata(md, pipeline, trace, upstream, context.invocation_metadata() or ())
        rpc = self.channels.channel(upstream).unary_unary(method)(
            request, metadata=metadata, timeout=self._timeout(upstream, context)
        )
        try:
            reply: bytes = await rpc
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                await self._abort(
                    context, UpstreamUnavailable(f"upstream {upstream.name!r} is unavailable: {exc.details()}")
                )
            await context.abort(exc.code(), exc.details() or exc.code().name)
            raise
        await context.send_initial_metadata([*_pass(await rpc.initial_metadata()), ("x-trace-id", trace.trace_id_hex)])
        return reply

    async def passthrough(
        self, method: str, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        """Any other method, unary or streaming alike (the wire does not tell them apart): bytes both
        ways; the caller's key is checked and the method recorded in a span."""
        pipeline = self.ref.current
        md = _metadata(context)
        trace = pipeline.trace(md)
        started = time.time_ns()
        try:
            pipeline.identify_only(md)
            upstream = self._upstream(pipeline, "")
        except ProxyError as error:
            await self._abort(context, error, (("x-trace-id", trace.trace_id_hex),))
            raise
        metadata = self._forward_metadata(md, pipeline, trace, upstream, context.invocation_metadata() or ())
        rpc = self.channels.channel(upstream).stream_stream(method)(metadata=metadata, timeout=context.time_remaining())
        outcome = Outcome(started_ns=started, extra={"rpc.system": "grpc", "rpc.method": method})

        async def pump() -> None:
            async for message in requests:
                await rpc.write(message)
            await rpc.done_writing()

        writer = asyncio.get_running_loop().create_task(pump())
        try:
            async for message in rpc:
                yield message
            outcome.status = 0
        except grpc.aio.AioRpcError as exc:
            outcome.status, outcome.error_type = exc.code().value[0], exc.code().name
            self._trace(pipeline, trace, method, upstream, outcome)
            await context.abort(exc.code(), exc.details() or exc.code().name)
        finally:
            if not writer.done():
                writer.cancel()
        context.set_trailing_metadata(tuple(_pass(await rpc.trailing_metadata())))
        self._trace(pipeline, trace, method, upstream, outcome)

    @staticmethod
    def _trace(pipeline: Pipeline, trace: TraceContext, method: str, upstream: Upstream, outcome: Outcome) -> None:
        spans = pipeline.runtime.spans
        if spans is None:
            return
        outcome.ended_ns = time.time_ns()
        call = Call("oip-grpc", "passthrough", "", trace)
        spans.record(call, Decision(ALLOW, upstream), outcome, frozenset())


def _pass(metadata: Metadata | None) -> list[tuple[str, str | bytes]]:
    return [(k, v) for k, v in metadata or () if not k.startswith(":") and k not in ("content-type", "grpc-status")]


async def _await(future: Any) -> None:
    if future is not None:
        with contextlib.suppress(Exception):
            await asyncio.wrap_future(future)

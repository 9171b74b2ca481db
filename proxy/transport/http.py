"""The HTTP ingress: aiohttp's low-level server, forwarding to pooled upstreams.

Routes OpenAI-compatible calls, OIP v2 REST inference, model listings and everything else
(passthrough). Bodies are read once and forwarded as the original bytes; replies that stream (SSE,
chunked, or larger than `limits.buffer_max_bytes`) are written chunk by chunk as they arrive.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import time
from collections.abc import Callable

import aiohttp
import orjson
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.config import Upstream
from proxy.errors import (
    ModelNotFound,
    ProxyError,
    RequestTooLarge,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from proxy.flow import Call, Decision, Outcome, TraceContext
from proxy.labels import format_labels
from proxy.pipeline import Pipeline
from proxy.protocols import Observer, Request, bytes_digest, oip, openai
from proxy.transport.upstreams import Response as UpstreamResponse
from proxy.transport.upstreams import UpstreamPool

log = logging.getLogger("lineage_proxy.http")

# RFC 9110 §7.6.1 connection-specific fields, plus framing the proxy recomputes itself.
HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te",
        "trailer", "transfer-encoding", "upgrade", "host", "content-length", "expect",
    }
)  # fmt: skip
_NO_DATA_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class PipelineRef:
    """The pipeline currently in force; a reload replaces `.current` in one assignment."""

    __slots__ = ("current",)

    def __init__(self, pipeline: Pipeline) -> None:
        self.current = pipeline


def _connection_tokens(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> frozenset[str]:
    value = headers.get("connection")
    return frozenset(t.strip().lower() for t in value.split(",")) if value else frozenset()


def _forward_headers(
    headers: CIMultiDictProxy[str], trace: TraceContext, pipeline: Pipeline, api_key: str | None, observe: bool
) -> list[tuple[str, str]]:
    drop = _connection_tokens(headers)
    out: list[tuple[str, str]] = []
    for name, value in headers.items():
        lower = name.lower()
        if lower in HOP_BY_HOP or lower in drop or lower == "traceparent":
            continue
        if lower == "authorization" and (pipeline.strips_auth or api_key):
            continue
        if lower == "accept-encoding" and observe:
            continue
        out.append((name, value))
    out.append(("traceparent", trace.traceparent()))
    if api_key:
        out.append(("Authorization", f"Bearer {api_key}"))
    if observe:
        out.append(("Accept-Encoding", "identity"))  # the proxy reads replies to record them
    return out


def _reply_headers(upstream_headers: CIMultiDict[str], lineage: dict[str, str]) -> CIMultiDict[str]:
    drop = _connection_tokens(upstream_headers)
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in upstream_headers.items():
        lower = name.lower()
        if lower not in HOP_BY_HOP and lower not in drop:
            out.add(name, value)
    out.update(lineage)
    return out


def _lineage_headers(
    decision: Decision | None, outcome: Outcome | None, labels: frozenset[str], trace: str
) -> dict[str, str]:
    headers = {"x-trace-id": trace}
    if decision is not None:
        headers["x-lineage-decision"] = decision.action
        headers["x-data-labels"] = format_labels(labels)
    if outcome is not None and outcome.checkpoint:
        headers["x-lineage-checkpoint"] = outcome.checkpoint
    return headers


def error_response(error: ProxyError, trace: TraceContext | None, extra: dict[str, str] | None = None) -> web.Response:
    headers = {"Content-Type": "application/json"}
    if trace is not None:
        headers["x-trace-id"] = trace.trace_id_hex
    if extra:
        headers.update(extra)
    return web.Response(status=error.status, body=error.body(), headers=headers)


class HttpIngress:
    """One per process: the request handler for the http listener."""

    def __init__(
        self,
        ref: PipelineRef,
        pool: UpstreamPool,
        admin: Callable[[web.BaseRequest], web.StreamResponse | None] | None = None,
    ) -> None:
        self.ref = ref
        self.pool = pool
        self.admin = admin

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        pipeline = self.ref.current
        trace = pipeline.trace(request.headers)
        stats = pipeline.runtime.stats
        stats.in_flight += 1
        try:
            return await self._route(request, pipeline, trace)
        except ProxyError as error:
            stats.errors[error.code] += 1
            return error_response(error, trace)
        except (asyncio.CancelledError, ConnectionResetError, aiohttp.ClientConnectionResetError):
            raise
        except Exception:
            log.exception("internal error handling %s %s", request.method, request.path)
            stats.errors["internal_error"] += 1
            return error_response(ProxyError("internal error in lineage-proxy; see its log"), trace)
        finally:
            stats.in_flight -= 1

    async def _route(self, request: web.BaseRequest, pipeline: Pipeline, trace: TraceContext) -> web.StreamResponse:
        path, method = request.path, request.method
        if method == "POST":
            operation = openai.OPERATIONS.get(path)
            if operation is not None:
                body = await self._body(request, pipeline)
                read = openai.read_request(operation, body)
                return await self._call(request, pipeline, trace, read, "openai", body)
            parts = oip.split_path(path)
            if parts is not None and parts[2] == "infer":
                body = await self._body(request, pipeline)
                header_length = request.headers.get(oip.HEADER_LENGTH)
                read = oip.read_rest_request(parts[0], parts[1], body, header_length)
                return await self._call(request, pipeline, trace, read, "oip", body)
        elif method == "GET" and self.admin is not None:
            response = self.admin(request)
            if response is not None:
                return response
        if method == "GET" and path == "/v1/models":
            return await self._models(request, pipeline, trace)
        return await self._passthrough(request, pipeline, trace)

    async def _body(self, request: web.BaseRequest, pipeline: Pipeline) -> bytes:
        limit = pipeline.config.limits.max_body_bytes
        length = request.content_length
        if length is not None and length > limit:
            raise RequestTooLarge(f"request body of {length} bytes is over the limit of {limit} bytes")
        chunks = []
        size = 0
        while True:
            chunk = await request.content.readany()
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise RequestTooLarge(f"request body is over the limit of {limit} bytes")
            chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _call(
        self,
        request: web.BaseRequest,
        pipeline: Pipeline,
        trace: TraceContext,
        read: Request,
        protocol: str,
        body: bytes,
    ) -> web.StreamResponse:
        started = time.time_ns()
        call = pipeline.call(read, protocol, request.headers, trace)
        decision = pipeline.decide(call)
        outcome = Outcome(started_ns=started)
        if not decision.forwards:
            await _await_edge(pipeline.finish(call, decision, outcome))
            error = pipeline.denial(decision)
            return error_response(error, trace, _lineage_headers(decision, None, decision.labels, trace.trace_id_hex))
        assert decision.upstream is not None
        pipeline.resolve_checkpoint(decision.upstream, call, outcome)
        observer: Observer
        if protocol == "openai":
            observer = openai.ReplyObserver(call.operation, outcome, pipeline.detectors, bool(call.content))
        else:
            observer = oip.RestReplyObserver(outcome, pipeline.detectors, bool(call.content), None)
        return await self._forward(request, pipeline, call, decision, outcome, body, observer)

    async def _forward(
        self,
        request: web.BaseRequest,
        pipeline: Pipeline,
        call: Call,
        decision: Decision,
        outcome: Outcome,
        body: bytes,
        observer: Observer | None,
    ) -> web.StreamResponse:
        upstream = decision.upstream
        assert upstream is not None
        trace = call.trace
        if upstream.url is None:
            outcome.error_type = "upstream_unavailable"
            await _await_edge(pipeline.finish(call, decision, outcome))
            raise UpstreamUnavailable(
                f"upstream {upstream.name!r} speaks gRPC only; send this call to the gRPC listener"
            )
        headers = _forward_headers(request.headers, trace, pipeline, upstream.api_key, observer is not None)
        try:
            resp = await self.pool.request(upstream, request.method, request.raw_path, headers, body)
        except asyncio.CancelledError:
            outcome.error_type = "client_disconnected"
            pipeline.finish(call, decision, outcome)
            raise
        except Exception as exc:
            raise await self._upstream_failed(pipeline, call, decision, outcome, exc) from None
        try:
            outcome.status = resp.status
            if resp.status >= 500:
                outcome.error_type = str(resp.status)
            content_type = resp.headers.get("Content-Type", "")
            streamed = (
                resp.content_length is None
                or resp.content_length > pipeline.config.limits.buffer_max_bytes
                or content_type.startswith("text/event-stream")
            )
            if not streamed:
                return await self._whole_reply(resp, pipeline, call, decision, outcome, observer)
            return await self._streamed_reply(request, resp, pipeline, call, decision, outcome, observer)
        finally:
            resp.release()

    async def _whole_reply(
        self,
        resp: UpstreamResponse,
        pipeline: Pipeline,
        call: Call,
        decision: Decision,
        outcome: Outcome,
        observer: Observer | None,
    ) -> web.StreamResponse:
        try:
            data = await resp.read()
        except asyncio.CancelledError:
            outcome.error_type = "client_disconnected"
            pipeline.finish(call, decision, outcome)
            raise
        except Exception as exc:
            raise await self._upstream_failed(pipeline, call, decision, outcome, exc) from None
        if observer is not None and resp.status < 300:
            if isinstance(observer, oip.RestReplyObserver):
                observer = oip.RestReplyObserver(
                    outcome, pipeline.detectors, bool(call.content), resp.headers.get(oip.HEADER_LENGTH)
                )
            observer.body(data)
            observer.finish()
        pipeline.checkpoint_from_response(outcome)
        labels = pipeline.output_labels(decision, outcome)
        await _await_edge(pipeline.finish(call, decision, outcome))
        headers = _reply_headers(resp.headers, _lineage_headers(decision, outcome, labels, call.trace.trace_id_hex))
        return web.Response(status=resp.status, headers=headers, body=data)

    async def _streamed_reply(
        self,
        request: web.BaseRequest,
        resp: UpstreamResponse,
        pipeline: Pipeline,
        call: Call,
        decision: Decision,
        outcome: Outcome,
        observer: Observer | None,
    ) -> web.StreamResponse:
        first = b""
        try:
            if outcome.checkpoint is None and observer is not None:
                # the reply names the model in its first event: wait for it so the header can say
                first = await resp.readany()
                if first:
                    observer.chunk(first)
                    pipeline.checkpoint_from_response(outcome)
        except asyncio.CancelledError:
            outcome.error_type = "client_disconnected"
            pipeline.finish(call, decision, outcome)
            raise
        except Exception as exc:
            raise await self._upstream_failed(pipeline, call, decision, outcome, exc) from None
        lineage = _lineage_headers(decision, outcome, decision.labels, call.trace.trace_id_hex)
        reply = web.StreamResponse(status=resp.status, headers=_reply_headers(resp.headers, lineage))
        if resp.content_length is not None:
            reply.content_length = resp.content_length
        await reply.prepare(request)
        try:
            error = await _relay(request, resp, reply, decision.upstream, observer, first)
        except asyncio.CancelledError:
            outcome.error_type = "client_disconnected"
            self._finish_observed(pipeline, call, decision, outcome, observer)
            raise
        if error is not None:
            outcome.error_type = error
            self._finish_observed(pipeline, call, decision, outcome, observer)
            return reply
        await _await_edge(self._finish_observed(pipeline, call, decision, outcome, observer))
        with contextlib.suppress(ConnectionResetError, aiohttp.ClientConnectionResetError):
            await reply.write_eof()
        return reply

    @staticmethod
    def _finish_observed(
        pipeline: Pipeline, call: Call, decision: Decision, outcome: Outcome, observer: Observer | None
    ) -> concurrent.futures.Future[None] | None:
        if observer is not None:
            observer.finish()
        return pipeline.finish(call, decision, outcome)

    async def _upstream_failed(
        self, pipeline: Pipeline, call: Call, decision: Decision, outcome: Outcome, exc: BaseException
    ) -> ProxyError:
        upstream = decision.upstream
        assert upstream is not None
        error = _upstream_error(upstream, exc)
        outcome.error_type = error.code
        await _await_edge(pipeline.finish(call, decision, outcome))
        return error

    async def _models(self, request: web.BaseRequest, pipeline: Pipeline, trace: TraceContext) -> web.StreamResponse:
        """`GET /v1/models`: one OpenAI upstream answers as it is; several are merged into one list."""
        pipeline.identify_only(request.headers)
        upstreams = list(
            {u.name: u for u in pipeline.policy.upstreams.values() if u.protocol == "openai" and u.url}.values()
        )
        if len(upstreams) == 1:
            decision = Decision("allow", upstreams[0])
            return await self._plain_forward(request, pipeline, trace, decision)
        data: list[object] = []
        for upstream in upstreams:
            with contextlib.suppress(Exception):
                body = await self.pool.get_json(upstream, "/v1/models")
                data.extend(body.get("data", []) if isinstance(body, dict) else [])
        return web.Response(
            body=orjson.dumps({"object": "list", "data": data}),
            headers={"Content-Type": "application/json", "x-trace-id": trace.trace_id_hex},
        )

    async def _passthrough(
        self, request: web.BaseRequest, pipeline: Pipeline, trace: TraceContext
    ) -> web.StreamResponse:
        """Anything else goes to the upstream of its model (OIP model paths) or of the '*' route.

        Data-carrying methods go through the policy like any call; GET/HEAD/OPTIONS only need a key."""
        parts = oip.split_path(request.path)
        model = parts[0] if parts else ""
        if request.method in _NO_DATA_METHODS:
            pipeline.identify_only(request.headers)
            matched = pipeline.policy.route(model)
            if matched is None:
                raise ModelNotFound(f"no route for {request.path!r} (no route for model {model!r} and no '*' route)")
            return await self._plain_forward(request, pipeline, trace, Decision("allow", matched[1]))
        body = await self._body(request, pipeline)
        read = Request(model, "passthrough", digest=bytes_digest(body) if body else None)
        started = time.time_ns()
        call = pipeline.call(read, "passthrough", request.headers, trace)
        decision = pipeline.decide(call)
        outcome = Outcome(started_ns=started)
        if not decision.forwards:
            await _await_edge(pipeline.finish(call, decision, outcome))
            return error_response(
                pipeline.denial(decision), trace, _lineage_headers(decision, None, decision.labels, trace.trace_id_hex)
            )
        assert decision.upstream is not None
        pipeline.resolve_checkpoint(decision.upstream, call, outcome)
        return await self._forward(request, pipeline, call, decision, outcome, body, None)

    async def _plain_forward(
        self, request: web.BaseRequest, pipeline: Pipeline, trace: TraceContext, decision: Decision
    ) -> web.StreamResponse:
        """Forward a data-free request (metadata, health) with no record."""
        upstream = decision.upstream
        assert upstream is not None
        if upstream.url is None:
            raise UpstreamUnavailable(f"upstream {upstream.name!r} speaks gRPC only")
        body = await self._body(request, pipeline)
        headers = _forward_headers(request.headers, trace, pipeline, upstream.api_key, False)
        try:
            resp = await self.pool.request(upstream, request.method, request.raw_path, headers, body)
        except Exception as exc:
            raise _upstream_error(upstream, exc) from None
        reply_headers = _reply_headers(resp.headers, {"x-trace-id": trace.trace_id_hex})
        try:
            if resp.content_length is not None and resp.content_length <= pipeline.config.limits.buffer_max_bytes:
                try:
                    data = await resp.read()
                except Exception as exc:
                    raise _upstream_error(upstream, exc) from None
                return web.Response(status=resp.status, headers=reply_headers, body=data)
            # a large or unsized reply (a file, a model artifact) is passed on as it arrives
            reply = web.StreamResponse(status=resp.status, headers=reply_headers)
            if resp.content_length is not None:
                reply.content_length = resp.content_length
            await reply.prepare(request)
            if await _relay(request, resp, reply, upstream, None) is None:
                with contextlib.suppress(ConnectionResetError, aiohttp.ClientConnectionResetError):
                    await reply.write_eof()
            return reply
        finally:
            resp.release()


async def _relay(
    request: web.BaseRequest,
    resp: UpstreamResponse,
    reply: web.StreamResponse,
    upstream: Upstream | None,
    observer: Observer | None,
    first: bytes = b"",
) -> str | None:
    """Pass the rest of an upstream reply on as it arrives (`first`: bytes already read and observed).

    Returns None when the reply ended cleanly, else the error type. When the upstream fails mid-reply
    the status line is gone, so the only honest signal left is to cut the client's connection without
    a clean end of body. A cancelled handler (the client left) raises as usual."""
    try:
        if first:
            await reply.write(first)
        while chunk := await resp.readany():
            if observer is not None:
                observer.chunk(chunk)
            await reply.write(chunk)
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        return "client_disconnected"
    except Exception as exc:
        error = "upstream_timeout" if isinstance(exc, TimeoutError) else "upstream_reset"
        name = upstream.name if upstream else "?"
        log.warning("upstream %s failed mid-reply (%s); aborting the client connection", name, error)
        if request.transport is not None:
            request.transport.abort()
        return error
    return None


def _upstream_error(upstream: Upstream, exc: BaseException) -> ProxyError:
    if isinstance(exc, TimeoutError):
        return UpstreamTimeout(f"upstream {upstream.name!r} did not answer within {upstream.timeout_s:g}s")
    return UpstreamUnavailable(f"upstream {upstream.name!r} is unavailable: {type(exc).__name__}: {exc}")


async def _await_edge(future: concurrent.futures.Future[None] | None) -> None:
    """Wait for a new edge's first write (durable before the response completes)."""
    if future is None:
        return
    try:
        await asyncio.wrap_future(future)
    except Exception:
        pass  # logged by the aggregator; the call itself is not failed for a store error

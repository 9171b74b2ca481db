"""The HTTP ingress: aiohttp's low-level server in front of the pooled upstream client.

It reads requests and writes replies; what a request means is its protocol adapter's business (matched
from `HTTP_ADAPTERS`, passthrough otherwise) and the call's life is an Exchange's. Bodies are read once
and forwarded as the original bytes; replies that stream (SSE, chunked, or larger than
`limits.buffer_max_bytes`) are written chunk by chunk as they arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.config import Upstream
from proxy.errors import InvalidRequest, ModelNotFound, Overloaded, ProxyError, RequestTooLarge, UpstreamUnavailable
from proxy.exchange import CLIENT_GONE, Exchange
from proxy.flow import TraceContext
from proxy.pipeline import Pipeline, PipelineRef
from proxy.protocols import HTTP_ADAPTERS, Adapter, Target
from proxy.tls import identities_from_peercert
from proxy.transport.pool import Response as UpstreamResponse
from proxy.transport.pool import UpstreamPool

log = logging.getLogger("lineage_proxy.http")

# RFC 9110 §7.6.1 connection-specific fields, plus framing the proxy recomputes itself.
HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te",
        "trailer", "transfer-encoding", "upgrade", "host", "content-length", "expect",
    }
)  # fmt: skip
# reply headers only the proxy may set: an upstream's own are dropped, never passed off as the proxy's
OWNED = frozenset({"x-data-labels", "x-trace-id"})
_CLIENT_GONE_ERRORS = (ConnectionResetError, aiohttp.ClientConnectionResetError)


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


def _reply_headers(upstream_headers: CIMultiDict[str], lineage: list[tuple[str, str]]) -> CIMultiDict[str]:
    drop = _connection_tokens(upstream_headers)
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in upstream_headers.items():
        lower = name.lower()
        if lower in HOP_BY_HOP or lower in drop or lower in OWNED or lower.startswith("x-lineage-"):
            continue
        out.add(name, value)
    out.extend(lineage)
    return out


class _Header:
    """Request headers as the pipeline reads them: a field sent on several lines is one list, its values
    joined with ',' (RFC 9110 §5.3), so a second `x-data-labels` line adds labels and a second
    `x-purpose` is refused, the same as over gRPC: never "first (or last) one wins"."""

    __slots__ = ("_headers",)

    def __init__(self, headers: CIMultiDictProxy[str]) -> None:
        self._headers = headers

    def __call__(self, name: str) -> str | None:
        values = self._headers.getall(name, None)
        if values is None:
            return None
        return values[0] if len(values) == 1 else ",".join(values)


def _peer(request: web.BaseRequest) -> tuple[str, ...]:
    """What the client's certificate proves, on a TLS listener with client certificates (else ())."""
    transport = request.transport
    if transport is None or transport.get_extra_info("sslcontext") is None:
        return ()
    return identities_from_peercert(transport.get_extra_info("peercert"))


def error_response(error: ProxyError, lineage: list[tuple[str, str]]) -> web.Response:
    headers: CIMultiDict[str] = CIMultiDict(lineage)
    headers["Content-Type"] = "application/json"
    return web.Response(status=error.status, body=error.body(), headers=headers)


class _Connection(RequestHandler):
    """aiohttp's per-connection protocol, with its framing errors in the contract's shape: a malformed
    request line, header or chunked body gets the OpenAI error JSON (never text/plain, never a
    traceback) and one warning line, not an ERROR traceback per request. Past the listener's
    connection cap a new connection gets 503 `overloaded` at once and is closed, so the calls in flight
    keep their file descriptors. (aiohttp's keep-alive timer, `limits.idle_timeout_s`, closes a
    connection whose request head is not complete in time: slow clients cannot pin connections.)"""

    over_cap = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        server = self._manager
        if isinstance(server, HttpServer) and len(server.connections) > server.max_connections:
            # answered once its request is read (closing now would reset the client before it reads)
            self.over_cap = True
            _refused[0] += 1
            if _refused[0] in (1, 100) or _refused[0] % 10_000 == 0:
                log.warning("connection cap (limits.max_connections %d) reached: refusing new connections with "
                            "503 (%d so far)", server.max_connections, _refused[0])  # fmt: skip

    def handle_error(
        self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("the reply has started; the connection is closed instead")
        if status < 500:
            _framing_errors[0] += 1
            if _framing_errors[0] in (1, 10, 100) or _framing_errors[0] % 1000 == 0:
                log.warning("malformed HTTP request from %s: %s (%d so far)", request.remote,
                            message or exc or status, _framing_errors[0])  # fmt: skip
            error: ProxyError = InvalidRequest(f"malformed HTTP request: {_first_line(message or str(exc or ''))}")
            error.status = status
        else:
            log.error("internal error handling %s %s", request.method, request.path, exc_info=exc)
            error = ProxyError("internal error in lineage-proxy; see its log")
        response = web.Response(status=error.status, body=error.body(), content_type="application/json")
        response.force_close()
        return response


_framing_errors = [0]
_refused = [0]


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:200] if text.strip() else "bad framing"


class HttpServer(web.Server):
    """aiohttp's low-level server, making `_Connection`s; at most `max_connections` at once."""

    def __init__(self, handler: Any, *, max_connections: int, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.max_connections = max_connections

    def __call__(self) -> RequestHandler:
        return _Connection(self, loop=self._loop, **self._kwargs)


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
        if request.protocol.over_cap:  # type: ignore[attr-defined]
            refusal = error_response(Overloaded("lineage-proxy is at its connection limit; retry shortly"), [])
            refusal.headers["Retry-After"] = "1"
            refusal.force_close()
            return refusal
        method, path = request.method, request.path
        if method == "GET" and self.admin is not None:
            response = self.admin(request)
            if response is not None:
                return response
        pipeline = self.ref.current
        header = _Header(request.headers)
        for adapter in HTTP_ADAPTERS:  # the last one matches anything
            target = adapter.match(method, path)
            if target is not None:
                break
        assert target is not None
        ex = Exchange(pipeline, adapter, target, pipeline.trace(header))
        try:
            if not request.raw_path.startswith("/"):
                raise InvalidRequest(
                    "the request target must be a path (origin-form): lineage-proxy is not a forward proxy"
                )
            if not target.carries_data:
                return await self._data_free(request, ex, pipeline, adapter, target)
            if header("expect") is not None:
                await _expect(request, pipeline.config.limits.max_body_bytes)
            body = await self._body(request, pipeline)
            upstream = ex.admit(body, header, _peer(request))
            return await self._forward(request, ex, upstream, body, observe=ex.observes)
        except ProxyError as error:
            ex.finish(error)
            await ex.recorded()
            return error_response(error, ex.lineage_headers())
        except (asyncio.CancelledError, *_CLIENT_GONE_ERRORS):
            ex.finish(CLIENT_GONE)
            raise
        except Exception:
            log.exception("internal error handling %s %s", method, path, extra={"trace_id": ex.trace.trace_id_hex})
            internal = ProxyError("internal error in lineage-proxy; see its log")
            ex.finish(internal)
            await ex.recorded()
            return error_response(internal, ex.lineage_headers())
        finally:
            ex.finish()  # a no-op when the call already ended, which every path above does

    @staticmethod
    async def _body(request: web.BaseRequest, pipeline: Pipeline) -> bytes:
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

    async def _data_free(
        self, request: web.BaseRequest, ex: Exchange, pipeline: Pipeline, adapter: Adapter, target: Target
    ) -> web.StreamResponse:
        """Requests that carry no data (metadata, health, files, listings): only the caller's key is
        checked; forwarded to the upstream of the model the path names, or of the '*' route."""
        pipeline.identify_only(_Header(request.headers), _peer(request))
        if target.listing:
            return await self._listing(request, ex, pipeline, adapter)
        matched = pipeline.policy.route(target.model)
        if matched is None:
            raise ModelNotFound(f"no route for {request.path!r} (no route for model {target.model!r} and no '*' route)")
        ex.admit_data_free(matched[1], span=False)
        return await self._forward(request, ex, matched[1], b"", observe=False)

    async def _listing(
        self, request: web.BaseRequest, ex: Exchange, pipeline: Pipeline, adapter: Adapter
    ) -> web.StreamResponse:
        """A listing (`GET /v1/models`): one upstream of the adapter's dialect answers as it is;
        several are merged by the adapter (each model once)."""
        upstreams = list(
            {u.name: u for u in pipeline.policy.upstreams.values() if u.protocol == adapter.dialect and u.url}.values()
        )
        if len(upstreams) == 1:
            ex.admit_data_free(upstreams[0], span=False)
            return await self._forward(request, ex, upstreams[0], b"", observe=False)
        listings = []
        for upstream in upstreams:
            try:
                listings.append(await self.pool.get_json(upstream, request.path))
            except Exception as exc:
                log.warning("GET %s: upstream %s did not answer: %s", request.path, upstream.name, exc)
        ex.finish()
        return web.Response(
            body=adapter.merge(listings),
            headers={"Content-Type": "application/json", "x-trace-id": ex.trace.trace_id_hex},
        )

    async def _forward(
        self, request: web.BaseRequest, ex: Exchange, upstream: Upstream, body: bytes, *, observe: bool
    ) -> web.StreamResponse:
        if upstream.url is None:
            raise UpstreamUnavailable(
                f"upstream {upstream.name!r} speaks gRPC only; send this call to the gRPC listener"
            )
        headers = _forward_headers(request.headers, ex.trace, ex.pipeline, upstream.api_key, observe)
        try:
            resp = await self.pool.request(upstream, request.method, request.raw_path, headers, body)
        except Exception as exc:
            raise ex.upstream_failed(exc) from None
        try:
            ex.head(resp.status, resp.headers.get, resp.content_length)
            streamed = (
                resp.content_length is None
                or resp.content_length > ex.pipeline.config.limits.buffer_max_bytes
                or resp.headers.get("Content-Type", "").startswith("text/event-stream")
            )
            if streamed:
                return await self._streamed_reply(request, ex, resp)
            try:
                data = await resp.read()
            except Exception as exc:
                raise ex.upstream_failed(exc) from None
            ex.whole(data)
            await ex.end()
            return web.Response(status=resp.status, headers=_reply_headers(resp.headers, ex.lineage_headers()),
                                body=data)  # fmt: skip
        finally:
            resp.release()

    async def _streamed_reply(
        self, request: web.BaseRequest, ex: Exchange, resp: UpstreamResponse
    ) -> web.StreamResponse:
        first = b""
        last = False
        if ex.wants_first_chunk:
            # the reply names the model in its first event: wait for it so the head can say
            try:
                first = await resp.readany()
            except Exception as exc:
                raise ex.upstream_failed(exc) from None
            last = ex.chunk(first) if first else False
        reply = web.StreamResponse(status=resp.status, headers=_reply_headers(resp.headers, ex.lineage_headers()))
        if resp.content_length is not None:
            reply.content_length = resp.content_length
        await reply.prepare(request)
        error = await _relay(request, resp, reply, ex, first, last)
        if error is not None:
            ex.finish(error)
            return reply
        await ex.end()
        with contextlib.suppress(*_CLIENT_GONE_ERRORS):
            await reply.write_eof()
        return reply


async def _expect(request: web.BaseRequest, limit: int) -> None:
    """`Expect: 100-continue`: the client waits for a go-ahead before it sends the body; give it (the
    size limit is checked on Content-Length first, so an oversized body is refused without being sent)."""
    expect = request.headers.get("expect", "")
    if expect.lower() != "100-continue":
        raise InvalidRequest(f"unsupported Expect: {expect!r} (only 100-continue)", param="expect")
    length = request.content_length
    if length is not None and length > limit:
        raise RequestTooLarge(f"request body of {length} bytes is over the limit of {limit} bytes")
    if request.version >= (1, 1):
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")


async def _relay(
    request: web.BaseRequest,
    resp: UpstreamResponse,
    reply: web.StreamResponse,
    ex: Exchange,
    first: bytes,
    last: bool,
) -> str | None:
    """Pass the rest of an upstream reply on as it arrives (`first`: a piece already read and observed,
    `last`: it held the reply's end). The piece holding the end is written only once the call is
    recorded, so a client that stops reading at `data: [DONE]` and leaves loses nothing.

    Returns None when the reply ended cleanly, else the error type. When the upstream fails mid-reply
    the status line is gone, so the only honest signal left is to cut the client's connection without
    a clean end of body. A cancelled handler (the client left) raises as usual."""
    try:
        if first:
            if last:
                await ex.end()
            await reply.write(first)
        while chunk := await resp.readany():
            if ex.chunk(chunk):
                await ex.end()
            await reply.write(chunk)
    except _CLIENT_GONE_ERRORS:
        return CLIENT_GONE
    except Exception as exc:
        error = "upstream_timeout" if isinstance(exc, TimeoutError) else "upstream_reset"
        upstream = ex.decision.upstream if ex.decision is not None else None
        log.warning(
            "upstream %s failed mid-reply (%s); aborting the client connection",
            upstream.name if upstream else "?",
            error,
            extra={"trace_id": ex.trace.trace_id_hex},
        )
        if request.transport is not None:
            request.transport.abort()
        return error
    return None

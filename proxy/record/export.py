"""Span export off the hot path: a bounded queue drained by one thread into a sink.

Spans arrive already encoded (see spans.py), so the thread does little but frame bytes and wait on
the network, with the GIL released. `submit` never blocks: when the queue is full (the collector is
slow or down) spans are dropped and counted; a failed export is logged once per outage, not per span.
At shutdown what is left gets a bounded time to go out; what does not is counted and logged in one line.
"""

from __future__ import annotations

import collections
import datetime
import email.utils
import gzip
import http.client
import logging
import os
import random
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

from proxy import __version__
from proxy.config.otel_env import grpc_target_scheme, target_endpoint
from proxy.errors import PLAINTEXT_REASONS, plaintext_hint
from proxy.logs import write_stdout
from proxy.record import ExportRefused
from proxy.record.otlp import encode_request
from proxy.record.sinks import Counts

log = logging.getLogger("lineage_proxy.export")

TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@dataclass(frozen=True, slots=True)
class SinkOptions:
    """How to reach an OTLP backend beyond its endpoint: what hosted backends need (auth headers, gzip,
    a private CA). Read from config keys and OTEL_EXPORTER_OTLP_* variables (see otel_env.py)."""

    headers: tuple[tuple[str, str], ...] = ()
    compression: str | None = None  # gzip | None
    certificate: str | None = None  # a PEM file of CA certificates to trust
    insecure: bool | None = None  # gRPC: plaintext even without http:// (OTEL_EXPORTER_OTLP_INSECURE)
    exact_path: bool = False  # the endpoint is a signal-specific URL: use its path as is


class Sink(Protocol):
    """Where spans go. `send` raises on failure; it runs on the export thread only. It returns what the
    collector took but rejected (`Rejected`: an OTLP partial success), None when it took every span."""

    def send(self, batch: list[bytes]) -> Rejected | None: ...

    def close(self) -> None: ...


# (spans, the collector's message): an OTLP partial success, a batch taken with `rejected_spans` of it refused
Rejected = tuple[int, str]


def rejected(response: bytes) -> Rejected | None:
    """The partial success an ExportTraceServiceResponse holds (`rejected_spans`, `error_message`), None when it
    holds none or is not one (a collector answering something else took the batch). Read by protobuf."""
    try:
        answer = _response_type()()
        answer.ParseFromString(response)
    except Exception:  # protobuf's DecodeError, or what a body that is no message makes of it
        return None
    spans = answer.partial_success.rejected_spans
    return (spans, answer.partial_success.error_message) if spans > 0 else None


_RESPONSE: list[Any] = []  # the ExportTraceServiceResponse message class, made on first use


def _response_type() -> Any:
    """opentelemetry-proto's ExportTraceServiceResponse, as a protobuf message class made from its two messages'
    descriptors (the package is a test dependency only: the spans are encoded by `otlp.py`)."""
    if not _RESPONSE:
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

        proto = descriptor_pb2.FileDescriptorProto(name="lineage_proxy/otlp_trace_response.proto",
                                                   package="lineage_proxy.otlp", syntax="proto3")  # fmt: skip
        partial = proto.message_type.add(name="ExportTracePartialSuccess")
        partial.field.add(name="rejected_spans", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
                          label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)  # fmt: skip
        partial.field.add(name="error_message", number=2, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                          label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)  # fmt: skip
        response = proto.message_type.add(name="ExportTraceServiceResponse")
        response.field.add(name="partial_success", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
                           type_name=".lineage_proxy.otlp.ExportTracePartialSuccess",
                           label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)  # fmt: skip
        pool = descriptor_pool.DescriptorPool()
        pool.Add(proto)
        found = pool.FindMessageTypeByName("lineage_proxy.otlp.ExportTraceServiceResponse")
        _RESPONSE.append(message_factory.GetMessageClass(found))
    return _RESPONSE[0]


_STATUS: list[Any] = []  # google.rpc.Status and RetryInfo message classes, made on first use


def _status_types() -> tuple[Any, Any]:
    """google.rpc.Status (code 1, message 2, details 3: Any's type_url 1 and value 2) and google.rpc.RetryInfo
    (retry_delay 1: Duration's seconds 1 and nanos 2), as protobuf message classes made from descriptors of the same
    fields (googleapis-common-protos, which has them, is no dependency)."""
    if not _STATUS:
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

        field = descriptor_pb2.FieldDescriptorProto
        proto = descriptor_pb2.FileDescriptorProto(name="lineage_proxy/grpc_status.proto", package="lineage_proxy.rpc",
                                                   syntax="proto3")  # fmt: skip
        detail = proto.message_type.add(name="Any")
        detail.field.add(name="type_url", number=1, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
        detail.field.add(name="value", number=2, type=field.TYPE_BYTES, label=field.LABEL_OPTIONAL)
        status = proto.message_type.add(name="Status")
        status.field.add(name="code", number=1, type=field.TYPE_INT32, label=field.LABEL_OPTIONAL)
        status.field.add(name="message", number=2, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
        status.field.add(name="details", number=3, type=field.TYPE_MESSAGE, type_name=".lineage_proxy.rpc.Any",
                         label=field.LABEL_REPEATED)  # fmt: skip
        duration = proto.message_type.add(name="Duration")
        duration.field.add(name="seconds", number=1, type=field.TYPE_INT64, label=field.LABEL_OPTIONAL)
        duration.field.add(name="nanos", number=2, type=field.TYPE_INT32, label=field.LABEL_OPTIONAL)
        retry = proto.message_type.add(name="RetryInfo")
        retry.field.add(name="retry_delay", number=1, type=field.TYPE_MESSAGE,
                        type_name=".lineage_proxy.rpc.Duration", label=field.LABEL_OPTIONAL)  # fmt: skip
        pool = descriptor_pool.DescriptorPool()
        pool.Add(proto)
        for name in ("Status", "RetryInfo"):
            _STATUS.append(message_factory.GetMessageClass(pool.FindMessageTypeByName(f"lineage_proxy.rpc.{name}")))
    return _STATUS[0], _STATUS[1]


RETRY_INFO: Final = "type.googleapis.com/google.rpc.RetryInfo"
RETRY_INFO_TRAILER: Final = "google.rpc.retryinfo-bin"


def retry_delay(trailers: Any) -> float | None:
    """The retry delay a gRPC refusal's RetryInfo gives, in seconds; None when there is none or it is no such message.
    Found in its `grpc-status-details-bin` trailer (a google.rpc.Status's details: OTLP/gRPC's throttling, as
    Retry-After is OTLP/HTTP's; grpc-go's `status.WithDetails`, the Collector's) or alone in `google.rpc.retryinfo-bin`
    (where OpenTelemetry's Python exporter reads it, and Google's APIs send it)."""
    for key, value in trailers or ():
        if not isinstance(value, bytes) or (key != "grpc-status-details-bin" and key != RETRY_INFO_TRAILER):
            continue
        status_type, retry_type = _status_types()
        try:
            if key == RETRY_INFO_TRAILER:
                return _delay_of(retry_type, value)
            status = status_type()
            status.ParseFromString(value)
            for detail in status.details:
                if detail.type_url == RETRY_INFO:
                    return _delay_of(retry_type, detail.value)
        except Exception:  # protobuf's DecodeError, or what bytes that are no Status make of it
            return None
    return None


def _delay_of(retry_type: Any, value: bytes) -> float | None:
    """A serialized google.rpc.RetryInfo's `retry_delay` in seconds; None when negative."""
    info = retry_type()
    info.ParseFromString(value)
    delay = info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    return float(delay) if delay >= 0 else None


# OTLP/HTTP: "429, 502, 503 and 504 ... MUST be retried"; everything else is final.
RETRYABLE_HTTP = frozenset({429, 502, 503, 504})
# A refusal's Retry-After beyond the export's timeout ends the export, and the outage's probes (`accepting`) and queued
# batches wait for it: the OTLP/HTTP specification's client "SHOULD" wait that long. At most this long: a collector
# saying `Retry-After: 86400` (or a date next year) is probed again once a minute, not a day later.
RETRY_AFTER_MAX_S: Final = 60.0
# OTLP/gRPC: the codes the spec lists as retryable (RESOURCE_EXHAUSTED only with RetryInfo; we retry it
# like the SDK does, within the same deadline).
RETRYABLE_GRPC = frozenset({"CANCELLED", "DEADLINE_EXCEEDED", "ABORTED", "OUT_OF_RANGE", "UNAVAILABLE",
                            "DATA_LOSS", "RESOURCE_EXHAUSTED"})  # fmt: skip
# Errors that on a reused keep-alive connection mostly mean "the backend closed it while idle", not "the backend
# is down": the request then never reached it, and is sent once more on a fresh connection. A client cannot tell that
# from a collector that read the batch and then crashed or reset the connection unanswered, which gets it twice: the
# OTLP specification accepts that trade ("Duplicate Data": retrying to deliver may duplicate data), as a span lost
# to every idle close would not be.
STALE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, http.client.BadStatusLine)
# gRPC's default reconnect backoff (1 s, ×1.6 per failed attempt, up to 120 s) kept a channel down for
# ~15 s after a collector came back from a one-minute outage, dropping spans all along. Capped at 1 s, the
# channel tries again at most ~1.2 s (jitter) after the collector's return: one refused connect a second
# while it is down. min_reconnect_backoff is gRPC's MIN_CONNECT_TIMEOUT (20 s by default): at 5 s it bounds
# how long an attempt to a black-holed collector hangs before the next one.
RECONNECT_OPTIONS = (("grpc.initial_reconnect_backoff_ms", 250), ("grpc.max_reconnect_backoff_ms", 1000))
# OTLP's exporters "SHOULD emit a User-Agent header to at the minimum identify the exporter, the language of its
# implementation, and the version of the exporter" (the OTLP exporter specification): over HTTP there was none at all
# (http.client adds none), over gRPC only grpc's own, which names no exporter; grpc puts this one before its own
USER_AGENT: Final = f"lineage-proxy/{__version__} (python; OTLP exporter)"
GRPC_CHANNEL_OPTIONS = (
    *RECONNECT_OPTIONS,
    ("grpc.min_reconnect_backoff_ms", 5000),
    ("grpc.primary_user_agent", USER_AGENT),
)


# A batch: up to BATCH_SPANS spans, cut short before the span that would take its spans past BATCH_BYTES (the next
# batch's first). Each export costs ~1 ms of CPU beside its spans' bytes (grpc's call, the thread's wake-ups and the
# GIL's hand-overs): batches of 2,048 benchmark spans (~2.3 MiB) cost 0.978x the CPU a call of 512-span ones at 64
# connections. The bytes' bound keeps a request under gRPC's default 4 MiB receive limit (a collector's, Jaeger's),
# which refuses the whole request, when spans carry content.
BATCH_SPANS: Final = 2048
BATCH_BYTES: Final = 3 << 20
# the bytes of spans queued at most, besides their number (`queue_size`): a span may be up to 1 MiB (a caller's long
# model name or stop sequences, captured content), and 4,096 of them queued while a collector is slow held 4 GiB
QUEUE_BYTES: Final = 64 << 20

# glibc's malloc options (malloc.h): M_TRIM_THRESHOLD, M_MMAP_THRESHOLD
_M_TRIM_THRESHOLD: Final = -1
_M_MMAP_THRESHOLD: Final = -3
# A gRPC export allocates two copies of its request, up to ~3 MiB (BATCH_BYTES): the joined message, then grpc's own
# copy of it; and frees both once sent. With glibc's defaults the free left that much at the top of the export thread's
# arena, which was given back to the kernel (trimmed), so the next batch's copies faulted every page in again:
# ~260 page faults a batch, a third of the export thread's CPU. Kept under these bounds, the pages are reused.
# glibc's own dynamic thresholds reach further (a 32 MiB mmap threshold, trim at twice it) after a large free.
MMAP_THRESHOLD: Final = 4 << 20
TRIM_THRESHOLD: Final = 8 << 20


# The export thread's nice above the process's. The proxy serves a connection's calls one after another, so an
# export runs while a call is being served: ~1 ms of CPU a 512-span batch (framing it, grpc's copy, its HTTP/2
# writes). Below the event loop's priority, the thread gives the core back whenever the loop's thread wakes
# (a reply from upstream, a client's next request) instead of at the end of its time slice. At 10 the thread
# still gets a tenth of a saturated core, ~3 times what the exports of 64 connections' calls take. With the GIL
# given back between an export's stretches (`give_way`), a thread waking every 100 µs beside the exporter
# waited at worst 165-182 µs an export (median over 40 exports, 4 rounds), against 402-549 µs before.
EXPORT_NICE: Final = 10


def below_the_loop() -> None:
    """Set the calling thread's CPU priority EXPORT_NICE below the process's (on Linux a nice value is a
    thread's own, and a new thread starts with its creator's: counted from the process's, not the thread's,
    so an exporter started from a thread already lowered is not lowered twice); nothing elsewhere, or where it
    is not allowed."""
    if not sys.platform.startswith("linux"):
        return
    try:
        own = os.getpriority(os.PRIO_PROCESS, os.getpid())  # the main thread's: the process's as started
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), min(19, own + EXPORT_NICE))
    except OSError:
        pass


def give_way() -> None:
    """Between two stretches of an export's work that hold the GIL (taking a batch, framing it, grpc's call):
    the GIL released and the core yielded, so the event loop's thread, when it waits for either, runs now
    rather than after the export's next stretch."""
    os.sched_yield()


class _Malloc:
    """Whether `keep_freed_pages` has run (once a process)."""

    def __init__(self) -> None:
        self.tuned = False


_MALLOC: Final = _Malloc()


def keep_freed_pages() -> None:
    """Let glibc's malloc keep up to TRIM_THRESHOLD freed at an arena's top and serve blocks under
    MMAP_THRESHOLD from its arenas, so exports' buffers reuse resident pages; nothing off glibc."""
    if _MALLOC.tuned or not sys.platform.startswith("linux"):
        return
    _MALLOC.tuned = True
    import ctypes

    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is not None:  # glibc's; musl's takes the call and ignores it
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)


def retrying(send: Callable[[], None], timeout_s: float, wait: Callable[[float], object] = time.sleep) -> None:
    """Run `send` until it succeeds, or fails for good, or `timeout_s` is spent.

    The OTLP spec's retry: a retryable refusal is retried after the backend's Retry-After when it gives
    one, else after an exponential backoff with jitter (0.1 s, 0.2 s, 0.4 s, ... each ±50 %); the whole
    export, retries included, stays within the exporter's timeout as the OpenTelemetry SDKs do, so a
    backend that keeps refusing costs one timeout per batch and the bounded queue does the rest.
    """
    deadline = time.monotonic() + timeout_s
    delay = 0.1
    while True:
        try:
            send()
            return
        except ExportRefused as refused:
            if not refused.retryable:
                raise
            # the greater of the backoff and what the refusal asked for, as OpenTelemetry Go's exporters wait: a
            # `Retry-After: 0`, or a RetryInfo with no delay, retried at once, sent ~1,500 requests in a 1 s export
            backoff = delay * random.uniform(0.5, 1.5)
            told = refused.retry_after_s
            pause = told if told is not None and told > backoff else backoff
            if time.monotonic() + pause > deadline:
                raise
            wait(pause)
            delay = min(delay * 2, 5.0)


def retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3); None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():  # (digits of any script and superscripts are digits to str; float reads only some)
        return float(value) if value.isascii() else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):  # (a day, year, time or zone past any range: OverflowError)
        return None
    if when.tzinfo is None:  # `-0000` (RFC 5322: UTC, its source's zone unknown): not the proxy's local time
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - time.time())


class OtlpGrpcSink:
    """OTLP over gRPC (Jaeger and the Collector listen on 4317)."""

    def __init__(
        self, endpoint: str, timeout_s: float, resource: bytes, scope: bytes, options: SinkOptions | None = None
    ) -> None:
        import grpc

        options = options or SinkOptions()
        self._secure = grpc_secure(endpoint, options)
        target_scheme = grpc_target_scheme(endpoint)
        if target_scheme:  # grpc's own target, resolved by grpc as written (its scheme in any case)
            target, self._scheme = endpoint, target_scheme
        else:
            parts = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
            # the URL's host (an IPv6 literal in its brackets, as grpc reads it) and port: an https URL's default is
            # 443, as OpenTelemetry's SDKs take `https://api.honeycomb.io`; else OTLP/gRPC's own, 4317, which a loaded
            # config never reaches: the loader refuses what OpenTelemetry's exporter sends elsewhere, `http://collector`
            # and `collector` (443) and port 0 (`collector:0`, which this `or` took for none until 2026-12-07)
            host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
            target = f"{host}:{parts.port or (443 if parts.scheme == 'https' else 4317)}"
            self._scheme = parts.scheme if "://" in endpoint else ""  # what made it TLS, for `_plaintext_hint`
        if self._secure:
            credentials = grpc.ssl_channel_credentials(root_certificates=grpc_roots(options))
            self._channel = grpc.secure_channel(target, credentials, options=GRPC_CHANNEL_OPTIONS)
        else:
            self._channel = grpc.insecure_channel(target, options=GRPC_CHANNEL_OPTIONS)
        self._export = self._channel.unary_unary(TRACE_EXPORT)
        self._timeout_s = timeout_s
        self._metadata = tuple((key.lower(), value) for key, value in options.headers)
        self._compression = grpc.Compression.Gzip if options.compression == "gzip" else None
        self._resource, self._scope = resource, scope
        keep_freed_pages()
        _response_type()  # made at start, not at the first answer while calls are served (protobuf's imports)
        _status_types()

    def send(self, batch: list[bytes]) -> Rejected | None:
        import grpc

        body = encode_request(self._resource, self._scope, batch)
        give_way()
        deadline = time.monotonic() + self._timeout_s
        answer: list[bytes] = []
        # the plaintext advice any attempt earned: grpc says the last address's error alone, and one of a name's
        # addresses refusing (`localhost`: ::1, then 127.0.0.1's TLS handshake) may be last, where until 2026-12-06
        # no advice was given
        advised: list[str] = []

        def once() -> None:
            # a retry gets what is left of the batch's timeout, not a fresh one: the export, retries included,
            # ends within export_timeout_s (what a shutdown waits for)
            timeout = max(0.001, deadline - time.monotonic())
            try:
                answer.append(self._export(body, timeout=timeout, metadata=self._metadata,
                                           compression=self._compression))  # fmt: skip
            except grpc.RpcError as exc:
                code = exc.code() if callable(getattr(exc, "code", None)) else None
                name = code.name if code is not None else "UNKNOWN"
                details = str(exc.details() if callable(getattr(exc, "details", None)) else exc)
                advised.append(self._plaintext_hint(details))
                trailers = exc.trailing_metadata() if callable(getattr(exc, "trailing_metadata", None)) else None
                raise ExportRefused(f"{name}: {details}", name in RETRYABLE_GRPC, retry_delay(trailers),
                                    hint=max(advised, key=len)) from exc  # fmt: skip

        retrying(once, self._timeout_s)
        return rejected(answer[-1]) if answer and isinstance(answer[-1], bytes) else None

    def _plaintext_hint(self, details: str) -> str:
        """What to do when this sink's TLS handshake met a collector speaking plain gRPC (grpc says OpenSSL's
        `WRONG_VERSION_NUMBER` alone), by what made it TLS (`grpc_secure`): an endpoint without a scheme, as the spec
        has it, an https:// one, a gRPC target (`dns:`, `unix:`, ...), or an http:// one given a certificate."""
        if not self._secure or not any(reason in details for reason in PLAINTEXT_REASONS):
            return ""
        if self._scheme == "http":
            return (" (the collector answered in plain gRPC, not TLS: an http:// endpoint given a certificate, "
                    "telemetry.certificate or OTEL_EXPORTER_OTLP_CERTIFICATE, is spoken over TLS; for a plaintext "
                    "collector give none, or set telemetry.insecure: true)")  # fmt: skip
        # (a gRPC target's scheme, `grpc_target_scheme`: `a unix: endpoint`, `an ipv4: endpoint`, which no http://
        # URL writes but a dns: one's host:port)
        said = "an https:// endpoint" if self._scheme == "https" else target_endpoint(self._scheme)
        said = said if self._scheme else "an endpoint without a scheme"
        to = "write the endpoint with http://, or " if self._scheme in ("", "https", "dns") else ""
        return (f" (the collector answered in plain gRPC, not TLS: {said} is spoken over TLS; "
                f"for a plaintext collector {to}set telemetry.insecure: true)")  # fmt: skip

    def close(self) -> None:
        self._channel.close()


def grpc_secure(endpoint: str, options: SinkOptions) -> bool:
    """Whether an OTLP/gRPC sink reaches `endpoint` over TLS. As the OpenTelemetry spec and its SDKs have it:
    `insecure` (default false) decides an endpoint without a scheme (`collector:4317`), so that one is TLS unless it
    says plaintext, and so does a gRPC target (`dns:///collector:4317`, `unix:/run/otel.sock`, `grpc_target_scheme`:
    opentelemetry-exporter-otlp-proto-grpc is plaintext for `http` alone); `http://` is plaintext, unless a
    `certificate` is given to check the backend with."""
    scheme = urlsplit(endpoint).scheme if "://" in endpoint else ""
    return options.insecure is not True and (
        scheme == "https"
        or "://" not in endpoint
        or grpc_target_scheme(endpoint) != ""
        or options.certificate is not None
    )


def grpc_roots(options: SinkOptions) -> bytes | None:
    """The CA bundle an OTLP/gRPC sink over TLS checks its collector with, as read now (None: the system's)."""
    return Path(options.certificate).read_bytes() if options.certificate else None


def https_context(endpoint: str, options: SinkOptions) -> ssl.SSLContext | None:
    """The TLS context of an OTLP/HTTP sink to `endpoint`, its CA bundle read now (None: plain HTTP)."""
    if urlsplit(endpoint).scheme != "https":
        return None
    return ssl.create_default_context(cafile=options.certificate)


class OtlpHttpSink:
    """OTLP over HTTP with protobuf bodies (Jaeger and the Collector listen on 4318, path /v1/traces).

    One keep-alive connection, reused batch after batch. Collectors close idle connections (Go's
    net/http after its IdleTimeout, load balancers after theirs), and the close is only noticed when
    the next batch is written: that batch goes again once on a fresh connection instead of being
    dropped. One 6-minute benchmark run lost 2,005 spans that way before this retry existed.
    """

    def __init__(
        self, endpoint: str, timeout_s: float, resource: bytes, scope: bytes, options: SinkOptions | None = None
    ) -> None:
        options = options or SinkOptions()
        parts = urlsplit(endpoint)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "127.0.0.1"
        # a URL: without a port, its scheme's (as the SDKs read OTEL_EXPORTER_OTLP_ENDPOINT), never 4318
        self._port = parts.port or (443 if self._https else 80)
        path = parts.path.rstrip("/")
        # OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as is; a base endpoint gets /v1/traces appended
        self._path = path if options.exact_path or path.endswith("/v1/traces") else path + "/v1/traces"
        self._path = (self._path or "/") + (f"?{parts.query}" if parts.query else "")  # (a collector's key, say)
        self._timeout_s = timeout_s
        self._resource, self._scope = resource, scope
        self._gzip = options.compression == "gzip"
        # the user's headers win over ours whatever their case (`user-agent` replaces the proxy's, never beside it)
        given = {name.lower() for name, _ in options.headers}
        ours = {"Content-Type": "application/x-protobuf", "User-Agent": USER_AGENT}
        self._headers = {**{k: v for k, v in ours.items() if k.lower() not in given}, **dict(options.headers)}
        if self._gzip:
            self._headers["Content-Encoding"] = "gzip"
        self._context = https_context(endpoint, options)
        self._conn: http.client.HTTPConnection | None = None
        self._used = False  # the connection has carried a request: it may have gone stale since
        _response_type()  # (as OtlpGrpcSink's)
        self.stale_retries = 0  # batches sent again because a reused connection had been closed

    def send(self, batch: list[bytes]) -> Rejected | None:
        body = encode_request(self._resource, self._scope, batch)
        if self._gzip:
            body = gzip.compress(body, compresslevel=6)
        give_way()
        answer: list[bytes] = []
        retrying(lambda: answer.append(self._post(body)), self._timeout_s)
        return rejected(answer[-1]) if answer else None

    def _connect(self) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout_s, context=self._context)
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout_s)

    def _post(self, body: bytes) -> bytes:
        """One POST; on a reused connection found closed, once more on a fresh one. The answer's body (a
        protobuf ExportTraceServiceResponse; b"" when it says it is JSON, which no request here asks for)."""
        reused = self._conn is not None and self._used
        try:
            status, headers, answer = self._exchange(body)
        except STALE:
            self._drop()
            if not reused:
                raise
            self.stale_retries += 1
            status, headers, answer = self._exchange(body)
        except Exception:
            self._drop()
            raise
        if not 200 <= status < 300:
            raise ExportRefused(str(status), status in RETRYABLE_HTTP, retry_after(headers.get("Retry-After")))
        return b"" if "json" in (headers.get("Content-Type") or "") else answer

    def _exchange(self, body: bytes) -> tuple[int, http.client.HTTPMessage, bytes]:
        if self._conn is None:
            self._conn = self._connect()
            self._used = False
        try:
            self._conn.request("POST", self._path, body, self._headers)
            reply = self._conn.getresponse()
            answer = reply.read()
        except Exception:
            self._drop()
            raise
        self._used = True
        if reply.will_close:
            self._drop()
        return reply.status, reply.headers, answer

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        self._drop()


# what a line about a stalled or failing export names: the console exporter has no collector, only a stdout whose write
# waits for room (`logs.write_stdout`) or fails (a reader gone, EPIPE; a disk full, ENOSPC). Why an export was still in
# flight at a stop's end; until when an outage drops spans; and what failed before a stop
COLLECTOR_STALLED: Final = "the collector is slow or not answering"
STDOUT_STALLED: Final = "stdout takes no more of them: nothing reads it, or too slowly"
COLLECTOR_BACK: Final = "the collector is back"
STDOUT_BACK: Final = "stdout takes them again"
COLLECTOR_FAILED: Final = "the collector has failed"
STDOUT_FAILED: Final = "stdout has refused them"


class ConsoleSink:
    """One JSON line per span on stdout (items are encoded as JSON by the recorder), each whole beside other
    processes' (`write_stdout`). One a stop gave up on (`close`) writes no batch still waiting for its turn: behind a
    stdout nobody reads, each reload's stop left its export thread waiting there with its batch (up to 3 MiB) for as
    long as the process lived; now only the one batch being written waits, and is written if stdout is read again."""

    def __init__(self) -> None:
        self._closed = False

    def send(self, batch: list[bytes]) -> Rejected | None:
        if not write_stdout(b"\n".join(batch) + b"\n", self._given_up):
            raise OSError("not written: the stop gave up on it, still waiting for stdout")  # (counted by the stop)
        return None

    def _given_up(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True


class BoundedExporter:
    """When to export (batches, bounded queue, drops) apart from where (the sink)."""

    def __init__(
        self,
        sink: Sink,
        *,
        max_queue: int = 4096,
        max_queue_bytes: int = QUEUE_BYTES,
        batch_size: int = BATCH_SPANS,
        batch_bytes: int = BATCH_BYTES,
        interval_s: float = 0.5,
        stop_timeout_s: float = 5.0,
    ) -> None:
        self._sink = sink
        self._queue: collections.deque[bytes] = collections.deque()
        self._max_queue = max_queue
        self._max_queue_bytes = max_queue_bytes
        # the bytes of the spans queued, as two counts each written by one side only (no lock on the call's path):
        # those `submit` queued, and those taken from the queue (by a taker, holding `_counting`)
        self._queued_bytes = 0
        self._taken_bytes = 0
        # never more than the queue holds: a batch the queue cannot fill would wait for the interval while spans drop
        self._batch_size = max(1, min(batch_size, max_queue))
        self._batch_bytes = batch_bytes
        self._cut = False  # the last batch taken was cut short by `batch_bytes`: more than a request's worth was queued
        self._interval_s = interval_s
        self._stop_timeout_s = stop_timeout_s  # what `shutdown` waits at most, by default
        self._wake = threading.Event()
        self._exporting = threading.Lock()  # one export at a time: a flush waits for the one in flight
        # a batch is counted once: by the export thread when its send ends, or by a shutdown that gave up on it
        self._counting = threading.Lock()
        self._in_flight = 0  # spans taken from the queue whose send has not ended
        self._stopping = False
        self._given_up = False  # shutdown stopped waiting: the export thread counts and takes nothing more
        self._stop_lost = 0  # spans lost since shutdown began, not yet reported
        self._stop_error: Exception | None = None  # why the last export after shutdown began failed
        self._outage = False
        self._rejecting = False  # a collector's partial success was logged (once)
        self._lost_before_outage = 0  # spans failed or dropped before the outage began
        self._outage_error: Exception | None = None  # what began the outage (said at shutdown if it has not ended)
        self._next_probe = 0.0
        # before this (monotonic), nothing is sent: the collector's Retry-After (`_export`; written by the export thread)
        self._resume_at = 0.0
        # dropped: spans refused because the queue was full, or left in it at shutdown; failed: spans the sink
        # could not deliver. A reload's new exporter counts on from these (`Counts`)
        self.counts = Counts("dropped", "failed", "exported")
        # not `_thread`: compiled, an attribute is a C struct field named after it, and `__thread` is C's
        self._exporter = threading.Thread(target=self._run, name="span-export", daemon=True)
        self._exporter.start()

    @property
    def dropped(self) -> int:
        return self.counts["dropped"]

    @property
    def failed(self) -> int:
        return self.counts["failed"]

    @property
    def exported(self) -> int:
        return self.counts["exported"]

    def accepting(self) -> bool:
        """Whether a new span is worth encoding. During an outage, one span per interval goes on as a
        probe for the collector's return; the others are counted as dropped before they cost anything."""
        if not self._outage:
            return True
        now = time.monotonic()
        if now >= self._next_probe and now >= self._resume_at:
            self._next_probe = now + self._interval_s
            return True
        self.counts.add("dropped")
        return False

    def submit(self, span: bytes) -> None:
        size = len(span)
        if (len(self._queue) >= self._max_queue
                or self._queued_bytes - self._taken_bytes + size > self._max_queue_bytes):  # fmt: skip
            self.counts.add("dropped")
            return
        self._queued_bytes += size  # before it can be taken: the difference never goes below zero
        self._queue.append(span)
        if len(self._queue) == self._batch_size:
            self._wake.set()

    def _take(self) -> list[bytes]:
        """The next batch: up to `batch_size` spans, the first always, the others while their bytes stay within
        `batch_bytes`."""
        batch: list[bytes] = []
        queue = self._queue
        room = self._batch_bytes
        cut = False
        with self._counting:
            if self._given_up:
                return batch
            while queue and len(batch) < self._batch_size:
                size = len(queue[0])  # the span popped next: every taker holds `_counting`
                if batch and size > room:
                    cut = True
                    break
                batch.append(queue.popleft())
                room -= size
                self._taken_bytes += size
            self._in_flight = len(batch)
        self._cut = cut
        return batch

    def _discard_queued(self) -> int:
        """Count what is queued as dropped and empty the queue, spans appended meanwhile included. The
        caller holds `_counting`."""
        count = 0
        queue = self._queue
        while queue:
            try:
                self._taken_bytes += len(queue.popleft())
            except IndexError:
                break
            count += 1
        self.counts.add("dropped", count)
        if self._stopping:
            self._stop_lost += count
        return count

    def _export(self, batch: list[bytes]) -> bool:
        """Send one batch and count it; whether it went."""
        if not batch:
            return True
        give_way()
        try:
            partly = self._sink.send(batch)
        except Exception as exc:
            with self._counting:
                self._in_flight = 0
                if self._given_up:
                    return False
                self.counts.add("failed", len(batch))
                if self._stopping:  # told in the shutdown's one line, not as an outage
                    self._stop_lost += len(batch)
                    self._stop_error = exc
                    return False
                first = not self._outage
                told = exc.retry_after_s if isinstance(exc, ExportRefused) and exc.retryable else None
                wait = min(told, RETRY_AFTER_MAX_S) if told is not None and told > 0 else 0.0
                if wait:  # what it asked for, from the refusal's time (its answer's)
                    self._resume_at = time.monotonic() + wait
                if first:  # the counts carry on across reloads: the outage's losses are what they grew by since
                    self._lost_before_outage = self.failed + self.dropped - len(batch)
                    self._outage_error = exc
                self._outage = True
            if first:
                back = STDOUT_BACK if self._to_stdout() else COLLECTOR_BACK
                asked = ""
                if wait > self._interval_s:  # a shorter wait holds back nothing the outage's probes do not (0.001 s)
                    told_by = "RetryInfo" if isinstance(self._sink, OtlpGrpcSink) else "Retry-After"
                    asked = f", sending nothing for {wait:.3g} s as it asked ({told_by})"
                log.error("span export failed (%s); dropping spans until %s%s", _short(exc), back, asked)
            return False
        refused = min(partly[0], len(batch)) if partly else 0
        with self._counting:
            self._in_flight = 0
            if self._given_up:
                return True  # shutdown has already counted it as failed
            self.counts.add("exported", len(batch) - refused)
            if refused:  # taken and dropped by the collector (a partial success): lost, and not to be sent again
                self.counts.add("failed", refused)
            recovered = self._outage
            self._outage = False
        if refused and not self._rejecting:
            self._rejecting = True
            log.error("the collector rejected %d of %d spans of a batch (%s); they are lost (logged once, counted in "
                      "lineage_proxy_spans_export_failed_total)", refused, len(batch), partly[1][:300] if partly else "")  # fmt: skip
        if recovered:
            lost = self.failed + self.dropped - self._lost_before_outage
            log.warning(
                "span export recovered; %s %s lost during the outage", _spans(lost), "was" if lost == 1 else "were"
            )
        return True

    def _to_stdout(self) -> bool:
        """Whether spans go to stdout (`exporter: console`), which its lines name where an OTLP exporter's name its
        collector: it has none (until 2026-12-07 a failing one said `dropping spans until the collector is back`)."""
        return isinstance(self._sink, ConsoleSink)

    def _run(self) -> None:
        """Export a batch when `batch_size` spans are queued, and what is queued once `interval_s` has
        passed since the last export. Never "whatever came in while the last export was in flight":
        under load that exported batches of a handful of spans back to back, each costing as much as a
        full one (one run: 4 spans a batch, 29 µs of export CPU a call, on the proxy's own core)."""
        below_the_loop()
        queue, batch_size = self._queue, self._batch_size
        due = time.monotonic() + self._interval_s
        while not self._stopping:
            # a collector's Retry-After (`_resume_at`): nothing goes before it has passed, a full batch neither
            due = max(due, self._resume_at)
            if len(queue) < batch_size or time.monotonic() < self._resume_at:
                self._wake.wait(max(0.0, due - time.monotonic()))
                self._wake.clear()
            now = time.monotonic()
            if (len(queue) < batch_size and now < due) or now < self._resume_at:
                continue  # woken early (a flush, a stop) with no full batch, or told to wait longer meanwhile
            due = now + self._interval_s
            while queue and not self._stopping:
                with self._exporting:
                    sent = self._export(self._take())
                if not sent and self._resume_at > time.monotonic():
                    break  # refused with a Retry-After: the rest waits for it
                if len(queue) < batch_size and not self._cut:
                    break  # the rest waits for a full batch or the next interval
        self._last_exports()

    def _last_exports(self) -> None:
        """At stop, on this thread (so `shutdown` can stop waiting for it): what is queued goes out, unless
        an export has failed since the stop began (the collector is down or stalled: another try would only
        spend the time the process has left)."""
        with self._exporting:
            while self._queue and self._stop_error is None and not self._given_up:
                if not self._export(self._take()):
                    break

    def force_flush(self) -> None:
        """Export what is queued now (tests, shutdown), after the export in flight, if any, has ended: every
        span queued before the call is then exported or counted lost. Stops at the first failure, so a
        dead collector costs at most one sink timeout more. In a collector's Retry-After wait (`_resume_at`) it sends
        nothing and leaves what is queued there, for the export thread once the wait has passed or the stop's one last
        try, as it leaves it past a refusal that asks for one: until 2026-12-07 it sent at once what the collector had
        asked to wait for, and on its refusal dropped the queue, spans the stop would have tried (a flush, then the stop:
        tests', or embedding code's; no command flushes an exporter, and the demo runs none)."""
        with self._exporting:
            while self._queue and not self._given_up and time.monotonic() >= self._resume_at:
                if not self._export(self._take()):
                    if self._resume_at > time.monotonic():
                        break  # refused with a wait: the rest waits with it, as above
                    with self._counting:
                        self._discard_queued()

    def shutdown(self, timeout_s: float | None = None) -> None:
        """Stop: the export in flight and what is queued get `timeout_s` (by default the `stop_timeout_s`
        given at construction: the sink's export timeout) to go out. Whatever has not gone by then, or whose
        export failed, is counted (failed when it was being sent, dropped when still queued) and logged in
        one line with the reason. A stalled collector can neither hold the exit longer nor lose spans silently.
        """
        timeout = self._stop_timeout_s if timeout_s is None else timeout_s
        self._stopping = True
        self._wake.set()
        self._exporter.join(timeout)
        with self._counting:
            self._given_up = True
            in_flight, self._in_flight = self._in_flight, 0
            self.counts.add("failed", in_flight)
            self._stop_lost += in_flight
            self._discard_queued()
            lost, self._stop_lost = self._stop_lost, 0
            error = self._stop_error
            outage = self._outage_error if self._outage else None
            if outage is not None:  # and what the outage lost before the stop (its line said it began, not how many)
                lost = self.failed + self.dropped - self._lost_before_outage
                self._outage = False
        if lost:
            if outage is not None:
                failed = STDOUT_FAILED if self._to_stdout() else COLLECTOR_FAILED
                reason = f"{failed} since before the stop ({_short(error or outage)})"
            elif error is not None:
                reason = _short(error)
            elif in_flight:
                stalled = STDOUT_STALLED if self._to_stdout() else COLLECTOR_STALLED
                reason = f"an export was still in flight after {timeout:g} s ({stalled})"
            else:
                reason = f"not sent within {timeout:g} s"
            log.error("%s not exported at shutdown: %s", _spans(lost), reason)
        self._sink.close()


def _spans(n: int) -> str:
    """`1 span`, `2 spans`: for a loss's line (it said `1 spans`)."""
    return "1 span" if n == 1 else f"{n} spans"


def _short(exc: Exception) -> str:
    text = getattr(exc, "details", None)
    detail = text() if callable(text) else str(exc)
    return f"{type(exc).__name__}: {detail}"[:300] + _advice(exc)


def _advice(exc: Exception) -> str:
    """What to do, said after a failure's cut text: a TLS handshake that met a plaintext collector (OpenSSL's
    `WRONG_VERSION_NUMBER` alone does not say it). Else ''."""
    if isinstance(exc, ExportRefused):
        return exc.hint
    return plaintext_hint(exc, "collector", "endpoint")

"""A text metadata value grpc will not send on. grpc's server takes any bytes in a text value from a client not on
grpc's core (raw HTTP/2, another hop's), but grpc's client sends printable ASCII alone, checked as the upstream's call
is made: such a value (a control character, a tab, a byte past ASCII), forwarded as it came, failed the call as the
proxy's own internal error (INTERNAL, `internal_error` recorded, a traceback logged each time), where the HTTP listener
refuses a control character in a field as the caller's fault. Now the call is refused as that, naming the key, before
it is routed; the keys the proxy never forwards as they came are not checked."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from proxy.logs import ACCESS
from tests.harness import LoopThread, ProxyHandle
from tests.ingress.grpc_proxied import proxied, recorded, traced
from tests.ingress.test_grpc import _request
from tests.ingress.test_grpc_metadata_limit import INFER, Counting
from tests.ingress.test_grpc_streams import CONFIG
from tests.servers.h2_wire import DATA, HEADERS, frame, header_block
from tests.servers.otlp_receiver import OtlpReceiver

BASE = 0x3E7C_0000
_SETTINGS, _RST_STREAM, _GOAWAY = 4, 3, 7
_END_STREAM, _END_HEADERS, _ACK = 0x1, 0x4, 0x1


@pytest.fixture
def counted(loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any) -> Iterator[tuple[ProxyHandle, Counting]]:
    upstream = Counting()
    with proxied(loop_thread, otlp, make_proxy, CONFIG, upstream) as proxy:
        yield proxy, upstream


def _call(port: int, *fields: tuple[str, bytes]) -> bytes:
    """One ModelInfer over a raw HTTP/2 connection with `fields` among its metadata, as they are; returns once the
    proxy ended the stream: its trailers' header block as sent (grpc's encoder sends their values as they are)."""
    message = _request()
    head = header_block((":method", b"POST"), (":scheme", b"http"), (":path", INFER.encode()), (":authority", b"x"),
                        ("content-type", b"application/grpc"), ("te", b"trailers"), *fields)  # fmt: skip
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
            + frame(_SETTINGS, 0, 0, b"")
            + frame(HEADERS, _END_HEADERS, 1, head)
            + frame(DATA, _END_STREAM, 1, b"\0" + len(message).to_bytes(4, "big") + message)
        )
        got = b""
        while True:
            while len(got) < 9 or len(got) < 9 + int.from_bytes(got[:3], "big"):
                piece = sock.recv(65536)
                assert piece, "the proxy closed the connection without ending the stream"
                got += piece
            length, kind, flags, stream = int.from_bytes(got[:3], "big"), got[3], got[4], got[5:9]
            payload, got = got[9 : 9 + length], got[9 + length :]
            if kind == _SETTINGS and not flags & _ACK:
                sock.sendall(frame(_SETTINGS, _ACK, 0, b""))
            elif stream == (1).to_bytes(4, "big") and kind == HEADERS and flags & _END_STREAM:
                return payload
            assert kind not in (_GOAWAY, _RST_STREAM)


@pytest.mark.parametrize("value", [b"caf\xe9", b"a\x01b", b"a\tb", "café".encode()])
def test_a_text_value_grpc_will_not_send_is_the_callers_fault(
    value: bytes, counted: tuple[ProxyHandle, Counting], otlp: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    proxy, upstream = counted
    caplog.set_level(logging.INFO)
    trace_id, traceparent = traced(1, BASE)
    assert proxy.bound.grpc is not None
    trailers = _call(proxy.bound.grpc.port, ("traceparent", traceparent.encode()), ("x-note", value))
    assert b"metadata 'x-note': a text value holds a character other than printable ASCII" in trailers, trailers
    span, line = recorded(otlp, caplog, trace_id)
    assert span.attributes["error.type"] == "invalid_request"
    assert line.status == 3  # INVALID_ARGUMENT
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("lineage_proxy")]
    assert upstream.reached == 0


def test_values_of_keys_never_forwarded_as_they_came_are_not_checked(
    counted: tuple[ProxyHandle, Counting], otlp: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    """A caller's X-Real-IP (dropped) with a byte past ASCII: the call goes on, as over HTTP."""
    proxy, upstream = counted
    caplog.set_level(logging.INFO, logger=ACCESS)
    trace_id, traceparent = traced(2, BASE)
    assert proxy.bound.grpc is not None
    _call(proxy.bound.grpc.port, ("traceparent", traceparent.encode()), ("x-real-ip", b"caf\xe9"))
    span, _ = recorded(otlp, caplog, trace_id)
    assert "error.type" not in span.attributes
    assert upstream.reached == 1

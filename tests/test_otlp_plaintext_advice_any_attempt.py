"""The span exporter's plaintext advice (`tls: false`, write http://) is given when any attempt of an export met a
plaintext collector with its TLS handshake, not only when the last one did: grpc says the last address's error alone,
and another address of the same name refusing may be last (`localhost`: ::1 refused, 127.0.0.1 plaintext; an `ipv4:`
list whose first address refuses). Until 2026-12-06 such an export said `Connection refused` and no advice."""

from __future__ import annotations

import socket
import threading

import pytest

from proxy.record import ExportRefused
from proxy.record.export import OtlpGrpcSink, SinkOptions

# what a plaintext gRPC server writes first: HTTP/2's SETTINGS frame, empty (OpenSSL reads it as no TLS record)
SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
ADVICE = (" (the collector answered in plain gRPC, not TLS: an endpoint without a scheme is spoken over TLS; for a "
          "plaintext collector write the endpoint with http://, or set telemetry.insecure: true)")  # fmt: skip


def _plaintext_once(listener: socket.socket, done: threading.Event) -> None:
    """Answer the first connection as a plaintext gRPC server does, then stop listening: each later attempt is
    refused, so the export's last error is no TLS one."""
    conn, _ = listener.accept()
    with conn:
        conn.recv(4096)  # (the ClientHello)
        conn.sendall(SETTINGS)
        listener.close()
        conn.recv(4096)  # (until the client gives up on the handshake)
    done.set()


def test_advice_is_given_when_an_earlier_attempt_met_a_plaintext_collector() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    done = threading.Event()
    answering = threading.Thread(target=_plaintext_once, args=(listener, done), daemon=True)
    answering.start()
    # (8 s: the export's last attempt is past 3 s whatever its jitter, well after grpc's reconnect, ~0.25 s after the
    # handshake, RECONNECT_OPTIONS, is refused)
    sink = OtlpGrpcSink(f"127.0.0.1:{port}", 8.0, b"", b"", SinkOptions())
    try:
        with pytest.raises(ExportRefused) as refused:
            sink.send([b""])
    finally:
        sink.close()
    answering.join(10)
    assert done.is_set()
    assert "Connection refused" in str(refused.value)  # (the last attempt's: no TLS error in it)
    assert refused.value.hint == ADVICE

"""A client of the gRPC listener that never finishes its handshake (TLS, or the HTTP/2 preface and settings)
is cut after `limits.header_timeout_s`, as one of the HTTP listener's TLS is: grpc's own bound, 120 s, let each such
connection hold a socket of the proxy twelve times the configured time."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.certs import Authority

CONFIG = """
listen:
  http: 127.0.0.1:0
  grpc: 127.0.0.1:0
TLS
upstreams: [{name: u, url: "http://127.0.0.1:9", protocol: openai, checkpoint: ck}]
routes: [{model: "*", upstream: u}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: null}
limits: {header_timeout_s: 0.5}
"""
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # and then no SETTINGS frame
HELLO_START = b"\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03"  # the first bytes of a TLS ClientHello, and no more


def closed_within(port: int, first: bytes, limit: float) -> float:
    """Seconds until the listener closes a connection that sent `first` and then nothing (`limit`: fails)."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(limit)
        began = time.monotonic()
        if first:
            sock.sendall(first)
        try:
            while sock.recv(4096):
                pass
        except TimeoutError:
            pytest.fail(f"the gRPC listener kept a connection that never finished its handshake for over {limit}s")
        except ConnectionResetError:
            pass
        return time.monotonic() - began


@pytest.mark.parametrize("tls", [False, True], ids=["plaintext", "tls"])
def test_a_grpc_handshake_that_never_ends_is_cut_after_header_timeout(make_proxy, tmp_path: Path, tls: bool) -> None:  # type: ignore[no-untyped-def]
    settings = ""
    if tls:
        pair = Authority(tmp_path).issue("proxy", common_name="proxy", server=True)
        settings = f'  tls: {{cert: "{pair.cert}", key: "{pair.key}"}}'
    proxy = make_proxy(CONFIG.replace("TLS", settings), wait="none")
    port = proxy.bound.grpc.port
    for first in (b"", HELLO_START if tls else PREFACE):
        assert closed_within(port, first, 10.0) < 5.0

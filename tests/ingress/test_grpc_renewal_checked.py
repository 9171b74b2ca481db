"""A reload that renews only the gRPC listener's certificate and key (renewed in place: taken by the next
handshakes, `GrpcIngress.replace`) reads the files again after the HTTP listener's check: a pair grpc cannot use
(cert-manager writing the new certificate, not yet its key; a file that is not PEM) was taken silently, rejected by
grpc's core at the next handshake ("Handshaker factory creation failed", on stderr only), and the log said only
"reloaded". Such a pair is refused at the reload, with an ERROR; the old pair goes on; the complete pair, once
written, is taken by the next reload."""

from __future__ import annotations

import logging
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest

from proxy.config.model import Tls
from tests.certs import Authority
from tests.harness import LoopThread
from tests.ingress.grpc_proxied import proxied
from tests.ingress.test_grpc_reload import Quick, _config, _set_environment
from tests.servers.otlp_receiver import OtlpReceiver

LIMIT = 4_000_000


@pytest.mark.parametrize("half", ["another-key", "not-pem"])
def test_a_renewal_grpc_cannot_use_is_refused_with_an_error_and_the_old_pair_goes_on(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, half: str,
) -> None:  # fmt: skip
    ca = Authority(tmp_path, "server CA")
    first, second, third = (ca.issue(n, common_name="lineage-proxy", server=True) for n in ("first", "second", "third"))
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_bytes(first.cert.read_bytes())
    key.write_bytes(first.key.read_bytes())
    context = ssl.create_default_context(cafile=str(ca.pair.cert))
    context.set_alpn_protocols(["h2"])

    def served(port: int) -> bytes:
        """The certificate a new handshake with the gRPC listener gets."""
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, context.wrap_socket(
            raw, server_hostname="localhost") as conn:  # fmt: skip
            return conn.getpeercert(binary_form=True) or b""

    def der(path: Path) -> bytes:
        return ssl.PEM_cert_to_DER_cert(path.read_text())

    tls = f", tls: {{cert: {cert}, key: {key}}}"
    with proxied(loop_thread, otlp, make_proxy, _config(LIMIT, tls), Quick()) as proxy:
        _set_environment(proxy, otlp, monkeypatch)
        port = proxy.process.bound.grpc.port
        assert served(port) == der(first.cert)
        cert.write_bytes(third.cert.read_bytes())  # half-way through a renewal: the new certificate, and
        key.write_bytes(second.key.read_bytes() if half == "another-key" else b"not a key\n")
        caplog.clear()
        loop_thread.run(proxy.process._grpc.replace(Tls(str(cert), str(key)), LIMIT, 5.0))
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert any("gRPC listener" in m and "keeps its old ones" in m for m in errors), errors
        assert served(port) == der(first.cert)  # the old pair goes on
        key.write_bytes(third.key.read_bytes())  # the renewal complete: the next reload takes it
        caplog.clear()
        loop_thread.run(proxy.process._grpc.replace(Tls(str(cert), str(key)), LIMIT, 5.0))
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert served(port) == der(third.cert)

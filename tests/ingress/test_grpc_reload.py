"""Reloads while gRPC calls keep coming, counted call by call against the record (access lines, one a call).

A reload that renews the listener's certificate and key only is taken by new handshakes on the same server: every
call completes and is recorded. One that gives the listener a new server (client authentication, limits.max_body_bytes)
stops the old one: every call that completes, and every call the proxy saw, leaves one record saying what its client
got; a call ends OK, UNAVAILABLE, or, for the calls grpc core had read but not yet handed to the proxy when the old
server stopped, CANCELLED with no record (grpc's own shutdown ends those: grpc/grpc#41785, README "TLS and callers by
certificate"). That gap is reported as an expected failure, with its count, whenever a run meets it."""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest

from proxy.logs import ACCESS
from tests.certs import Authority
from tests.harness import LoopThread
from tests.ingress.grpc_proxied import proxied
from tests.ingress.test_grpc import SERVICE, _request, _traceparent
from tests.servers.otlp_receiver import OtlpReceiver

CONFIG = """
listen: {http: 127.0.0.1:0, grpc: 127.0.0.1:0TLS}
upstreams:
  - name: triton
    grpc: ${UPSTREAM}
    protocol: oip
    checkpoint: quick@1
routes:
  - model: "*"
    upstream: triton
policy: {anonymous: allow, default_purpose: assistant}
telemetry:
  exporter: otlp
  endpoint: ${OTLP}
logging: {access: true}
limits: {drain_timeout_s: 5, max_body_bytes: LIMIT}
lineage:
  store: ${STORE}
"""
CLIENTS = 4  # threads calling without pause, each on its own channel
RELOADS = 12
CALLS_BETWEEN = 20  # calls completed between two reloads


class Quick(grpc.GenericRpcHandler):  # type: ignore[misc]
    """An OIP upstream answering every ModelInfer at once (an empty ModelInferResponse)."""

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if details.method.endswith("/ModelInfer"):
            return grpc.unary_unary_rpc_method_handler(self._infer)
        return None

    async def _infer(self, request: bytes, context: Any) -> bytes:
        return b""


def _config(limit: int, tls: str = "") -> str:
    return CONFIG.replace("LIMIT", str(limit)).replace("TLS", tls)


def _calls_through_reloads(
    proxy: Any, loop_thread: LoopThread, channel: Callable[[], grpc.Channel], before_reload: Callable[[int], str]
) -> dict[str, grpc.StatusCode]:
    """CLIENTS threads call ModelInfer without pause (each on its own `channel()`) while the proxy reloads RELOADS
    times, each once CALLS_BETWEEN more calls have ended (`before_reload(n)` writes the config and names it); then
    the proxy stops (every record written). How each call ended for its client, by trace id."""
    ended: dict[str, grpc.StatusCode] = {}
    lock = threading.Condition()
    stop = threading.Event()

    def client(index: int) -> None:
        with channel() as open_channel:
            infer = open_channel.unary_unary(SERVICE + "ModelInfer")
            n = 0
            while not stop.is_set():
                trace_id, metadata = _traceparent(index * 1_000_000 + n)
                n += 1
                try:
                    infer(_request(), metadata=metadata, timeout=20)
                    code = grpc.StatusCode.OK
                except grpc.RpcError as exc:
                    code = exc.code()
                with lock:
                    ended[trace_id] = code
                    lock.notify_all()

    async def reload(path: str) -> bool:
        done = bool(proxy.process.reload(path))
        await proxy.process.settled()
        return done

    threads = [threading.Thread(target=client, args=(index,)) for index in range(CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        for n in range(RELOADS):
            with lock:
                assert lock.wait_for(lambda n=n: len(ended) >= (n + 1) * CALLS_BETWEEN, 30), "the calls stopped"
            assert loop_thread.run(reload(before_reload(n)))
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    loop_thread.run(proxy.process.stop())
    assert len(ended) >= RELOADS * CALLS_BETWEEN
    return ended


def _recorded(caplog: pytest.LogCaptureFixture, ended: dict[str, grpc.StatusCode]) -> dict[str, list[int]]:
    """The statuses of each call's access lines, by trace id."""
    recorded: dict[str, list[int]] = {}
    for record in caplog.records:
        if record.name == ACCESS and getattr(record, "trace_id", None) in ended:
            recorded.setdefault(record.trace_id, []).append(record.status)
    return recorded


def _set_environment(proxy: Any, otlp: OtlpReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ${...} values of the configs the tests reload to, as the proxy was started with."""
    config = proxy.process.config
    for name, value in (("UPSTREAM", config.upstreams[0].grpc), ("OTLP", f"http://127.0.0.1:{otlp.port}"),
                        ("STORE", config.lineage.store)):  # fmt: skip
        monkeypatch.setenv(name, value)


def test_every_call_a_grpc_server_replacement_meets_leaves_one_record_saying_what_its_client_got(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any, caplog: pytest.LogCaptureFixture, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Reloads alternate between two limits.max_body_bytes: each gives the listener a new server."""
    caplog.set_level(logging.INFO, logger=ACCESS)

    def limit(n: int) -> str:
        path = tmp_path / f"limit{n % 2}.yaml"
        path.write_text(_config(3_000_000 + n % 2))
        return str(path)

    with proxied(loop_thread, otlp, make_proxy, _config(4_000_000), Quick()) as proxy:
        _set_environment(proxy, otlp, monkeypatch)
        ended = _calls_through_reloads(proxy, loop_thread, lambda: grpc.insecure_channel(proxy.grpc), limit)
    recorded = _recorded(caplog, ended)
    for trace_id, statuses in recorded.items():  # one record a call, saying what its client got
        assert statuses == [ended[trace_id].value[0]], (trace_id, ended[trace_id], statuses)
    completed = [trace_id for trace_id, code in ended.items() if code == grpc.StatusCode.OK]
    assert all(trace_id in recorded for trace_id in completed), "a call that completed left no record"
    lost = {
        trace_id: code for trace_id, code in ended.items() if code != grpc.StatusCode.OK and trace_id not in recorded
    }
    assert set(lost.values()) <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}, lost
    cancelled = [trace_id for trace_id, code in lost.items() if code == grpc.StatusCode.CANCELLED]
    if cancelled:  # the gap the README states (TLS and callers by certificate): grpc's, not the proxy's
        pytest.xfail(
            f"{len(cancelled)} of {len(ended)} calls were ended CANCELLED by grpc core before it handed them "
            "to the proxy (queued when the old server stopped: grpc/grpc#41785), so never recorded"
        )


def test_a_certificate_renewed_while_calls_keep_coming_costs_no_call(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any, caplog: pytest.LogCaptureFixture, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """cert-manager or SPIRE renewing the listener's certificate in place, SIGHUP after each renewal: new handshakes
    take the new one, the server and its connections stay, and every call completes and is recorded (a new server
    a renewal, as before, ended a few calls a run with CANCELLED, unrecorded)."""
    caplog.set_level(logging.INFO, logger=ACCESS)
    ca = Authority(tmp_path, "server CA")
    pairs = [ca.issue(name, common_name="lineage-proxy", server=True) for name in ("first", "second")]
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    text = _config(4_000_000, f", tls: {{cert: {cert}, key: {key}}}")
    path = tmp_path / "renewed.yaml"
    path.write_text(text)

    def renew(n: int) -> str:
        cert.write_bytes(pairs[(n + 1) % 2].cert.read_bytes())
        key.write_bytes(pairs[(n + 1) % 2].key.read_bytes())
        return str(path)

    renew(-1)
    trusted = grpc.ssl_channel_credentials(ca.pair.cert.read_bytes())
    with proxied(loop_thread, otlp, make_proxy, text, Quick()) as proxy:
        _set_environment(proxy, otlp, monkeypatch)
        port = proxy.process.bound.grpc.port
        server = proxy.process._grpc._server
        ended = _calls_through_reloads(proxy, loop_thread, lambda: grpc.secure_channel(f"localhost:{port}", trusted),
                                       renew)  # fmt: skip
        assert proxy.process._grpc._server in (server, None)  # never replaced (None: stopped at the end)
    assert {code for code in ended.values()} == {grpc.StatusCode.OK}
    recorded = _recorded(caplog, ended)
    assert {trace_id: statuses for trace_id, statuses in recorded.items() if statuses != [0]} == {}
    assert set(recorded) == set(ended)


def test_a_renewed_certificate_is_what_a_new_handshake_gets(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = Authority(tmp_path, "server CA")
    first, second = (ca.issue(name, common_name="lineage-proxy", server=True) for name in ("first", "second"))
    text = _config(4_000_000, ", tls: {cert: CERT, key: KEY}")
    path = tmp_path / "second.yaml"
    path.write_text(text.replace("CERT", str(second.cert)).replace("KEY", str(second.key)))
    context = ssl.create_default_context(cafile=str(ca.pair.cert))
    context.set_alpn_protocols(["h2"])

    def served(port: int) -> bytes:
        import socket

        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as conn,
        ):
            return conn.getpeercert(binary_form=True) or b""

    async def reload() -> bool:
        done = bool(proxy.process.reload(str(path)))
        await proxy.process.settled()
        return done

    config = text.replace("CERT", str(first.cert)).replace("KEY", str(first.key))
    with proxied(loop_thread, otlp, make_proxy, config, Quick()) as proxy:
        _set_environment(proxy, otlp, monkeypatch)
        port = proxy.process.bound.grpc.port
        with grpc.secure_channel(f"localhost:{port}", grpc.ssl_channel_credentials(ca.pair.cert.read_bytes())) as kept:
            infer = kept.unary_unary(SERVICE + "ModelInfer")
            infer(_request(), timeout=10)
            assert served(port) == ssl.PEM_cert_to_DER_cert(first.cert.read_text())
            assert loop_thread.run(reload())
            assert served(port) == ssl.PEM_cert_to_DER_cert(second.cert.read_text())
            assert served(port) == ssl.PEM_cert_to_DER_cert(second.cert.read_text())  # (taken once, kept)
            infer(_request(), timeout=10)  # the connection from before the renewal goes on

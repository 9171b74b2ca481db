"""A SIGHUP's reload refused because the listener's TLS files it read cannot be used, or because its changed telemetry's
span exporter cannot be built, was refused late, in `apply`: after the reload had begun its HTTPS upstreams' TLS
contexts and waited for them (up to UPSTREAM_TLS_WAIT_S, 10 s: a file on a hung mount) and said "reload: applied
before the TLS context ...", then "reload refused". Both are refused at once now (`_refusal`, `_exporter`), nothing
made for the reload.

The loader checks these files too, so each is broken the way a renewal written in place breaks them: after the
loader has read them and before the reload uses them (here, as the load ends: `server.load` is wrapped)."""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pytest

from proxy import server
from proxy import tls as tls_module
from proxy.config import Config, UpstreamTls
from tests.certs import Authority
from tests.harness import LoopThread, dead_port
from tests.test_workers import WAIT_S

CONFIG = """
listen:
  http: 127.0.0.1:0
LISTEN_TLS
upstreams:
  - {name: vllm, url: "${UPSTREAM}"}
ADDED
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
TELEMETRY
lineage: {store: "${STORE}"}
"""


def _hosted() -> str:
    """An HTTPS upstream the reload adds: a TLS context to make for it."""
    return f'  - {{name: hosted, url: "https://127.0.0.1:{dead_port()}"}}'


def _sighup(
    proxy,  # type: ignore[no-untyped-def]
    loop_thread: LoopThread,
    path: Path,
    broken: Callable[[], None],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> tuple[list[str], list[threading.Thread]]:
    """Reload `path` as a SIGHUP does, `broken` run as its load ends; what it logged and the TLS contexts it began
    (held until it is done: any wait for them runs out)."""
    load = server.load

    def load_then_break(name: str) -> Config:
        config = load(name)
        broken()
        return config

    held, made_in = threading.Event(), []

    def context(tls: UpstreamTls | None) -> ssl.SSLContext:
        made_in.append(threading.current_thread())
        assert held.wait(WAIT_S)
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)

    monkeypatch.setattr(server, "load", load_then_break)
    monkeypatch.setattr(tls_module, "client_context", context)
    monkeypatch.setattr(server, "UPSTREAM_TLS_WAIT_S", 0.01)  # (before: the test's wait, not 10 s)
    caplog.set_level(logging.INFO, logger="lineage_proxy")

    async def sighup() -> None:
        proxy.process.reload_soon(str(path))  # as the SIGHUP's handler does
        reloading = proxy.process._reloading
        assert reloading is not None
        await reloading

    try:
        loop_thread.run(sighup())
    finally:
        held.set()
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("reload")], made_in


def test_listener_tls_files_that_cannot_be_used_refuse_the_reload_before_any_tls_context(
    vllm, make_proxy, loop_thread: LoopThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    pair = Authority(tmp_path, "listener CA").issue("server", common_name="lineage-proxy", server=True)
    cert, key = tmp_path / "listener.pem", tmp_path / "listener.key"
    cert.write_bytes(pair.cert.read_bytes())
    key.write_bytes(pair.key.read_bytes())
    listen_tls = f"  tls: {{cert: {cert}, key: {key}}}"
    text = CONFIG.replace("LISTEN_TLS", listen_tls).replace("TELEMETRY", "")
    proxy = make_proxy(text.replace("ADDED", ""), UPSTREAM=upstream)
    renewed = tmp_path / "renewed.yaml"
    renewed.write_text(
        text.replace("ADDED", _hosted()).replace("${UPSTREAM}", upstream).replace("${STORE}", str(tmp_path / "l.db"))
    )
    before = proxy.process._tls.context if proxy.process._tls else None

    said, made_in = _sighup(proxy, loop_thread, renewed, lambda: key.write_text("half a key\n"), monkeypatch, caplog)

    assert len(said) == 1, said
    assert said[0].startswith(
        "reload refused; the old config stays in force. listen.tls: cannot use the certificate, key or client_ca now: "
    ), said
    assert made_in == []  # no context made for a config never applied
    assert "hosted" not in proxy.process.pool._pools
    assert proxy.process._tls is not None and proxy.process._tls.context is before


def test_a_span_exporter_that_cannot_be_built_refuses_the_reload_before_any_tls_context(
    vllm, make_proxy, loop_thread: LoopThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    bundle = tmp_path / "collector-ca.pem"
    bundle.write_bytes(Authority(tmp_path, "collector CA").pair.cert.read_bytes())
    telemetry = (
        "telemetry: {exporter: otlp, protocol: http/protobuf, "
        f'endpoint: "https://127.0.0.1:{dead_port()}", certificate: "{bundle}"}}'
    )
    text = CONFIG.replace("LISTEN_TLS", "")
    proxy = make_proxy(text.replace("ADDED", "").replace("TELEMETRY", ""), UPSTREAM=upstream)
    running = proxy.process.config.telemetry
    changed = tmp_path / "changed.yaml"
    changed.write_text(
        text.replace("ADDED", _hosted())
        .replace("TELEMETRY", telemetry)
        .replace("${UPSTREAM}", upstream)
        .replace("${STORE}", str(tmp_path / "l.db"))
    )

    said, made_in = _sighup(
        proxy, loop_thread, changed, lambda: bundle.write_text("not a certificate\n"), monkeypatch, caplog
    )

    assert len(said) == 1, said
    assert said[0].startswith(
        "reload refused; the old config stays in force. telemetry: cannot build the span exporter: "
    ), said
    assert made_in == []
    assert "hosted" not in proxy.process.pool._pools
    assert proxy.process.config.telemetry == running


def test_a_span_exporters_ca_bundle_slow_to_come_holds_no_call_while_the_reload_builds_it(
    vllm, make_proxy, loop_thread: LoopThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:  # type: ignore[no-untyped-def]
    """The span exporter of a reload's changed telemetry reads its CA bundle (`telemetry.certificate`) as it is built:
    that was on the event loop, where a file slow to come (a hung mount; here a FIFO, the bundle renewed as one after
    the load) held every call and the stop itself until it came. It is built with the config, off the loop."""
    _, upstream = vllm
    proxy, changed, bundle, pem = _telemetry_reloaded(tmp_path, upstream, make_proxy)
    load = server.load

    slow = threading.Event()

    monkeypatch.setattr(server, "load", _then_slow(load, bundle, slow))
    caplog.set_level(logging.INFO, logger="lineage_proxy")

    async def begin() -> asyncio.Task[None]:
        proxy.process.reload_soon(str(changed))  # as the SIGHUP's handler does
        reloading = proxy.process._reloading
        assert reloading is not None
        return reloading

    writer: list[BinaryIO] = []

    def write_once_read() -> None:
        if slow.wait(WAIT_S):
            writer.append(bundle.open("wb"))  # (returns once the FIFO is opened to be read)

    opened = threading.Thread(target=write_once_read, daemon=True)
    reloading = loop_thread.run(begin())
    opened.start()
    try:
        opened.join(WAIT_S)
        assert writer, "the reload never read the CA bundle"
        try:
            loop_thread.run(asyncio.sleep(0), timeout=WAIT_S)  # a call's turn of the loop, while the bundle is read
        except TimeoutError:
            pytest.fail("the event loop did not turn while the reload read the span exporter's CA bundle")
    finally:
        if writer:  # (the reader, on whichever thread, takes the bundle and goes on)
            writer[0].write(pem)
            writer[0].close()

    async def done() -> None:
        await reloading

    loop_thread.run(done())
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("reload")]
    assert said[-1] == f"reloaded {changed}" and not any("refused" in line for line in said), said
    assert proxy.process.config.telemetry.certificate == str(bundle)


def test_a_span_exporter_built_by_a_reload_the_stop_cancelled_is_stopped(
    vllm, make_proxy, loop_thread: LoopThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """A stop cancels a SIGHUP's reload whose load thread is still building its changed telemetry's span exporter
    (its CA bundle slow to come: a FIFO). The load ends after the stop, and nothing took what it built: the exporter's
    thread idled until the process exited. The load thread stops it now."""
    _, upstream = vllm
    proxy, changed, bundle, pem = _telemetry_reloaded(tmp_path, upstream, make_proxy)
    load, spans = server.load, server.ProxyProcess._spans
    slow = threading.Event()
    built: list[server.SpanRecorder] = []
    made = threading.Event()

    def spans_kept(config: Config) -> server.SpanRecorder | None:
        recorder = spans(config)
        if recorder is not None:
            built.append(recorder)
            made.set()
        return recorder

    monkeypatch.setattr(server, "load", _then_slow(load, bundle, slow))
    monkeypatch.setattr(server.ProxyProcess, "_spans", staticmethod(spans_kept))

    async def begin() -> None:
        proxy.process.reload_soon(str(changed))  # as the SIGHUP's handler does

    loop_thread.run(begin())
    assert slow.wait(WAIT_S), "the reload never loaded its config"
    writer = bundle.open("wb")  # (returns once the load thread opened the FIFO to read the bundle)
    try:
        loop_thread.run(proxy.process.stop(), timeout=WAIT_S)  # the reload is cancelled, its load thread runs on
    finally:
        writer.write(pem)
        writer.close()
    # (the load thread builds it once it has read the bundle)
    assert made.wait(WAIT_S) and len(built) == 1, "the reload's load never built the span exporter"
    export = built[0].queue._exporter
    export.join(WAIT_S)
    assert not export.is_alive(), "the span exporter the cancelled reload built was never stopped"


def _telemetry_reloaded(tmp_path, upstream, make_proxy):  # type: ignore[no-untyped-def]
    """A proxy without an exporter, and a config changing its telemetry to OTLP/HTTP over TLS checked with a CA bundle
    of its own: (the proxy, the changed config's path, the bundle's path, its PEM)."""
    bundle = tmp_path / "collector-ca.pem"
    pem = Authority(tmp_path, "collector CA").pair.cert.read_bytes()
    bundle.write_bytes(pem)
    telemetry = (
        "telemetry: {exporter: otlp, protocol: http/protobuf, "
        f'endpoint: "https://127.0.0.1:{dead_port()}", certificate: "{bundle}"}}'
    )
    text = CONFIG.replace("LISTEN_TLS", "").replace("ADDED", "")
    proxy = make_proxy(text.replace("TELEMETRY", ""), UPSTREAM=upstream)
    changed = tmp_path / "changed.yaml"
    changed.write_text(
        text.replace("TELEMETRY", telemetry)
        .replace("${UPSTREAM}", upstream)
        .replace("${STORE}", str(tmp_path / "l.db"))
    )
    return proxy, changed, bundle, pem


def _then_slow(load, bundle, slow):  # type: ignore[no-untyped-def]
    """`load`, then the exporter's CA bundle renewed as a FIFO (a file slow to come), `slow` set once it is."""

    def load_then_slow(name: str) -> Config:
        config = load(name)
        bundle.unlink()
        os.mkfifo(bundle)
        slow.set()
        return config

    return load_then_slow

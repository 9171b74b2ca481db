"""An upstream's TLS files (`upstreams[].tls` ca, cert, key) that a reload cannot use refuse it whole, in `check`'s
words, the running config kept. The loader checks them (`check`, `serve` and a reload's load refuse a missing or bad
one: `tests/test_config*.py`), but a reload reads them again after that: an HTTPS upstream's into its TLS context
(`_reload_tls`), a gRPC upstream's for its channel (`ReloadFiles`). A file renewed in place and broken in between
(half written by a renewal) was taken: the HTTPS upstream's pool adopted the failed context, its working one dropped,
and each of its next connections made one again from the same file, so every call on a new connection failed (502)
until a later reload; a gRPC upstream with a new `tls` had its calls refused UNAVAILABLE.

The file is broken as the reload's load ends (`server.load` wrapped): after the loader read it, before the reload
uses it."""

from __future__ import annotations

import logging
import shutil
import ssl
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from proxy import server
from proxy.config import Config
from tests.harness import LoopThread
from tests.servers.vllm_like import SERVED
from tests.test_upstream_system_cas_at_start import https_upstream
from tests.test_workers import WAIT_S

HTTPS = """
listen: {http: 127.0.0.1:0}
upstreams:
  - {name: vllm, url: "https://localhost:PORT", checkpoint: pinned, tls: {ca: "CA"}}
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: DEFAULT}
lineage: {store: "${STORE}"}
"""

GRPC = """
listen: {http: 127.0.0.1:0}
upstreams:
  - {name: triton, protocol: oip, grpc: "127.0.0.1:1", checkpoint: pinned, tls: {ca: "CA"}}
routes: [{model: "*", upstream: triton}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: "${STORE}"}
"""


def _reload(
    proxy,  # type: ignore[no-untyped-def]
    loop_thread: LoopThread,
    path: Path,
    broken: Callable[[], None],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> list[str]:
    """Reload `path` as a SIGHUP does, `broken` run as its load ends; what it logged."""
    load = server.load

    def load_then_break(name: str) -> Config:
        config = load(name)
        broken()
        return config

    monkeypatch.setattr(server, "load", load_then_break)
    caplog.set_level(logging.INFO, logger="lineage_proxy")

    async def sighup() -> None:
        proxy.process.reload_soon(str(path))  # as the SIGHUP's handler does
        reloading = proxy.process._reloading
        assert reloading is not None
        await reloading

    loop_thread.run(sighup())
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("reload")]


def _call(proxy) -> int:  # type: ignore[no-untyped-def]
    body = {"model": SERVED, "messages": [{"role": "user", "content": "hello"}]}
    return httpx.post(f"{proxy.url}/v1/chat/completions", json=body, timeout=WAIT_S).status_code


def test_an_https_upstreams_ca_broken_after_the_load_refuses_the_reload_and_its_calls_go_on(
    make_proxy, loop_thread: LoopThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:  # type: ignore[no-untyped-def]
    runner, port, _ = https_upstream(loop_thread, tmp_path)
    try:
        ca = tmp_path / "upstream-ca.pem"
        shutil.copy(tmp_path / "model-server-CA.crt", ca)
        text = HTTPS.replace("PORT", str(port)).replace("CA", str(ca))
        proxy = make_proxy(text.replace("DEFAULT", "assistant"))
        assert _call(proxy) == 200
        changed = tmp_path / "changed.yaml"  # a policy change, its upstream as it was
        changed.write_text(text.replace("DEFAULT", "support").replace("${STORE}", str(tmp_path / "lineage.db")))

        said = _reload(proxy, loop_thread, changed, lambda: ca.write_text("half a certificate\n"), monkeypatch, caplog)

        assert len(said) == 1, said
        assert said[0].startswith(
            "reload refused; the old config stays in force. Problems: upstreams[0].tls: cannot use the ca, cert or "
            "key: [X509: NO_CERTIFICATE_OR_CRL_FOUND] no certificate or crl found"
        ), said
        assert proxy.process.config.policy.default_purpose == "assistant"
        pool = proxy.process.pool._pools["vllm"]
        for conn in list(pool.idle):  # the next call's connection is a new one: made with the pool's context
            pool.idle.remove(conn)
            pool._discard(conn)
        assert _call(proxy) == 200
    finally:
        loop_thread.run(runner.cleanup())


def test_a_grpc_upstreams_new_ca_unreadable_after_the_load_refuses_the_reload(
    make_proxy, loop_thread: LoopThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:  # type: ignore[no-untyped-def]
    first = tmp_path / "first-ca.pem"
    shutil.copy(Path(ssl.get_default_verify_paths().openssl_cafile), first)
    proxy = make_proxy(GRPC.replace("CA", str(first)), wait="")
    renewed = tmp_path / "renewed-ca.pem"
    shutil.copy(first, renewed)
    changed = tmp_path / "changed.yaml"  # a new `tls`: no files read before to fall back on
    changed.write_text(GRPC.replace("CA", str(renewed)).replace("${STORE}", str(tmp_path / "lineage.db")))

    said = _reload(proxy, loop_thread, changed, renewed.unlink, monkeypatch, caplog)

    assert said == [
        "reload refused; the old config stays in force. Problems: upstreams[0].tls: cannot read "
        f"{str(renewed)!r}: No such file or directory"
    ], said
    assert proxy.process.config.upstreams[0].tls is not None
    assert proxy.process.config.upstreams[0].tls.ca == str(first)


def test_a_grpc_upstreams_new_ca_half_written_after_the_load_refuses_the_reload(
    make_proxy, loop_thread: LoopThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:  # type: ignore[no-untyped-def]
    """Read, but not a certificate (half written by a renewal): the channel's credentials took the bytes as they were,
    and its every handshake failed (UNAVAILABLE) until a later reload; the reload said it applied."""
    first = tmp_path / "first-ca.pem"
    shutil.copy(Path(ssl.get_default_verify_paths().openssl_cafile), first)
    proxy = make_proxy(GRPC.replace("CA", str(first)), wait="")
    renewed = tmp_path / "renewed-ca.pem"
    shutil.copy(first, renewed)
    changed = tmp_path / "changed.yaml"  # a new `tls`: no files read before to fall back on
    changed.write_text(GRPC.replace("CA", str(renewed)).replace("${STORE}", str(tmp_path / "lineage.db")))

    said = _reload(proxy, loop_thread, changed, lambda: renewed.write_text("half a certificate\n"), monkeypatch, caplog)

    assert len(said) == 1, said
    assert said[0].startswith(
        "reload refused; the old config stays in force. Problems: upstreams[0].tls: cannot use the ca, cert or key: "
        "[X509: NO_CERTIFICATE_OR_CRL_FOUND] no certificate or crl found"
    ), said
    assert proxy.process.config.upstreams[0].tls is not None
    assert proxy.process.config.upstreams[0].tls.ca == str(first)

"""An HTTPS upstream a reload (SIGHUP) adds or changes had its TLS context made by its first connection, inside that
connection's `connect_timeout_s`: loading the system's CAs (~40 ms of CPU, seconds on a busy host or with a large
bundle) failed the first calls 502 under a short one, as at start before the start made them
(`tests.test_upstream_system_cas_at_start`). The reload now makes them off the event loop before it applies.

A real `serve`, reloaded by a real SIGHUP; the system's CAs are the large bundle of the start's test."""

from __future__ import annotations

import contextlib
import logging
import signal
import ssl
import sys
import threading
from pathlib import Path

import pytest

from proxy import server
from proxy import tls as tls_module
from proxy.config import UpstreamTls
from tests.harness import LoopThread, dead_port
from tests.test_upstream_system_cas_at_start import CONFIG, first_call, https_upstream
from tests.test_workers import WAIT_S, Serve

# no HTTPS upstream yet: the reload adds one (named anew, so its pool is new)
BEFORE = CONFIG.replace("https://localhost:PORT", "http://127.0.0.1:9").replace("vllm", "plain")


def test_the_first_call_to_an_https_upstream_a_reload_adds_does_not_wait_for_the_system_cas(
    loop_thread: LoopThread, tmp_path: Path
) -> None:
    runner, port, env = https_upstream(loop_thread, tmp_path)
    store = str(tmp_path / "lineage.db")
    config = tmp_path / "proxy.yaml"
    config.write_text(BEFORE.replace("STORE", store))
    serve = Serve([sys.executable, "-m", "proxy", "serve", "--config", str(config)], env=env)
    try:
        serve.ready()
        config.write_text(CONFIG.replace("PORT", str(port)).replace("STORE", store))
        serve.proc.send_signal(signal.SIGHUP)
        serve.wait("reloaded")
        first_call(serve)
        assert serve.stop() == 0, "".join(serve.err)
    finally:
        serve.end()
        loop_thread.run(runner.cleanup())


PLAIN = """
listen: {http: 127.0.0.1:0}
upstreams:
  - {name: vllm, url: "${UPSTREAM}"}
ADDED
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: "${STORE}"}
"""


def test_a_context_not_made_in_time_is_said_and_handed_to_the_first_connection(
    vllm,
    make_proxy,
    loop_thread: LoopThread,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # type: ignore[no-untyped-def]
    """The wait is bounded (UPSTREAM_TLS_WAIT_S): a context still being made then (its files on a hung mount: here a
    loader held until the test lets it go) is named in a warning, and the reload applies; the upstream's pool takes
    the context being made, so its first connection waits for that one rather than making another."""
    _, upstream = vllm
    proxy = make_proxy(PLAIN.replace("ADDED", ""), UPSTREAM=upstream)
    added = tmp_path / "added.yaml"
    added.write_text(PLAIN.replace("ADDED", f'  - {{name: hosted, url: "https://127.0.0.1:{dead_port()}"}}')
                     .replace("${UPSTREAM}", upstream).replace("${STORE}", str(tmp_path / "lineage.db")))  # fmt: skip
    held, made_in = threading.Event(), []
    made = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)

    def context(tls: UpstreamTls | None) -> ssl.SSLContext:
        made_in.append(threading.current_thread())
        assert held.wait(WAIT_S)
        return made

    monkeypatch.setattr(tls_module, "client_context", context)  # (`client_context_in_thread` calls it)
    monkeypatch.setattr(server, "UPSTREAM_TLS_WAIT_S", 0.01)  # (the loader is held past it, whatever the host's pace)
    caplog.set_level(logging.WARNING, logger="lineage_proxy")
    new, files = proxy.process._load(str(added))  # a SIGHUP's load, off the loop (here the test's thread)

    async def reload() -> None:
        await proxy.process._reload_tls(new, files)
        assert proxy.process.apply(new, str(added), files)

    loop_thread.run(reload())
    said = [r.getMessage() for r in caplog.records if "TLS context" in r.getMessage()]
    assert said == ["reload: applied before the TLS context of 1 HTTPS upstream(s) was made (0.01s; a file on a hung "
                    "mount?): their first connections wait for it within their connect_timeout_s"], said  # fmt: skip
    assert len(made_in) == 1 and made_in[0] is not loop_thread._thread
    pool = proxy.process.pool._pools["hosted"]
    held.set()

    async def connected() -> ssl.SSLContext | None:
        with contextlib.suppress(OSError):  # (nothing listens there: the context is what is looked at)
            await pool._connect()
        return pool._ssl

    assert loop_thread.run(connected()) is made
    assert len(made_in) == 1  # the one the reload began, not one the connection made again


def test_a_reload_refused_whole_makes_no_context_and_says_only_its_refusal(
    vllm,
    make_proxy,
    loop_thread: LoopThread,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # type: ignore[no-untyped-def]
    """A SIGHUP's reload that adds an HTTPS upstream and a require_record zone to a proxy with no store is refused
    whole (`_refusal`). Its contexts were made first, waited for up to UPSTREAM_TLS_WAIT_S (10 s, a file on a hung
    mount), and a warning said "reload: applied before the TLS context ...", then "reload refused". It is refused at
    once now, nothing made for it."""
    _, upstream = vllm
    proxy = make_proxy(PLAIN.replace("ADDED", "").replace('"${STORE}"', "null"), UPSTREAM=upstream)
    refused = tmp_path / "refused.yaml"
    zone = "zones: [{name: audited, labels: [payroll], allow_purposes: [assistant], require_record: true}]\nlineage:"
    refused.write_text(PLAIN.replace("ADDED", f'  - {{name: hosted, url: "https://127.0.0.1:{dead_port()}"}}')
                       .replace("lineage:", zone).replace("${UPSTREAM}", upstream)
                       .replace("${STORE}", str(tmp_path / "lineage.db")))  # fmt: skip
    held, made_in = threading.Event(), []

    def context(tls: UpstreamTls | None) -> ssl.SSLContext:
        made_in.append(threading.current_thread())
        assert held.wait(WAIT_S)
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)

    monkeypatch.setattr(tls_module, "client_context", context)
    monkeypatch.setattr(server, "UPSTREAM_TLS_WAIT_S", 0.01)  # (before: the test's wait, not 10 s)
    caplog.set_level(logging.INFO, logger="lineage_proxy")

    async def sighup() -> None:
        proxy.process.reload_soon(str(refused))  # as the SIGHUP's handler does
        reloading = proxy.process._reloading
        assert reloading is not None
        await reloading

    try:
        loop_thread.run(sighup())
    finally:
        held.set()
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("reload")]
    assert len(said) == 1 and said[0].startswith("reload refused; the old config stays in force. zones[0]"), said
    assert made_in == []  # no context made for a config never applied
    assert "hosted" not in proxy.process.pool._pools

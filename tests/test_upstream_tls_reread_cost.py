"""A reload rereads an HTTPS upstream's own TLS files (`tls:` ca, cert, key) for its next connection; an upstream
with none of its own (the system's CAs: a hosted API) has nothing to reread, and making its context again (the
system store, tens of ms) blocked the event loop inside the first call after every SIGHUP."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading

import pytest

from proxy import tls as tls_module
from proxy.config import Upstream, UpstreamTls
from proxy.transport.pool import UpstreamPool
from tests.harness import dead_port


def test_a_reload_keeps_the_context_of_an_upstream_without_tls_files() -> None:
    pools = UpstreamPool()
    hosted = Upstream(name="hosted", url="https://api.example.com")
    pool = pools.pool(hosted)
    pool._ssl = made = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # as its first connection left it
    pools.reread_tls()
    assert pool._ssl is made


def test_an_upstream_context_is_made_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Made in the call that connects first (at start, and after a reload for an upstream with files): loading the
    system's CAs (`tls: {cert, key}` without `ca`) is ~50 ms, for which every call on the loop stood still."""
    made_in: list[threading.Thread] = []

    def context(tls: UpstreamTls | None) -> ssl.SSLContext:
        made_in.append(threading.current_thread())
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)

    monkeypatch.setattr(tls_module, "client_context", context)  # (`client_context_in_thread` calls it)
    pool = UpstreamPool().pool(Upstream(name="tls", url=f"https://127.0.0.1:{dead_port()}"))

    async def connect() -> threading.Thread:
        with contextlib.suppress(OSError):
            await pool._connect()
        return threading.current_thread()

    loop_thread = asyncio.run(connect())
    assert made_in and made_in[0] is not loop_thread

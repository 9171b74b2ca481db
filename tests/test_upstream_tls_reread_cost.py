"""A reload rereads an HTTPS upstream's own TLS files (`tls:` ca, cert, key) for its next connection; an upstream
with none of its own (the system's CAs: a hosted API) has nothing to reread, and making its context again (the
system store, tens of ms) blocked the event loop inside the first call after every SIGHUP."""

from __future__ import annotations

import ssl

from proxy.config import Upstream
from proxy.transport.pool import UpstreamPool


def test_a_reload_keeps_the_context_of_an_upstream_without_tls_files() -> None:
    pools = UpstreamPool()
    hosted = Upstream(name="hosted", url="https://api.example.com")
    pool = pools.pool(hosted)
    pool._ssl = made = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # as its first connection left it
    pools.reread_tls()
    assert pool._ssl is made

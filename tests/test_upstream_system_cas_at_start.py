"""An HTTPS upstream with no `ca` of its own is checked against the system's CAs, whose loading (~40 ms of CPU, seconds
on a busy host or with a large bundle) was the first connection's work, inside its `connect_timeout_s`: under ~0.1 s
(an upstream on the same host) the first calls failed 502 until a connection had waited it out. The start now makes
the context off the event loop before it serves, so the timeout covers the connect alone.

A real `serve`; the system's CAs are a large bundle (`SSL_CERT_FILE`, which OpenSSL reads for them) holding the test
upstream's CA, so that loading them takes far longer than the connect timeout on any host. The upstream's checkpoint
is pinned: the proxy serves without waiting for its metadata (whose first request loaded them before)."""

from __future__ import annotations

import ssl
import sys
from pathlib import Path

import httpx
from aiohttp import web

from tests.certs import Authority
from tests.harness import LoopThread
from tests.servers.vllm_like import SERVED, VllmLike
from tests.test_workers import ROOT, WAIT_S, Serve

SYSTEM_BUNDLE = Path(ssl.get_default_verify_paths().openssl_cafile)
COPIES = 8  # of the system's bundle: ~0.5 s to load on an idle core (~140 certificates, each parsed once a copy)

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - name: vllm
    url: https://localhost:PORT
    connect_timeout_s: 0.1
    checkpoint: pinned-weights
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: "STORE"}
"""


def https_upstream(loop_thread: LoopThread, tmp_path: Path) -> tuple[web.AppRunner, int, dict[str, str]]:
    """A model server over HTTPS on localhost, its port, and the environment of a `serve` whose system's CAs are the
    large bundle holding its CA."""
    authority = Authority(tmp_path, "model server CA")
    pair = authority.issue("upstream", common_name="localhost", server=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(pair.cert), str(pair.key))

    async def start() -> tuple[web.AppRunner, int]:
        runner = web.AppRunner(VllmLike().app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    runner, port = loop_thread.run(start())
    bundle = tmp_path / "system-cas.pem"
    bundle.write_bytes(SYSTEM_BUNDLE.read_bytes() * COPIES + authority.pair.cert.read_bytes())
    return runner, port, {"PYTHONPATH": str(ROOT), "SSL_CERT_FILE": str(bundle)}


def first_call(serve: Serve) -> None:
    url = f"http://{serve.ready()['http']}/v1/chat/completions"
    body = {"model": SERVED, "messages": [{"role": "user", "content": "hello"}]}
    reply = httpx.post(url, json=body, timeout=WAIT_S)  # the first call, at once
    assert reply.status_code == 200, (reply.text, "".join(serve.err))


def test_the_first_call_to_an_https_upstream_does_not_wait_for_the_system_cas(
    loop_thread: LoopThread, tmp_path: Path
) -> None:
    runner, port, env = https_upstream(loop_thread, tmp_path)
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG.replace("PORT", str(port)).replace("STORE", str(tmp_path / "lineage.db")))
    serve = Serve([sys.executable, "-m", "proxy", "serve", "--config", str(config)], env=env)
    try:
        first_call(serve)
        assert serve.stop() == 0, "".join(serve.err)
    finally:
        serve.end()
        loop_thread.run(runner.cleanup())

"""An HTTPS upstream's TLS files renewed in place (cert-manager, a SPIRE agent: the same paths, new contents)
are read again by a reload, as a gRPC upstream's are: the proxy's client certificate, its key and the CA it
checks the upstream against. The upstream's connection pool kept the context it made at its first connection,
so after a renewal the proxy went on showing the old certificate until a restart (every call refused once the
upstream stopped taking it)."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
from aiohttp import web

from tests.certs import Authority
from tests.harness import LoopThread
from tests.servers.vllm_like import SERVED, VllmLike

CONFIG = """
listen: {{http: 127.0.0.1:0}}
upstreams:
  - name: vllm
    url: https://localhost:{port}
    tls: {{ca: "{ca}", cert: "{cert}", key: "{key}"}}
routes: [{{model: "*", upstream: vllm}}]
policy: {{anonymous: allow, default_purpose: assistant}}
lineage: {{store: null}}
"""


def upstream_context(server: Authority, clients: Authority, tmp_path: Path) -> ssl.SSLContext:
    """The model server's TLS: its certificate, and only client certificates `clients` issued."""
    pair = server.issue(f"upstream-for-{clients.pair.cert.stem}", common_name="model.internal", server=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(clients.pair.cert))
    context.load_cert_chain(str(pair.cert), str(pair.key))
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def chat(url: str) -> int:
    body = {"model": SERVED, "messages": [{"role": "user", "content": "hello"}]}
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=10).status_code


def test_a_client_certificate_renewed_in_place_is_shown_after_a_reload(
    make_proxy, loop_thread: LoopThread, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    server = Authority(tmp_path, "model server CA")
    old_clients, new_clients = Authority(tmp_path, "clients before"), Authority(tmp_path, "clients after")
    cert, key = tmp_path / "proxy-client.crt", tmp_path / "proxy-client.key"

    def renew(clients: Authority) -> None:
        issued = clients.issue(f"issued-by-{clients.pair.cert.stem}", common_name="lineage-proxy")
        cert.write_bytes(issued.cert.read_bytes())
        key.write_bytes(issued.key.read_bytes())

    async def start(context: ssl.SSLContext, port: int = 0) -> tuple[web.AppRunner, int]:
        runner = web.AppRunner(VllmLike().app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port, ssl_context=context)
        await site.start()
        return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    renew(old_clients)
    runner, port = loop_thread.run(start(upstream_context(server, old_clients, tmp_path)))
    try:
        path = tmp_path / "proxy.yaml"
        path.write_text(CONFIG.format(port=port, ca=server.pair.cert, cert=cert, key=key))
        proxy = make_proxy(path.read_text())
        assert chat(proxy.url) == 200

        # the renewal: the proxy's certificate from the new issuer, which alone the model server now takes
        renew(new_clients)
        loop_thread.run(runner.cleanup())
        runner, _ = loop_thread.run(start(upstream_context(server, new_clients, tmp_path), port))

        async def reload() -> bool:
            return bool(proxy.process.reload(str(path)))

        assert loop_thread.run(reload())
        assert chat(proxy.url) == 200
    finally:
        loop_thread.run(runner.cleanup())

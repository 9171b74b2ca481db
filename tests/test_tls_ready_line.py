"""The ready and serving lines say which listeners serve TLS: `lineage-proxy ready http=... grpc=... tls=http,grpc`.
They read the same with and without `listen.tls`, so an operator typed http:// to a TLS listener. The field is a
`name=value` as the others, so scripts that split the line into fields keep working (tests/harness.py does)."""

from __future__ import annotations

import re
import ssl
from pathlib import Path

import httpx
import pytest

from tests.certs import Authority
from tests.harness import ServeProcess, dead_port

CONFIG = """
listen:
  http: 127.0.0.1:0
  grpc: 127.0.0.1:0
  admin: 127.0.0.1:0
  tls:
    cert: {cert}
    key: {key}
upstreams:
  - name: vllm
    url: http://127.0.0.1:{port}
routes:
  - model: "*"
    upstream: vllm
policy:
  anonymous: allow
lineage:
  store: {store}
"""


@pytest.mark.parametrize("workers", ["1", "2"])
def test_ready_and_serving_lines_say_tls(tmp_path: Path, workers: str) -> None:
    ca = Authority(tmp_path)
    server = ca.issue("server", common_name="lineage-proxy", server=True)
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG.format(cert=server.cert, key=server.key, port=dead_port(), store=tmp_path / "l.db"))
    serve = ServeProcess(str(config), "--workers", workers)
    try:
        fields = serve.addresses
        assert sorted(fields) == ["admin", "grpc", "http", "tls"], fields
        assert fields["tls"] == "http,grpc"
        serving = serve.wait_log(f"serving http={fields['http']} ")
        assert re.search(r" tls=http,grpc config_sha256=[0-9a-f]{12}$", serving.rstrip()), serving
        # what it says is so: https:// on the http listener, plain http on the admin one
        reply = httpx.get(
            f"https://{fields['http']}/v1/models",
            verify=ssl.create_default_context(cafile=str(ca.pair.cert)),
            timeout=10,
        )
        assert reply.status_code != 400, reply.text
        assert httpx.get(f"http://{fields['admin']}/healthz", timeout=10).status_code == 200
    finally:
        assert serve.stop() == 0


def test_no_tls_field_without_listen_tls(tmp_path: Path) -> None:
    config = tmp_path / "proxy.yaml"
    text = CONFIG.format(cert="", key="", port=dead_port(), store=tmp_path / "l.db")
    config.write_text(text.replace("  tls:\n    cert: \n    key: \n", ""))
    serve = ServeProcess(str(config))
    try:
        assert sorted(serve.addresses) == ["admin", "grpc", "http"], serve.addresses
    finally:
        assert serve.stop() == 0

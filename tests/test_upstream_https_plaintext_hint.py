"""An upstream written `https://` whose server speaks plain HTTP (vLLM, llama.cpp, MLServer serve http by default):
its calls' 502 said `SSLError: [SSL: WRONG_VERSION_NUMBER] wrong version number`, and the start's warning the same,
without the URL asked (a `${VLLM_URL:-...}` one is not the file's text) nor what to do. Both now say the server
answered in plain HTTP and to write the url with http://, and the warning names the URL."""

from __future__ import annotations

import logging

import httpx
import pytest

from tests.harness import proxy_error

CONFIG = """
listen: {http: "127.0.0.1:0"}
upstreams:
  - {name: llama, url: "${UPSTREAM}"}
routes:
  - {model: "*", upstream: llama}
policy: {anonymous: allow, default_purpose: assistant}
telemetry: {exporter: none}
lineage: {store: null}
"""

HINT = "(the upstream answered in plain HTTP, not TLS: if it serves http, write its url with http://)"


def test_an_https_url_for_a_plain_http_server_says_what_to_write(
    vllm, make_proxy, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.WARNING, "lineage_proxy")
    _, url = vllm
    https = url.replace("http://", "https://")
    proxy = make_proxy(CONFIG, wait="probed", UPSTREAM=https)
    warnings = [r.getMessage() for r in caplog.records if "metadata not reachable" in r.getMessage()]
    assert warnings, caplog.text
    assert warnings[0].startswith(f"upstream llama: metadata not reachable at {https}: ")
    assert warnings[0].endswith(HINT)
    reply = httpx.post(f"{proxy.url}/v1/chat/completions", json={"model": "m", "messages": []}, timeout=10)
    assert reply.status_code == 502
    error = proxy_error(reply)
    assert error["code"] == "upstream_unavailable"
    assert error["message"].startswith("upstream 'llama' is unavailable: SSLError: ")
    assert error["message"].endswith(HINT)


def test_an_upstream_down_is_named_by_its_url_without_a_hint(make_proxy, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    from tests.harness import dead_port

    caplog.set_level(logging.WARNING, "lineage_proxy")
    down = f"http://127.0.0.1:{dead_port()}"
    make_proxy(CONFIG, wait="probed", UPSTREAM=down)
    warnings = [r.getMessage() for r in caplog.records if "metadata not reachable" in r.getMessage()]
    assert warnings and warnings[0].startswith(f"upstream llama: metadata not reachable at {down}: "), caplog.text
    assert "plain HTTP" not in warnings[0]

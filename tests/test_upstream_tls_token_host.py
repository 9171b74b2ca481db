"""An https upstream of one label whose path holds an `@` before a host's name (`https://localhost/xyz/q9s3cr@gateway`)
loads, though it may be a token holding a `/` (its host then the token's first piece: `token_hidden`). A server whose
certificate is not for that host fails the TLS handshake in words that name it: OpenSSL's "Hostname mismatch,
certificate is not valid for 'localhost'". Such a URL has no port (`_token_at`: 443, which the test does not own): its
connection pool reads it with the port of a TLS listener the test owns on 127.0.0.1, whose certificate, from the CA the
upstream's `tls.ca` trusts, is for `model.internal` alone. A host spelled as a word (`ssl`, `valid`, `certificate`),
which does not resolve, is connected to at 127.0.0.1 and named to the TLS handshake by `tls.server_name`."""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

import httpx
import pytest
from cryptography import x509

from proxy.transport import pool
from tests.certs import Authority
from tests.harness import LoopThread, start_app
from tests.servers.otlp_receiver import OtlpReceiver
from tests.servers.vllm_like import SERVED, VllmLike

HOST = "localhost"
URL = f"https://{HOST}/xyz/q9s3cr@gateway"
WORDS = ("ssl", "valid", "certificate")  # each a word of OpenSSL's error

CONFIG = """
listen: {{http: "127.0.0.1:0"}}
upstreams: [{{name: llm, url: "{url}", tls: {{ca: "{ca}", server_name: "{host}"}}}}]
routes: [{{model: "*", upstream: llm}}]
policy: {{anonymous: allow, default_purpose: assistant}}
telemetry: {{exporter: otlp, endpoint: "${{OTLP}}", protocol: grpc}}
lineage: {{store: null}}
"""


@pytest.fixture
def mismatched(loop_thread: LoopThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Authority]:
    """A model server on 127.0.0.1 over TLS, its certificate not for HOST, which resolves to it."""
    authority = Authority(tmp_path)
    pair = authority.issue("server", common_name="model.internal", extra_sans=[x509.DNSName("model.internal")])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(pair.cert), str(pair.key))
    runner, port = loop_thread.run(start_app(VllmLike().app(), ssl_context=context))

    def listened(url: str) -> SplitResult:  # (the pool's, compiled too: it looks the name up in its module)
        parts = urlsplit(url)
        if parts.hostname in WORDS:
            return parts._replace(netloc=f"127.0.0.1:{port}")
        return parts._replace(netloc=f"{parts.netloc}:{port}") if url == URL else parts

    monkeypatch.setattr(pool, "urlsplit", listened)
    yield authority
    loop_thread.run(runner.cleanup())


def test_a_tls_failure_quotes_no_piece_of_what_may_be_a_token(
    mismatched: Authority, make_proxy: Any, otlp: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    # the call's error reply and the metadata's warning quoted OpenSSL's words, the host in them, until 2026-12-06; the
    # span (`server.address` `***`, its status the code alone) and the access line did not
    caplog.set_level(logging.INFO)
    config = CONFIG.format(url=URL, ca=mismatched.pair.cert, host=HOST)
    proxy = make_proxy(config, wait="probed", OTLP=f"http://127.0.0.1:{otlp.port}")
    reply = httpx.post(f"{proxy.url}/v1/chat/completions", timeout=10,
                       json={"model": SERVED, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    spans = otlp.wait_for(lambda spans: any(span.status_code == 2 for span in spans))
    lines = [record.getMessage() + (record.exc_text or "") for record in caplog.records]
    said = json.dumps([reply.text, lines, [(s.attributes, s.status_message, s.events) for s in spans]], default=str)
    assert reply.status_code == 502, reply.text
    assert "Hostname mismatch, certificate is not valid for '***'" in reply.json()["error"]["message"], reply.text
    assert any("metadata not reachable at https://***@gateway: [SSL: CERTIFICATE_VERIFY_FAILED]" in line
               for line in lines), lines  # fmt: skip
    assert HOST not in said and "q9s3cr" not in said, said


@pytest.mark.parametrize("host", WORDS)
def test_a_tls_failure_hides_a_host_spelled_as_a_word_where_it_names_the_host_alone(
    mismatched: Authority, make_proxy: Any, otlp: OtlpReceiver, caplog: pytest.LogCaptureFixture, host: str
) -> None:
    # until 2026-12-06 the host was hidden in every word it is: `[***: CERTIFICATE_VERIFY_FAILED]` (`ssl`),
    # `certificate is not *** for '***'` (`valid`), `*** verify failed` (`certificate`)
    caplog.set_level(logging.INFO)
    url = f"https://{host}/xyz/q9s3cr@gateway"
    config = CONFIG.format(url=url, ca=mismatched.pair.cert, host=host)
    proxy = make_proxy(config, wait="probed", OTLP=f"http://127.0.0.1:{otlp.port}")
    reply = httpx.post(f"{proxy.url}/v1/chat/completions", timeout=10,
                       json={"model": SERVED, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    lines = [record.getMessage() + (record.exc_text or "") for record in caplog.records]
    said = "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: Hostname mismatch, certificate is not valid for '***'."
    assert reply.status_code == 502 and said in reply.json()["error"]["message"], reply.text
    assert any(f"metadata not reachable at https://***@gateway: {said}" in line for line in lines), lines
    assert not [text for text in [reply.text, *lines] if f"'{host}'" in text or "q9s3cr" in text], lines

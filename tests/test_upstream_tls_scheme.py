"""An HTTP upstream's `tls` with a plain `http://` URL: the URL's scheme alone decides TLS over HTTP, so the
CA check and client certificate `tls` asks for would never happen and calls would go in plaintext. `check`
says so; a gRPC upstream (TLS whenever `tls` is set) and an `https://` one load as before."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.config import parse
from proxy.errors import ConfigError
from tests.certs import Authority

CONFIG = """
listen: {http: "127.0.0.1:0"}
upstreams:
  - {name: llama, UPSTREAM, tls: TLS}
routes:
  - {model: "*", upstream: llama}
lineage: {store: null}
"""


def text(upstream: str, tls: str) -> str:
    return CONFIG.replace("UPSTREAM", upstream).replace("TLS", tls)


@pytest.mark.parametrize("tls", ["ca", "client"])
def test_tls_on_a_plain_http_upstream_is_a_problem(tmp_path: Path, tls: str) -> None:
    authority = Authority(tmp_path)
    client = authority.issue("proxy", common_name="lineage-proxy")
    settings = (f"{{ca: '{authority.pair.cert}', server_name: model.internal}}" if tls == "ca"
                else f"{{cert: '{client.cert}', key: '{client.key}'}}")  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        parse(text('url: "http://model.internal:8000"', settings), env={})
    assert caught.value.problems == [
        "upstreams[0].tls: the url 'http://model.internal:8000' is plain http, so this TLS is never used: "
        "write https://"
    ]


@pytest.mark.parametrize(
    "upstream", ['url: "https://model.internal:8443"', 'grpc: "model.internal:8001", protocol: oip']
)
def test_tls_where_it_is_used_loads(tmp_path: Path, upstream: str) -> None:
    authority = Authority(tmp_path)
    config = parse(text(upstream, f"{{ca: '{authority.pair.cert}'}}"), env={})
    assert config.upstreams[0].tls is not None and config.upstreams[0].tls.ca == str(authority.pair.cert)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://ops:s3cr3tzq@model.internal:8000", "http://ops:***@model.internal:8000"),
        ("http://model.internal:8000/v1?key=s3cr3tzq", "http://model.internal:8000/v1?***"),
    ],
)
def test_the_problem_never_quotes_the_urls_secret(tmp_path: Path, url: str, shown: str) -> None:
    """The url is refused for its userinfo or query too (said with it hidden); this problem quoted it as written."""
    authority = Authority(tmp_path)
    with pytest.raises(ConfigError) as caught:
        parse(text(f'url: "{url}"', f"{{ca: '{authority.pair.cert}'}}"), env={})
    assert f"upstreams[0].tls: the url {shown!r} is plain http, so this TLS is never used: write https://" in (
        caught.value.problems
    )
    assert not any("s3cr3tzq" in problem for problem in caught.value.problems), caught.value.problems

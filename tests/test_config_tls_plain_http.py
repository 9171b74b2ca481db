"""An upstream's `tls:` beside a url the connection pool reads as plain http is a problem: the CA check and the
client certificate asked for would be skipped, and calls sent in plaintext, without a word. The pool reads the url
with `urlsplit`, which drops white space before it and tabs and line breaks in it (`" http://h"`, `"ht\\ttp://h"`:
plain http to it), so the check reads the scheme as the pool does, not from the url's first characters."""

from __future__ import annotations

import pytest

from proxy.config import Upstream, parse
from proxy.errors import ConfigError
from proxy.transport.pool import ConnectionPool

URLS = ["http://h:1", "HTTP://h:1", " http://h:1", "\thttp://h:1", "ht\ttp://h:1", "http\n://h:1", "https://h:1",
        " https://h:1"]  # fmt: skip


def config(url: str) -> str:
    quoted = url.replace("\t", "\\t").replace("\n", "\\n")
    return (f'listen: {{http: "127.0.0.1:0"}}\nupstreams: [{{name: u, url: "{quoted}", tls: {{ca: /etc/ssl/certs/'
            'ca-certificates.crt}}]\nroutes: [{model: "*", upstream: u}]\n')  # fmt: skip


@pytest.mark.parametrize("url", URLS)
def test_tls_beside_a_url_the_pool_reads_as_plain_http_is_a_problem(url: str) -> None:
    plain = not ConnectionPool(Upstream(name="u", url=url)).tls  # what the calls would go over
    problems: list[str] = []
    try:
        parse(config(url), env={})
    except ConfigError as exc:
        problems = exc.problems
    assert any("is plain http" in problem for problem in problems) is plain, problems

"""A URL's password holding a character a URL reserves (`/`, `?`, `#`: a generated password, a base64 token, written
unescaped) is hidden by the problem that quotes the URL, as any other password is. Found reviewing 4e42adf (helper
revconfig5): `shown_url` hid a userinfo only up to the first `/`, `?` or `#` (`urlsplit` ends the authority there),
so `telemetry.endpoint: ops:s3cr/et@collector:4317`, a user and password the new check refuses, was quoted whole
(`expected an http:// or https:// URL, got 'ops:s3cr/et@collector:4317'`), and `ops:s3cr#et@...` as `ops:s3cr#***`;
an upstream's url likewise. A URL whose port is followed by a path or query holding an `@` is quoted as before."""

from __future__ import annotations

import pytest

from proxy.config import parse
from proxy.config.loader import shown_url
from proxy.errors import ConfigError

BASE = "listen: {http: '127.0.0.1:0'}\nroutes: [{model: '*', upstream: m}]\n"
UPSTREAM = "upstreams: [{name: m, url: 'http://127.0.0.1:9'}]\n"


@pytest.mark.parametrize("mark", ["/", "?", "#"])
@pytest.mark.parametrize(
    ("config", "path"),
    [
        (UPSTREAM + "telemetry: {exporter: otlp, protocol: grpc, endpoint: 'ops:s3cr%set@collector:4317'}\n",
         "telemetry.endpoint"),
        (UPSTREAM + "telemetry: {exporter: otlp, protocol: http/protobuf, endpoint: "
         "'http://ops:s3cr%set@collector:4318'}\n", "telemetry.endpoint"),
        (UPSTREAM + "telemetry: {exporter: otlp, traces_endpoint: 'https://ops:s3cr%set@c:4318/v1/traces'}\n",
         "telemetry.traces_endpoint"),
        ("upstreams: [{name: m, url: 'http://ops:s3cr%set@vllm:8000'}]\n", "upstreams[0].url"),
        (UPSTREAM + "lineage: {store: null, openlineage: {url: 'http://ops:s3cr%set@ol:5000'}}\n",
         "lineage.openlineage.url"),
    ],
    ids=["grpc host:port", "otlp http", "traces", "upstream url", "openlineage url"],
)  # fmt: skip
def test_a_password_with_a_reserved_character_is_hidden(config: str, path: str, mark: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(BASE + config % mark, env={})
    found = [problem for problem in caught.value.problems if problem.startswith(f"{path}:")]
    assert found and "ops:***@" in found[0], caught.value.problems
    assert not any("s3cr" in problem for problem in caught.value.problems), caught.value.problems


@pytest.mark.parametrize(
    "url",
    [
        "http://collector/v1/traces?user=a@b",  # (after a port, since 2026-12-05 read as a password's end: hidden)
        "http://h:8000/v1/models/a%40b",  # (unescaped, since 2026-12-05 read as a password's end: hidden)
        "https://c/x%40y",
        "triton:8001",
        "http://[::1]:8000/v1/models/a@b",
    ],
)
def test_an_at_past_the_port_is_quoted_as_before(url: str) -> None:
    assert shown_url(url) == url.partition("?")[0] + ("?***" if "?" in url else "")

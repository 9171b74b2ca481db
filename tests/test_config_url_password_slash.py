"""A URL's password holding a `/` written unescaped, made of digits before it (`http://ops:12/34@collector:4318`), was
read by `urlsplit` as host `ops`, port 12 and path `/34@collector:4318`: the config loaded, the credentials were
dropped and the wrong host was used (before 2026-12-05). It is refused, saying to percent-encode the `/` as %2F, when
the path's first segment holds an `@` followed by a host[:port] (since 2026-12-05 any segment's:
tests/test_config_url_at_in_path.py; one not followed by a host, or past an IPv6 host, loads), and a password of letters (whose head `urlsplit` took for a port and refused) is told the same."""

from __future__ import annotations

import pytest

from proxy.config import parse
from proxy.config.loader import shown_url
from proxy.errors import ConfigError

BASE = "listen: {http: '127.0.0.1:0'}\nroutes: [{model: '*', upstream: m}]\n"
UPSTREAM = "upstreams: [{name: m, url: 'http://127.0.0.1:9'}]\n"
HINT = "a password holding '/' must be percent-encoded as %2F"


@pytest.mark.parametrize("password", ["12/34", "12/", "s3cr/et", "1/x2"])
@pytest.mark.parametrize(
    ("config", "path"),
    [
        (UPSTREAM + "telemetry: {exporter: otlp, endpoint: 'http://ops:%s@collector:4318'}\n", "telemetry.endpoint"),
        (UPSTREAM + "telemetry: {exporter: otlp, protocol: grpc, endpoint: 'ops:%s@collector:4317'}\n",
         "telemetry.endpoint"),
        (UPSTREAM + "telemetry: {exporter: otlp, traces_endpoint: 'https://ops:%s@c.example:4318/v1/traces'}\n",
         "telemetry.traces_endpoint"),
        ("upstreams: [{name: m, url: 'http://ops:%s@vllm:8000'}]\n", "upstreams[0].url"),
        ("upstreams: [{name: m, url: 'http://ops:%s@[::1]:8000/base'}]\n", "upstreams[0].url"),
        (UPSTREAM + "lineage: {store: null, openlineage: {url: 'http://ops:%s@ol:5000'}}\n", "lineage.openlineage.url"),
    ],
    ids=["otlp http", "otlp grpc", "traces", "upstream url", "upstream v6", "openlineage url"],
)  # fmt: skip
def test_a_password_holding_a_slash_is_refused_and_hidden(config: str, path: str, password: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(BASE + config % password, env={})
    found = [problem for problem in caught.value.problems if problem.startswith(f"{path}:")]
    assert found and HINT in found[0] and "ops:***@" in found[0], caught.value.problems
    assert not any(password in problem for problem in caught.value.problems), caught.value.problems


@pytest.mark.parametrize(
    "url",
    [
        "http://h:8000/v1/models/a%40b",
        "http://vllm:8000",
        "http://vllm:8000/base",
        "http://[::1]:8000/v1/models/a@b",
        "http://h:8000/v1@",
    ],
)
def test_an_at_further_along_a_path_loads(url: str) -> None:
    config = parse(BASE + f"upstreams: [{{name: m, url: '{url}'}}]\n", env={})
    assert config.upstreams[0].url == url
    assert shown_url(url) == url


@pytest.mark.parametrize("endpoint", ["http://collector:4318/v1/traces", "http://collector:4318/a/b%40c"])
def test_an_otlp_endpoint_with_an_at_past_its_first_segment_loads(endpoint: str) -> None:
    # (over OTLP/HTTP, which sends a path: over gRPC it is refused since the reread of 2026-12-06)
    text = f"telemetry: {{exporter: otlp, protocol: http/protobuf, endpoint: '{endpoint}'}}\n"
    config = parse(BASE + UPSTREAM + text, env={})
    assert config.telemetry.endpoint == endpoint

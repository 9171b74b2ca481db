"""The neighbours of a URL's password holding a `/` after digits (`http://ops:12/34@collector:4318`, refused since
2026-12-05): one whose host after the `@` holds an `_` (a compose service, `otel_collector`), and one whose password
holds a `?` or a `#` after digits (`http://ops:12?34@collector:4318`), which `urlsplit` reads as host `ops`, port 12
and a query or fragment. They loaded (a telemetry endpoint, an OpenLineage url: a query is theirs to send), the
credentials dropped and host `ops` used; they are refused, saying how to write the character, the password hidden.
A query of `key=value` pairs holding an `@` (an address) loads as before (helper revmisc), but after a `host:port`
(`http://collector:4318?user=alice@example.com`), since 2026-12-05 refused as `http://ops:1/2?3=4@h` is: the two
cannot be told apart (tests/test_config_url_userinfo_readings.py)."""

from __future__ import annotations

import pytest

from proxy.config import parse
from proxy.errors import ConfigError

BASE = "listen: {http: '127.0.0.1:0'}\nroutes: [{model: '*', upstream: m}]\n"
UPSTREAM = "upstreams: [{name: m, url: 'http://127.0.0.1:9'}]\n"
PLACES = [
    (UPSTREAM + "telemetry: {exporter: otlp, endpoint: 'http://ops:%s@%s:4318'}\n", "telemetry.endpoint"),
    (UPSTREAM + "telemetry: {exporter: otlp, protocol: grpc, endpoint: 'ops:%s@%s:4317'}\n", "telemetry.endpoint"),
    (UPSTREAM + "telemetry: {exporter: otlp, traces_endpoint: 'https://ops:%s@%s:4318/v1/traces'}\n",
     "telemetry.traces_endpoint"),
    ("upstreams: [{name: m, url: 'http://ops:%s@%s:8000'}]\n", "upstreams[0].url"),
    (UPSTREAM + "lineage: {store: null, openlineage: {url: 'http://ops:%s@%s:5000'}}\n", "lineage.openlineage.url"),
]  # fmt: skip
IDS = ["otlp http", "otlp grpc", "traces", "upstream url", "openlineage url"]


def _refused(config: str, path: str, password: str, hint: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(BASE + config, env={})
    found = [problem for problem in caught.value.problems if problem.startswith(f"{path}:")]
    assert found and hint in found[0] and "ops:***@" in found[0], caught.value.problems
    assert not any(password in problem for problem in caught.value.problems), caught.value.problems


@pytest.mark.parametrize("host", ["otel_collector", "vllm_1", "collector."])
@pytest.mark.parametrize(("config", "path"), PLACES, ids=IDS)
def test_a_slashed_password_before_a_host_with_an_underscore_is_refused(config: str, path: str, host: str) -> None:
    _refused(config % ("12/34", host), path, "12/34", "a password holding '/' must be percent-encoded as %2F")


@pytest.mark.parametrize(("mark", "code"), [("?", "%3F"), ("#", "%23")])
@pytest.mark.parametrize(("config", "path"), PLACES, ids=IDS)
def test_a_password_holding_a_question_mark_or_hash_after_digits_is_refused(
    config: str, path: str, mark: str, code: str
) -> None:
    password = f"12{mark}34"
    _refused(
        config % (password, "collector"),
        path,
        password,
        f"a password holding '{mark}' must be percent-encoded as {code}",
    )


@pytest.mark.parametrize("name", ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"])
@pytest.mark.parametrize("password", ["12?34", "12#34", "12/34"])
def test_the_environments_endpoint_is_refused_so_too(name: str, password: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(
            BASE + UPSTREAM + "telemetry: {exporter: otlp}\n", env={name: f"http://ops:{password}@otel_collector:4318"}
        )
    assert any("ops:***@" in problem for problem in caught.value.problems), caught.value.problems
    assert not any(password in problem for problem in caught.value.problems), caught.value.problems


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://collector?user=alice@example.com",
        "http://collector:4318/v1/traces?user=alice@example.com&team=ops",
        "http://collector?a=1&b=c@d:9",
        "http://collector.example.com/v1/traces?a=1&b=c@d:9",
        "http://collector:4318/v1/traces",
    ],
)
def test_a_query_of_pairs_holding_an_at_loads(endpoint: str) -> None:
    # (over OTLP/HTTP, which sends a path and query: over gRPC they are refused since the reread of 2026-12-06)
    text = f"telemetry: {{exporter: otlp, protocol: http/protobuf, endpoint: '{endpoint}'}}\n"
    config = parse(BASE + UPSTREAM + text, env={})
    assert config.telemetry.endpoint == endpoint

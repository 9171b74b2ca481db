"""Values the config loader refused with a traceback, or passed on to fail at start, found by putting hostile values
in every key of the shipped configs: each is a located problem now.

A number is finite: `.nan` passed every bound (`nan < minimum` is false), so a timeout or a limit could be NaN, and
`1e400` (infinity) or an integer past a float's range raised OverflowError out of `check`, and out of a `--workers`
supervisor reloading at SIGHUP. A URL that `urlsplit` cannot read (`http://[::1`) raised ValueError; one whose port
is none (`:99999`, `:abc`) passed, and the proxy failed at start with a traceback. A NUL character in a file name
raised ValueError from `open`."""

from __future__ import annotations

import pytest

from proxy.config import parse
from proxy.errors import ConfigError

BASE = 'listen: {http: "127.0.0.1:0"}\nupstreams: [{name: u, url: "http://h:1"}]\nroutes: [{model: "*", upstream: u}]\n'


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("limits: {drain_timeout_s: VALUE}", ".nan"),
        ("limits: {max_body_bytes: VALUE}", "1e400"),
        ("limits: {max_body_bytes: VALUE}", "1" + "0" * 400),
        ("limits: {header_timeout_s: VALUE}", ".inf"),
        ("telemetry: {sample_ratio: VALUE}", ".nan"),
        ("limits: {drain_timeout_s: VALUE}", '"nan"'),
    ],
)
def test_a_number_that_is_not_finite_is_a_located_problem(key: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(BASE + key.replace("VALUE", value) + "\n", env={})
    section, name = key.split(":")[0], key.split("{")[1].split(":")[0]
    assert any(problem.startswith(f"{section}.{name}: expected a") for problem in caught.value.problems)


@pytest.mark.parametrize("url", ["http://[::1", "http://h:99999", "http://h:abc", "https://h:-1/v1"])
@pytest.mark.parametrize("where", ["upstream", "telemetry", "openlineage"])
def test_a_url_that_cannot_be_connected_to_is_a_located_problem(url: str, where: str) -> None:
    text = {
        "upstream": BASE.replace('"http://h:1"', f'"{url}"'),
        "telemetry": BASE + f'telemetry: {{exporter: otlp, endpoint: "{url}"}}\n',
        "openlineage": BASE + f'lineage: {{openlineage: {{url: "{url}"}}}}\n',
    }[where]
    with pytest.raises(ConfigError) as caught:
        parse(text, env={})
    key = {"upstream": "upstreams[0].url", "telemetry": "telemetry.endpoint", "openlineage": "lineage.openlineage"}
    # what is wrong with it: not a URL, or (a port out of range) what its port must be
    said = ("URL", "the port must be 1-65535")
    assert any(
        problem.startswith(key[where]) and any(s in problem for s in said) for problem in caught.value.problems
    ), caught.value


@pytest.mark.parametrize("key", ["lineage: {baseline: VALUE}", "telemetry: {exporter: otlp, certificate: VALUE}"])
def test_a_nul_character_in_a_value_is_a_located_problem(key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(BASE + key.replace("VALUE", '"/etc/a\\0b"') + "\n", env={})
    assert any("holds a NUL character" in problem for problem in caught.value.problems), caught.value


def test_an_upper_case_scheme_is_still_plain_http_to_the_tls_check() -> None:
    text = BASE.replace('"http://h:1"}', '"HTTP://h:1", tls: {ca: /etc/ssl/certs/ca-certificates.crt}}')
    with pytest.raises(ConfigError) as caught:
        parse(text, env={})
    assert any("is plain http" in problem for problem in caught.value.problems)


@pytest.mark.parametrize("url", ["http://[::1", "http://h:abc", "127.0.0.1:99999", "collector:4318"])
def test_a_traces_endpoint_that_is_no_url_is_a_located_problem(url: str) -> None:
    with pytest.raises(ConfigError) as caught:  # (over OTLP/gRPC a `host:port` is one: test_otlp_grpc_host_port.py)
        parse(BASE + f'telemetry: {{exporter: otlp, protocol: http/protobuf, traces_endpoint: "{url}"}}\n', env={})
    assert any(problem.startswith("telemetry.traces_endpoint: expected") for problem in caught.value.problems)


@pytest.mark.parametrize("key", ["upstream", "endpoint", "traces_endpoint"])
def test_a_bad_url_is_shown_without_its_password(key: str) -> None:
    url = "ftp://user:hunter2@h:1/v1"
    text = (BASE.replace('"http://h:1"', f'"{url}"') if key == "upstream"
            else BASE + f'telemetry: {{exporter: otlp, {key}: "{url}"}}\n')  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        parse(text, env={})
    shown = [problem for problem in caught.value.problems if "URL" in problem]
    assert shown and all("hunter2" not in problem and "user:***@h" in problem for problem in shown)


@pytest.mark.parametrize("url", ["http://user:hunter2@h:1", "http://token@h:1", "https://h/v1?api-version=2024-06-01",
                                 "http://h:1/base#part"])  # fmt: skip
def test_an_upstream_url_part_that_is_never_sent_is_a_located_problem(url: str) -> None:
    """The pool sends an upstream URL's scheme, host, port and path only: credentials, a query or a fragment in it
    were dropped without a word (calls went out without them)."""
    with pytest.raises(ConfigError) as caught:
        parse(BASE.replace('"http://h:1"', f'"{url}"'), env={})
    (problem,) = caught.value.problems
    assert problem.startswith("upstreams[0].url: a user, password, query or fragment in") and "hunter2" not in problem

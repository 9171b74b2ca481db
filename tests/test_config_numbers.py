"""A number in the config is finite: `.nan` passed every bound (`nan < minimum` is false), so a timeout or a limit
could be NaN, and `1e400` (infinity) or an integer past a float's range raised OverflowError out of `check`, and
out of a `--workers` supervisor reloading at SIGHUP."""

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

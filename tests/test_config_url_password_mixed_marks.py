"""A URL's password holding a `/` and a `?` or `#` (`http://ops:12/34?56@collector:4318`, `http://ops:12?34/56@...`),
or a `#` before a `key=value` (`http://ops:12#a=b@...`): `urlsplit` reads host `ops`, port 12 and the rest as a path,
query or fragment. A telemetry endpoint and an OpenLineage url (whose query is theirs to send) loaded so, the
credentials dropped and host `ops` used (the first two before 2026-12-05, the third from 2026-12-05's any-segment
change, which took a fragment's `=` for a query's pairs). They are refused, saying how to write each character, the
password hidden; a query of pairs holding an `@` loads as before, but not when a userinfo's `@` comes before it, nor
(since 2026-12-05) after a `host:port`, which cannot be told from a password (tests/test_config_url_userinfo_readings.py)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from proxy.config import parse
from proxy.errors import ConfigError

BASE = "listen: {http: '127.0.0.1:0'}\nroutes: [{model: '*', upstream: m}]\n"
UPSTREAM = "upstreams: [{name: m, url: 'http://127.0.0.1:9'}]\n"
PLACES = [
    (UPSTREAM + "telemetry: {exporter: otlp, endpoint: '%s'}\n", "telemetry.endpoint"),
    (UPSTREAM + "telemetry: {exporter: otlp, traces_endpoint: '%s'}\n", "telemetry.traces_endpoint"),
    (UPSTREAM + "lineage: {store: null, openlineage: {url: '%s'}}\n", "lineage.openlineage.url"),
]
IDS = ["otlp endpoint", "traces endpoint", "openlineage url"]
SLASH = "a password holding '/' must be percent-encoded as %2F"
QUERY = "a password holding '?' must be percent-encoded as %3F"
HASH = "a password holding '#' must be percent-encoded as %23"


@pytest.mark.parametrize(
    ("url", "secret", "hints"),
    [
        ("http://ops:12/34?56@collector:4318", "34?56", [SLASH, QUERY]),
        ("http://ops:12/34#56@collector:4318/v1/traces", "34#56", [SLASH, HASH]),
        ("http://ops:12?34/56@collector:4318", "34/56", [QUERY, SLASH]),
        ("http://ops:12#a=b@collector:4318", "a=b", [HASH]),
        ("http://ops:12/34@collector:4318/v1/traces?user=alice@example.com", "12/34", [SLASH]),
    ],
)
@pytest.mark.parametrize(("config", "path"), PLACES, ids=IDS)
def test_a_password_holding_a_slash_and_a_mark_is_refused_never_read_as_another_host(
    config: str, path: str, url: str, secret: str, hints: list[str]
) -> None:
    assert urlsplit(url).hostname == "ops"  # what the exporters would have used
    with pytest.raises(ConfigError) as caught:
        parse(BASE + config % url, env={})
    found = [problem for problem in caught.value.problems if problem.startswith(f"{path}:")]
    assert found and all(hint in found[0] for hint in hints), caught.value.problems
    assert not any(secret in problem for problem in caught.value.problems), caught.value.problems


@pytest.mark.parametrize(
    "url",
    ["http://collector/v1/traces?user=alice@example.com", "http://collector.example.com/v1/traces?a=1&b=c@d:9"],
)
def test_a_query_of_pairs_after_a_path_holding_an_at_loads(url: str) -> None:
    # (over OTLP/HTTP, which sends a path and query: over gRPC they are refused since the reread of 2026-12-06)
    assert parse(
        BASE + UPSTREAM + f"telemetry: {{exporter: otlp, protocol: http/protobuf, endpoint: '{url}'}}\n", env={}
    )

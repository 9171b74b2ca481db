"""A URL whose host no resolver finds is refused at load as an address's is (`_host_problem`, `_url_host_problem`): a
list of hosts (`http://c,d:4317`), a name holding what no name does (`http://tri*ton:4317`, hidden as what may be a
token, in the URL quoted too), a name with an empty label (`http://.triton:1`). Until 2026-12-06 each loaded at an
upstream's url, an OTLP endpoint (either protocol) and OpenLineage's urls, and failed at each connect. A name a
resolver finds loads as before, one beginning or ending with a `-` too (`triton-`, a compose service's name may be)."""

from __future__ import annotations

import pytest

from proxy.config import parse
from proxy.errors import ConfigError
from tests.test_config_url_userinfo_readings import BASE, GRPC_PLACES, IDS, PLACES

ALL_PLACES = [*PLACES, *GRPC_PLACES]
ALL_IDS = [*IDS, "grpc endpoint", "grpc traces endpoint"]
NAME = "a host's name is labels of letters, digits, '-' and '_' between single dots, got {!r} (write {!r})"
COLON = "a host holds no ':' but an IPv6 address's, written in brackets, [2001:db8::1]:4317, got {!r} (write {!r})"


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("http://c,d:4317", "an address names one host, got 'c,d:4317' (write 'c:4317') in 'http://c,d:4317'"),
        ("https://c,d", "an address names one host, got 'c,d' (write 'c') in 'https://c,d'"),
        ("http://tri*ton:4317", NAME.format("***:4317", "host:port") + " in 'http://***:4317'"),
        ("http://u:s3cret@tok+en:4317", NAME.format("***:4317", "host:port") + " in 'http://u:***@***:4317'"),
        ("http://.triton:4317", NAME.format(".triton:4317", "host:port") + " in 'http://.triton:4317'"),
        ("http://tri..ton", NAME.format("tri..ton", "host") + " in 'http://tri..ton'"),
        # (a host:port holding two `:` split at its last, as an address's: not a port `s3cret:4317` shown whole)
        ("http://tok+en:s3cret:4317", COLON.format("***:4317", "host:port") + " in 'http://***:4317'"),
        ("http://admin:s3cret:4317", COLON.format("admin:***:4317", "host:port") + " in 'http://***:4317'"),
        ("http://c:4317:4317", COLON.format("c:4317:4317", "c:4317") + " in 'http://c:4317:4317'"),
    ],
)
@pytest.mark.parametrize(("config", "path"), ALL_PLACES, ids=ALL_IDS)
def test_a_url_whose_host_no_resolver_finds_is_refused(config: str, path: str, url: str, said: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(BASE + config % url, env={})
    assert caught.value.problems == [f"{path}: {said}"]
    assert "s3cret" not in str(caught.value.problems) and "tok+en" not in str(caught.value.problems)
    assert "tri*ton" not in str(caught.value.problems)


@pytest.mark.parametrize(
    "url",
    ["http://triton-:4317", "http://-triton:4317", "http://my_host:4317", "http://bücher.example:4317",
     "http://[::1]:4317", "http://triton.:4317", "http://TRITON:4317", "http://127.0.0.1:4317",
     "http://ipv6:[::1]:4317"],  # (the last urllib reads as host ::1, port 4317, and connects to)
)  # fmt: skip
@pytest.mark.parametrize(("config", "path"), ALL_PLACES, ids=ALL_IDS)
def test_a_url_of_a_host_loads(config: str, path: str, url: str) -> None:
    assert parse(BASE + config % url, env={})

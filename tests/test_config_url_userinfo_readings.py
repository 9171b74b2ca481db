"""A URL whose user or password holds a `/`, `?` or `#` written unescaped is read by urllib (the proxy's own pool, the
OTLP and OpenLineage clients) and yarl (aiohttp) with another host: `http://us?er:pw@h:4318` is host `us` and a query,
`http://ops:1/2?3=4@h` host `ops`, port 1 and a query of pairs. Until 2026-12-05 the first loaded as a telemetry
endpoint or OpenLineage url (only a `?` or `#` after digits was looked for), the second at those too (a query of
`key=value` pairs was taken for one), and every URL key but the upstream's, the telemetry endpoints' and OpenLineage's
own went unchecked: a composite OpenLineage transport's http urls, and a PostgreSQL `lineage.store` (libpq reads
`postgresql://ops:12/34@db/lineage` as host `ops`, port 12). Each is refused by the one check, saying which form to
write, the secret never shown. And an `@` that cannot end a userinfo loads: one before a version of digits (Vertex
AI's `.../models/claude-3-5-sonnet@20240620`: no host is digits alone), and one after a dotted name (a host's, no
user's start); until 2026-12-05 both were refused, to be written `%40`."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
import yarl
from psycopg import conninfo

from proxy.config import parse
from proxy.config.loader import shown_url
from proxy.errors import ConfigError
from tests.harness import LoopThread, ProxyHandle
from tests.test_config_url_at_in_path import chat_request_lines

BASE = "listen: {http: '127.0.0.1:0'}\nroutes: [{model: '*', upstream: m}]\n"
UPSTREAM = "upstreams: [{name: m, url: 'http://127.0.0.1:9'}]\n"
OPENLINEAGE = UPSTREAM + "lineage: {store: null, openlineage: {transport: %s}}\n"
PLACES = [
    ("upstreams: [{name: m, url: '%s'}]\n", "upstreams[0].url"),
    (UPSTREAM + "telemetry: {exporter: otlp, protocol: http/protobuf, endpoint: '%s'}\n", "telemetry.endpoint"),
    (UPSTREAM + "telemetry: {exporter: otlp, protocol: http/protobuf, traces_endpoint: '%s'}\n",
     "telemetry.traces_endpoint"),
    (UPSTREAM + "lineage: {store: null, openlineage: {url: '%s'}}\n", "lineage.openlineage.url"),
    (OPENLINEAGE % "{type: http, url: '%s'}", "lineage.openlineage.transport.url"),
    (OPENLINEAGE % "{type: composite, transports: {marquez: {type: http, url: '%s'}}}",
     "lineage.openlineage.transport.transports.marquez.url"),
    (OPENLINEAGE % "{type: composite, transports: [{type: console}, {type: http, url: '%s'}]}",
     "lineage.openlineage.transport.transports[1].url"),
    (OPENLINEAGE % "{type: async_http, url: '%s'}", "lineage.openlineage.transport.url"),
    (OPENLINEAGE % "{type: composite, transports: [{type: async_http, url: '%s'}]}",
     "lineage.openlineage.transport.transports[0].url"),
    (OPENLINEAGE % ("{type: transform, transformer_class: openlineage.client.transport.transform."
                    "JobNamespaceReplaceTransformer, transformer_properties: {new_job_namespace: n}, transport: "
                    "{type: http, url: '%s'}}"), "lineage.openlineage.transport.transport.url"),
]  # fmt: skip
IDS = [
    "upstream",
    "otlp endpoint",
    "traces endpoint",
    "openlineage url",
    "http transport",
    "composite",
    "composite list",
    "async_http transport",
    "composite async_http",
    "transform",
]
# the telemetry endpoints over gRPC, where a URL's path is refused for its own sake (`_grpc_dropped`): a userinfo is said
# before it
GRPC_PLACES = [
    (UPSTREAM + "telemetry: {exporter: otlp, protocol: grpc, endpoint: '%s'}\n", "telemetry.endpoint"),
    (UPSTREAM + "telemetry: {exporter: otlp, protocol: grpc, traces_endpoint: '%s'}\n", "telemetry.traces_endpoint"),
]
ENDPOINTS = [
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "telemetry.endpoint"),
    ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "telemetry.traces_endpoint"),
]
SLASH, QUERY, HASH = "as %2F (a user's too)", "as %3F (a user's too)", "as %23 (a user's too)"


def _refused(config: str, path: str, secret: str, hints: list[str], env: dict[str, str] | None = None) -> str:
    """The problem said of `path`, holding every hint and never the secret (nor any other problem)."""
    with pytest.raises(ConfigError) as caught:
        parse(BASE + config, env=env or {})
    found = [problem for problem in caught.value.problems if problem.startswith(f"{path}:")]
    assert found and all(hint in found[0] for hint in hints), caught.value.problems
    assert not any(secret in problem for problem in caught.value.problems), caught.value.problems
    return found[0]


@pytest.mark.parametrize(
    ("url", "secret", "hint"),
    [
        ("http://us?er:pw1z@collector:4318", "pw1z", QUERY),
        ("https://us#er:pw1z@collector/v1/traces", "pw1z", HASH),
        ("http://tok?en1z@collector:4318", "tok?en1z", QUERY),
        ("http://us?er:cGFzcw1z==@collector:4318", "cGFzcw1z", QUERY),  # (a password's `=`: no query's pair)
        ("http://us?er:p&w1z@collector/v1/traces", "p&w1z", QUERY),
    ],
)
@pytest.mark.parametrize(("config", "path"), PLACES, ids=IDS)
def test_a_user_holding_a_question_mark_or_hash_is_refused_at_every_url_key(
    config: str, path: str, url: str, secret: str, hint: str
) -> None:
    assert urlsplit(url).hostname == yarl.URL(url).host in ("us", "tok")  # what each client would connect to
    _refused(config % url, path, secret, [hint])


@pytest.mark.parametrize(("name", "path"), ENDPOINTS)
@pytest.mark.parametrize(("url", "secret"), [("http://us?er:pw1z@otel_collector:4318", "pw1z"),
                                             ("http://ops:1/2?3=4@otel_collector:4318", "2?3=4")])  # fmt: skip
def test_the_environments_endpoint_is_refused_so_too(name: str, path: str, url: str, secret: str) -> None:
    _refused(UPSTREAM + "telemetry: {exporter: otlp}\n", path, secret, [QUERY], env={name: url})


@pytest.mark.parametrize(
    ("url", "secret", "hints"),
    [
        ("http://ops:1/2?3=4@h", "2?3=4", [SLASH, QUERY]),
        ("http://ops:12/34?a=b&c=d@collector:4318", "34?a=b&c=d", [SLASH, QUERY]),
        ("http://ops:12?a=b@collector:4318/v1", "12?a=b", [QUERY]),
    ],
)
@pytest.mark.parametrize(("config", "path"), PLACES, ids=IDS)
def test_a_password_read_as_a_query_of_pairs_is_refused(
    config: str, path: str, url: str, secret: str, hints: list[str]
) -> None:
    assert urlsplit(url).hostname == yarl.URL(url).host == "ops"  # the credentials dropped, host `ops` used
    problem = _refused(config % url, path, secret, hints)
    assert "write scheme://user:pa%" in problem and "for credentials, scheme://host/" in problem, problem


def test_a_password_written_escaped_is_read_with_its_host() -> None:
    url = "http://ops:1%2F2%3F3=4@h"
    assert urlsplit(url).hostname == yarl.URL(url).host == "h"
    assert yarl.URL(url).password == "1/2?3=4"
    config = parse(BASE + UPSTREAM + f"lineage: {{store: null, openlineage: {{url: '{url}'}}}}\n", env={})
    assert config.lineage.openlineage is not None
    assert urlsplit(config.lineage.openlineage.transport["url"]).hostname == "h"


@pytest.mark.parametrize(
    "url",
    ["http://collector:4318/v1/traces?user=alice@example.com", "http://collector:4318?a=1&b=c@d:9"],
)
def test_a_query_of_pairs_after_a_port_is_refused_and_loads_escaped(url: str) -> None:
    """It cannot be told from `ops:1/2?3=4@h` (a password `4318/v1/traces?user=alice`): the `@` is written %40."""
    config = UPSTREAM + "telemetry: {exporter: otlp, protocol: http/protobuf, endpoint: '%s'}\n"
    problem = _refused(config % url, "telemetry.endpoint", "alice@", [QUERY])
    assert "scheme://host/?a%40b for a query" in problem, problem
    escaped = url.replace("@", "%40")
    assert parse(BASE + config % escaped, env={}).telemetry.endpoint == escaped


VERTEX = (
    "https://us-east5-aiplatform.googleapis.com/v1/projects/p/locations/us-east5/publishers/anthropic/models/"
    "claude-3-5-sonnet@20240620"
)


@pytest.mark.parametrize(
    "url",
    [
        VERTEX,
        VERTEX.replace(".com/", ".com:443/"),
        "http://gateway:8080/v1/publishers/google/models/text-bison@001",
        "http://h:8000/v1/models/m@1.5",
        "https://api.example.com/users/alice@example.com",
        "http://10.0.0.5/v1/models/a@b:9",
        "http://gw/models/m@default",  # (until 2026-12-05 refused, as a token `gw/models/m`)
        "http://vllm/v1/models/a@b",
        "http://first.last/x/y@h",
        "http://h/models/m@2130706433",
        "http://gw/models/m@v1.5",  # (no top-level domain is digits: a version, no host)
    ],
)
@pytest.mark.parametrize(("config", "path"), PLACES, ids=IDS)
def test_an_at_that_cannot_end_a_userinfo_loads(config: str, path: str, url: str) -> None:
    """Before no host (digits alone without a port: Vertex's model versions), after an IPv4 address, which begins no
    user's name, or in the path's second segment or later before a host without a port, with no `:` before it (a
    model's tag, `m@default`): yarl and urlsplit read the host written first, as the config does. After a host of one
    label its words hide what is before the `@` (a token of lower-case letters holding a `/` gives the same text)."""
    host = url.split("//")[1].split("/")[0]
    assert yarl.URL(url).host == urlsplit(url).hostname == host.split(":")[0]
    assert parse(BASE + config % url, env={})
    assert shown_url(url) == (url if "." in host or ":" in host else f"http://***@{url.rpartition('@')[2]}")


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("http://ops:12/34@10.0.0.5:8000", "12/34"),
        ("http://vllm/v1/a@b:8000", "v1/a"),
        ("http://first.last/x:pw1z@vllm:8000", "pw1z"),
        ("http://ops:12/34@v2", "12/34"),
        ("http://ops:12/34@bücher.example:8000", "12/34"),  # (an IDN host: until the review of 2026-12-05 it loaded)
        # (until 2026-12-05 these loaded, the host written first used)
        ("http://first.last/x1z@h", "x1z"),  # a user `first.last/x` (a dotted name began no user's)
        ("https://api.example.com/alice1z@example.com", "alice1z"),
        ("http://ops:12/34@2130706433:8000", "12/34"),  # 127.0.0.1:8000 to a resolver: no version has a port
        ("http://ops:12/34@127.1:8000", "12/34"),
        ("http://u:/s3cret1z@20240620/x", "s3cret1z"),  # a `:` that begins no port: a password before digits
        ("http://gw//m1z@default", "m1z"),  # (an empty segment: no path's, a token's `//`)
    ],
)
def test_an_at_before_a_host_stays_refused(url: str, secret: str) -> None:
    """An IPv4 address, a name and digits with a port are hosts; a user's name or token may hold a `/` before the
    `@` in the path's first segment (`first.last/x`, as `tok/en`), or before a host:port (`vllm/v1/a`), and a `:`
    after a dotted name makes a user:password of it. Every reader connects to the host written first."""
    assert urlsplit(url).hostname == yarl.URL(url).host == url.split("//")[1].split("/")[0].split(":")[0]
    problem = _refused(f"upstreams: [{{name: m, url: '{url}'}}]\n", "upstreams[0].url", secret, [SLASH])
    assert "scheme://user:pa%2Fss@host for credentials, scheme://host/a%40b for a path" in problem, problem


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("http://ops:12/s3cret1z@triton:80x", "s3cret1z"),
        ("http://gw/xyz/s3cret1z@triton:80x", "xyz/s3cret1z"),  # (a token of one label's host: `gw`)
        ("http://ops:12/s3cret1z@triton:800000/v1", "s3cret1z"),
        ("http://ops:12/s3cret1z@[::1]:8o01", "s3cret1z"),
        ("http://api.example.com/s3cret1z@triton:80x", "s3cret1z"),
        # found by the reread of 2026-12-06: a port of digits alone past 7 characters or not ASCII's, a scheme's name
        # for it, white space around its `:`: they loaded, host `ops` or `gw`
        ("http://ops:12/s3cret1z@triton:http", "s3cret1z"),
        ("http://gw/xyz/s3cret1z@triton:HTTPS/v1", "xyz/s3cret1z"),
        ("http://ops:12/s3cret1z@triton:80800800", "s3cret1z"),
        ("http://gw/xyz/s3cret1z@triton:\uff18\uff10\uff10\uff11", "xyz/s3cret1z"),  # (`８００１`, fullwidth)
        ("http://ops:12/s3cret1z@triton :8001", "s3cret1z"),
        ("http://gw/xyz/s3cret1z@triton: 8001/v1", "xyz/s3cret1z"),
        # found reviewing that change: its `:` fullwidth too, as a CJK input method writes it with fullwidth digits
        # (`triton：８００１`, `triton：8001`): they loaded so, host `ops` or `gw`
        ("http://ops:12/s3cret1z@triton\uff1a\uff18\uff10\uff10\uff11", "s3cret1z"),
        ("http://gw/xyz/s3cret1z@triton\uff1a8001/v1", "xyz/s3cret1z"),
        # found reviewing that change, refused since helper urls4's (2026-12-06): white space within the host, a `:`
        # after the port's digits, gRPC's scheme's name for the port: they loaded, host `ops` or `gw`
        ("http://ops:12/s3cret1z@tri ton:8001", "s3cret1z"),
        ("http://gw/xyz/s3cret1z@tri\tton:8001/v1", "xyz/s3cret1z"),
        ("http://ops:12/s3cret1z@triton:8001:", "s3cret1z"),
        ("http://gw/xyz/s3cret1z@triton:8001:/v1", "xyz/s3cret1z"),
        ("http://ops:12/s3cret1z@triton:grpc", "s3cret1z"),
        ("http://gw/xyz/s3cret1z@triton:GRPCS/v1", "xyz/s3cret1z"),
        # left by that change's review, refused since 2026-12-06: a `:` doubled or more after such a port, or one
        # after its scheme's name (`@triton:grpc:`, `@triton:8001::`): they loaded, host `ops` or `gw`
        ("http://ops:12/s3cret1z@triton:grpc:", "s3cret1z"),
        ("http://gw/xyz/s3cret1z@triton:8001::/v1", "xyz/s3cret1z"),
        ("http://ops:12/s3cret1z@triton:http:", "s3cret1z"),
        ("http://ops:12/s3cret1z@triton:8001 : :", "s3cret1z"),
    ],
)
@pytest.mark.parametrize(("config", "path"), PLACES + GRPC_PLACES, ids=[*IDS, "otlp grpc", "traces grpc"])
def test_an_at_before_a_host_whose_port_is_mistyped_is_refused(config: str, path: str, url: str, secret: str) -> None:
    """Found reviewing smalls4's change (2026-12-06): a host[:port] after the `@` made the user:password, a typo in
    its port did not, so the URL loaded, every reader connecting to the host written first (`ops`, port 12; `gw`)
    and sending the password as the path. A port holding a digit is one mistyped, and so is one of digits alone
    however long or in whatever script, a scheme's name (`:http`, the port's service name) and white space around its
    `:`, which no path holds unescaped; a word is no port (below)."""
    assert urlsplit(url).hostname == yarl.URL(url).host == url.split("//")[1].split("/")[0].split(":")[0]
    problem = _refused(config % url, path, secret, [SLASH])
    assert "scheme://user:pa%2Fss@host for credentials, scheme://host/a%40b for a path" in problem, problem


@pytest.mark.parametrize(
    "url",
    [
        f"{VERTEX}:rawPredict",
        f"{VERTEX.replace('@20240620', '@20241022')}:streamRawPredict",
        "https://api.example.com/v1/models/m@default:latest",
        "http://gw/models/m@default:latest",
    ],
)
@pytest.mark.parametrize(("config", "path"), PLACES, ids=IDS)
def test_an_at_before_a_colon_and_no_digit_loads(config: str, path: str, url: str) -> None:
    """A method after Vertex AI's model version (`:rawPredict`) or a tag's: no port, so no host's, as before."""
    assert parse(BASE + config % url, env={})


DIGEST = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


@pytest.mark.parametrize(
    "url",
    [
        f"https://models.example.com/v1/models/llama@{DIGEST}",
        f"http://gw/models/llama@{DIGEST}/v1",
        f"https://models.example.com:8443/models/llama@{DIGEST}",
        "https://models.example.com/v1/snapshots/m@2024-06-20T12:00:00Z",
    ],
)
@pytest.mark.parametrize(("config", "path"), PLACES, ids=IDS)
def test_an_at_before_a_digest_or_a_time_loads(config: str, path: str, url: str) -> None:
    """Found reviewing urls2's change (2026-12-06): a model pinned by its digest (`m@sha256:<hex>`, as OCI names
    one) or a time after a path's `@` held a `:` then digits, so was taken for a host whose port is mistyped and
    refused as a password holding a `/`; before that change they loaded. A mistyped port is a port's length and a
    little more, no `:` in it (`_MISTYPED_PORT`)."""
    assert parse(BASE + config % url, env={})


@pytest.mark.parametrize("url", ["http://tok/en1z@collector:4318/v1/models/a@b", "http://us/er1z@h:1/a@b:2"])
@pytest.mark.parametrize(("config", "path"), PLACES, ids=IDS)
def test_a_token_holding_a_slash_is_hidden_before_a_later_at(config: str, path: str, url: str) -> None:
    """Read to the path's `@` (`a@b`: it too may end a userinfo), the text before it holds the host's `:`, which
    was taken for the end of a user's name: `tok/en1z@collector` was shown as one, the token with it."""
    _refused(config % url, path, "1z", [SLASH])


@pytest.mark.parametrize(
    ("url", "secret", "hint"),
    [
        ("http://ops@:1/s3cret1z@api.example.com", "1/s3cret1z", SLASH),
        ("http://ops@:zq?ss1z@collector:4318/v1", "zq", QUERY),
    ],
)
@pytest.mark.parametrize(("config", "path"), PLACES, ids=IDS)
def test_a_user_holding_an_at_before_a_password_holding_a_slash_is_refused_hidden(
    config: str, path: str, url: str, secret: str, hint: str
) -> None:
    """The reader ends the authority at the `/` (or `?`): `ops@:1` is user `ops`, no host and port 1. Until
    2026-12-05 refused as no URL, quoting the password's tail (`'http://***@:1/s3cret1z@api.example.com'`)."""
    assert urlsplit(url).hostname is None
    problem = _refused(config % url, path, secret, ["holding '@' must be percent-encoded as %40", hint])
    assert "'http://***@" in problem, problem


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("https://aB3/x+Yz/Q9Q1z@api.example.com/v1", "Q9Q1z"),  # (a token of base64 holding two `/`)
        ("http://tok/en/s3c1z@collector.internal", "s3c1z"),
        ("http://gw/models/m1z@10.0.0.5", "m1z"),
    ],
)
@pytest.mark.parametrize(("config", "path"), PLACES, ids=IDS)
def test_a_token_of_one_label_before_a_dotted_host_is_refused(config: str, path: str, url: str, secret: str) -> None:
    """An `@` in the path's second segment or later is the path's (`gw/models/m@default`) but after a name of one
    label and before a dotted host's name or an IPv4 address, which a reader takes for a token and its host: the
    first loaded with host `ab3`, the token sent in its path, from 20b541b until its review of 2026-12-05."""
    assert urlsplit(url).hostname == yarl.URL(url).host == url.split("//")[1].split("/")[0].lower()
    _refused(config % url, path, secret, [SLASH])


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("https://aB3/x+Yz/Q9Q1z@gateway/v1", "Q9Q1z"),  # (a token of base64 before a compose service's name)
        ("https://ab3/x+yz/q9q1z@gateway", "q9q1z"),  # (a `+`: base64's, no path's)
        ("https://ab3/xyz/q9q1z=@gateway", "q9q1z"),  # (its padding)
        ("http://aB3/x+Yz/Q9Q1z@20240620/v1", "Q9Q1z"),  # (before digits, which no one writes for a host)
    ],
)
@pytest.mark.parametrize(("config", "path"), PLACES, ids=IDS)
def test_a_token_of_base64_before_a_host_of_one_label_is_refused(config: str, path: str, url: str, secret: str) -> None:
    """Base64's alphabet holds the `/`, and its other marks (`+`, `=`) and upper-case letters in the piece a reader
    takes for the host's name tell its token from a path (`gw/models/m@default`, which loads): until 2026-12-05 these
    loaded, the reproducer of the sitting before with host `ab3`, and the `/v1` warning quoted the token."""
    assert urlsplit(url).hostname == yarl.URL(url).host == url.split("//")[1].split("/")[0].lower()
    _refused(config % url, path, secret, [SLASH])


@pytest.mark.parametrize(
    "url",
    [
        "http://Gateway/v1/models/m@default",  # (a compose service's name, which may hold capitals)
        "http://DESKTOP-7QK2M/models/claude-3-5-sonnet@20240620",  # (a Windows machine's own name)
        "http://Gpu_Box/v1/models/a@b",
    ],
)
@pytest.mark.parametrize(("config", "path"), PLACES, ids=IDS)
def test_a_host_of_one_label_written_in_capitals_before_a_paths_at_loads(config: str, path: str, url: str) -> None:
    """A name in capitals, or of words each begun by one, is how people write a host's (a token's piece of base64 has
    its capitals anywhere, `aB3`): the `@` is the path's, as before a lower-case name (the review of 2026-12-05 found
    them refused as a token since its own day, a config that loaded before refused at start); its words hide what is
    before the `@` all the same."""
    assert urlsplit(url).hostname == yarl.URL(url).host == url.split("//")[1].split("/")[0].lower()
    assert parse(BASE + config % url, env={})
    assert shown_url(url) == f"http://***@{url.rpartition('@')[2]}"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://ab3/xyz/q9q1z@gateway/v1", "https://***@gateway/v1"),
        ("http://a/tokq1z@20240620/v1", "http://***@20240620/v1"),  # (a version's digits: it loads)
        ("http://gw/models/m1z@default/v1", "http://***@default/v1"),
    ],
)
def test_what_may_be_a_token_before_a_hosts_of_one_label_is_never_quoted(url: str, shown: str) -> None:
    """A token of lower-case letters and digits holding a `/` cannot be told from a path (`gw/models/m@default`): it
    loads, and the config's words hide what is before the `@` as a userinfo's. Until 2026-12-05 the `/v1` warning
    quoted it, twice, in a line logged at each start and reload."""
    config = parse(BASE + f"upstreams: [{{name: m, url: '{url}'}}]\n", env={})
    assert config.upstreams[0].url == url
    warnings = [warning for warning in config.warnings if "ends in /v1" in warning]
    assert warnings and f"{shown!r}" in warnings[0], config.warnings
    assert "1z" not in warnings[0] and f"write {shown.removesuffix('/v1')!r}" in warnings[0], warnings


STORE = UPSTREAM + "lineage: {store: '%s'}\n"


def test_a_postgresql_stores_password_holding_a_slash_is_refused() -> None:
    url = "postgresql://ops:12/34@db:5432/lineage"
    assert conninfo.conninfo_to_dict(url)["host"] == "ops"  # libpq's reading: port 12, database `34@db:5432/lineage`
    problem = _refused(STORE % url, "lineage.store", "12/34", [SLASH])
    assert "'postgresql://ops:***@db:5432/lineage'" in problem, problem


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("postgresql://ops:&?/s3cret1z@20240620", "s3cret1z"),  # (libpq's `... parameter: "/s3cret1z@20240620"`)
        ("postgresql://ops:zq/et1z@20240620/lineage", "zq"),  # (`the PostgreSQL URL's port 'zq' is not a port`)
        ("postgresql://ops:zq/et1z@db!x/lineage", "zq"),
        ("postgresql://ops:12/34@2130706433/lineage", "12/34"),  # (loaded: host `ops`, port 12)
        ("postgresql://ops:12/s3cret1z@db:54x/lineage", "s3cret1z"),  # (a port mistyped: libpq's too)
        ("postgresql://ops:12/s3cret1z@db:http/lineage", "s3cret1z"),
        ("postgresql://ops:12/s3cret1z@db :5432/lineage", "s3cret1z"),
    ],
)
def test_a_postgresql_stores_password_holding_a_slash_is_said_in_the_configs_words(url: str, secret: str) -> None:
    """libpq ends the authority at the first `/`: what follows is a database's name, no model's path, so an `@` there
    ends a userinfo whatever follows it. Until 2026-12-05 a version's digits after it loaded, and libpq's own error,
    or the config's about its port, quoted a piece of the password."""
    problem = _refused(STORE % url, "lineage.store", secret, [SLASH])
    assert "'postgresql://ops:***@" in problem, problem
    assert "libpq" not in problem and "not a port" not in problem, problem


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://db.example.com:5432/lineage?user=admin@server",
        "postgresql://db:5432,db2:5433/lineage?sslmode=require&user=admin@server&password=s3cr1z@t",
    ],
)
def test_a_postgresql_stores_query_holding_an_at_loads_its_password_hidden(url: str) -> None:
    """libpq ends the authority at its first `/` and reads `user=admin@server` (Azure's single server's user) as a
    parameter: until 2026-12-05 refused, as a password holding a `/`. Shown without a password, its user as it is."""
    from proxy.record.postgres import redact

    assert conninfo.conninfo_to_dict(url)["user"] == "admin@server"
    assert conninfo.conninfo_to_dict(url)["host"].startswith("db")
    assert parse(BASE + STORE % url, env={}).lineage.store == url
    assert "s3cr1z" not in redact(url) and "admin" in redact(url), redact(url)


@pytest.mark.parametrize(
    "url", ["postgresql://ops:1/2?3=4@h/lineage", "postgresql://ops:12/34@db:5432/lineage?user=a@b"]
)
def test_a_postgresql_stores_query_libpq_refuses_or_after_an_at_is_refused(url: str) -> None:
    _refused(STORE % url, "lineage.store", "/2?3", [SLASH])


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("postgresql://db/lineage?password=s3cr1z&x=a@b", "s3cr1z"),
        ("postgresql://db/lineage?sslmode=require&password=s3cr@t1z&bogus=1", "t1z"),
        ("postgresql://db:5432/lineage?bogus=1&password=s3cr@t1z", "t1z"),
    ],
)
def test_a_postgresql_stores_query_holding_an_unknown_key_is_said_in_libpqs_words(url: str, secret: str) -> None:
    """An `@` in a query's value, a parameter libpq does not know beside it (a typo), is no userinfo's end: none of
    a host's name, a `password=` before it, or `key=value` pairs after a host without a `:`. The review of 2026-12-05
    found them refused as a password holding a `/`, the password shown (`***@t1z&bogus=1`, and whole by `redact`)."""
    from proxy.record.postgres import redact

    _refused(STORE % url, "lineage.store", secret, ["invalid URI query parameter"])
    assert secret not in redact(url), redact(url)


@pytest.mark.parametrize(
    "url", ["postgresql://ops/:?=pw%s3cr1z@db:5432/lineage", "postgresql://ops/x?=pw%s3cr1z@db:5432/lineage"]
)
def test_a_postgresql_stores_user_holding_a_slash_before_no_query_key_is_refused(url: str) -> None:
    """A `:` before the `@` (a user and a password), or no key before the first `=`, is no query of `key=value`
    pairs: the review's first fix read both as one, so libpq's error quoted `"pw%s3cr1z@db:5432/lineage"`."""
    _refused(STORE % url, "lineage.store", "s3cr1z", [SLASH])


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://ops:12/34?user=a@db:5432/lineage",
        # (a list of hosts, libpq's multi-host URL: until 2026-12-05 they loaded, host `ops`, port 12)
        "postgresql://ops:12/34?user=a@db1,db2/lineage",
        "postgresql://ops:12/34?user=a@db1:5432,db2:5433/lineage",
        # (a host libpq reads that no name is: a socket's directory, the default one, an empty one in a list: until
        # the review of 2026-12-05 they loaded, host `ops`, port 12)
        "postgresql://ops:12/34?user=a@%2Fvar%2Frun%2Fpostgresql/lineage",
        "postgresql://ops:12/34?user=a@/lineage",
        "postgresql://ops:12/34?user=a@db1,,db2/lineage",
    ],
)
def test_a_postgresql_stores_password_holding_a_query_then_a_host_and_database_is_refused(url: str) -> None:
    """libpq reads `?user=a@db:5432/lineage` as a user's name, and connects to host `ops`, port 12; a reader, and
    every store URL the config takes (`user:password@host/database`), a password `12/34?user=a` before host `db`:
    refused until 2026-12-05, loaded by its fix (`?user=admin@server` loads: no database after it), refused again."""
    assert conninfo.conninfo_to_dict(url)["host"] == "ops"
    _refused(STORE % url, "lineage.store", "12/34", [SLASH])


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("postgresql://lp:pw@db1:5432,db2:5433/lineage?application_name=lp@pod-1/main", "db1,db2"),
        # (a socket's directory: until the review of 2026-12-05 refused so too, in words of a password holding '@')
        ("postgresql://lp:pw@%2Fvar%2Frun%2Fpostgresql/lineage?application_name=lp@pod-1/main", "/var/run/postgresql"),
        ("postgresql://lp@%2Ftmp,db2/lineage?application_name=lp@pod-1/main", "/tmp,db2"),
    ],
)
def test_a_postgresql_stores_query_holding_an_at_after_a_list_of_hosts_loads(url: str, host: str) -> None:
    """After a userinfo and a list of hosts (`db1:5432,db2:5433`, libpq's multi-host URL), a host and a database after a
    query's `@` are a parameter's value, as after one host: until 2026-12-05 it was refused, the list taken for no
    host, the `@` for a userinfo's end."""
    assert conninfo.conninfo_to_dict(url)["host"] == host
    assert parse(BASE + STORE % url, env={}).lineage.store == url


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("postgresql://ops:p@ss1z@db/lineage", "ss1z"),  # (loaded: host `ss1z@db` to libpq)
        ("postgresql://ops@:s3cret1z@db/lineage", "s3cret1z"),  # (`the PostgreSQL URL's port 's3cret1z@db'`)
        ("postgresql://ops@:b2-?b1z@v2/lineage", "b1z"),  # (libpq's `... separator "=" ...: "b1z@v2/lineage"`)
        ("postgresql://ops@:a&?/b1z@db/lineage", "b1z"),  # (libpq's `invalid URI query parameter: "/b1z@db/lineage"`)
        ("postgresql://ops@:zq/ss1z@db/lineage", "zq"),  # (`the PostgreSQL URL's port 'zq' is not a port`)
    ],
)
def test_a_postgresql_stores_user_or_password_holding_an_at_is_refused(url: str, secret: str) -> None:
    """libpq ends a userinfo at its first `@`, and no host holds one: an `@` written unescaped in a user or
    password. Until the review of 2026-12-05 the first loaded (host `ss1z@db`, quoted when it failed to resolve),
    the others were refused in words quoting the password; and `redact` showed the third's."""
    from proxy.record.postgres import redact

    _refused(STORE % url, "lineage.store", secret, ["holding '@' must be percent-encoded as %40"])
    assert secret not in redact(url), redact(url)


def test_a_read_command_says_a_stores_misread_password_in_the_configs_words() -> None:
    """`edges --store`, read without a config: libpq's error quoted the password's end (`"b/c#dzq1z@..."`) after the
    URL shown whole; until 2026-12-05."""
    url = "postgresql://lp:a?b/c#dzq1z@127.0.0.1:9/lp"
    result = subprocess.run([sys.executable, "-m", "proxy", "edges", "--store", url], capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert result.returncode != 0 and "postgresql://lp:***@127.0.0.1:9/lp" in result.stderr, result.stderr
    assert "dzq1z" not in result.stderr and "a?b" not in result.stderr and SLASH in result.stderr, result.stderr


def test_a_postgresql_stores_password_holding_a_question_mark_loads() -> None:
    """libpq ends a userinfo at its `@` before any `/`: its `?` is the password's."""
    url = "postgresql://ops:12?34@db:5432/lineage"
    assert conninfo.conninfo_to_dict(url)["host"] == "db"
    assert parse(BASE + STORE % url, env={}).lineage.store == url


CONFIG = """listen: {http: "127.0.0.1:0"}
upstreams: [{name: m, url: "${UPSTREAM}/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude@20240620"}]
routes: [{model: "*", upstream: m}]
policy: {anonymous: allow, default_purpose: assistant}
"""


def test_a_vertex_style_path_reaches_the_upstream_under_it(
    make_proxy: Callable[..., ProxyHandle], loop_thread: LoopThread
) -> None:
    lines = chat_request_lines(make_proxy, loop_thread, CONFIG)
    path = b"/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude@20240620/v1/chat/completions"
    assert lines == [b"POST " + path + b" HTTP/1.1"], lines

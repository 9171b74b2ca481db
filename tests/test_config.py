"""Config: the shipped examples load; every problem is reported with its location; env expansion;
the model's field defaults are the only defaults."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import pytest

from proxy.config import Config, Limits, Lineage, Logging, OpenLineage, PolicySettings, Telemetry, Upstream, load, parse
from proxy.config.model import Zone
from proxy.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
BASE = """
listen: {http: "127.0.0.1:0"}
upstreams:
  - {name: llama, url: "http://127.0.0.1:8000"}
routes:
  - {model: "*", upstream: llama}
"""


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(text, env=env or {})
    return caught.value.problems


@pytest.mark.parametrize("name", ["example.yaml", "minimal.yaml"])
def test_shipped_examples_are_valid(name: str) -> None:
    config = load(ROOT / "config" / name, env={})
    assert config.upstreams and config.routes


def test_example_has_every_section() -> None:
    config = load(ROOT / "config" / "example.yaml", env={})
    assert config.listen.grpc is not None and config.listen.admin is not None
    assert config.zones[0].reroute_to == "llama" and config.policy.mode == "enforce"
    assert config.detectors[-1].pattern is not None
    assert config.telemetry.resource_attributes == (("deployment.environment", "prod"),)


def test_defaults() -> None:
    config = parse(BASE, env={})
    up = config.upstreams[0]
    assert (up.protocol, up.timeout_s, up.checkpoint) == ("openai", 600.0, None)
    assert config.policy.anonymous == "deny" and config.telemetry.exporter == "none"
    assert config.lineage.store == "./lineage.db" and config.lineage.retention_days == 30


SETTINGS: list[tuple[type[Any], Callable[[Config], Any]]] = [
    (Upstream, lambda config: config.upstreams[0]),
    (PolicySettings, lambda config: config.policy),
    (Telemetry, lambda config: config.telemetry),
    (Lineage, lambda config: config.lineage),
    (OpenLineage, lambda config: config.lineage.openlineage or OpenLineage()),  # BASE has none: see below
    (Limits, lambda config: config.limits),
    (Zone, lambda config: config.zones[0] if config.zones else Zone("z", frozenset(), frozenset())),  # BASE: none
    (Logging, lambda config: config.logging),
]
EVERY_SETTING = (
    """
listen: {http: "127.0.0.1:0"}
upstreams:
  - name: llama
    url: "http://127.0.0.1:8000"
    grpc: "127.0.0.1:8001"
    protocol: oip
    region: eu
    checkpoint: org/model@abc
    timeout_s: 7
    connect_timeout_s: 2
    api_key: k
    max_connections: 3
    max_queue: 7
    discovery_interval_s: 9
    provider: triton
    tls: {ca: /etc/ssl/certs/ca-certificates.crt, server_name: model.internal}
    headers_to_model: false
routes:
  - {model: "*", upstream: llama}
policy: {mode: audit, anonymous: allow, default_purpose: p, passthrough: refuse, known_labels: [l], known_purposes: [q]}
telemetry:
  service_name: svc
  exporter: otlp
  endpoint: "http://127.0.0.1:4318"
  protocol: http/protobuf
  sample_ratio: 0.5
  capture_content: true
  queue_size: 8
  export_timeout_s: 2
  resource_attributes: {a: b}
  headers: {x-api-key: k}
  compression: gzip
  certificate: /etc/ssl/certs/ca-certificates.crt
  insecure: true
  traces_endpoint: "http://127.0.0.1:4318/v1/traces"
  metrics: false
zones:
  - {name: z, labels: [l], allow_purposes: [p], regions: [eu], on_deny: "reroute:llama", require_record: true}
lineage: {store: "postgresql://u@db:5432/lineage", retention_days: 2, flush_interval_s: 0.5, head_log_interval_s: 0, baseline: BASELINE,
          on_unapproved: block, integrity_key_file: KEYFILE, password_file: KEYFILE, journal: /var/lib/j.db,
          journal_max_rows: 5, integrity_retired_key_files: [RETIRED],
          openlineage: {url: "http://marquez:5000", namespace: prod, snapshot_interval_s: 5, queue_size: 7,
                        spool: /var/lib/ol-spool, spool_max_events: 9}}
limits: {max_body_bytes: 1, scan_max_chars: 2, drain_timeout_s: 3, buffer_max_bytes: 4, idle_timeout_s: 5, header_timeout_s: 7, max_header_bytes: 2048, max_headers: 9, max_connections: 6, max_concurrent_streams: 10, bodies_max_bytes: 8, grpc_stream_window_bytes: 65536, grpc_max_calls: 11, grpc_request_timeout_s: 12, grpc_arriving_max_bytes: 15, grpc_max_reply_bytes: 13, worker_stall_s: 14}
logging: {format: json, level: debug, access: true, client_address: false}
""".replace("BASELINE", str(ROOT / "config" / "baseline.yaml"))
    .replace("KEYFILE", str(ROOT / "pyproject.toml"))
    .replace("RETIRED", str(ROOT / "README.md"))
)


@pytest.mark.parametrize(("model", "section"), SETTINGS, ids=[model.__name__ for model, _ in SETTINGS])
def test_what_the_file_leaves_out_is_the_model_default(model: type[Any], section: Callable[[Config], Any]) -> None:
    """The loader writes no default of its own, so it cannot drift from the model's."""
    parsed = section(parse(BASE, env={}))
    for f in fields(model):
        if f.default is not MISSING and f.name != "url":  # BASE sets the url
            assert getattr(parsed, f.name) == f.default, f"{model.__name__}.{f.name}"


@pytest.mark.parametrize(("model", "section"), SETTINGS, ids=[model.__name__ for model, _ in SETTINGS])
def test_every_setting_is_read_from_the_file(model: type[Any], section: Callable[[Config], Any]) -> None:
    """A field the loader forgot would silently keep its default; here every one is set otherwise."""
    parsed = section(parse(EVERY_SETTING, env={}))
    for f in fields(model):
        if f.default is not MISSING:
            assert getattr(parsed, f.name) != f.default, f"{model.__name__}.{f.name} ignored"


def test_openlineage_url_is_marquez_over_http_and_the_rest_is_the_models_default() -> None:
    lineage = parse(BASE + 'lineage: {openlineage: {url: "http://marquez:5000"}}', env={}).lineage.openlineage
    assert lineage is not None
    assert dict(lineage.transport) == {"type": "http", "url": "http://marquez:5000/", "endpoint": "api/v1/lineage",
                                     "retry": {"total": 0, "status_forcelist": []}}  # fmt: skip
    for f in fields(OpenLineage):
        if f.default is not MISSING:
            assert getattr(lineage, f.name) == f.default, f.name


def test_openlineage_transport_is_passed_through_expanded_and_checked_by_openlineage_python() -> None:
    text = (
        BASE
        + "lineage: {openlineage: {transport: {type: http, url: 'http://m:5000', auth: {type: api_key, apiKey: '${K}'}}}}"
    )
    lineage = parse(text, env={"K": "secret"}).lineage.openlineage
    assert lineage is not None and lineage.transport["auth"] == {"type": "api_key", "apiKey": "secret"}
    cases = {
        "{url: http://m:5000, transport: {type: console}}": "lineage.openlineage: give url",
        "{namespace: x}": "lineage.openlineage: needs url",
        "{url: ftp://m}": "lineage.openlineage.url: expected an http(s):// URL",
        "{transport: {type: carrier-pigeon}}": "lineage.openlineage.transport.type: unknown transport type",
        "{transport: {type: file}}": "lineage.openlineage.transport: openlineage-python refuses this file transport",
        "{url: http://m, colour: red}": "lineage.openlineage.colour: unknown key",
    }
    if importlib.util.find_spec("confluent_kafka") is None:  # openlineage-python imports it at the first event
        kafka = "{type: kafka, topic: t, config: {bootstrap.servers: 'k:9092'}}"
        cases[f"{{transport: {kafka}}}"] = "lineage.openlineage.transport: this kafka transport needs confluent-kafka"
        composite = f"{{transport: {{type: composite, transports: [{{type: console}}, {kafka}]}}}}"
        cases[composite] = "lineage.openlineage.transport: this composite transport needs confluent-kafka"
    for raw, expected in cases.items():
        with pytest.raises(ConfigError) as caught:
            parse(BASE + f"lineage: {{openlineage: {raw}}}", env={})
        assert any(problem.startswith(expected) for problem in caught.value.problems), (raw, caught.value.problems)


def test_every_problem_is_reported_with_its_path() -> None:
    text = """
listen: {http: "nowhere"}
upstreams:
  - {name: llama, url: "ftp://x", protocol: grpcx, timeout_s: -1, colour: red}
  - {name: llama, url: "http://a:1"}
routes:
  - {model: a, upstream: llama}
  - {model: b, upstream: llama}
  - {model: c, upstream: vlm}
callers:
  - {name: app, api_key_sha256: abc, purposes: [Bad Purpose]}
zones:
  - {name: z, labels: [UPPER], on_deny: "reroute:nope"}
policy: {mode: strict}
detectors: [email, ssn, {name: x, pattern: "("}]
telemetry: {exporter: jaeger, sample_ratio: 2}
"""
    found = problems(text)
    expected = [
        "listen.http: expected host:port, got 'nowhere'",
        "upstreams[0].colour: unknown key",
        "upstreams[0].protocol: must be one of openai, oip, kserve, passthrough, got 'grpcx'",
        "upstreams[0].url: expected an http:// or https:// URL, got 'ftp://x'",
        "upstreams[0].timeout_s: must be >= 0.001, got -1",
        "upstreams[1].name: duplicate upstream 'llama'",
        "routes[2].upstream: unknown upstream 'vlm'",
        "callers[0].api_key_sha256: expected 64 hex digits",
        "callers[0].purposes[0]: invalid purpose 'Bad Purpose'",
        "zones[0].labels[0]: invalid label 'UPPER'",
        "zones[0].on_deny: unknown upstream 'nope'",
        "policy.mode: must be one of enforce, audit, got 'strict'",
        "detectors[1]: unknown detector 'ssn'",
        "detectors[2].pattern: not a valid regular expression",
        "telemetry.exporter: must be one of otlp, console, none, got 'jaeger'",
        "telemetry.sample_ratio: must be between 0 and 1, got 2",
    ]
    for message in expected:
        assert any(p.startswith(message) for p in found), f"missing {message!r} in {found}"


def test_unknown_top_level_key_and_missing_sections() -> None:
    assert any(p.startswith("routs: unknown key") for p in problems(BASE + "routs: []\n"))
    found = problems("listen: {http: '127.0.0.1:0'}\n")
    assert "upstreams: is required" in found and "routes: is required" in found


def test_environment_expansion() -> None:
    text = BASE.replace('"http://127.0.0.1:8000"', '"${URL}"').replace(
        "{name: llama,", "{name: llama, timeout_s: '${T:-7}',"
    )
    config = parse(text, env={"URL": "http://10.0.0.1:9"})
    assert config.upstreams[0].url == "http://10.0.0.1:9" and config.upstreams[0].timeout_s == 7
    assert any("environment variable URL is not set" in p for p in problems(text, env={}))


def test_reroute_target_must_be_in_an_allowed_region() -> None:
    text = BASE.replace("routes:", "  - {name: us, url: 'http://b:1', region: us}\nroutes:") + (
        "zones:\n  - {name: z, labels: [a], allow_purposes: [p], regions: [eu], on_deny: 'reroute:us'}\n"
    )
    assert any("reroute target 'us' is in region 'us'" in p for p in problems(text))


def test_invalid_yaml_names_the_line() -> None:
    assert problems("listen: [\n", env={})[0].startswith("<memory>:2:1: not valid YAML")


# -- what a first user tripped over: each problem once, at its place, saying what is allowed


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ('{http: "127.0.0.1:8080", admin: "127.0.0.1:8080"}', "listen.admin: 127.0.0.1:8080 is listen.http's address"),
        ('{http: "127.0.0.1:8080", grpc: "127.0.0.1:8080"}', "listen.grpc: 127.0.0.1:8080 is listen.http's address"),
        ('{http: "127.0.0.1:8080", grpc: "127.0.0.1:9", admin: "127.0.0.1:9"}',
         "listen.admin: 127.0.0.1:9 is listen.grpc's address"),
        ('{http: "0.0.0.0:8080", admin: "127.0.0.1:8080"}', "listen.admin: 127.0.0.1:8080 is listen.http's address"),
        ('{http: "[::]:8080", admin: "127.0.0.1:8080"}', "listen.admin: 127.0.0.1:8080 is listen.http's address"),
    ],
)  # fmt: skip
def test_two_listeners_on_one_address_is_a_problem(listen: str, expected: str) -> None:
    found = problems(BASE.replace('listen: {http: "127.0.0.1:0"}', f"listen: {listen}"))
    assert [p for p in found if p.startswith("listen.")] == [
        f"{expected} (each listener needs its own port; port 0 takes any free one)"
    ]


def test_listeners_may_share_port_0_or_a_port_on_other_hosts() -> None:
    for listen in ('{http: "127.0.0.1:0", grpc: "127.0.0.1:0", admin: "127.0.0.1:0"}',
                   '{http: "127.0.0.1:8080", admin: "127.0.0.2:8080"}',
                   '{http: "0.0.0.0:8080", admin: "[::1]:8080"}'):  # another family: another socket  # fmt: skip
        parse(BASE.replace('listen: {http: "127.0.0.1:0"}', f"listen: {listen}"), env={})


def test_a_caller_nothing_can_identify_is_a_problem() -> None:
    found = problems(BASE + "callers:\n  - {name: app, purposes: [assistant]}\n")
    assert found == ["callers[0]: nothing identifies this caller: give api_key_sha256 (a Bearer key) or "
                     "tls_identity (a client certificate)"]  # fmt: skip
    by_certificate = problems(BASE + "callers:\n  - {name: app, tls_identity: CN=app}\n")
    assert by_certificate == ["callers[0].tls_identity: no client certificate is ever asked for: set "
                              "listen.tls.client_ca"]  # fmt: skip


@pytest.mark.parametrize("listener", [True, False])
def test_a_missing_tls_file_is_named_with_its_key(tmp_path: Path, listener: bool) -> None:
    from tests.certs import Authority

    server = Authority(tmp_path).issue("server", common_name="127.0.0.1", server=True)
    missing = tmp_path / "nope.pem"
    if listener:
        tls = f"{{cert: '{server.cert}', key: '{server.key}', client_ca: '{missing}'}}"
        text = BASE.replace('"127.0.0.1:0"}', f'"127.0.0.1:0", tls: {tls}}}')
        expected = f"listen.tls.client_ca: cannot read {str(missing)!r}: No such file or directory"
    else:
        text = BASE.replace('8000"}', f"8000\", tls: {{ca: '{missing}'}}}}")
        expected = f"upstreams[0].tls.ca: cannot read {str(missing)!r}: No such file or directory"
    assert problems(text) == [expected]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ('{default_purpose: "Not Valid!"}', "policy.default_purpose: invalid purpose 'Not Valid!' (same grammar as labels)"),
        ("{anonymous: no}", "policy.anonymous: must be one of deny, allow, got false: YAML reads an unquoted "
                            "yes/no/on/off as a boolean"),
    ],
)  # fmt: skip
def test_policy_values_say_what_is_allowed(policy: str, expected: str) -> None:
    assert problems(BASE + f"policy: {policy}\n") == [expected]


def test_a_callers_default_purpose_has_the_purpose_grammar() -> None:
    found = problems(
        BASE + f"callers:\n  - {{name: app, api_key_sha256: '{'a' * 64}', default_purpose: 'Not Valid!'}}\n"
    )
    assert found == ["callers[0].default_purpose: invalid purpose 'Not Valid!' (same grammar as labels)"]


def test_a_nested_resource_attribute_is_refused() -> None:
    found = problems(BASE + "telemetry: {resource_attributes: {team: {name: x}}}\n")
    assert found == ["telemetry.resource_attributes.team: expected a string, number or boolean, got a mapping"]


def test_one_mistake_is_one_problem() -> None:
    unset = problems(BASE.replace('"http://127.0.0.1:8000"', '"${URL}"'))
    assert unset == ["upstreams[0].url: environment variable URL is not set (set it, or write ${URL:-default})"]
    no_listen = problems(BASE.replace('listen: {http: "127.0.0.1:0"}', ""))
    assert no_listen == ["listen: is required"]


def test_a_top_level_list_names_where() -> None:
    assert problems("- listen\n- upstreams\n") == ["(top level): expected a mapping of sections (listen, upstreams, "
                                                    "routes, ...), got a list"]  # fmt: skip


# -- what a security review found `check` passing: a restriction silently dropped or never enforced


@pytest.mark.parametrize(
    ("text", "where", "key", "first"),
    [
        (BASE + "zones:\n  - {name: a, labels: [x], allow_purposes: [p]}\npolicy: {}\nzones: []\n", "10:1", "zones", 7),
        (BASE + "zones:\n  - name: a\n    labels: [x]\n    allow_purposes: [p]\n    allow_purposes: [p, ads]\n",
         "11:5", "allow_purposes", 10),
        (BASE + "zones:\n  - {name: a, labels: [x], allow_purposes: [p], regions: [eu], regions: [eu, us]}\n",
         "8:64", "regions", 8),
        (BASE + "telemetry:\n  headers: {x-api-key: a, x-api-key: b}\n", "8:27", "x-api-key", 8),
        (BASE + "policy: {anonymous: deny, 'anonymous': allow}\n", "7:27", "anonymous", 7),
    ],
)  # fmt: skip
def test_a_key_given_twice_in_any_mapping_is_refused_with_its_place(
    tmp_path: Path, text: str, where: str, key: str, first: int
) -> None:
    """PyYAML keeps the last of two equal keys, so a second `zones:` or `allow_purposes:` silently replaced
    the restriction before it and `check` said ok."""
    path = tmp_path / "proxy.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load(path, env={})
    assert caught.value.problems == [
        f"{path}:{where}: not valid YAML: duplicate key {key!r} (first on line {first}): only the last would be read"
    ]


def test_a_merge_key_may_still_be_overridden() -> None:
    """`<<: *anchor` then a key of the anchor's is YAML's way to override, not a duplicate."""
    text = BASE + "zones:\n  - &z {name: a, labels: [x], allow_purposes: [p]}\n  - {<<: *z, name: b}\n"
    assert [zone.name for zone in parse(text, env={}).zones] == ["a", "b"]


def test_a_zone_that_requires_a_record_needs_a_store() -> None:
    zone = "zones:\n  - {name: health, labels: [health], allow_purposes: [p], require_record: true}\n"
    assert problems(BASE + zone + "lineage: {store: null}\n") == [
        "zones[0].require_record: zone 'health' requires a record, but lineage.store is null: set lineage.store, "
        "or drop require_record"
    ]
    assert parse(BASE + zone, env={}).zones[0].require_record  # the default store records
    assert problems(BASE + zone + "lineage: {store: '${STORE}'}\n") == [
        "lineage.store: environment variable STORE is not set (set it, or write ${STORE:-default})"
    ]  # said once, not again as the zone's


def test_two_callers_with_one_certificate_identity_is_a_problem(tmp_path: Path) -> None:
    from tests.certs import Authority

    authority = Authority(tmp_path)
    server = authority.issue("server", common_name="127.0.0.1", server=True)
    tls = f"{{cert: '{server.cert}', key: '{server.key}', client_ca: '{authority.pair.cert}'}}"
    callers = ("callers:\n  - {name: glasses, tls_identity: 'spiffe://example.org/glasses'}\n"
               "  - {name: batch, tls_identity: 'spiffe://example.org/glasses'}\n")  # fmt: skip
    found = problems(BASE.replace('"127.0.0.1:0"}', f'"127.0.0.1:0", tls: {tls}}}') + callers)
    assert found == ["callers[1].tls_identity: the same identity is given to two callers ('glasses' and 'batch')"]


def test_a_caller_may_not_be_named_anonymous() -> None:
    """The record, the logs and the baseline name unauthenticated calls `anonymous`: a caller of that name
    would merge with them into one flow."""
    found = problems(BASE + f"callers:\n  - {{name: anonymous, api_key_sha256: '{'a' * 64}'}}\n")
    assert found == ["callers[0].name: 'anonymous' is reserved: the record and the baseline name unauthenticated "
                     "calls so"]  # fmt: skip
    for name in ("Anonymous", "ANONYMOUS"):  # another flow, which a reader of the record takes for that one
        found = problems(BASE + f"callers:\n  - {{name: {name}, api_key_sha256: '{'a' * 64}'}}\n")
        assert found == [f"callers[0].name: {name!r} is reserved: the record and the baseline name unauthenticated "
                         "calls 'anonymous'"]  # fmt: skip


def test_check_fails_on_each_of_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from proxy.cli import main

    baseline = tmp_path / "approved.yaml"
    baseline.write_text("version: 1\nflows:\n  - caller: app\n    purpose: p\n    labels: [public]\n"
                        "    labels: ['*']\n")  # fmt: skip
    cases = {
        "dup.yaml": BASE + "zones:\n  - {name: a, labels: [x], allow_purposes: [p]}\nzones: []\n",
        "record.yaml": BASE + "zones:\n  - {name: a, labels: [x], allow_purposes: [p], require_record: true}\n"
        "lineage: {store: null}\n",
        "anonymous.yaml": BASE + f"callers:\n  - {{name: anonymous, api_key_sha256: '{'a' * 64}'}}\n",
        "baseline.yaml": BASE + f"lineage: {{baseline: '{baseline}'}}\n",
    }
    expected = {
        "dup.yaml": "duplicate key 'zones'",
        "record.yaml": "zones[0].require_record: zone 'a' requires a record",
        "anonymous.yaml": "callers[0].name: 'anonymous' is reserved",
        "baseline.yaml": f"lineage.baseline: {baseline}:6:5: not valid YAML: duplicate key 'labels'",
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        assert main(["check", "--config", str(tmp_path / name)]) == 1, name
        assert expected[name] in capsys.readouterr().err, name


def test_the_grpc_stream_window_is_an_http2_window() -> None:
    """limits.grpc_stream_window_bytes: HTTP/2's initial window at least, its largest window at most (a C int)."""
    assert any(
        p.startswith("limits.grpc_stream_window_bytes")
        for p in problems(BASE + "limits: {grpc_stream_window_bytes: 65534}")
    )
    too_large = problems(BASE + "limits: {grpc_stream_window_bytes: 2147483648}")
    assert too_large == ["limits.grpc_stream_window_bytes: 2147483648 is more than HTTP/2's largest window, 2147483647"]
    assert (
        parse(BASE + "limits: {grpc_stream_window_bytes: 2147483647}", env={}).limits.grpc_stream_window_bytes
        == 2**31 - 1
    )

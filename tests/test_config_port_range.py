"""A port out of range (`0.0.0.0:99999`) in any host:port key or URL says what a port must be: before, a listener
or a gRPC upstream got the generic "expected host:port", a URL "expected an http:// or https:// URL", which sends
a first user looking at the host or the scheme. A gRPC upstream (an address to connect to) takes no port 0."""

from __future__ import annotations

import pytest

from proxy.config import parse
from proxy.errors import ConfigError

CONFIG = """
listen: {{http: "{http}", admin: "{admin}"}}
upstreams:
  - {{name: triton, grpc: "{grpc}", protocol: oip}}
  - {{name: web, url: "{url}"}}
routes:
  - {{model: "*", upstream: triton}}
telemetry: {{exporter: otlp, endpoint: "{otlp}", protocol: grpc}}
lineage:
  openlineage: {{url: "{marquez}"}}
"""

GOOD = {"http": "127.0.0.1:0", "admin": "127.0.0.1:9090", "grpc": "127.0.0.1:8001", "url": "http://127.0.0.1:8000",
        "otlp": "127.0.0.1:4317", "marquez": "http://127.0.0.1:5000"}  # fmt: skip


def problems(**written: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(CONFIG.format(**{**GOOD, **written}))
    return caught.value.problems


def test_the_good_config_reads() -> None:
    config = parse(CONFIG.format(**GOOD))
    assert config.listen.http is not None and config.listen.http.port == 0  # a listener's 0: any free port


def test_a_listener_port_out_of_range_says_the_range() -> None:
    assert problems(http="0.0.0.0:99999", admin="[::1]:65536") == [
        "listen.http: the port must be 1-65535 (or 0: any free port), got 99999 in '0.0.0.0:99999'",
        "listen.admin: the port must be 1-65535 (or 0: any free port), got 65536 in '[::1]:65536'",
    ]


@pytest.mark.parametrize("port", ["99999", "0"])
def test_a_grpc_upstream_port_out_of_range_says_the_range(port: str) -> None:
    assert problems(grpc=f"triton:{port}") == [
        f"upstreams[0].grpc: the port must be 1-65535, got {port} in 'triton:{port}'"
    ]


def test_url_ports_out_of_range_say_the_range() -> None:
    written = {"url": "http://u:secret@model:99999/v1", "otlp": "collector:70000", "marquez": "http://marquez:123456"}
    assert problems(**written) == [
        "upstreams[1].url: the port must be 1-65535, got 99999 in 'http://u:***@model:99999/v1'",
        "telemetry.endpoint: the port must be 1-65535, got 70000 in 'collector:70000'",
        "lineage.openlineage.url: the port must be 1-65535, got 123456 in 'http://marquez:123456'",
    ]


def test_a_port_that_is_no_number_is_still_malformed() -> None:
    assert problems(http="0.0.0.0:http") == ["listen.http: expected host:port, got '0.0.0.0:http'"]

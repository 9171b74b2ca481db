"""A port written with a character that is a digit but no decimal one (`²`, `①`: `str.isdigit` is true of them, `int`
refuses them) is a problem named at its path, as any malformed address or URL is. The check a URL's port got for its
range (`_url_problem`, then `_url_port_problem`) read such a port with `int` and raised: `check` and `serve` ended in
a traceback, and no other problem of the file was said."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_config_port_range import problems


@pytest.mark.parametrize("port", ["\u00b2", "\u2460"])
def test_a_port_of_digits_no_int_reads_is_a_problem(port: str) -> None:
    written = {"url": f"http://model:{port}/v1", "otlp": f"collector:{port}", "marquez": f"http://marquez:{port}",
               "http": f"0.0.0.0:{port}", "grpc": f"triton:{port}"}  # fmt: skip
    assert problems(**written) == [
        f"listen.http: expected host:port, got '0.0.0.0:{port}'",
        f"upstreams[0].grpc: expected host:port, got 'triton:{port}'",
        f"upstreams[1].url: expected an http:// or https:// URL, got 'http://model:{port}/v1'",
        # (over gRPC, without a scheme, a host:port as a gRPC upstream's: said so since 2026-12-06, not as no URL)
        f"telemetry.endpoint: expected host:port, got 'collector:{port}'",
        f"lineage.openlineage.url: expected an http(s):// URL, got 'http://marquez:{port}'",
    ]


def test_check_says_the_problem_without_a_traceback(tmp_path: Path) -> None:
    config = tmp_path / "proxy.yaml"
    config.write_text(
        'upstreams:\n  - {name: web, url: "http://127.0.0.1:\u00b2"}\nroutes:\n  - {model: "*", upstream: web}\n'
    )
    root = str(Path(__file__).parent.parent)  # this tree's proxy, not the one installed
    done = subprocess.run([sys.executable, "-m", "proxy", "check", "--config", str(config)], capture_output=True,
                          text=True, timeout=60, cwd=root, env={**os.environ, "PYTHONPATH": root})  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert (
        "upstreams[0].url: expected an http:// or https:// URL, got 'http://127.0.0.1:\u00b2'"
        in done.stdout + done.stderr
    )


def test_a_postgresql_store_port_of_digits_no_int_reads_is_a_problem() -> None:
    """The same read of the store URL's port (not today's code, the same fault): a traceback before."""
    from proxy.config import parse
    from proxy.errors import ConfigError

    text = 'listen: {http: "127.0.0.1:0"}\nupstreams:\n  - {name: web, url: "http://m:8000"}\nroutes:\n  - {model: "*", upstream: web}\n'
    with pytest.raises(ConfigError) as caught:
        parse(text + 'lineage:\n  store: "postgresql://u@h:\u00b2/db"\n')
    assert caught.value.problems == ["lineage.store: the PostgreSQL URL's port '\u00b2' is not a port (1-65535)"]


FULLWIDTH = (
    "\uff18\uff10\uff10\uff11"  # `８００１`: decimal digits `int` reads as 8001, no URL reader, grpc nor libpq does
)


def test_a_port_of_digits_not_asciis_is_a_problem() -> None:
    """Found by the reread of 2026-12-06: `int` reads `８００１` as 8001, so an address and a store's URL took it (a
    listener listened on 8001, a gRPC upstream and a store never connected: grpc's resolver and libpq refuse it),
    and a URL was refused as no http:// URL, which sends a user looking at the scheme."""
    written = {"url": f"http://model:{FULLWIDTH}/v1", "otlp": f"collector:{FULLWIDTH}",
               "marquez": f"http://marquez:{FULLWIDTH}", "http": f"0.0.0.0:{FULLWIDTH}", "grpc": f"triton:{FULLWIDTH}"}  # fmt: skip
    said = f"the port must be written in ASCII digits (0-9), got {FULLWIDTH} in "
    assert problems(**written) == [
        f"listen.http: {said}'0.0.0.0:{FULLWIDTH}'",
        f"upstreams[0].grpc: {said}'triton:{FULLWIDTH}'",
        f"upstreams[1].url: {said}'http://model:{FULLWIDTH}/v1'",
        f"telemetry.endpoint: {said}'collector:{FULLWIDTH}'",
        f"lineage.openlineage.url: {said}'http://marquez:{FULLWIDTH}'",
    ]


def test_a_postgresql_store_port_of_digits_not_asciis_is_a_problem() -> None:
    from proxy.config import parse
    from proxy.errors import ConfigError

    text = 'listen: {http: "127.0.0.1:0"}\nupstreams:\n  - {name: web, url: "http://m:8000"}\nroutes:\n  - {model: "*", upstream: web}\n'
    with pytest.raises(ConfigError) as caught:
        parse(text + f'lineage:\n  store: "postgresql://u:s3cret@h:{FULLWIDTH}/db"\n')
    assert caught.value.problems == [
        f"lineage.store: the port must be written in ASCII digits (0-9), got {FULLWIDTH} in the PostgreSQL URL"
    ]


@pytest.mark.parametrize("url", ["http://model :8000/v1", "http:// model:8000", "http://model: 8000"])
def test_a_urls_host_holding_white_space_is_a_problem(url: str) -> None:
    """Found by the reread of 2026-12-06: `http://model :8000` loaded at every URL key, host `model ` to urllib and
    yarl, which no resolver finds: each call failed at connect, after `check` said ok."""
    written = {"url": url, "marquez": url.replace("model", "marquez"), "otlp": url.replace("model", "collector")}
    assert problems(**written) == [
        f"upstreams[1].url: a host:port holds no white space in {url!r}",
        # (over gRPC its path hidden, as an address's: quoted until the review of 2026-12-06)
        f"telemetry.endpoint: a host:port holds no white space in {written['otlp'].replace('/v1', '/***')!r}",
        f"lineage.openlineage.url: a host:port holds no white space in {written['marquez']!r}",
    ]


@pytest.mark.parametrize("url", ["http://[::1] :8000/v1", "http://[::1] /v1", "http://[::1]\u00a0:8000"])
def test_an_ipv6_hosts_url_holding_white_space_after_it_is_a_problem(url: str) -> None:
    """Found reviewing urls3's change (2026-12-06): white space after an IPv6 address's `]` (`http://[::1] :8000`) was
    not in what the check read (urllib's `hostname`, `::1`), so it loaded at every URL key, where yarl (aiohttp)
    raises `Invalid IPv6 URL` and urllib3 (requests: OpenLineage's http transport) `contains invalid character`."""
    written = {"url": url, "marquez": url, "otlp": url}
    assert problems(**written) == [
        f"upstreams[1].url: a host:port holds no white space in {url!r}",
        f"telemetry.endpoint: a host:port holds no white space in {url.replace('/v1', '/***')!r}",
        f"lineage.openlineage.url: a host:port holds no white space in {url!r}",
    ]

"""`lineage.sidecar`: which sidecar of a fleet a proxy is, named once in its config (default: the host name)."""

from __future__ import annotations

import socket

import pytest

from proxy.config import parse
from proxy.config.model import host_sidecar
from proxy.errors import ConfigError
from proxy.server import as_reloaded

BASE = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: u, url: "http://127.0.0.1:9"}]
routes: [{model: "*", upstream: u}]
policy: {anonymous: allow, default_purpose: assistant}
"""


def sidecar_problems(lineage: str) -> list[str]:
    try:
        parse(BASE + f"lineage: {lineage}\n", env={"SIDECAR": "from-env"})
    except ConfigError as exc:
        return [problem for problem in exc.problems if problem.startswith("lineage.sidecar")]
    return []


def test_a_named_sidecar_is_kept_as_written() -> None:
    assert parse(BASE + "lineage: {sidecar: model-a.eu_1}\n", env={}).lineage.sidecar == "model-a.eu_1"
    assert parse(BASE + 'lineage: {sidecar: "${SIDECAR}"}\n', env={"SIDECAR": "from-env"}).lineage.sidecar == "from-env"


def test_without_one_the_host_name_is_the_sidecar() -> None:
    assert parse(BASE + "lineage: {store: ./x.db}\n", env={}).lineage.sidecar == host_sidecar()
    assert parse(BASE, env={}).lineage.sidecar == host_sidecar()  # no lineage section at all
    assert host_sidecar() == socket.gethostname()  # a host name is a name as written


def test_a_host_name_a_name_cannot_hold_is_written_as_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "_host name\n" + "x" * 200)
    assert host_sidecar() == "host-name-" + "x" * 118
    monkeypatch.setattr(socket, "gethostname", lambda: "...")
    assert host_sidecar() == "unnamed"


@pytest.mark.parametrize(
    ("written", "why"),
    [
        ('"model a"', "invalid name 'model a'"),
        ('"a\\u202eb"', "invalid name 'a\\u202eb'"),
        ('"-a"', "invalid name '-a'"),
        ('""', "expected a non-empty string"),
        ("null", "expected a non-empty string"),
        ('"' + "a" * 129 + '"', "(129 characters;"),
    ],
)
def test_a_name_that_is_not_one_is_refused_saying_why(written: str, why: str) -> None:
    (problem,) = sidecar_problems(f"{{sidecar: {written}}}")
    assert why in problem, problem
    assert ("letters, digits, '.', '_', '-'" in problem) == ("invalid name" in why or "characters;" in why)


def test_a_reload_keeps_the_sidecar_the_process_started_with() -> None:
    current = parse(BASE + "lineage: {sidecar: model-a}\n", env={})
    new = parse(BASE + "lineage: {sidecar: model-b}\n", env={})
    reloaded = as_reloaded(current, new)
    assert reloaded is not None and reloaded.lineage.sidecar == "model-a"


def test_the_compose_example_names_a_sidecar_that_outlives_its_container(monkeypatch: pytest.MonkeyPatch) -> None:
    """A container's host name is its id: a new one each time `docker compose up` makes it again, while its store (the
    `lineage` volume) stays. Left to the default, each recreated proxy split every flow into a new edge, recorded by
    a container id nobody can trace. (The Kubernetes example names its deployment.)"""
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "config" / "compose-proxy.yaml"
    names = set()
    for host in ("3f2a9c1b7d4e", "8c0d51e2aa97"):  # two containers of the same service, one after the other
        monkeypatch.setattr(socket, "gethostname", lambda host=host: host)
        names.add(parse(path.read_text(), env={}).lineage.sidecar)
    assert names == {"lineage-proxy"}

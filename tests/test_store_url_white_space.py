"""A PostgreSQL `lineage.store` whose host:port holds white space, or one written as libpq's key=value pairs: refused
at load, as an HTTP URL's white space is (`a host:port holds no white space`), the password hidden. libpq drops a
space around a URL's host (`@triton :5432` is host `triton` to it) but keeps a tab or a no-break space
(`triton\\t`, which no resolver finds), and a `%20` or a `?host=` parameter's; so `check` passed a store that a space
made mean one host and a tab another, or none. And `host=db dbname=lineage`, libpq's other form, loaded as a SQLite
file's name, the edges written to a file so named in the working directory, never to the database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from psycopg import conninfo

from proxy.config import parse
from proxy.errors import ConfigError

BASE = 'listen: {http: "127.0.0.1:0"}\nupstreams: [{name: u, url: "http://h:1"}]\nroutes: [{model: "*", upstream: u}]\n'
SECRET = "s3cretXYZ"
SPACED = "lineage.store: a host:port holds no white space in "


def problems(store: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(BASE + f"lineage: {{store: {json.dumps(store)}}}\n", env={})
    assert not any(SECRET in problem for problem in caught.value.problems), caught.value.problems
    return caught.value.problems


@pytest.mark.parametrize(
    ("store", "shown"),
    [
        (f"postgresql://u:{SECRET}@triton :5432/db", "postgresql://u:***@triton :5432/db"),
        (f"postgresql://u:{SECRET}@ triton:5432/db", "postgresql://u:***@ triton:5432/db"),
        (f"postgresql://u:{SECRET}@triton: 5432/db", "postgresql://u:***@triton: 5432/db"),
        (f"postgresql://u:{SECRET}@triton:5432 /db", "postgresql://u:***@triton:5432 /db"),
        (f"postgresql://u:{SECRET}@triton\t:5432/db", "postgresql://u:***@triton\t:5432/db"),
        (f"postgres://u:{SECRET}@triton\u00a0:5432/db", "postgres://u:***@triton\u00a0:5432/db"),
    ],
)
def test_a_store_whose_host_port_holds_white_space_is_refused(store: str, shown: str) -> None:
    assert problems(store) == [SPACED + repr(shown)]


def test_libpq_reads_such_a_store_as_another_host_or_none() -> None:
    """Why: what libpq makes of them, a space dropped, a tab kept in the host's name."""
    assert conninfo.conninfo_to_dict("postgresql://u:p@triton :5432/db")["host"] == "triton"
    assert conninfo.conninfo_to_dict("postgresql://u:p@triton\t:5432/db")["host"] == "triton\t"


@pytest.mark.parametrize(
    "store",
    [
        f"postgresql://u:{SECRET}@triton%20:5432/db",
        f"postgresql://u:{SECRET}@triton/db?host=tri%20ton",
        f"postgresql://u:{SECRET}@db1,db%09/db",
    ],
)
def test_a_store_whose_host_is_read_holding_white_space_is_refused(store: str) -> None:
    assert problems(store) == ["lineage.store: the PostgreSQL URL's host holds white space, which no host does"]


@pytest.mark.parametrize(
    "store",
    [
        f"host=triton port=5432 dbname=lineage user=u password={SECRET}",
        "dbname=lineage",
        " host = triton dbname='edges' ",
        # found reviewing (2026-12-06): pairs libpq refuses, a key mistyped or unknown, a quote left open, a key in
        # capitals, loaded as a SQLite file's name, the password in it
        f"host=triton dbname=lineage password={SECRET} sslmod=require",
        f"host=triton dbname='lineage password={SECRET}",
        f"HOST=triton DBNAME=lineage password={SECRET}",
        f"sslmod=require host=triton dbname=lineage password={SECRET}",
    ],
)
def test_a_store_written_as_libpqs_key_value_pairs_is_refused(store: str) -> None:
    assert problems(store) == [
        "lineage.store: a PostgreSQL store is a postgresql:// URL, postgresql://user@host:5432/DB, not libpq's "
        "key=value pairs, which would be a SQLite file's name (write ./ before one so named)"
    ]


@pytest.mark.parametrize(
    "store",
    [
        "postgresql://u:p@triton:5432/db",
        "postgresql://u:p%20w@triton:5432/db",  # (a password holding a space: no host's)
        "postgresql://u:p@/db?host=%2Frun%2Fmy%20sockets",  # (a socket's directory may hold one)
        "postgresql://u:p@db1:5432,db2:5433/db",
        "./dbname=lineage",  # (a SQLite file so named)
        "runs=3/lineage.db",  # (`runs` is no libpq key)
        "runs=3 host/lineage.db",  # (nor `runs`, the one key: `host` is no key, no `=` after it)
        "data/host=a/lineage.db",  # (a directory so named: no key begins the store or follows white space)
        "./runs/my port=5.db",  # (a path: it begins with no key, so `./` before a name so made loads it)
        "lineage.db",
    ],
)
def test_other_stores_still_load(store: str) -> None:
    assert parse(BASE + f"lineage: {{store: {json.dumps(store)}}}\n", env={}).lineage.store == store


def test_check_says_a_stores_white_space_without_its_password(tmp_path: Path) -> None:
    """`lineage-proxy check` says it through the CLI, listing it with the OTLP endpoint's problem."""
    config = tmp_path / "proxy.yaml"
    config.write_text(BASE + f'lineage: {{store: "postgresql://u:{SECRET}@triton\\t:5432/db"}}\n'
                      'telemetry: {exporter: otlp, endpoint: "dns://8.8.8.8/collector:4317"}\n')  # fmt: skip
    root = str(Path(__file__).parent.parent)  # this tree's proxy, not the one installed
    done = subprocess.run([sys.executable, "-m", "proxy", "check", "--config", str(config)], capture_output=True,
                          text=True, timeout=60, cwd=root, env={**os.environ, "PYTHONPATH": root})  # fmt: skip
    said = done.stdout + done.stderr
    assert done.returncode == 1 and "Traceback" not in said and SECRET not in said, said
    assert SPACED + repr("postgresql://u:***@triton\t:5432/db") in said, said
    assert "telemetry.endpoint: a dns: endpoint naming a DNS server, 'dns://8.8.8.8/***'" in said, said

"""A writer whose role lacks a privilege a write or a purge needs is refused at its start, with what is missing
and the GRANT that gives it, as a database that answers "no" is: one missing `USAGE` on the chain's sequence started
ready, and every write of the fleet sidecar then failed into its journal for as long as it ran (logged as an
outage, "replayed when it answers", which never came); one missing `DELETE` wrote, and its retention purge
failed every hour, so nothing expired."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from proxy.errors import StartupError
from proxy.record.postgres import PostgresStore
from proxy.record.store import EdgeKey
from tests.servers.postgres import PostgresServer

KEY = EdgeKey("svc", "assistant", "team-a", "ckpt", "team-a", "allow", "")


def _store_with_role(postgres: PostgresServer, role: str, *grants: str) -> str:
    url = postgres.database()
    name = url.rsplit("/", 1)[1].split("?")[0]
    owner = PostgresStore(url)  # the first start, by a role that may create the tables
    owner.upsert([(KEY, 1.0, 1.0, 1, None)])
    owner.close()
    role = f"{name}_{role}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        conn.execute(f"CREATE ROLE {role} LOGIN")
        for grant in grants:
            conn.execute(grant.format(role=role))
    return url.replace("postgres@", f"{role}@")


TABLES = "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"
SEQUENCE = "GRANT USAGE ON SEQUENCE chain_seq_seq TO {role}"


def test_a_writer_without_the_chains_sequence_is_refused_at_its_start(postgres: PostgresServer) -> None:
    url = _store_with_role(postgres, "noseq", TABLES)
    with pytest.raises(StartupError) as refused:
        PostgresStore(url, wait_for_server=True).close()
    message = str(refused.value)
    assert "USAGE on sequence" in message and "chain_seq_seq" in message, message
    assert "GRANT USAGE ON SEQUENCE" in message, message


def test_a_writer_that_may_not_delete_is_refused_at_its_start(postgres: PostgresServer) -> None:
    url = _store_with_role(postgres, "nodel", "GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {role}",
                           SEQUENCE)  # fmt: skip
    with pytest.raises(StartupError) as refused:
        PostgresStore(url, wait_for_server=True).close()
    message = str(refused.value)
    assert "DELETE on edges" in message and "DELETE on chain" in message, message


def test_a_writer_with_what_the_readme_names_starts_and_writes(postgres: PostgresServer) -> None:
    url = _store_with_role(postgres, "writer", TABLES, SEQUENCE)
    store = PostgresStore(url, wait_for_server=True)
    try:
        store.upsert([(KEY, 2.0, 2.0, 1, None)])
        assert {r.key: r.count for r in store.rows()} == {KEY: 2}
    finally:
        store.close()


def test_serve_says_so_in_one_line_and_exits_1(postgres: PostgresServer, tmp_path: Path) -> None:
    url = _store_with_role(postgres, "served", TABLES)
    config = tmp_path / "proxy.yaml"
    config.write_text(
        "listen: {http: 127.0.0.1:0}\n"
        "upstreams: [{name: up, url: 'http://127.0.0.1:9'}]\n"
        "routes: [{model: '*', upstream: up}]\n"
        f"lineage: {{store: '{url}', journal: '{tmp_path / 'journal.db'}'}}\n"
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-m", "proxy", "serve", "--config", str(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stderr is not None
        said = proc.stdout.readline()  # "lineage-proxy ready ..." once serving; "" once it exited
        assert "ready" not in said, "it started, and would journal every write for as long as it ran"
        assert proc.wait(60) == 1
        error = proc.stderr.read()
        assert "USAGE on sequence" in error and "GRANT USAGE ON SEQUENCE" in error, error
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)

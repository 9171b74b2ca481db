"""The writer's privilege check at its start (`PostgresStore._may_write`) refuses only a role that cannot write: a
role that may write by another grant than the README's starts and writes."""

from __future__ import annotations

import pytest

from proxy.record.postgres import PostgresStore
from tests.record.test_postgres_writer_privileges import KEY, SEQUENCE, TABLES, _store_with_role
from tests.servers.postgres import PostgresServer


@pytest.mark.parametrize(
    "grants",
    [
        # nextval takes USAGE or UPDATE on its sequence (PostgreSQL's manual, "Sequence Manipulation Functions")
        (TABLES, "GRANT UPDATE ON SEQUENCE chain_seq_seq TO {role}"),
        (TABLES, "GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}"),
        ("CREATE ROLE {role}_grp NOLOGIN", TABLES.replace("{role}", "{role}_grp"),
         SEQUENCE.replace("{role}", "{role}_grp"), "GRANT {role}_grp TO {role}"),
        ("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO PUBLIC",
         "GRANT USAGE ON SEQUENCE chain_seq_seq TO PUBLIC"),
        ("ALTER ROLE {role} SUPERUSER",),
    ],
    ids=["sequence-update", "all-sequences", "through-a-role", "public", "superuser"],
)  # fmt: skip
def test_a_role_that_may_write_starts_and_writes(postgres: PostgresServer, grants: tuple[str, ...]) -> None:
    url = _store_with_role(postgres, "w", *grants)
    store = PostgresStore(url, wait_for_server=True)
    try:
        store.upsert([(KEY, 2.0, 2.0, 1, None)])
        assert {r.key: r.count for r in store.rows()} == {KEY: 2}
    finally:
        store.close()


def test_a_reader_with_select_alone_reads(postgres: PostgresServer) -> None:
    """`edges`, `verify` and `report` open the store read-only: `SELECT` is all they take (the writer's check is not
    theirs)."""
    url = _store_with_role(postgres, "r", "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
    store = PostgresStore(url, readonly=True)
    try:
        assert {r.key: r.count for r in store.rows()} == {KEY: 1}
    finally:
        store.close()

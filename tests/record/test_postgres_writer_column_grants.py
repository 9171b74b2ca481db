"""A writer's privileges granted column by column count column by column: a role that may insert into some of
`edges`' columns but not all its upsert names (a DBA's grant written before the table gained `sidecar`) passed the
check at the start, which asked only whether it may insert into any column; then every write failed, journaled for as
long as it ran, as an outage that never ends. It is refused at its start now, naming the columns, and a role whose
column grants cover what the writes name still starts and writes."""

from __future__ import annotations

import pytest

from proxy.errors import StartupError
from proxy.record.postgres import PostgresStore
from tests.record.test_postgres_writer_privileges import KEY, SEQUENCE, _store_with_role
from tests.servers.postgres import PostgresServer

BEFORE_SIDECAR = ("caller, purpose, input_labels, checkpoint, output_labels, decision, first_seen, last_seen, count, "
                  "rule, reason")  # fmt: skip
UPSERTED = "count, first_seen, last_seen, reason"  # what the upsert's ON CONFLICT DO UPDATE sets
OTHERS = (
    "GRANT SELECT, INSERT, DELETE ON chain, applied TO {role}",
    "GRANT SELECT, INSERT, UPDATE ON meta TO {role}",
    SEQUENCE,
)


def test_a_writer_that_may_insert_into_some_of_edges_columns_only_is_refused_at_its_start(
    postgres: PostgresServer,
) -> None:
    url = _store_with_role(postgres, "cols", "GRANT SELECT, DELETE ON edges TO {role}",
                           f"GRANT INSERT ({BEFORE_SIDECAR}) ON edges TO {{role}}",
                           f"GRANT UPDATE ({UPSERTED}) ON edges TO {{role}}", *OTHERS)  # fmt: skip
    with pytest.raises(StartupError) as refused:
        PostgresStore(url, wait_for_server=True).close()
    message = str(refused.value)
    assert "lacks INSERT on edges (its columns sidecar);" in message, message
    assert "GRANT SELECT, INSERT, UPDATE, DELETE ON edges" in message, message


def test_a_writer_that_may_update_too_few_of_edges_columns_is_refused_naming_them(postgres: PostgresServer) -> None:
    url = _store_with_role(postgres, "upd", "GRANT SELECT, INSERT, DELETE ON edges TO {role}",
                           "GRANT UPDATE (count, last_seen) ON edges TO {role}", *OTHERS)  # fmt: skip
    with pytest.raises(StartupError) as refused:
        PostgresStore(url, wait_for_server=True).close()
    message = str(refused.value)
    assert "lacks UPDATE on edges (its columns first_seen, reason);" in message, message


def test_a_writer_whose_column_grants_cover_its_writes_starts_writes_and_purges(postgres: PostgresServer) -> None:
    url = _store_with_role(postgres, "enough", "GRANT SELECT, DELETE ON edges TO {role}",
                           f"GRANT INSERT ({BEFORE_SIDECAR}, sidecar) ON edges TO {{role}}",
                           f"GRANT UPDATE ({UPSERTED}) ON edges TO {{role}}",
                           "GRANT SELECT, DELETE ON chain, applied TO {role}",
                           "GRANT INSERT (at, body, prev, hash) ON chain TO {role}",
                           "GRANT INSERT ON applied TO {role}",
                           "GRANT SELECT, INSERT ON meta TO {role}", "GRANT UPDATE (value) ON meta TO {role}",
                           SEQUENCE)  # fmt: skip
    store = PostgresStore(url, wait_for_server=True, sidecar="model-a")
    try:
        store.upsert([(KEY, 2.0, 2.0, 1, "why")])
        assert store.apply([(KEY, 3.0, 3.0, 1, None)], "token-1")
        later = 86400.0 * 3
        store.upsert([(KEY._replace(caller="later"), later, later, 1, None)])
        assert store.purge(1, now=later) == 2  # the owner's edge and this writer's, both last seen at 3.0 or before
        assert [(r.key.caller, r.sidecar) for r in store.rows()] == [("later", "model-a")]
        assert store.integrity().intact
    finally:
        store.close()

"""A journaled edge is the sidecar's that journaled it, whoever replays it. Replayed as the replaying sidecar's
(`lineage.sidecar` as it is now), the calls a sidecar served during a database outage were filed under its new name
once it was renamed while its journal held them, and under another host's once the journal was carried there."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import psycopg
import pytest

from proxy.errors import StartupError
from proxy.record.journal import FORMAT, Journal, JournaledStore
from proxy.record.postgres import PostgresStore
from proxy.record.store import flat
from tests.record.test_postgres import KEY
from tests.servers.postgres import PostgresServer
from tests.test_unclean_stop_said import ROOT
from tests.test_workers import Serve, chat

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: vllm, url: "UPSTREAM"}]
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: "STORE", journal: "JOURNAL", sidecar: NAME}
"""
PROBE = "import proxy; print(proxy.__file__)"


def by_sidecar(url: str) -> dict[tuple[str, str], int]:
    """(caller, sidecar): count, as the store holds them."""
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT caller, sidecar, count FROM edges").fetchall()
    return {(caller, sidecar): count for caller, sidecar, count in rows}


def test_a_backlog_journaled_by_a_renamed_sidecar_is_recorded_as_the_name_it_was_served_by(  # type: ignore[no-untyped-def]
    postgres: PostgresServer, vllm, tmp_path: Path
) -> None:
    _, upstream = vllm
    store = postgres.database()
    journal = tmp_path / "journal.db"

    def serve(name: str) -> Serve:
        config = tmp_path / f"{name}.yaml"
        config.write_text(CONFIG.replace("UPSTREAM", upstream).replace("STORE", store)
                          .replace("JOURNAL", str(journal)).replace("NAME", name))  # fmt: skip
        return Serve([sys.executable, "-m", "proxy", "serve", "--config", str(config)], env={"PYTHONPATH": str(ROOT)})

    probe = Serve([sys.executable, "-c", PROBE], env={"PYTHONPATH": str(ROOT)})  # this tree's code is what serves
    probe.wait(str(ROOT / "proxy" / "__init__"), out=True)
    assert probe.proc.wait(30) == 0
    first = serve("model-a")
    again: Serve | None = None
    try:
        url = f"http://{first.ready()['http']}"
        postgres.stop()
        try:
            assert chat(url) == 200 and chat(url) == 200  # served, and journaled: the database is away
            assert first.stop() == 0, "".join(first.err)  # its last replay finds the database away: kept
        finally:
            postgres.start()
        backlog = Journal(journal)
        try:
            assert backlog.held() >= 1, "nothing was journaled"
        finally:
            backlog.close()
        again = serve("model-b")  # the same sidecar, renamed (or its journal carried to host model-b)
        again.ready()
        assert again.stop() == 0, "".join(again.err)  # its replay, at the latest the bounded one at its stop
    finally:
        first.end()
        if again is not None:
            again.end()
    left = Journal(journal)
    try:
        assert left.held() == 0
    finally:
        left.close()
    assert by_sidecar(store) == {("anonymous", "model-a"): 2}


def test_a_journal_carried_to_another_sidecar_replays_each_batch_as_its_own(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    """The store level: a batch is replayed as the sidecar that journaled it; one journaled by the release before
    (11-item rows, format 1) as the replaying sidecar's, which it was; a batch whose rows name two is set aside."""
    url = postgres.database()
    path = tmp_path / "journal.db"
    journal = Journal(path)
    journal.append("a-1", [flat((KEY, 1.0, 1.0, 3, None), "model-a")])
    journal.append("old-1", [flat((KEY._replace(caller="old"), 1.0, 1.0, 2, None))])  # as the release before did
    journal.append("mixed-1", [flat((KEY._replace(caller="mixed"), 1.0, 1.0, 1, None), name) for name in ("x", "y")])
    batches = journal.oldest()
    assert [(token, sidecar) for _, token, _, sidecar in batches] == [("a-1", "model-a"), ("old-1", None),
                                                                      ("mixed-1", None)]  # fmt: skip
    assert isinstance(batches[2][2], str) and "more than one sidecar" in batches[2][2]
    journal.close()
    store = JournaledStore(PostgresStore(url, sidecar="model-b"), Journal(path))
    store._backlog = True
    while store.replay():
        pass
    assert store.journal.held() == 0 and store.rejected == 1
    store.upsert([(KEY, 2.0, 2.0, 1, None)])  # its own write: its own name
    assert by_sidecar(url) == {("svc", "model-a"): 3, ("old", "model-b"): 2, ("svc", "model-b"): 1}
    assert store.integrity().intact
    store.close()


def test_a_journal_of_a_later_format_is_refused_at_the_start(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    Journal(path).close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone() == (str(FORMAT),)
    with db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'format'", (str(FORMAT + 1),))
    db.close()
    with pytest.raises(StartupError, match="by a later release"):
        Journal(path)

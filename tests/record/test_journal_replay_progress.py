"""A replay slice (`REPLAY_SLICE_S`, 0.1 s) replays one journaled batch at least. The slice's time was checked
before each batch, the first included, and after the page of batches was read: a first page that takes longer
than the slice to read (100 batches, each a flush of up to every flow counted in memory: a large backlog's
JSON), or a writer thread the CPU kept waiting that long, stopped every slice before its first batch, and the
backlog never moved while the database answered (its writes joining the journal's end until it was full).
Here the slice is 0 s, which every read of the page overruns."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.record import journal
from proxy.record.journal import Journal, JournaledStore
from proxy.record.postgres import PostgresStore
from tests.record.test_postgres import KEY, counts
from tests.servers.postgres import PostgresServer


def test_each_replay_slice_replays_a_batch_however_long_reading_the_page_takes(
    postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = postgres.database()
    store = JournaledStore(PostgresStore(url), Journal(tmp_path / "journal.db"))
    postgres.stop()
    try:
        for n in range(3):
            store.upsert([(KEY._replace(caller=f"c{n}"), 1.0, 1.0, 1, None)])
        assert store.journal.held() == 3
    finally:
        postgres.start()
    monkeypatch.setattr(journal, "REPLAY_SLICE_S", 0.0)  # every slice overrun before its first batch
    store._next_try = 0.0  # the retry is due now (instead of RETRY_S later)
    store.upsert([])  # the aggregator's tick: one slice
    for _ in range(5):  # and the next slices, as the aggregator asks for them while `replay` says more waits
        if not store.replay():
            break
    assert store.journal.held() == 0, "the backlog did not move"  # was 3, whatever the number of slices
    assert counts(url) == {(f"c{n}", *KEY[1:]): 1 for n in range(3)}
    store.close()

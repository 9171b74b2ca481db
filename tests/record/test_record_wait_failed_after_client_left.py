"""A new flow's reply waits for its first edge write (`Exchange.recorded`); a client that leaves meanwhile (its timeout),
or a drain that cuts the call, cancels the wait, never the write. When that write then fails (the store's write lock
held past its 3 s busy timeout by a `sqlite3` shell's transaction, a disk full), the edge sink says so in its outage
line and keeps the count for the next write, but the future the wait was cancelled from was left holding the failure:
asyncio logged `Future exception was never retrieved` with the store's traceback, an ERROR line of its own for every
such call (14 of them at one SIGTERM behind a locked store). Now none, and the call's count still reaches the store."""

from __future__ import annotations

import asyncio
import gc
import logging
from pathlib import Path
from typing import Any

import openai
import pytest

from proxy.record.store import SqliteStore
from tests.record.test_reply_waiting_for_record_unanswered import GIVES_UP_S, HTTP_CONFIG, write_locked
from tests.record.test_store_waits import until
from tests.servers.otlp_receiver import OtlpReceiver
from tests.servers.vllm_like import SERVED


def _counted(store: Path, labels: str) -> int:
    kept = SqliteStore(store, readonly=True)
    try:
        return sum(row.count for row in kept.rows() if row.key.input_labels == labels)
    finally:
        kept.close()


def test_a_first_write_failing_after_its_client_left_is_said_once_and_its_count_kept(
    tmp_path: Path, vllm: Any, make_proxy: Any, loop_thread: Any, otlp: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    _, upstream = vllm
    store = tmp_path / "lineage.db"
    proxy = make_proxy(HTTP_CONFIG, UPSTREAM=upstream, STORE=str(store), OTLP=f"http://127.0.0.1:{otlp.port}")
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="unused", timeout=GIVES_UP_S, max_retries=0)
    failing = "lineage store: writes are failing (database is locked)"
    with write_locked(store):  # held past the write's busy timeout: it fails
        for labels in ("fresh", "fresher"):
            with pytest.raises(openai.APITimeoutError):
                client.chat.completions.create(model=SERVED, messages=[{"role": "user", "content": "hi"}],
                                               extra_headers={"x-data-labels": labels})  # fmt: skip
        until(lambda: not proxy.process._http.connections)  # the proxy saw the clients leave
        until(lambda: any(r.getMessage().startswith(failing) for r in caplog.records))
        for _ in range(3):  # the failure handed to the loop, its callbacks run, the futures let go
            loop_thread.run(asyncio.sleep(0))
        gc.collect()
    unretrieved = [r.getMessage() for r in caplog.records if "never retrieved" in r.getMessage()]
    assert not unretrieved, unretrieved
    assert [r.getMessage() for r in caplog.records if r.name == "lineage_proxy.edges"] == [
        f"{failing}; calls go on and their counts are kept in memory until it takes writes again (logged once per "
        "outage)"
    ]
    until(lambda: _counted(store, "fresh") == _counted(store, "fresher") == 1)  # written by the next flush that can

"""A whole reply waits for its call's record only when there is one to wait for (`Exchange.recording`): a new
flow's reply is written once its first edge is durable, a known flow's at once, with no coroutine made to find
that out (`HttpIngress._forward`)."""

from __future__ import annotations

import concurrent.futures
import threading
from typing import Any

from tests.configs import ONE_UPSTREAM_STORED
from tests.harness import LoopThread
from tests.record.test_postgres import calls


def test_a_new_flow_s_reply_waits_for_its_first_edge_and_a_known_flow_s_does_not(
    vllm: Any, make_proxy: Any, loop_thread: LoopThread
) -> None:
    _, upstream = vllm
    proxy = make_proxy(ONE_UPSTREAM_STORED, UPSTREAM=upstream)
    assert loop_thread.run(calls(proxy.url, ["known"])) == [200]
    edges: Any = proxy.process.runtime.sinks.get("edges")
    store = edges._store  # the store's own object (proxy.record.store: not compiled), held at its write
    entered, release = threading.Event(), threading.Event()
    upsert = store.upsert

    def held(rows: list[Any]) -> None:
        entered.set()
        release.wait(60)
        upsert(rows)

    store.upsert = held
    try:
        new = concurrent.futures.Future[list[int]]()
        threading.Thread(target=lambda: new.set_result(loop_thread.run(calls(proxy.url, ["new"]), timeout=90))).start()
        assert entered.wait(30)  # the new flow's first edge is being written
        assert loop_thread.run(calls(proxy.url, ["known"]), timeout=30) == [200]  # a known flow's reply: not held
        assert not new.done()  # the new flow's reply waits for its write
        release.set()
        assert new.result(60) == [200]
    finally:
        release.set()
        store.upsert = upsert

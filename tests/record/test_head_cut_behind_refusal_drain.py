"""A request head only partly read behind an answer that closes its connection is recorded with that answer's cause
(`HttpServer.record_unserved`, helpers records4 and revrecords4). When a SIGTERM's drain began while that answer waited
for its call's record to be written (a new flow, held for the store's write), the head was recorded `drain_timeout`,
"lineage-proxy stopped (SIGTERM) before this request's head had arrived whole", and counted in the drain's warning as
one it cut off: but the answer closed the connection whatever the drain did, and the drain cut nothing (its time had not
run out). It is now recorded refused as the call before it; a drain whose time runs out first still cuts it (`cut`:
`drain_timeout`, as before). The answer reached here is an internal error's (500, `internal_error`: the handler's
forwarding made to fail), the one such answer whose call is read, so recorded with an edge whose write is waited for."""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from proxy.ingress.http import HttpIngress
from tests.harness import LoopThread
from tests.held import until
from tests.record.test_behind_upgrade_follow_ups import _read_all
from tests.record.test_head_cut_behind_close import CUT
from tests.record.test_reply_waiting_for_record_unanswered import write_locked
from tests.servers.otlp_receiver import OtlpReceiver
from tests.test_drain_stop_records import Upstream, _post, upstream

__all__ = ["upstream"]  # the fixture, imported

# it replaces a method the compiled http ingress calls (tests/conftest.py: run with the modules interpreted)
pytestmark = pytest.mark.interpreted

CONFIG = """
listen: {http: "127.0.0.1:0"}
upstreams: [{name: llm, url: "${UPSTREAM}"}]
routes: [{model: "*", upstream: llm}]
policy: {anonymous: allow, default_purpose: assistant}
telemetry: {exporter: otlp, endpoint: "${OTLP}"}
lineage: {store: "${STORE}"}
limits: {drain_timeout_s: 30}
"""


def test_a_head_cut_behind_an_answer_closing_its_connection_keeps_its_cause_when_the_drain_begins_meanwhile(
    upstream: tuple[Upstream, str], otlp: OtlpReceiver, make_proxy: Any, loop_thread: LoopThread,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    failed = threading.Event()

    async def broken(*args: Any, **kwargs: Any) -> None:
        failed.set()
        raise RuntimeError("a defect of the proxy's, made for this test")

    monkeypatch.setattr(HttpIngress, "_forward", broken)
    _, url = upstream
    proxy = make_proxy(CONFIG, UPSTREAM=url, OTLP=f"http://127.0.0.1:{otlp.port}")
    first = f"{0x9C0:032x}"
    http = proxy.process._http
    with socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=10) as sock:
        # the call's flow is new: its answer waits for the store's write, which another connection's lock holds
        with write_locked(Path(proxy.process.config.lineage.store)):
            sock.sendall(_post(first, "hi") + CUT)
            assert failed.wait(10)
            assert until(lambda: any(c.serving is not None and c.parsing is not None for c in list(http.connections)))
            conn = next(c for c in list(http.connections) if c.serving is not None)
            stopping = asyncio.run_coroutine_threadsafe(proxy.process.stop(), loop_thread.loop)
            assert until(lambda: conn.draining)  # the drain has begun while the answer waits for the record
            assert not conn.cut
        stopping.result(timeout=30)
        got = _read_all(sock)
    assert got.startswith(b"HTTP/1.1 500") and got.count(b"HTTP/1.") == 1, got

    def cut(spans: list[Any]) -> list[Any]:
        return [s for s in spans if s.name == "embeddings"]  # its path read: its line came whole

    spans = cut(otlp.wait_for(lambda spans: len(cut(spans)) == 1))
    a = spans[0].attributes
    # before: drain_timeout, "lineage-proxy stopped (SIGTERM) before this request's head had arrived whole"
    assert (a["lineage.decision"], a["error.type"]) == ("deny", "internal_error"), a
    assert "http.response.status_code" not in a, a
    reason = a["lineage.reason"]
    assert "answered internal_error" in reason and "arrived whole" in reason and "SIGTERM" not in reason, reason
    assert conn.server.heads_cut == 0  # not in the drain's warning as a head it cut off (before: 1)

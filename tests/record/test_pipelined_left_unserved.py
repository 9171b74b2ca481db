"""A request pipelined behind one not yet answered, read whole, whose client leaves before the proxy serves it (requests
on a connection are answered in order) never reaches the upstream, but its client sent it and it was read: the call
had begun, and is recorded as one whose client left while it was still arriving is (`client_disconnected`, `deny`,
no status, no edge). It left no record at all: no span, no access line. README: "A client's FIN is its leaving"."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from proxy.logs import ACCESS
from tests.harness import LoopThread
from tests.record.test_every_call_recorded import recorded  # noqa: F401  (the fixture)
from tests.servers.otlp_receiver import OtlpReceiver

CHAT = b'{"model": "m", "messages": [{"role": "user", "content": "hello"}]}'


def _post(path: bytes, trace_id: str, body: bytes) -> bytes:
    return (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"traceparent: 00-%s-00000000000000a1-01\r\nContent-Length: %d\r\n\r\n%s"
            % (path, trace_id.encode(), len(body), body))  # fmt: skip


@pytest.mark.parametrize("how", ["close", "half-close"])
def test_a_pipelined_request_its_client_leaves_before_it_is_served_is_recorded(  # type: ignore[no-untyped-def]
    recorded,  # noqa: F811  (the fixture)
    otlp: OtlpReceiver,
    loop_thread: LoopThread,
    caplog: pytest.LogCaptureFixture,
    how: str,
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)
    origin, proxy = recorded
    first, second = f"{0x1EF0:032x}", f"{0x1EF1 + (how == 'close'):032x}"
    assert origin.arrived is not None
    with socket.create_connection((proxy.bound.http.host, proxy.bound.http.port), timeout=10) as sock:
        # one write: the second is read whole while the first waits on its upstream (`/never` answers nothing)
        sock.sendall(_post(b"/never", first, b"{}") + _post(b"/v1/chat/completions", second, CHAT))
        loop_thread.run(asyncio.wait_for(origin.arrived.wait(), 5))
        if how == "half-close":
            sock.shutdown(socket.SHUT_WR)
            assert sock.recv(65536) == b""  # no reply to either
    span = otlp.by_trace(second)
    assert span.attributes["error.type"] == "client_disconnected"
    assert span.attributes["lineage.decision"] == "deny"  # nothing of it was forwarded
    assert "http.response.status_code" not in span.attributes  # nor answered
    assert otlp.by_trace(first).attributes["error.type"] == "client_disconnected"
    loop_thread.run(proxy.process.runtime.sinks.flush())
    lines = [r for r in caplog.records if r.name == ACCESS and getattr(r, "trace_id", None) == second]
    assert [(line.code, line.status) for line in lines] == [("client_disconnected", 0)]
    assert proxy.process.runtime.stats.in_flight == 0

"""A request whose head is in and whose body is still arriving when the SIGTERM drain runs out is a call the
drain cut off: recorded (its span, `drain_timeout`), as one whose body is too slow is recorded as refused; and
so is one whose client leaves then (`client_disconnected`)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from proxy.logs import ACCESS
from tests.harness import LoopThread
from tests.record.test_every_call_recorded import recorded  # noqa: F401  (the fixture)
from tests.record.test_store_waits import until
from tests.servers.otlp_receiver import OtlpReceiver


def test_a_request_the_drain_cuts_off_mid_body_is_recorded(  # type: ignore[no-untyped-def]
    recorded,  # noqa: F811  (the fixture)
    otlp: OtlpReceiver,
    loop_thread: LoopThread,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, proxy = recorded
    _, writer = loop_thread.run(asyncio.open_connection(proxy.bound.http.host, proxy.bound.http.port))
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100\r\n\r\n{\"model\": ")  # fmt: skip
    loop_thread.run(writer.drain())
    until(lambda: proxy.process.runtime.stats.in_flight == 1)  # its head is read: the call has begun
    with caplog.at_level("WARNING", logger="lineage_proxy"):
        loop_thread.run(proxy.process.stop())
    assert any("1 HTTP call(s) still running" in r.getMessage() for r in caplog.records)
    spans = otlp.wait_for(lambda spans: any(s.attributes.get("error.type") == "drain_timeout" for s in spans), 5)
    span = next(s for s in spans if s.attributes.get("error.type") == "drain_timeout")
    assert span.attributes["lineage.decision"] == "deny"  # nothing of it was forwarded
    writer.close()


@pytest.mark.parametrize("expects", [False, True], ids=["body-begun", "after-100-continue"])
def test_a_request_its_client_leaves_mid_body_is_recorded(  # type: ignore[no-untyped-def]
    recorded,  # noqa: F811  (the fixture)
    otlp: OtlpReceiver,
    loop_thread: LoopThread,
    caplog: pytest.LogCaptureFixture,
    expects: bool,
) -> None:
    """The same call, its client gone instead (a client that sent `Expect: 100-continue`, was told to go on, and
    left; one that sent part of its body): it had begun (its head read, counted in flight) and left no record at all,
    no span, no access line, where the drain's cut of it and a body too slow were recorded."""
    caplog.set_level(logging.INFO, logger=ACCESS)
    _, proxy = recorded
    trace_id = f"{0x1EF7 + expects:032x}"
    reader, writer = loop_thread.run(asyncio.open_connection(proxy.bound.http.host, proxy.bound.http.port))
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"traceparent: 00-%s-00000000000000a1-01\r\nContent-Length: 100\r\n" % trace_id.encode()
                 + (b"Expect: 100-continue\r\n\r\n" if expects else b"\r\n{\"model\": "))  # fmt: skip
    if expects:
        assert loop_thread.run(reader.readuntil(b"\r\n\r\n")) == b"HTTP/1.1 100 Continue\r\n\r\n"
    loop_thread.run(writer.drain())
    until(lambda: proxy.process.runtime.stats.in_flight == 1)  # its head is read: the call has begun
    writer.close()
    span = otlp.by_trace(trace_id)
    assert span.attributes["error.type"] == "client_disconnected"
    assert span.attributes["lineage.decision"] == "deny"  # nothing of it was forwarded
    assert "http.response.status_code" not in span.attributes  # nor answered
    lines = [r for r in caplog.records if r.name == ACCESS and getattr(r, "trace_id", None) == trace_id]
    assert [(line.code, line.status) for line in lines] == [("client_disconnected", 0)]

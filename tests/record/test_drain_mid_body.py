"""A request whose head is in and whose body is still arriving when the SIGTERM drain runs out is a call the
drain cut off: recorded (its span, `drain_timeout`), as one whose body is too slow is recorded as refused."""

from __future__ import annotations

import asyncio

import pytest

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

"""The edges of `test_pipelined_left_unserved.py`: a request pipelined behind one not yet answered whose body was still
arriving when its client left is recorded once (`client_disconnected`), and a request whose head had not all come is
no call, not recorded; one the SIGTERM drain cut is `drain_timeout`."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from proxy.logs import ACCESS
from tests.harness import LoopThread
from tests.record.test_every_call_recorded import recorded  # noqa: F401  (the fixture)
from tests.record.test_pipelined_left_unserved import CHAT, _post
from tests.servers.otlp_receiver import OtlpReceiver


def test_a_pipelined_request_cut_mid_body_is_recorded_once_and_a_part_head_not_at_all(  # type: ignore[no-untyped-def]
    recorded,  # noqa: F811  (the fixture)
    otlp: OtlpReceiver,
    loop_thread: LoopThread,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)
    origin, proxy = recorded
    first, second = f"{0x1EF8:032x}", f"{0x1EF9:032x}"
    assert origin.arrived is not None
    with socket.create_connection((proxy.bound.http.host, proxy.bound.http.port), timeout=10) as sock:
        whole = _post(b"/v1/chat/completions", second, CHAT)
        # the second's head and part of its body: its client leaves before the rest
        sock.sendall(_post(b"/never", first, b"{}") + whole[: len(whole) - 10])
        loop_thread.run(asyncio.wait_for(origin.arrived.wait(), 5))
    span = otlp.by_trace(second)
    assert span.attributes["error.type"] == "client_disconnected"
    assert otlp.by_trace(first).attributes["error.type"] == "client_disconnected"
    loop_thread.run(proxy.process.runtime.sinks.flush())
    assert [s.trace_id for s in otlp.spans].count(second) == 1
    lines = [r for r in caplog.records if r.name == ACCESS]
    assert sorted(getattr(line, "trace_id", None) for line in lines) == sorted([first, second])
    assert proxy.process.runtime.stats.in_flight == 0


def test_a_part_head_pipelined_is_no_call(  # type: ignore[no-untyped-def]
    recorded,  # noqa: F811  (the fixture)
    otlp: OtlpReceiver,
    loop_thread: LoopThread,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)
    origin, proxy = recorded
    first, second = f"{0x1EFA:032x}", f"{0x1EFB:032x}"
    assert origin.arrived is not None
    with socket.create_connection((proxy.bound.http.host, proxy.bound.http.port), timeout=10) as sock:
        head = _post(b"/v1/chat/completions", second, CHAT).split(b"\r\n\r\n")[0]  # its blank line never comes
        sock.sendall(_post(b"/never", first, b"{}") + head)
        loop_thread.run(asyncio.wait_for(origin.arrived.wait(), 5))
    assert otlp.by_trace(first).attributes["error.type"] == "client_disconnected"
    loop_thread.run(proxy.process.runtime.sinks.flush())
    assert second not in [s.trace_id for s in otlp.spans]
    lines = [r for r in caplog.records if r.name == ACCESS]
    assert [getattr(line, "trace_id", None) for line in lines] == [first]
    assert proxy.process.runtime.stats.in_flight == 0


def test_a_pipelined_request_the_drain_cuts_is_recorded_drain_timeout(  # type: ignore[no-untyped-def]
    recorded,  # noqa: F811  (the fixture)
    otlp: OtlpReceiver,
    loop_thread: LoopThread,
) -> None:
    origin, proxy = recorded  # (limits.drain_timeout_s: 0.2)
    first, second = f"{0x1EFC:032x}", f"{0x1EFD:032x}"
    assert origin.arrived is not None
    with socket.create_connection((proxy.bound.http.host, proxy.bound.http.port), timeout=10) as sock:
        sock.sendall(_post(b"/never", first, b"{}") + _post(b"/v1/chat/completions", second, CHAT))
        loop_thread.run(asyncio.wait_for(origin.arrived.wait(), 5))
        loop_thread.run(proxy.process.stop())
        assert sock.recv(65536) == b""  # cut, unanswered
    assert otlp.by_trace(first).attributes["error.type"] == "drain_timeout"
    span = otlp.by_trace(second)
    assert span.attributes["error.type"] == "drain_timeout"
    assert span.attributes["lineage.decision"] == "deny"

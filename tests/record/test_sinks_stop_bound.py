"""The fan-out waits for a sink's stop 20 s at most (`SINK_STOP_WAIT_S`); the spans sink's stop waits for a stalled
collector `export_timeout_s` (up to an hour), then counts and says the spans it did not export. One told to wait
longer than the fan-out was given up on first: the fan-out's stop returned, the process ended, those spans counted
nowhere and their line unsaid. Now the fan-out waits past a sink's own bound (`stop_bound_s`). Here the fan-out's wait
is cut to 0.2 s under an export_timeout_s of 1 s, as 20 s is under 30 s: a real proxy, a real stalling OTLP receiver."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from tests.harness import LoopThread, start_proxy
from tests.record.test_export import StallingReceiver
from tests.record.test_spans import CONFIG, sdk
from tests.servers.vllm_like import SERVED


def test_the_spans_a_stalled_collector_never_took_are_counted_when_export_timeout_s_outlasts_the_fan_outs_wait(
    vllm: Any, loop_thread: LoopThread, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, upstream = vllm
    stalling = StallingReceiver()
    port = stalling.start()
    env = {"UPSTREAM": upstream, "OTLP": f"http://127.0.0.1:{port}", "EXPORT_TIMEOUT": "1",
           "STORE": str(tmp_path / "lineage.db")}  # fmt: skip
    proxy = loop_thread.run(start_proxy(CONFIG, env=env))
    try:
        client = sdk(proxy)
        sinks = proxy.process.runtime.sinks
        sinks.stop_wait_s = 0.2  # as the 20 s under an export_timeout_s of 30 s
        queue = sinks.get("spans").queue
        stalling.stall.set()
        client.chat.completions.create(model=SERVED, messages=[{"role": "user", "content": "x"}])
        assert stalling.stalled.wait(10)  # its span's export is held by the collector
        for _ in range(2):
            client.chat.completions.create(model=SERVED, messages=[{"role": "user", "content": "x"}])
        caplog.set_level(logging.INFO)
        loop_thread.run(proxy.process.stop())
        # before: (0, 0, 0), 'record sink spans did not stop within 0.2s' and no line of the spans
        assert (queue.exported, queue.failed, queue.dropped) == (0, 1, 2)
        said = [r.getMessage() for r in caplog.records]
        assert any(line.startswith("3 spans not exported at shutdown") for line in said), said
        assert not any("did not stop within" in line for line in said), said
    finally:
        stalling.stop()

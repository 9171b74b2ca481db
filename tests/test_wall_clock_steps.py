"""A wall clock stepped while a call runs (NTP correcting a VM's clock, by seconds or an hour) moves none of
the call's durations: its span ends after it starts, its access line's `duration_ms` and its histograms
observe the time it took. Every mark was read from the wall clock, so a step back of an hour during a stream
gave a span ending an hour before its start, `duration_ms` -3600000, and a negative observation, which takes
`_sum` down (`rate()` reads a counter reset there, a spike of the whole sum)."""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path

import httpx
import pytest

import proxy
from tests.conftest import KEYS, sha
from tests.harness import ServeProcess

HOUR_NS = 3600 * 10**9

# `time.time` and `time.time_ns` of the proxy's process, shifted by the nanoseconds the file holds: a wall clock
# stepped as the test says (the monotonic clock, as the kernel's, is not). Installed before the proxy is imported,
# so the compiled modules' own references to `time.time_ns` are the shifted one too.
SITECUSTOMIZE = """
import os
import time

_file = os.environ["LP_TEST_CLOCK_OFFSET"]
_time, _time_ns = time.time, time.time_ns


def _offset_ns():
    with open(_file) as f:
        return int(f.read() or 0)


time.time_ns = lambda: _time_ns() + _offset_ns()
time.time = lambda: (_time_ns() + _offset_ns()) / 1e9
"""

CONFIG = f"""
listen:
  http: 127.0.0.1:0
upstreams:
  - name: vllm
    url: ${{UPSTREAM}}
routes:
  - model: "*"
    upstream: vllm
    purposes: [assistant]
callers:
  - name: app
    api_key_sha256: {sha(KEYS["glasses"])}
lineage:
  store: null
telemetry:
  exporter: console
logging: {{format: json, access: true}}
"""


def _sum(metrics: str, name: str) -> float:
    found = re.findall(rf"^{name}_sum(?:{{[^}}]*}})? (\S+)$", metrics, re.M)
    assert found, f"no {name}_sum in:\n{metrics}"
    return sum(float(value) for value in found)


@pytest.mark.parametrize("step_ns", [-HOUR_NS, HOUR_NS], ids=["back", "forward"])
def test_a_clock_step_moves_no_duration(vllm, loop_thread, tmp_path: Path, step_ns: int) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    clock = tmp_path / "clock"
    clock.mkdir()
    (clock / "sitecustomize.py").write_text(SITECUSTOMIZE)
    offset = tmp_path / "offset"
    offset.write_text("0")
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG)
    root = str(Path(proxy.__file__).parents[1])  # the build this test runs, compiled or not
    serve = ServeProcess(str(config), env={"UPSTREAM": upstream, "LP_TEST_CLOCK_OFFSET": str(offset),
                                           "PYTHONPATH": os.pathsep.join([str(clock), root])})  # fmt: skip
    try:
        first = threading.Event()
        received: list[str] = []

        def stream() -> None:
            with httpx.stream("POST", f"{serve.url}/v1/chat/completions", timeout=20,
                              headers={"Authorization": f"Bearer {KEYS['glasses']}", "x-purpose": "assistant"},
                              json={"model": "m", "stream": True,
                                    "messages": [{"role": "user", "content": "__gate__"}]}) as reply:  # fmt: skip
                for line in reply.iter_lines():
                    if line.startswith("data: "):
                        received.append(line)
                        first.set()

        worker = threading.Thread(target=stream)
        worker.start()
        assert first.wait(10)  # the call is in flight, its upstream held before its first token
        offset.write_text(str(step_ns))
        for _ in range(server.reply_words + 2):  # each gated event of the reply
            server.release(loop_thread.loop)
        worker.join(20)
        assert not worker.is_alive() and received[-1] == "data: [DONE]"
        span = json.loads(serve.lines.get(timeout=10))
        assert span["name"] == "chat m"
        elapsed_s = (span["end_ns"] - span["start_ns"]) / 1e9
        assert 0 <= elapsed_s < 60, span
        ((event, at, _),) = span["events"]
        assert event == "gen_ai.first_token" and span["start_ns"] <= at <= span["end_ns"], span
        access = json.loads(serve.wait_log('"duration_ms"'))
        assert 0 <= access["duration_ms"] < 60_000, access
        metrics = httpx.get(f"{serve.url}/metrics", timeout=10).text
        for name in ("lineage_proxy_request_duration_seconds", "lineage_proxy_overhead_seconds",
                     "lineage_proxy_upstream_duration_seconds", "lineage_proxy_time_to_first_chunk_seconds"):  # fmt: skip
            assert 0 <= _sum(metrics, name) < 60, name
    finally:
        assert serve.stop() == 0

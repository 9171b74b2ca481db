"""A `serve --workers N` worker whose event loop stays stalled (SIGSTOP here; a loop blocked on a hung file system, or
spinning in C code, the same) was never restarted: the kernel kept giving it its share of the new connections, whose
calls waited until their clients gave up, and `/healthz` was answered 200 by the other worker; and a SIGTERM then never
ended the proxy (the supervisor waited for a worker that could not drain). The supervisor now kills a worker that has
not turned its loop for `limits.worker_stall_s` (SIGKILL) and restarts it, in one ERROR line, counted in
`lineage_proxy_worker_restarts_total{reason="stalled"}`; a stop kills it too, and ends. A real `serve --workers 2`."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from proxy import metrics
from tests.servers.vllm_like import SERVED
from tests.test_workers import WAIT_S, Serve, alive, scrape

ROOT = Path(__file__).resolve().parent.parent
STALL_S = 5  # limits.worker_stall_s below (its least)

CONFIG = """
listen: {http: 127.0.0.1:0, admin: 127.0.0.1:0}
upstreams: [{name: vllm, url: "UPSTREAM"}]
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
telemetry: {exporter: none}
lineage: {store: "STORE"}
limits: {drain_timeout_s: 2, worker_stall_s: STALL}
logging: {format: json, access: true}
"""


def start(tmp_path: Path, upstream: str) -> Serve:
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG.replace("UPSTREAM", upstream).replace("STORE", str(tmp_path / "lineage.db"))
                      .replace("STALL", str(STALL_S)))  # fmt: skip
    serve = Serve.workers(config, env={"PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)})
    return serve


def restarts(admin: str) -> dict[str, float]:
    """lineage_proxy_worker_restarts_total by reason (either worker may answer the scrape)."""
    reply = httpx.get(f"http://{admin}/metrics", timeout=10)
    assert reply.status_code == 200, reply.text
    return {
        sample.labels["reason"]: sample.value
        for family in text_string_to_metric_families(reply.text)
        for sample in family.samples
        if sample.name == "lineage_proxy_worker_restarts_total"
    }


def served_by(serve: Serve, http: str, pids: set[int]) -> None:
    """Calls on new connections (the kernel spreads them) until each of `pids` has served one (its access line), every
    call answered 200."""
    deadline = time.monotonic() + WAIT_S
    body = {"model": SERVED, "messages": [{"role": "user", "content": "hello"}]}
    seen: set[int] = set()
    while not pids <= seen:
        assert time.monotonic() < deadline, f"calls were served by {seen}, not by all of {pids}"
        reply = httpx.post(f"http://{http}/v1/chat/completions", json=body, timeout=10)
        assert reply.status_code == 200, reply.text
        seen = {orjson.loads(line)["pid"] for line in list(serve.err) if '"logger":"lineage_proxy.access"' in line}


def slow_call(http: str, outcomes: list[str]) -> None:
    """A call its upstream never answers, on a connection of its own: the kernel gives it to either worker."""
    body = {"model": SERVED, "messages": [{"role": "user", "content": "__slow__ hello"}]}
    try:
        reply = httpx.post(f"http://{http}/v1/chat/completions", json=body, timeout=WAIT_S)
        outcomes.append(str(reply.status_code))
    except httpx.HTTPError as exc:
        outcomes.append(type(exc).__name__)


def in_flight(tmp_path: Path, pids: list[int], calls: int) -> dict[int, int]:
    """Each worker's calls in flight, from its live gauges' file (published within a second), once they sum to
    `calls`."""
    directory = str(next(tmp_path.glob("lineage-proxy-metrics-*")))
    deadline, found = time.monotonic() + WAIT_S, {}
    while sum(found.values()) != calls:
        assert time.monotonic() < deadline, found
        found = {pid: metrics.in_flight_of(pid, directory) or 0 for pid in pids}
    return found


def test_a_stalled_worker_is_killed_and_restarted(vllm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    serve = start(tmp_path, upstream)
    outcomes: list[str] = []
    threads: list[threading.Thread] = []
    try:
        addresses = serve.ready()
        assert restarts(addresses["admin"]) == {"sigkill": 0, "exit": 0, "stalled": 0, "start_stalled": 0}
        workers = serve.children()
        assert len(workers) == 2
        calls = 4
        threads = [threading.Thread(target=slow_call, args=(addresses["http"], outcomes)) for _ in range(calls)]
        for thread in threads:
            thread.start()
        held = in_flight(tmp_path, workers, calls)
        stalled = max(workers, key=lambda pid: held[pid])  # (at least 2 of the 4 calls)
        os.kill(stalled, signal.SIGSTOP)
        line = orjson.loads(serve.wait("killed with SIGKILL", 1)[0])  # WAIT_S at most
        assert line["level"] == "error" and line["process"] == "supervisor", line
        said = line["message"]
        assert re.match(rf"worker-[12] \(pid {stalled}\) has not turned its event loop for ", said), said
        assert f"(limits.worker_stall_s: {STALL_S};" in said and "killed with SIGKILL" in said, said
        lost = f"{held[stalled]} calls were in flight in it, lost unrecorded (no span, access line or edge;"
        assert f"restarting it. {lost}" in said, said
        assert "lineage_proxy_worker_restarts_total" in said, said
        quiet = re.search(r"has not turned its event loop for (\d+)s ", said)
        assert quiet and int(quiet.group(1)) >= STALL_S, said  # (exactly when: test_workers_watchdog.py)
        deadline = time.monotonic() + WAIT_S  # the stalled worker is gone (reaped), another one in its place
        now = set(serve.children())
        while stalled in now or len(now) != 2:
            assert time.monotonic() < deadline, f"{stalled} alive: {alive(stalled)}, workers {now}"
            now = set(serve.children())
        assert stalled not in now and set(workers) - {stalled} < now
        served_by(serve, addresses["http"], now)  # both workers answer calls
        assert restarts(addresses["admin"]) == {"sigkill": 0, "exit": 0, "stalled": 1, "start_stalled": 0}
        assert sum("killed with SIGKILL" in line for line in serve.err) == 1, "".join(serve.err)
        assert not any("exited with -9" in line for line in serve.err), "".join(serve.err)  # one line, not two
        status, found = scrape(addresses["admin"])
        assert status == 200 and found["lineage_proxy_worker_calls_lost_total"] == held[stalled], found
        assert serve.stop() == 0, "".join(serve.err)  # the other worker's slow calls are cut by its drain
        for thread in threads:
            thread.join(WAIT_S)
        assert len(outcomes) == calls and "200" not in outcomes, outcomes
    finally:
        serve.end()
        for thread in threads:
            thread.join(WAIT_S)


def test_a_stop_while_a_worker_is_stalled_ends(vllm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Before, the supervisor passed the SIGTERM on and waited for the stopped worker for good."""
    _, upstream = vllm
    serve = start(tmp_path, upstream)
    try:
        serve.ready()
        workers = serve.children()
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGSTOP)
        serve.proc.send_signal(signal.SIGTERM)
        assert serve.proc.wait(WAIT_S) == 0, "".join(serve.err)  # within its bound, the drain, and a margin
        said = orjson.loads(serve.wait("killed with SIGKILL")[0])["message"]
        assert f"worker-1 (pid {workers[0]})" in said and "the proxy is stopping: it is not restarted." in said, said
        assert "Counted in" not in said, said
        assert not alive(workers[0]) and not alive(workers[1])
    finally:
        serve.end()

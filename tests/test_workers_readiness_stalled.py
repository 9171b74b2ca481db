"""With `serve --workers N` a `/readyz` probe reaches one worker (the kernel spreads connections over them), and that
worker answered from its own state alone: a worker whose loop had stopped (SIGSTOP here; a loop blocked, the same)
took its share of the calls, which waited until they timed out, while every probe the other worker answered said 200,
so Kubernetes kept sending traffic to the pod. A probe now answers for every worker: 503 naming the worker that has not
turned its loop for `server.STALL_S`, whichever worker answers it, and 200 again once that worker runs; and
`/metrics` says as much (`lineage_proxy_workers_stalled`, which did not exist). A real
`serve --workers 2`, one of its workers stopped with SIGSTOP and let go with SIGCONT."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from proxy import server
from tests.test_workers import Serve

CONFIG = """
listen: {http: 127.0.0.1:0, admin: 127.0.0.1:0}
upstreams: [{name: vllm, url: "UPSTREAM"}]
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
telemetry: {exporter: none}
lineage: {store: "STORE"}
limits: {worker_stall_s: 0}  # the worker stays stopped as long as the test wants: never killed (the watchdog's test)
"""
WITHIN = 30.0  # the stall bound (server.STALL_S, 5 s), and probes that reach the stopped worker (each waits PROBE_S)
PROBE_S = 0.5  # a probe's timeout: one that reaches the stopped worker waits this long (a kubelet's counts as failed)


def probe(admin: str) -> tuple[int, dict[str, object]] | None:
    """One probe on a new connection (either worker may take it): its status and body, or None when it timed out (it
    reached the stopped worker)."""
    try:
        reply = httpx.get(f"http://{admin}/readyz", timeout=PROBE_S)
    except httpx.TimeoutException:
        return None
    return reply.status_code, reply.json()


def answered(admin: str, status: int, count: int) -> list[dict[str, object]]:
    """Probe until `count` probes in a row that were answered (not timed out) answered `status`; their bodies."""
    deadline = time.monotonic() + WITHIN
    bodies: list[dict[str, object]] = []
    seen: list[int] = []
    while len(bodies) < count:
        assert time.monotonic() < deadline, f"/readyz did not answer {status} {count} times in a row: {seen}"
        got = probe(admin)
        if got is None:
            continue
        seen.append(got[0])
        bodies = [*bodies, got[1]] if got[0] == status else []
    return bodies


def stalled_gauge(admin: str) -> float | None:
    """`lineage_proxy_workers_stalled` as one scrape on a new connection found it, or None when it timed out (it
    reached the stopped worker)."""
    try:
        reply = httpx.get(f"http://{admin}/metrics", timeout=PROBE_S)
    except httpx.TimeoutException:
        return None
    assert reply.status_code == 200, reply.text
    found = [sample.value for family in text_string_to_metric_families(reply.text) for sample in family.samples
             if sample.name == "lineage_proxy_workers_stalled"]  # fmt: skip
    assert len(found) == 1, reply.text  # one series, the answering worker's count: never a sum over the workers
    return found[0]


def scraped(admin: str, value: float, count: int) -> None:
    """Scrape until `count` scrapes in a row that were answered found `value` workers stalled."""
    deadline = time.monotonic() + WITHIN
    seen: list[float] = []
    while len(seen) < count or seen[-count:] != [value] * count:
        assert time.monotonic() < deadline, f"lineage_proxy_workers_stalled did not read {value} {count} times: {seen}"
        got = stalled_gauge(admin)
        if got is not None:
            seen.append(got)


def test_a_stopped_worker_makes_every_workers_probe_say_not_ready(vllm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG.replace("UPSTREAM", upstream).replace("STORE", str(tmp_path / "lineage.db")))
    serve = Serve.workers(config, env={"PYTHONPATH": str(Path(server.__file__).resolve().parent.parent)})
    try:
        admin = serve.ready()["admin"]
        workers = serve.children()
        assert len(workers) == 2
        answered(admin, 200, 4)
        scraped(admin, 0, 4)  # (a series there from the start, at 0)
        stopped = workers[1]
        os.kill(stopped, signal.SIGSTOP)
        try:
            # the running worker answers every probe it takes 503 (the stopped one answers none): ten in a row
            bodies = answered(admin, 503, 10)
            assert all(len(body["workers_stalled"]) == 1 for body in bodies), bodies  # type: ignore[arg-type]
            named = {name for body in bodies for name in body["workers_stalled"]}  # type: ignore[attr-defined]
            assert len(named) == 1 and named.pop().endswith(f" (pid {stopped})"), bodies
            assert all(body["upstreams_down"] == [] for body in bodies), bodies
            # /metrics says what /readyz says, whichever worker answers (before 2026-12-03 no metric said it)
            scraped(admin, 1, 10)
        finally:
            os.kill(stopped, signal.SIGCONT)
        answered(admin, 200, 10)  # both workers answer again, and say ready
        scraped(admin, 0, 10)
        assert serve.stop() == 0, "".join(serve.err)
    finally:
        serve.end()

"""A `serve --workers N` worker SIGKILLed mid-call (the OOM killer) takes its calls in flight with it, unrecorded (no
span, access line or edge), and what it held not yet written: the supervisor said only "worker-1 exited with -9;
restarting it", and no metric counted it. It now says how many calls were in flight there (its live gauges' file,
read as it died), what else was lost and where to look, and counts the restart and the calls."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.servers.vllm_like import SERVED
from tests.test_workers import WAIT_S, Serve

ROOT = Path(__file__).resolve().parent.parent

CONFIG = """
listen: {http: 127.0.0.1:0, admin: 127.0.0.1:0}
upstreams: [{name: vllm, url: "UPSTREAM"}]
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: "STORE"}
logging: {access: true}
"""


def config_file(tmp_path: Path, upstream: str) -> Path:
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG.replace("UPSTREAM", upstream).replace("STORE", str(tmp_path / "lineage.db")))
    return config


def samples(admin: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """One scrape (either worker may answer): every sample, by name and labels."""
    reply = httpx.get(f"http://{admin}/metrics", timeout=10)
    assert reply.status_code == 200, reply.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(reply.text)
        for sample in family.samples
    }


def scraped_until(admin: str, name: str, want: float) -> float:
    """Scrape until `name` (unlabelled) reads `want` (a worker publishes what it counts within a second), WAIT_S at
    most; its last value."""
    deadline, value = time.monotonic() + WAIT_S, None
    while time.monotonic() < deadline:
        value = samples(admin).get((name, ()))
        if value == want:
            break
    return -1.0 if value is None else value


def test_a_worker_killed_mid_call_says_the_calls_it_took_and_counts_them(vllm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    serve = Serve.workers(config_file(tmp_path, upstream), env={"PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)})
    outcomes: list[str] = []
    threads = []
    try:
        addresses = serve.ready()
        assert samples(addresses["admin"])[("lineage_proxy_worker_restarts_total", (("reason", "sigkill"),))] == 0

        def call() -> None:  # each on a connection of its own: the kernel spreads them over the workers
            body = {"model": SERVED, "messages": [{"role": "user", "content": "__slow__ hello"}]}  # held upstream
            try:
                reply = httpx.post(f"http://{addresses['http']}/v1/chat/completions", json=body, timeout=WAIT_S)
                outcomes.append(str(reply.status_code))
            except httpx.HTTPError as exc:
                outcomes.append(type(exc).__name__)

        calls = 3
        threads = [threading.Thread(target=call, daemon=True) for _ in range(calls)]
        for thread in threads:
            thread.start()
        assert scraped_until(addresses["admin"], "lineage_proxy_in_flight", calls) == calls
        workers = serve.children()
        assert len(workers) == 2
        for pid in workers:  # the OOM killer, twice
            os.kill(pid, signal.SIGKILL)
        said = serve.wait("exited with -9; restarting it", 2)
        for thread in threads:
            thread.join(WAIT_S)
        assert len(outcomes) == calls and "200" not in outcomes, outcomes  # their connections closed, unanswered
        lost = 0
        for line in said:
            if "No call was in flight in it" not in line:
                found = re.search(r"(\d+) calls? (?:was|were) in flight in it, lost unrecorded \(no span, access line "
                                  r"or edge;", line)  # fmt: skip
                assert found, line  # before: "worker-1 exited with -9; restarting it", nothing more
                lost += int(found.group(1))
            assert "lineage.flush_interval_s" in line and "dmesg" in line and "OOM killer" in line, line
        assert lost == calls, said
        seen = samples(addresses["admin"])  # worker-1's replacement serves once worker-2's death is said
        assert seen[("lineage_proxy_worker_restarts_total", (("reason", "sigkill"),))] == 2
        assert seen[("lineage_proxy_worker_calls_lost_total", ())] == calls
        assert serve.stop() == 0, "".join(serve.err)
    finally:
        serve.end()
        for thread in threads:
            thread.join(WAIT_S)

"""`serve --workers N` as a supervisor and its workers, as real processes: a SIGTERM while a worker starts
stops every process, a worker restarted after a reload serves as its siblings do, and a worker that stops
on its own leaves all it counted on /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import LoopThread, serving
from tests.servers.otlp_receiver import OtlpReceiver
from tests.servers.vllm_like import SERVED, VllmLike

ROOT = Path(__file__).resolve().parent.parent
WAIT_S = 30.0  # what any one step may take at most; a step that passes takes far less


class Serve:
    """`lineage-proxy serve` (or a script) in a subprocess: its output lines as they come, its workers."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, *, own_group: bool = False) -> None:
        self.out: list[str] = []
        self.err: list[str] = []
        self._cond = threading.Condition()
        # SIGHUP, SIGINT and SIGQUIT as a terminal leaves them, even when the tests run under `nohup` (SIGHUP ignored:
        # a test reading when `serve` began from its ignoring SIGHUP would read it at once) or in a shell's
        # background job (SIGINT ignored: one sent there is lost); `env` execs the command, so the process is the
        # command's. `own_group`: in a process group of its own (its pid), which a test may signal whole (`killpg`)
        args = ["env", "--default-signal=HUP,INT,QUIT", *args]
        self.proc = subprocess.Popen(args, cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env={**os.environ, **(env or {})}, process_group=0 if own_group else None)  # fmt: skip
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.out), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.err), daemon=True).start()

    @classmethod
    def workers(cls, config: Path, workers: int = 2, env: dict[str, str] | None = None, *,
                own_group: bool = False) -> Serve:  # fmt: skip
        args = [sys.executable, "-m", "proxy", "serve", "--config", str(config), "--workers", str(workers)]
        return cls(args, env, own_group=own_group)

    def _pump(self, stream: Any, into: list[str]) -> None:
        for line in stream:
            with self._cond:
                into.append(line)
                self._cond.notify_all()

    def wait(self, needle: str, count: int = 1, *, out: bool = False) -> list[str]:
        """The first `count` lines (of stderr, or stdout) holding `needle`, once there are that many."""
        lines = self.out if out else self.err
        with self._cond:
            found = self._cond.wait_for(lambda: sum(needle in line for line in lines) >= count, WAIT_S)
            assert found, f"{needle!r} not logged {count} times; exit {self.proc.poll()}; stderr:\n{''.join(self.err)}"
            return [line for line in lines if needle in line][:count]

    def ready(self) -> dict[str, str]:
        line = self.wait("lineage-proxy ready", out=True)[0]
        return dict(part.split("=", 1) for part in line.split()[2:])

    def children(self) -> list[int]:
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid:
                pids.append(int(stat.parent.name))
        return pids

    def stop(self) -> int:
        """SIGTERM, then its exit code (it must come within WAIT_S)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(WAIT_S)

    def end(self) -> None:
        """Whatever a failed test left running goes (a worker that ignored SIGTERM, then its supervisor)."""
        for pid in self.children():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(WAIT_S)


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def scrape(admin: str) -> tuple[int, dict[str, float]]:
    """One scrape on a new connection (either worker may answer): its status and its unlabelled samples."""
    reply = httpx.get(f"http://{admin}/metrics", timeout=10)
    if reply.status_code != 200:
        return reply.status_code, {}
    found = {}
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            if not sample.labels:
                found[sample.name] = sample.value
    return 200, found


def chat(url: str) -> int:
    """One call on a new connection, so the kernel spreads calls over the workers."""
    body = {"model": SERVED, "messages": [{"role": "user", "content": "hello"}]}
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=10).status_code


# -- a SIGTERM while a worker starts


class SlowMetadata(VllmLike):
    """/v1/models does not answer while `hang` is set: a worker starting meanwhile waits for it (its
    first probe) as long as the upstream's timeout_s."""

    hang = False

    async def list_models(self, request: web.Request) -> web.Response:
        if self.hang:
            await asyncio.Event().wait()  # cancelled when the test's server closes
        return await super().list_models(request)


SLOW = """
listen: {http: 127.0.0.1:0, admin: 127.0.0.1:0}
upstreams: [{name: slow, url: "UPSTREAM", timeout_s: 10}]
routes: [{model: "*", upstream: slow}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: "STORE"}
limits: {drain_timeout_s: 2}
"""


def config_file(tmp_path: Path, upstream: str) -> Path:
    config = tmp_path / "proxy.yaml"
    config.write_text(SLOW.replace("UPSTREAM", upstream).replace("STORE", str(tmp_path / "lineage.db")))
    return config


def stopped_in_time(serve: Serve, workers: list[int]) -> None:
    """SIGTERM to the supervisor: it and every worker are gone, exit 0, within the drain timeout (2 s)
    and a little. It waited forever for a worker that had ignored the signal."""
    serve.proc.send_signal(signal.SIGTERM)
    try:
        code = serve.proc.wait(8)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running 8 s after SIGTERM; workers alive: {[p for p in serve.children() if alive(p)]}; "
                    f"stderr:\n{''.join(serve.err)}")  # fmt: skip
    assert code == 0, "".join(serve.err)
    assert not [pid for pid in workers if alive(pid)]
    assert "can only test a child process" not in "".join(serve.err)  # the supervisor's handler ran in a worker


def test_a_sigterm_while_the_workers_start_stops_every_process(loop_thread: LoopThread, tmp_path: Path) -> None:
    """t6_term_during_start.py: worker-1 waits for its upstream's first metadata (up to 10 s). SIGTERM then
    reached it while the handler it ran was the supervisor's, inherited by fork: ignored; it served, the
    supervisor started worker-2 and said ready, then waited forever. Now the start is abandoned."""
    server = SlowMetadata()
    server.hang = True
    with serving(loop_thread, server.app()) as upstream:
        serve = Serve.workers(config_file(tmp_path, upstream))
        try:
            serve.wait("waiting up to")  # worker-1 is starting, its first probe unanswered
            stopped_in_time(serve, serve.children())
            assert not serve.out  # never said ready
            assert "stopping before serving" in "".join(serve.err)
        finally:
            serve.end()


def test_a_sigterm_while_a_worker_restarts_stops_every_process(loop_thread: LoopThread, tmp_path: Path) -> None:
    """t6b_term_during_restart.py: one worker is killed, and the proxy is told to stop while its
    replacement waits for the upstream's metadata: the replacement ignored SIGTERM, the supervisor hung."""
    server = SlowMetadata()
    with serving(loop_thread, server.app()) as upstream:
        serve = Serve.workers(config_file(tmp_path, upstream))
        try:
            serve.ready()
            server.hang = True
            first = serve.children()
            os.kill(first[0], signal.SIGKILL)
            serve.wait("restarting it")
            serve.wait("waiting up to")  # the replacement is starting
            stopped_in_time(serve, [*first, *serve.children()])
        finally:
            serve.end()


EARLY = """
import logging, os, signal, sys
from proxy import workers
from proxy.config import load

logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(processName)s: %(message)s")
original = workers.install_uvloop

def early():  # in a worker, forked, before its event loop exists
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    os.kill(os.getppid(), signal.SIGTERM)  # the proxy is told to stop while this worker starts
    got = signal.sigtimedwait({signal.SIGTERM}, 20)  # the supervisor passes it on
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    print("worker got SIGTERM" if got else "worker got nothing", file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGTERM)  # ... and it arrives now, before any loop handles it
    original()

workers.install_uvloop = early
sys.exit(workers.run_workers(sys.argv[1], load(sys.argv[1]), 2))
"""


def test_a_sigterm_before_a_workers_loop_runs_stops_it(vllm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The same signal a step earlier: in a worker just forked, before its loop exists. It ran the
    supervisor's handler there (worker-2's raised "can only test a child process"); now it is held and
    the worker stops as soon as its loop runs, and the supervisor starts no other worker."""
    _, upstream = vllm
    serve = Serve([sys.executable, "-c", EARLY, str(config_file(tmp_path, upstream))])
    try:
        serve.wait("worker got SIGTERM")
        try:
            code = serve.proc.wait(8)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running 8 s after SIGTERM; stderr:\n{''.join(serve.err)}")
        assert code == 0, "".join(serve.err)
        assert not serve.out  # never said ready
        assert "worker-2" not in "".join(serve.err)
        assert "can only test a child process" not in "".join(serve.err)
    finally:
        serve.end()


# -- a worker restarted after a reload

RELOADED = """
listen: {http: 127.0.0.1:0, admin: 127.0.0.1:0}
upstreams: [{name: vllm, url: "UPSTREAM"}]
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: "STORE"}
telemetry: {metrics: METRICS}
"""


@pytest.mark.parametrize("changed", ["lineage.store", "telemetry.metrics"])
def test_a_worker_restarted_after_a_reload_serves_as_its_siblings_do(vllm, tmp_path: Path, changed: str) -> None:  # type: ignore[no-untyped-def]
    """t11_store_split.py, t11b_metrics_off_split.py: a reload changes what only a restart applies; the
    workers warn and keep it. The supervisor read the whole new file for the workers it restarts, so the
    replacement opened the new store (calls split over two stores) or served no /metrics (404s, and the
    other worker's scrapes missed its calls). It now starts as its siblings run."""
    _, upstream = vllm
    old, new = tmp_path / "old.db", tmp_path / "new.db"
    config = tmp_path / "proxy.yaml"
    text = RELOADED.replace("UPSTREAM", upstream)
    config.write_text(text.replace("STORE", str(old)).replace("METRICS", "true"))
    serve = Serve.workers(config, env={"TMPDIR": str(tmp_path)})
    calls = 40
    try:
        addresses = serve.ready()
        if changed == "lineage.store":
            config.write_text(text.replace("STORE", str(new)).replace("METRICS", "true"))
        else:
            config.write_text(text.replace("STORE", str(old)).replace("METRICS", "false"))
        serve.proc.send_signal(signal.SIGHUP)
        serve.wait(f"{changed} changed", 2)  # each worker: "... on restart only"
        os.kill(serve.children()[0], signal.SIGKILL)
        serve.wait("restarting it")
        serve.wait("lineage_proxy: serving http=", 4)  # two workers, the supervisor, the replacement
        assert [chat(f"http://{addresses['http']}") for _ in range(calls)] == [200] * calls
        if changed == "telemetry.metrics":
            scrapes = [scrape(addresses["admin"]) for _ in range(10)]
            assert [status for status, _ in scrapes] == [200] * 10
            assert {found["lineage_proxy_request_duration_seconds_count"] for _, found in scrapes} == {calls}
        assert serve.stop() == 0, "".join(serve.err)
    finally:
        serve.end()
    with sqlite3.connect(f"file:{old}?mode=ro", uri=True) as db:
        assert db.execute("SELECT coalesce(sum(count), 0) FROM edges").fetchone()[0] == calls
    assert not new.exists()


# -- a worker that stops on its own


class HeldReceiver(OtlpReceiver):
    """An OTLP receiver that takes exports but answers none until `let_go` is set: a worker's spans are
    exported (and counted) only once the test says so."""

    def __init__(self) -> None:
        super().__init__()
        self.let_go = threading.Event()

    def Export(self, request: Any, context: Any) -> Any:
        self.let_go.wait(WAIT_S)
        return super().Export(request, context)


COUNTED = """
listen: {http: 127.0.0.1:0, admin: 127.0.0.1:0}
upstreams: [{name: vllm, url: "UPSTREAM"}]
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: "STORE"}
telemetry: {exporter: otlp, protocol: grpc, endpoint: "http://127.0.0.1:OTLP", export_timeout_s: 30}
logging: {format: json, access: true}
"""


def test_a_worker_stopped_alone_leaves_its_last_counts_on_metrics(vllm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """t4b_term_one_worker.py: SIGTERM to one worker (the supervisor restarts it). Its last exports end
    while it stops, after its once-a-second publisher was cancelled: 5,000 spans received, 4,961 on
    /metrics. Here every span it exports is counted while it stops (the collector answers only then)."""
    _, upstream = vllm
    receiver = HeldReceiver()
    port = receiver.start()
    config = tmp_path / "proxy.yaml"
    config.write_text(COUNTED.replace("UPSTREAM", upstream).replace("STORE", str(tmp_path / "lineage.db"))
                      .replace("OTLP", str(port)))  # fmt: skip
    serve = Serve.workers(config, env={"TMPDIR": str(tmp_path)})
    try:
        addresses = serve.ready()
        calls = 40
        assert [chat(f"http://{addresses['http']}") for _ in range(calls)] == [200] * calls
        access = [orjson.loads(line) for line in serve.wait('"logger":"lineage_proxy.access"', calls)]
        served = {pid: sum(line["pid"] == pid for line in access) for pid in {line["pid"] for line in access}}
        busiest = max(served, key=lambda pid: served[pid])  # one worker, with calls whose spans are unsent
        os.kill(busiest, signal.SIGTERM)
        serve.wait(f'"pid":{busiest},"logger":"lineage_proxy","message":"stopping: draining')
        receiver.let_go.set()  # its exports end now, while it stops
        serve.wait("restarting it")
        assert len(receiver.wait_for(lambda spans: len(spans) == calls)) == calls
        # the other worker publishes its count within a second of its export's end: scraped until then
        deadline, exported = time.monotonic() + 10, -1.0
        while exported != calls and time.monotonic() < deadline:
            status, found = scrape(addresses["admin"])
            assert status == 200
            exported = found.get("lineage_proxy_spans_exported_total", 0.0)
        assert exported == calls, served  # each worker's calls: the one stopped lost all it had
        assert serve.stop() == 0, "".join(serve.err)
    finally:
        receiver.let_go.set()
        serve.end()
        receiver.stop()


# -- the config a restarted worker starts with


def test_a_reloaded_config_keeps_what_only_a_restart_applies(tmp_path: Path) -> None:
    """`as_reloaded`: what the workers run after a reload, and so what a worker restarted since starts with."""
    from proxy.config import Tls, parse
    from proxy.server import as_reloaded

    base = RELOADED.replace("UPSTREAM", "http://127.0.0.1:1")
    started = parse(base.replace("STORE", "old.db").replace("METRICS", "true"), source="a.yaml", env={})
    changed = (base.replace("STORE", "new.db").replace("METRICS", "false")
               .replace("127.0.0.1:0, admin", "127.0.0.1:9, grpc: 127.0.0.1:0, admin")
               .replace("default_purpose: assistant", "default_purpose: support"))  # fmt: skip
    new = parse(changed, source="b.yaml", env={})
    running = as_reloaded(started, new)
    assert running is not None
    assert running.lineage.store == started.lineage.store and running.telemetry.metrics
    assert running.listen == started.listen
    assert running.policy == new.policy  # what a reload applies is applied
    assert running.upstreams == new.upstreams and running.routes == new.routes

    tls = dataclasses.replace(new, listen=dataclasses.replace(new.listen, tls=Tls(cert="c.pem", key="k.pem")))
    assert as_reloaded(started, tls) is None  # refused: listen.tls added
    assert as_reloaded(running, running) == running

"""OpenLineage counts held for retry while the backend fails survive a `kill -9` (the OOM killer): the sender writes
them to the spool (`lineage.openlineage.spool`) as it holds them, once a snapshot, each count event as it will be
sent (its runId, eventTime and window), so the next start sends them and summing the counts a real HTTP receiver took
gives the calls the edge store has. Before, the spool was written only by a clean stop: a kill during an outage lost
every count since the backend last took one."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web
from openlineage.client.transport import Transport

from proxy.config.model import OpenLineage
from proxy.flow import ALLOW, Call, Decision, Outcome, TraceContext
from proxy.record.openlineage import OpenLineageRecorder
from proxy.record.store import SqliteStore
from tests.harness import LoopThread, ServeProcess
from tests.servers.vllm_like import SERVED

COPY = str(Path(__file__).resolve().parents[1])  # this checkout: the `serve` subprocess imports it


class Receiver:
    """An OpenLineage HTTP endpoint (Marquez's `/api/v1/lineage`) that answers 500 while `failing`, 201 (the event
    kept) otherwise."""

    def __init__(self) -> None:
        self.failing = False
        self.kept: list[dict[str, Any]] = []
        self.refused = 0  # count events answered 500
        self.cond = threading.Condition()

    async def lineage(self, request: web.Request) -> web.Response:
        event = await request.json()
        with self.cond:
            try:
                if self.failing:
                    self.refused += "lineageProxy_count" in event["run"]["facets"]
                    return web.Response(status=500, text="down for maintenance")
                self.kept.append(event)
                return web.Response(status=201)
            finally:
                self.cond.notify_all()

    def counts(self) -> list[tuple[str, int]]:
        with self.cond:
            return [(e["run"]["runId"], e["run"]["facets"]["lineageProxy_count"]["count"]) for e in self.kept
                    if "lineageProxy_count" in e["run"]["facets"]]  # fmt: skip

    def wait(self, predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
        with self.cond:
            return self.cond.wait_for(predicate, timeout)


@pytest.fixture
def receiver(loop_thread: LoopThread) -> Iterator[tuple[Receiver, int]]:
    found = Receiver()

    async def start() -> tuple[web.AppRunner, int]:
        app = web.Application()
        app.router.add_post("/api/v1/lineage", found.lineage)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        return runner, server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    runner, port = loop_thread.run(start())
    yield found, port
    loop_thread.run(runner.cleanup())


@pytest.fixture
def serve() -> Iterator[Callable[..., ServeProcess]]:
    started: list[ServeProcess] = []

    def start(config: str, *args: str) -> ServeProcess:
        started.append(ServeProcess(config, "--log-level", "info", *args, env={"PYTHONPATH": COPY}))
        return started[-1]

    yield start
    for process in started:
        if process.proc.poll() is None:
            process.stop()


def call(process: ServeProcess, labels: str) -> None:
    reply = httpx.post(f"{process.url}/v1/chat/completions", headers={"x-data-labels": labels}, timeout=30,
                       json={"model": SERVED, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    assert reply.status_code == 200, reply.text


def store_calls(tmp_path: Path) -> int:
    if not (tmp_path / "lineage.db").exists():
        return 0
    store = SqliteStore(tmp_path / "lineage.db", readonly=True)
    try:
        return sum(row.count for row in store.rows())
    finally:
        store.close()


def spooled_calls(spool: Path) -> int:
    """The calls the spool's count events hold, each run once (a file read while being replaced is skipped)."""
    runs: dict[str, int] = {}
    for path in spool.glob("*.jsonl") if spool.exists() else ():
        try:
            lines = path.read_bytes().splitlines()
        except FileNotFoundError:
            continue
        for entry in map(orjson.loads, lines):
            runs[entry["runId"]] = entry["count"]
    return sum(runs.values())


def children(parent: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            pids.append(int(stat.parent.name))
    return pids


def dead(pid: int) -> bool:
    """Exited (a zombie, or reaped): its files closed, its locks let go."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def until(predicate: Callable[[], bool], timeout: float) -> bool:
    """Polls a state another process writes (no event to wait on), up to `timeout`."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize("workers", [[], ["--workers", "2"]], ids=["one-process", "two-workers"])
def test_counts_held_while_the_backend_fails_survive_a_kill(
    vllm: Any, receiver: tuple[Receiver, int], serve: Callable[..., ServeProcess], tmp_path: Path,
    workers: list[str],
) -> None:  # fmt: skip
    backend, port = receiver
    _, upstream = vllm
    spool = tmp_path / "spool"
    config = tmp_path / "proxy.yaml"
    config.write_text(f"""
listen: {{http: "127.0.0.1:0"}}
upstreams: [{{name: llm, url: "{upstream}"}}]
routes: [{{model: "*", upstream: llm}}]
policy: {{anonymous: allow, default_purpose: assistant}}
lineage:
  store: {tmp_path / "lineage.db"}
  flush_interval_s: 0.1
  openlineage: {{url: "http://127.0.0.1:{port}", snapshot_interval_s: 0.3, spool: {spool}}}
""")
    backend.failing = True
    first = serve(str(config), *workers)
    for _ in range(3):
        call(first, "team-a")
    assert backend.wait(lambda: backend.refused >= 1)  # a count event failed: it waits to be sent again
    for index in range(4):
        call(first, f"team-{'ab'[index % 2]}")  # later windows' counts, held while the first fails
    # the edge store has them all, and (with the fix) so has the spool, each count once
    until(lambda: store_calls(tmp_path) == 7 and spooled_calls(spool) == 7, 20)
    assert store_calls(tmp_path) == 7
    workers_pids = children(first.proc.pid)
    assert len(workers_pids) == (2 if workers else 0)
    first.proc.send_signal(signal.SIGSTOP)  # a supervisor held still restarts no worker, and stops none
    for pid in workers_pids:
        os.kill(pid, signal.SIGKILL)  # the OOM killer, mid-outage
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(30)
    assert until(lambda: all(dead(pid) for pid in workers_pids), 30)
    backend.failing = False

    second = serve(str(config))
    backend.wait(lambda: sum(count for _, count in backend.counts()) >= 7, 20)  # at start, before any call
    second.signal(signal.SIGTERM)
    assert second.proc.wait(30) == 0
    counts = backend.counts()
    assert sum(count for _, count in counts) == 7 == store_calls(tmp_path), counts
    assert len({run for run, _ in counts}) == len(counts)  # each run once
    assert spooled_calls(spool) == 0  # sent: removed


def test_a_killed_worker_s_held_counts_go_out_with_the_worker_started_in_its_place(
    vllm: Any, receiver: tuple[Receiver, int], serve: Callable[..., ServeProcess], tmp_path: Path
) -> None:
    """With `--workers 2`, the OOM killer takes a worker during an outage: the supervisor starts another, which (or a
    sibling) claims the dead one's file and sends its counts once the backend is back, each call once."""
    backend, port = receiver
    _, upstream = vllm
    spool = tmp_path / "spool"
    config = tmp_path / "proxy.yaml"
    config.write_text(f"""
listen: {{http: "127.0.0.1:0"}}
upstreams: [{{name: llm, url: "{upstream}"}}]
routes: [{{model: "*", upstream: llm}}]
policy: {{anonymous: allow, default_purpose: assistant}}
lineage:
  store: {tmp_path / "lineage.db"}
  flush_interval_s: 0.1
  openlineage: {{url: "http://127.0.0.1:{port}", snapshot_interval_s: 0.3, spool: {spool}}}
""")
    backend.failing = True
    proxy = serve(str(config), "--workers", "2")
    for index in range(6):
        call(proxy, f"team-{index % 2}")
    until(lambda: store_calls(tmp_path) == 6 and spooled_calls(spool) == 6, 20)
    killed = children(proxy.proc.pid)
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    proxy.wait_log("restarting it", 30)
    assert until(lambda: len(set(children(proxy.proc.pid)) - set(killed)) == 2, 30)
    backend.failing = False
    backend.wait(lambda: sum(count for _, count in backend.counts()) >= 6, 20)
    proxy.signal(signal.SIGTERM)
    assert proxy.proc.wait(30) == 0
    counts = backend.counts()
    assert sum(count for _, count in counts) == 6 == store_calls(tmp_path), counts
    assert len({run for run, _ in counts}) == len(counts)
    assert spooled_calls(spool) == 0


class Switch(Transport):
    """A backend that fails every event while `down`, and keeps each one otherwise."""

    kind = "switch"

    def __init__(self) -> None:
        self.down = True
        self.events: list[Any] = []

    def emit(self, event: Any) -> None:
        if self.down:
            raise ConnectionError("connection refused")
        self.events.append(event)


def on_end(sink: OpenLineageRecorder, labels: str, calls: int = 1) -> None:
    call = Call("openai", "chat", "m", TraceContext(trace_id=1, span_id=2))
    for _ in range(calls):
        sink.on_end(call, Decision(ALLOW, None, labels=frozenset({labels})), Outcome(started_ns=1), frozenset())


def entries(spool: Path) -> dict[str, int]:
    return {entry["runId"]: entry["count"] for path in sorted(spool.glob("*.jsonl"))
            for entry in map(orjson.loads, path.read_bytes().splitlines())}  # fmt: skip


def test_what_the_backend_took_before_a_kill_is_the_same_runs_in_the_spool(
    loop_thread: LoopThread, tmp_path: Path
) -> None:
    """The spool written during an outage holds each count event as the sender sends it once the backend is back
    (its runId): a kill after the backend took them and before the file was removed sends the same runs again at the
    next start, never more calls to a receiver that keeps a run once (Marquez: by its runId)."""
    spool = tmp_path / "spool"
    settings = OpenLineage(snapshot_interval_s=3600.0, spool=str(spool))
    backend = Switch()
    sink = OpenLineageRecorder(settings, transport=backend)

    async def outage() -> None:
        sink.start()
        on_end(sink, "team-a", 3)
        await sink.flush()  # fails: to send again
        on_end(sink, "team-a", 2)
        on_end(sink, "team-b", 1)
        await sink.flush()  # the first fails again; these are held

    loop_thread.run(outage())
    during = entries(spool)
    assert sum(during.values()) == 6
    kept = tmp_path / "kept"
    shutil.copytree(spool, kept)  # what a kill right after the backend took them would leave
    backend.down = False

    async def back() -> None:
        await sink.flush()
        await sink.stop()

    loop_thread.run(back())
    sent = {e.run.runId: e.run.facets["lineageProxy_count"].count for e in backend.events
            if "lineageProxy_count" in e.run.facets}  # fmt: skip
    assert sent == during  # the same runs, each with its count
    assert entries(spool) == {}  # all sent: removed
    shutil.rmtree(spool)
    shutil.copytree(kept, spool)
    again = Switch()
    again.down = False
    later = OpenLineageRecorder(settings, transport=again)

    async def restart() -> None:
        later.start()
        await later.flush()
        await later.stop()

    loop_thread.run(restart())
    assert {e.run.runId: e.run.facets["lineageProxy_count"].count for e in again.events} == during
    assert entries(spool) == {}


def test_a_stop_during_an_outage_leaves_one_file_of_the_same_runs(loop_thread: LoopThread, tmp_path: Path) -> None:
    """A stop (a reload replacing the OpenLineage settings, or a SIGTERM) while the backend fails spools what it
    holds, the events the outage's file had as they were there, and removes that file: one file, each call once."""
    spool = tmp_path / "spool"
    sink = OpenLineageRecorder(OpenLineage(snapshot_interval_s=3600.0, spool=str(spool)), transport=Switch())

    async def run() -> dict[str, int]:
        sink.start()
        on_end(sink, "team-a", 3)
        await sink.flush()
        on_end(sink, "team-b", 2)
        await sink.flush()
        during = entries(spool)
        on_end(sink, "team-b", 1)  # not in a snapshot yet
        await sink.stop()
        return during

    during = loop_thread.run(run())
    assert len(list(spool.glob("*.jsonl"))) == 1
    after = entries(spool)
    assert {run: after[run] for run in during} == during  # the same runs, each as it was
    assert sum(after.values()) == 6

"""OpenLineage counts not sent when the proxy stops (its backend down) are spooled beside the store and sent at the
next start, before any new event, as they were (their runIds too): summing the counts a real HTTP receiver gets over
two runs of `serve` gives the calls made, what the edge store has. Before, they were only logged, then lost. A spool
file sent again (a crash between the send and the file's removal) brings the same runs again, never more calls."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import threading
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
from tests.harness import LoopThread, ServeProcess, dead_port, fill
from tests.held import until
from tests.servers.vllm_like import SERVED

COPY = str(Path(__file__).resolve().parents[1])  # this checkout: the `serve` subprocess imports it


class Receiver:
    """An OpenLineage HTTP endpoint (Marquez's `/api/v1/lineage`) on a fixed port, which can go down (its port
    closed: connection refused) and come up again on the same port."""

    def __init__(self, loop_thread: LoopThread) -> None:
        self.loop_thread = loop_thread
        self.port = dead_port()
        self.events: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._runner: web.AppRunner | None = None

    async def _lineage(self, request: web.Request) -> web.Response:
        event = await request.json()
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()
        return web.Response(status=201)

    def up(self) -> None:
        async def start() -> web.AppRunner:
            app = web.Application()
            app.router.add_post("/api/v1/lineage", self._lineage)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            return runner

        self._runner = self.loop_thread.run(start())

    def down(self) -> None:
        if self._runner is not None:
            self.loop_thread.run(self._runner.cleanup())
            self._runner = None

    def counts(self) -> list[tuple[str, int]]:
        with self._cond:
            return [(e["run"]["runId"], e["run"]["facets"]["lineageProxy_count"]["count"]) for e in self.events
                    if "lineageProxy_count" in e["run"]["facets"]]  # fmt: skip

    def wait_counted(self, calls: int, timeout: float = 20.0) -> None:
        """Until the count events received, each run once, sum to `calls`."""

        def counted() -> int:
            return sum(dict(self.counts()).values())

        with self._cond:
            assert self._cond.wait_for(lambda: counted() >= calls, timeout), self.counts()


@pytest.fixture
def receiver(loop_thread: LoopThread) -> Iterator[Receiver]:
    server = Receiver(loop_thread)
    server.up()
    yield server
    server.down()


def write_config(tmp_path: Path, upstream: str, port: int) -> str:
    path = tmp_path / "proxy.yaml"
    path.write_text(f"""
listen: {{http: "127.0.0.1:0"}}
upstreams: [{{name: llm, url: "{upstream}"}}]
routes: [{{model: "*", upstream: llm}}]
policy: {{anonymous: allow, default_purpose: assistant}}
lineage:
  store: {tmp_path / "lineage.db"}
  openlineage: {{url: "http://127.0.0.1:{port}", snapshot_interval_s: 600}}
""")
    return str(path)


@pytest.fixture
def serve() -> Iterator[Callable[..., ServeProcess]]:
    """`serve --config CONFIG ARGS...` of this checkout; each one still running at the end is stopped."""
    started: list[ServeProcess] = []

    def start(config: str, *args: str) -> ServeProcess:
        started.append(ServeProcess(config, "--log-level", "info", *args, env={"PYTHONPATH": COPY}))
        return started[-1]

    yield start
    for process in started:
        process.stop()


def call(process: ServeProcess, labels: str) -> None:
    reply = httpx.post(f"{process.url}/v1/chat/completions", headers={"x-data-labels": labels}, timeout=30,
                       json={"model": SERVED, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    assert reply.status_code == 200, reply.text


def stop(process: ServeProcess) -> str:
    process.signal(signal.SIGTERM)
    assert process.proc.wait(30) == 0
    return "".join(process.stderr)


def store_calls(tmp_path: Path) -> int:
    store = SqliteStore(tmp_path / "lineage.db", readonly=True)
    try:
        return sum(row.count for row in store.rows())
    finally:
        store.close()


def spooled(tmp_path: Path) -> list[Path]:
    directory = tmp_path / "lineage-openlineage-spool"  # the default, beside ./lineage.db
    return sorted(directory.glob("*.jsonl")) if directory.exists() else []


def test_counts_unsent_at_stop_are_sent_at_the_next_start(
    vllm: Any, receiver: Receiver, serve: Callable[..., ServeProcess], tmp_path: Path
) -> None:
    _, upstream = vllm
    config = write_config(tmp_path, upstream, receiver.port)
    first = serve(config)
    for _ in range(3):
        call(first, "team-a")
    receiver.down()  # the backend goes away; the counts of the run's one window are not sent
    for _ in range(2):
        call(first, "team-a")
    call(first, "team-b")
    said = stop(first)
    assert "could not be sent to http" in said, said
    assert receiver.counts() == []
    files = spooled(tmp_path)

    receiver.up()
    second = serve(config)
    receiver.wait_counted(6)  # at start, before any call
    call(second, "team-b")
    stop(second)  # the backend up: the last window's count goes out at stop
    receiver.wait_counted(7)
    counts = receiver.counts()
    assert sum(count for _, count in counts) == 7 == store_calls(tmp_path)
    assert len({run for run, _ in counts}) == len(counts)  # each run once
    assert "2 count events (6 calls) spooled to ./lineage-openlineage-spool/" in said, said
    assert len(files) == 1 and spooled(tmp_path) == []  # one file a stop; sent, removed


def test_a_spool_file_sent_again_brings_the_same_runs(
    vllm: Any, receiver: Receiver, serve: Callable[..., ServeProcess], tmp_path: Path
) -> None:
    """A crash after the spooled events were sent and before their file was removed: the next start sends them
    again, each with its runId and eventTime, so a receiver that keeps a run once (Marquez: by its runId) counts
    each call once."""
    _, upstream = vllm
    config = write_config(tmp_path, upstream, receiver.port)
    receiver.down()
    first = serve(config)
    for _ in range(4):
        call(first, "team-a")
    stop(first)
    (spool,) = spooled(tmp_path)
    kept = tmp_path / "kept.jsonl"
    shutil.copy(spool, kept)
    receiver.up()
    second = serve(config)
    receiver.wait_counted(4)
    stop(second)
    assert spooled(tmp_path) == []
    os.rename(kept, spool)  # as if the second run had died before removing it
    third = serve(config)
    with receiver._cond:
        assert receiver._cond.wait_for(lambda: len(receiver.counts()) >= 2, 20), receiver.counts()
    stop(third)
    counts = receiver.counts()
    assert len(counts) == 2 and counts[0] == counts[1]  # the same run twice
    assert {e["eventTime"] for e in receiver.events if "lineageProxy_count" in e["run"]["facets"]} == {
        receiver.events[-1]["eventTime"]
    }
    assert sum(dict(counts).values()) == 4 == store_calls(tmp_path)
    assert spooled(tmp_path) == []


@pytest.mark.parametrize("workers_after", ["1", "2"])
def test_each_worker_spools_its_own_and_each_file_is_sent_once(
    vllm: Any, receiver: Receiver, serve: Callable[..., ServeProcess], tmp_path: Path, workers_after: str
) -> None:
    """With `--workers 2` each worker spools what it did not send, a file of its own; at the next start (one
    worker, or two, each claiming a file before reading it) each file is sent once, by one of them."""
    _, upstream = vllm
    config = write_config(tmp_path, upstream, receiver.port)
    receiver.down()
    first = serve(config, "--workers", "2")
    for index in range(8):
        call(first, f"team-{index % 2}")  # a connection a call: the kernel spreads them over the workers
    stop(first)
    assert 1 <= len(spooled(tmp_path)) <= 2
    receiver.up()
    second = serve(config, "--workers", workers_after)
    receiver.wait_counted(8)
    stop(second)
    counts = receiver.counts()
    assert len({run for run, _ in counts}) == len(counts)  # no run sent twice
    assert sum(count for _, count in counts) == 8 == store_calls(tmp_path)
    assert spooled(tmp_path) == []


class Down(Transport):
    """A backend that is down: every event fails."""

    kind = "down"

    def emit(self, event: Any) -> None:
        raise ConnectionError("connection refused")


class Kept(Transport):
    kind = "kept"

    def __init__(self) -> None:
        self.events: list[Any] = []

    def emit(self, event: Any) -> None:
        self.events.append(event)


def counted(events: list[Any]) -> list[int]:
    return [e.run.facets["lineageProxy_count"].count for e in events if "lineageProxy_count" in e.run.facets]


def on_end(sink: OpenLineageRecorder, labels: str, calls: int = 1) -> None:
    call = Call("openai", "chat", "m", TraceContext(trace_id=1, span_id=2))
    for _ in range(calls):
        sink.on_end(call, Decision(ALLOW, None, labels=frozenset({labels})), Outcome(started_ns=1), frozenset())


def test_a_replaced_recorder_s_spool_goes_out_with_its_successor_s_next_snapshot(
    loop_thread: LoopThread, tmp_path: Path
) -> None:
    """A reload that replaces the OpenLineage settings stops the old recorder (its backend down: it spools) after the
    new one started: the new one sends the spooled counts with its next snapshot, not only at the next start."""
    settings = OpenLineage(snapshot_interval_s=3600.0, spool=str(tmp_path / "spool"))
    kept = Kept()
    old, new = OpenLineageRecorder(settings, transport=Down()), OpenLineageRecorder(settings, transport=kept)

    async def run() -> None:
        old.start()
        new.start()
        on_end(old, "team-a", 3)
        await old.stop()
        on_end(new, "team-a")
        await new.flush()

    loop_thread.run(run())
    try:
        assert sorted(counted(kept.events)) == [1, 3]
        assert list((tmp_path / "spool").glob("*.jsonl")) == []  # sent: removed
    finally:
        loop_thread.run(new.stop())


def test_past_spool_max_events_the_rest_are_dropped_counted_and_said(
    loop_thread: LoopThread, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = OpenLineage(snapshot_interval_s=3600.0, spool=str(tmp_path / "spool"), spool_max_events=1)
    sink = OpenLineageRecorder(settings, transport=Down())

    async def run() -> None:
        sink.start()
        on_end(sink, "team-a", 2)
        on_end(sink, "team-b", 3)
        await sink.stop()

    with caplog.at_level(logging.WARNING, logger="lineage_proxy.openlineage"):
        loop_thread.run(run())
    (path,) = (tmp_path / "spool").glob("*.jsonl")
    assert [orjson.loads(line)["count"] for line in path.read_bytes().splitlines()] == [2]
    assert sink.counts["dropped"] == 1
    (said,) = [r.getMessage() for r in caplog.records if "could not be spooled" in r.getMessage()]
    assert said.startswith("openlineage: 1 count events (3 calls) for ") and "(spool_max_events 1); lost" in said


def test_a_spool_on_a_full_disk_says_so_and_what_its_earlier_files_keep(
    loop_thread: LoopThread, tiny_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A stop whose spool file could not be written (a real full disk) said its count events were lost "(spool_max_events
    100000)", a bound they were far below, as if raising it would have kept them; and "lost" of the counts that the
    backlog file written during the outage still held, which the next start sends. Now it says why, and how many events
    and calls stay (those counted dropped, and said lost, were those too)."""
    spool = tiny_disk / "spool"
    sink = OpenLineageRecorder(OpenLineage(snapshot_interval_s=0.05, spool=str(spool)), transport=Down())

    async def outage() -> None:
        sink.start()
        on_end(sink, "team-a", 2)

    loop_thread.run(outage())
    assert until(lambda: list(spool.glob("*.jsonl")))  # the backlog file, written at a snapshot the backend failed
    fill(tiny_disk)

    async def stop() -> None:
        on_end(sink, "team-a")  # (on the loop, as the snapshots are taken)
        await sink.stop()

    with caplog.at_level(logging.WARNING, logger="lineage_proxy.openlineage"):
        loop_thread.run(stop())
    (said,) = [r for r in caplog.records if "could not be spooled" in r.getMessage()]
    assert said.levelno == logging.ERROR
    # the stop's two count events: the backlog file's (2 calls), kept there, and the last call's, lost
    assert said.getMessage().endswith(
        f"1 count events (1 calls) for ? could not be spooled (the spool {spool} could not be written: OSError: "
        "[Errno 28] No space left on device); lost; 1 more (2 calls) are in the spool's earlier files, kept for the next "
        "start"
    ), said.getMessage()
    assert sink.counts["dropped"] == 1  # the one lost (2 before 2026-12-04: the one the next start sends too)

    (tiny_disk / "filler").unlink()
    kept = Kept()
    again = OpenLineageRecorder(OpenLineage(snapshot_interval_s=3600.0, spool=str(spool)), transport=kept)

    async def restart() -> None:
        again.start()
        await again.stop()

    loop_thread.run(restart())
    assert sum(counted(kept.events)) == 2  # the backlog file's counts, sent by the next start
    assert list(spool.glob("*.jsonl")) == []


def test_a_spool_on_a_full_disk_that_loses_nothing_says_so(
    loop_thread: LoopThread, tiny_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No call since the backlog file's last write: all the stop could not spool is in that file. The line said them
    all lost, and they were counted dropped."""
    spool = tiny_disk / "spool"
    sink = OpenLineageRecorder(OpenLineage(snapshot_interval_s=0.05, spool=str(spool)), transport=Down())

    async def outage() -> None:
        sink.start()
        on_end(sink, "team-a", 2)

    loop_thread.run(outage())
    assert until(lambda: list(spool.glob("*.jsonl")))
    fill(tiny_disk)
    with caplog.at_level(logging.WARNING, logger="lineage_proxy.openlineage"):
        loop_thread.run(sink.stop())
    (said,) = [r.getMessage() for r in caplog.records if "could not be spooled" in r.getMessage()]
    assert said.startswith("openlineage: the 1 count events (2 calls) for ? not sent could not be spooled (the spool ")
    assert said.endswith("); they are in the spool's earlier files, kept for the next start")
    assert sink.counts["dropped"] == 0


def test_a_spool_on_a_full_disk_keeps_the_earlier_run_s_file_it_claimed(
    loop_thread: LoopThread, tiny_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The spool file an earlier run wrote, claimed by a recorder whose backend is still down and whose disk filled:
    its stop cannot write its own file, so the earlier one stays, for the next start. Its events were said lost and
    counted dropped with the rest; they are the ones the next start sends."""
    spool = tiny_disk / "spool"
    first = OpenLineageRecorder(OpenLineage(snapshot_interval_s=3600.0, spool=str(spool)), transport=Down())

    async def run(sink: OpenLineageRecorder, labels: str, calls: int) -> None:
        sink.start()
        on_end(sink, labels, calls)
        await sink.stop()

    loop_thread.run(run(first, "team-a", 4))
    (earlier,) = spool.glob("*.jsonl")
    fill(tiny_disk)
    second = OpenLineageRecorder(OpenLineage(snapshot_interval_s=3600.0, spool=str(spool)), transport=Down())
    with caplog.at_level(logging.WARNING, logger="lineage_proxy.openlineage"):
        loop_thread.run(run(second, "team-b", 3))
    (said,) = [r.getMessage() for r in caplog.records if "could not be spooled" in r.getMessage()]
    assert said.startswith("openlineage: 1 count events (3 calls) for ? could not be spooled (the spool ")
    assert said.endswith("; lost; 1 more (4 calls) are in the spool's earlier files, kept for the next start")
    assert second.counts["dropped"] == 1
    assert list(spool.glob("*.jsonl")) == [earlier]

    (tiny_disk / "filler").unlink()
    kept = Kept()
    loop_thread.run(run(OpenLineageRecorder(OpenLineage(spool=str(spool)), transport=kept), "team-c", 0))
    assert counted(kept.events) == [4]  # what the line said kept


def test_a_spool_file_that_is_not_one_is_set_aside_not_removed(
    loop_thread: LoopThread, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "x.jsonl").write_text("not json\n")
    kept = Kept()
    sink = OpenLineageRecorder(OpenLineage(snapshot_interval_s=3600.0, spool=str(spool)), transport=kept)

    async def run() -> None:
        sink.start()
        on_end(sink, "team-a")
        await sink.stop()

    with caplog.at_level(logging.ERROR, logger="lineage_proxy.openlineage"):
        loop_thread.run(run())
    assert counted(kept.events) == [1]
    assert sorted(p.name for p in spool.iterdir()) == ["x.jsonl.bad"]
    assert (spool / "x.jsonl.bad").read_text() == "not json\n"
    assert any("is not one" in r.getMessage() for r in caplog.records)


def test_a_backend_still_down_at_the_next_start_keeps_the_spooled_counts_once(
    loop_thread: LoopThread, tmp_path: Path
) -> None:
    """Spooled counts a start could not send either are spooled again, as they were (one file, the same runIds), and
    go out once the backend is back."""
    settings = OpenLineage(snapshot_interval_s=3600.0, spool=str(tmp_path / "spool"))

    def runs() -> list[tuple[str, int]]:
        return [(entry["runId"], entry["count"]) for path in sorted((tmp_path / "spool").glob("*.jsonl"))
                for entry in map(orjson.loads, path.read_bytes().splitlines())]  # fmt: skip

    async def run(transport: Transport, calls: int) -> None:
        sink = OpenLineageRecorder(settings, transport=transport)
        sink.start()
        on_end(sink, "team-a", calls)
        await sink.flush()
        await sink.stop()

    loop_thread.run(run(Down(), 3))
    first = runs()
    loop_thread.run(run(Down(), 2))
    second = runs()
    assert second[0] == first[0] and [count for _, count in second] == [3, 2]
    kept = Kept()
    loop_thread.run(run(kept, 1))
    assert counted(kept.events) == [3, 2, 1]
    assert [e.run.runId for e in kept.events if "lineageProxy_count" in e.run.facets][:2] == [r for r, _ in second]
    assert runs() == []

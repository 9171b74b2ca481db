"""`telemetry.exporter: console` writes one JSON line a span on stdout, each whole however long, as a log line is on
stderr (tests/test_logging.py). With `--workers 2` both workers write to the same pipe, which takes a write whole only
up to PIPE_BUF (4096 bytes): spans of more (64 labels of 100 characters, ~14.5 KB) came out in each other's pieces,
32 to 72 of 300 lines no span (some of them parseable, two spans' pieces making one with 63 labels). On a stdout pipe
another process left non-blocking, Python's buffered stdout wrote what the pipe had room for and dropped the rest
without raising: 0 of 40 spans whole, one line of a piece, all 40 counted exported, nothing logged. With stderr on the
same pipe (`2>&1`, systemd's default), spans and JSON log lines came out in each other's pieces, in one process too (12
to 45 of ~600 lines broken, 10 runs of 10 for one process and for two workers)."""

from __future__ import annotations

import asyncio
import fcntl
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import orjson
import pytest

from tests.harness import ServeProcess
from tests.servers.vllm_like import SERVED

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: vllm, url: "${UPSTREAM}"}]
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
telemetry: {exporter: console}
lineage: {store: "${STORE}"}
"""
LABELS = ",".join(f"l{i:02d}-" + "x" * 96 for i in range(64))  # each span ~13 KB: its input and output labels
WAIT_S = 30.0


def load(url: str, calls: int) -> list[str]:
    """`calls` chats over 32 connections at once: their `x-trace-id`s."""
    body = {"model": SERVED, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"x-data-labels": LABELS}

    async def run() -> list[str]:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=32), timeout=WAIT_S) as client:
            pending = iter(range(calls))

            async def one_by_one() -> list[str]:
                return [(await client.post(f"{url}/v1/chat/completions", json=body, headers=headers))
                        .headers["x-trace-id"] for _ in pending]  # fmt: skip

            return [trace for done in await asyncio.gather(*(one_by_one() for _ in range(32))) for trace in done]

    return asyncio.run(run())


def spans_of(lines: list[str]) -> tuple[list[str], list[str]]:
    """The trace ids of the spans `lines` hold, and the lines that are no span: no JSON, or pieces of two spans that
    happen to make one (a label list of 63, where each call sent 64)."""
    traces, broken = [], []
    for line in lines:
        try:
            span = orjson.loads(line)
        except orjson.JSONDecodeError:
            broken.append(line)
            continue
        if span["attributes"]["lineage.input.labels"] != LABELS.split(","):
            broken.append(line)
            continue
        traces.append(span["trace_id"])
    return traces, broken


def test_spans_of_two_workers_reach_a_pipe_whole(vllm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG)
    serve = ServeProcess(str(config), "--workers", "2", env={"UPSTREAM": upstream, "STORE": str(tmp_path / "l.db")})
    assert serve.proc.stdout is not None
    fcntl.fcntl(serve.proc.stdout.fileno(), fcntl.F_SETPIPE_SZ, 4096)
    try:
        traces = load(serve.url, 300)
    finally:
        assert serve.stop() == 0
    lines = []
    while (line := serve.lines.get(timeout=WAIT_S)) != "<eof>":
        lines.append(line)
    spanned, broken = spans_of(lines)
    assert not broken, f"{len(broken)} lines broken, the first: {broken[0][:300]}"
    assert sorted(spanned) == sorted(traces)  # each call's span once


class Piped:
    """`serve` (`args` after its config) with its stdout a pipe of 4096 bytes, non-blocking or not, stderr there too or
    not, read from the start or only once `read` is called: the lines it holds after the ready line, as they come."""

    def __init__(self, config: Path, env: dict[str, str], *args: str, non_blocking: bool, stderr_too: bool,
                 read_at_once: bool) -> None:  # fmt: skip
        read_end, write_end = os.pipe()
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
        if non_blocking:
            fcntl.fcntl(write_end, fcntl.F_SETFL, fcntl.fcntl(write_end, fcntl.F_GETFL) | os.O_NONBLOCK)
        command = [sys.executable, "-m", "proxy", "serve", "--config", str(config), *args]
        self.proc = subprocess.Popen(command, stdout=write_end, stderr=write_end if stderr_too else subprocess.PIPE,
                                     env={**os.environ, **env})  # fmt: skip
        os.close(write_end)
        self.lines: queue.Queue[str] = queue.Queue()
        self.reading = threading.Event()
        if read_at_once:
            self.reading.set()
        ready: queue.Queue[str] = queue.Queue()

        def pump() -> None:
            with os.fdopen(read_end, "rb") as out:
                while not (line := out.readline().decode()).startswith("lineage-proxy ready ") and line:
                    pass  # (log lines, when stderr is here too)
                ready.put(line)
                self.reading.wait()
                for piece in out:
                    self.lines.put(piece.decode().rstrip("\n"))
            self.lines.put("<eof>")

        threading.Thread(target=pump, daemon=True).start()
        line = ready.get(timeout=WAIT_S)
        assert line.startswith("lineage-proxy ready "), line
        self.addresses = dict(part.split("=", 1) for part in line.split()[2:])
        self.url = "http://" + self.addresses["http"]

    def stop(self) -> list[str]:
        """SIGTERM, its exit waited for (0): the lines it wrote after the ready line."""
        self.reading.set()
        self.proc.send_signal(signal.SIGTERM)
        stderr = self.proc.communicate(timeout=WAIT_S)[1]
        assert self.proc.returncode == 0, stderr
        lines = []
        while (line := self.lines.get(timeout=WAIT_S)) != "<eof>":
            lines.append(line)
        return lines


def test_spans_reach_a_non_blocking_stdout_whole(vllm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The pipe is non-blocking (as another process sharing it may leave it) and read only once the calls are done:
    each batch of spans waits for room, rather than losing what the pipe had none for."""
    _, upstream = vllm
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG)
    env = {"UPSTREAM": upstream, "STORE": str(tmp_path / "l.db")}
    serve = Piped(config, env, non_blocking=True, stderr_too=False, read_at_once=False)
    try:
        traces = load(serve.url, 40)
    finally:
        lines = serve.stop()
    spanned, broken = spans_of(lines)
    assert not broken, f"{len(broken)} lines broken, the first: {broken[0][:300]}"
    assert sorted(spanned) == sorted(traces)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_spans_and_log_lines_on_one_stream_reach_it_whole(vllm, tmp_path: Path, workers: str) -> None:  # type: ignore[no-untyped-def]
    """stderr on stdout's pipe (`2>&1`, systemd's default `StandardError=inherit`), JSON access lines: a span and a log
    line take turns too, in one process (its exporter's thread and its log writer's) and across workers."""
    _, upstream = vllm
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG + "logging: {format: json, access: true}\n")
    env = {"UPSTREAM": upstream, "STORE": str(tmp_path / "l.db")}
    serve = Piped(config, env, "--workers", workers, non_blocking=False, stderr_too=True, read_at_once=True)
    try:
        traces = load(serve.url, 300)
    finally:
        lines = serve.stop()
    spans, logged, broken = [], [], []
    for line in lines:
        try:
            parsed = orjson.loads(line)
        except orjson.JSONDecodeError:
            broken.append(line)
            continue
        (spans if "attributes" in parsed else logged).append(line)
    assert not broken, f"{len(broken)} lines broken, the first: {broken[0][:300]}"
    spanned, pieced = spans_of(spans)
    assert not pieced and sorted(spanned) == sorted(traces)
    accessed = [orjson.loads(line) for line in logged]
    assert sorted(line["trace_id"] for line in accessed if line["logger"] == "lineage_proxy.access") == sorted(traces)


def test_a_stdout_nobody_reads_holds_no_call_nor_the_stop_and_its_spans_are_said(vllm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A stdout pipe nobody reads holds the export thread in its write (it waits for room): the calls, `/metrics` and
    SIGTERM's stop go on, the stop within `export_timeout_s`, and its line counts the spans not written and says
    why. It said `the collector is slow or not answering`, where the console exporter has no collector."""
    _, upstream = vllm
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG.replace("{http: 127.0.0.1:0}", "{http: 127.0.0.1:0, admin: 127.0.0.1:0}")
                      .replace("{exporter: console}", "{exporter: console, export_timeout_s: 1}"))  # fmt: skip
    env = {"UPSTREAM": upstream, "STORE": str(tmp_path / "l.db")}
    serve = Piped(config, env, non_blocking=False, stderr_too=False, read_at_once=False)
    try:
        traces = load(serve.url, 40)  # ~580 KB of spans for a pipe of 4096 bytes
        metrics = httpx.get(f"http://{serve.addresses['admin']}/metrics", timeout=WAIT_S).text
        assert "lineage_proxy_spans_exported_total 0\n" in metrics
        serve.proc.send_signal(signal.SIGTERM)
        stderr = serve.proc.communicate(timeout=WAIT_S)[1].decode()  # stdout still unread
    finally:
        serve.reading.set()
        if serve.proc.poll() is None:
            serve.proc.kill()
    assert len(traces) == 40
    assert serve.proc.returncode == 0, stderr
    lost = [line for line in stderr.splitlines() if "not exported at shutdown" in line]
    assert len(lost) == 1, stderr
    assert lost[0].endswith(
        "40 spans not exported at shutdown: an export was still in flight after 1 s (stdout takes no more of them: "
        "nothing reads it, or too slowly)"
    ), lost[0]


def test_reloads_behind_a_stdout_nobody_reads_leave_no_batch_waiting(vllm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Each reload during a stdout stall stops the exporter, which gives up on its batch after `export_timeout_s` and
    counts it lost. A batch that was still waiting for its turn behind the one being written is then not written: each
    reload's thread waited there with its batch (up to 3 MiB) as long as the process lived, and wrote it, counted lost,
    once stdout was read again. Only the batch being written when the first stop gave up still goes out."""
    _, upstream = vllm
    config = tmp_path / "proxy.yaml"
    written = CONFIG.replace("{exporter: console}", "{exporter: console, export_timeout_s: 1, service_name: s0}")
    config.write_text(written)
    serve = Piped(config, {"UPSTREAM": upstream, "STORE": str(tmp_path / "l.db")}, non_blocking=False,
                  stderr_too=False, read_at_once=False)  # fmt: skip
    said: list[str] = []
    lost = threading.Condition()

    def pump() -> None:
        assert serve.proc.stderr is not None
        for line in serve.proc.stderr:
            with lost:
                said.append(line.decode())
                lost.notify_all()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()

    def stops_said() -> list[str]:
        return [line for line in said if "not exported at shutdown" in line]

    try:
        traces = load(serve.url, 1)  # its span's ~13 KB fill the pipe's 4096 bytes: its write waits, the stall
        for reload in range(1, 4):
            config.write_text(written.replace("service_name: s0", f"service_name: s{reload}"))
            serve.proc.send_signal(signal.SIGHUP)
            with lost:
                assert lost.wait_for(lambda: len(stops_said()) == reload, WAIT_S), "".join(said)  # noqa: B023
            traces += load(serve.url, 1)  # its span waits for its turn behind the stalled write
        serve.reading.set()
        serve.proc.send_signal(signal.SIGTERM)
        assert serve.proc.wait(WAIT_S) == 0
    finally:
        serve.reading.set()
        if serve.proc.poll() is None:
            serve.proc.kill()
    reader.join(WAIT_S)
    lines = []
    while (line := serve.lines.get(timeout=WAIT_S)) != "<eof>":
        lines.append(line)
    assert all(line.rstrip().endswith("1 span not exported at shutdown: an export was still in flight after 1 s "
                                      "(stdout takes no more of them: nothing reads it, or too slowly)")
               for line in stops_said()), stops_said()  # fmt: skip
    spanned, broken = spans_of(lines)
    assert not broken
    # the first, being written as the first stop gave up on it, and the last, of the exporter the SIGTERM stopped as
    # stdout was read; the two between, counted lost by their stops, are not written as well
    assert sorted(spanned) == sorted([traces[0], traces[-1]]), (traces, spanned)

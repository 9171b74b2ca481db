"""`telemetry.exporter: console` writes one JSON line a span on stdout, each whole however long, as a log line is on
stderr (tests/test_logging.py). With `--workers 2` both workers write to the same pipe, which takes a write whole only
up to PIPE_BUF (4096 bytes): spans of more (64 labels of 100 characters, ~14.5 KB) came out in each other's pieces,
32 to 72 of 300 lines no span (some of them parseable, two spans' pieces making one with 63 labels). On a stdout pipe
another process left non-blocking, Python's buffered stdout wrote what the pipe had room for and dropped the rest
without raising: 0 of 40 spans whole, one line of a piece, all 40 counted exported, nothing logged."""

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


def test_spans_reach_a_non_blocking_stdout_whole(vllm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The pipe is non-blocking (as another process sharing it may leave it) and read only once the calls are done:
    each batch of spans waits for room, rather than losing what the pipe had none for."""
    _, upstream = vllm
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG)
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    fcntl.fcntl(write_end, fcntl.F_SETFL, fcntl.fcntl(write_end, fcntl.F_GETFL) | os.O_NONBLOCK)
    env = {**os.environ, "UPSTREAM": upstream, "STORE": str(tmp_path / "l.db")}
    proc = subprocess.Popen([sys.executable, "-m", "proxy", "serve", "--config", str(config)], stdout=write_end,
                            stderr=subprocess.PIPE, env=env)  # fmt: skip
    os.close(write_end)
    lines: queue.Queue[bytes] = queue.Queue()
    reading = threading.Event()

    def pump() -> None:
        with os.fdopen(read_end, "rb") as out:
            lines.put(out.readline())  # the ready line
            reading.wait()
            for line in out:
                lines.put(line)
        lines.put(b"<eof>")

    threading.Thread(target=pump, daemon=True).start()
    stderr = b""
    try:
        ready = lines.get(timeout=WAIT_S).decode()
        assert ready.startswith("lineage-proxy ready "), ready
        url = "http://" + dict(part.split("=", 1) for part in ready.split()[2:])["http"]
        traces = load(url, 40)
    finally:
        reading.set()
        proc.send_signal(signal.SIGTERM)
        stderr = proc.communicate(timeout=WAIT_S)[1]
    assert proc.returncode == 0, stderr.decode()
    got = []
    while (line := lines.get(timeout=WAIT_S)) != b"<eof>":
        got.append(line.decode().rstrip("\n"))
    spanned, broken = spans_of(got)
    assert not broken, f"{len(broken)} lines broken, the first: {broken[0][:300]}"
    assert sorted(spanned) == sorted(traces)

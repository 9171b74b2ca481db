"""A stderr nobody reads (a log shipper stalled, a container runtime whose log disk is full) fills its pipe. The
proxy wrote its log lines, access lines included, on the event loop, so its next write waited for a reader: every
call hung (the clients timed out), `/metrics` did not answer and SIGTERM did not stop it. Lines are now written by
a thread of their own, at most `proxy.logs.BUFFER_BYTES` held; past that they are dropped and said."""

from __future__ import annotations

import fcntl
import logging
import os
import re
import select
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from proxy import logs
from tests.servers.vllm_like import SERVED

CONFIG = """
listen:
  http: 127.0.0.1:0
upstreams:
  - name: vllm
    url: UPSTREAM
routes:
  - model: "*"
    upstream: vllm
policy:
  anonymous: allow
  default_purpose: assistant
lineage:
  store: STORE
logging:
  access: true
"""


@pytest.mark.parametrize("workers", ["1", "2"])
def test_calls_are_served_while_nothing_reads_stderr(vllm, tmp_path: Path, workers: str) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    config = tmp_path / "proxy.yaml"
    store = tmp_path / "l.db"
    config.write_text(CONFIG.replace("UPSTREAM", upstream).replace("STORE", str(store)))
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)  # ~10 access lines fill it
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy", "serve", "--config", str(config), "--workers", workers],
        stdout=subprocess.PIPE, stderr=write_end, text=True,
    )  # fmt: skip
    os.close(write_end)
    received: list[bytes] = []
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        assert ready.startswith("lineage-proxy ready "), ready
        url = "http://" + ready.split("http=")[1].split()[0]
        calls = 60  # ~25 KB of access lines: six times what the pipe holds, nothing read from it
        body = {"model": SERVED, "messages": [{"role": "user", "content": "hi"}]}
        traces = []
        with httpx.Client(timeout=10) as client:
            for _ in range(calls):
                reply = client.post(f"{url}/v1/chat/completions", json=body)  # hung here: ReadTimeout
                assert reply.status_code == 200
                traces.append(reply.headers["x-trace-id"])
            assert client.get(f"{url}/metrics").status_code == 200

        def read() -> None:
            while chunk := os.read(read_end, 65536):
                received.append(chunk)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()  # the log shipper is back: every line held reaches it, none lost
        proc.terminate()
        assert proc.wait(30) == 0
        reader.join(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(read_end)
    text = b"".join(received).decode()
    access = [line for line in text.splitlines() if "lineage_proxy.access" in line]
    assert sorted(t for t in traces if any(t in line for line in access)) == sorted(traces)
    assert "chain head at stop" in text


def test_lines_past_the_bound_are_dropped_and_said(monkeypatch: pytest.MonkeyPatch) -> None:
    """While the pipe takes nothing, lines are held up to BUFFER_BYTES; the rest are dropped, and a line says how
    many once it takes lines again. Logging never waits for the reader."""
    monkeypatch.setattr(logs, "BUFFER_BYTES", 16384, raising=False)  # raising: absent before it was bounded
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    stream = os.fdopen(write_end, "w")
    handler = logs.WholeLineHandler(stream)
    handler.setFormatter(logs.TextFormatter())
    logger = logging.getLogger("lineage_proxy.test_stalled")
    logger.propagate = False
    logger.addHandler(handler)
    done = threading.Event()

    def emit() -> None:
        for i in range(400):  # ~40 KB: the pipe's 4 KB, the 16 KB held, the rest dropped
            logger.warning("line %03d %s", i, "x" * 40)
        done.set()

    threading.Thread(target=emit, daemon=True).start()
    try:
        assert done.wait(30), "logging waited for stderr's reader"
        received = b""
        while _accounted(received) < 400:  # every line written or said dropped (drops can be said in several lines)
            assert select.select([read_end], [], [], 30)[0], (
                f"lines neither written nor said dropped: {received[-300:]!r}"
            )
            chunk = os.read(read_end, 65536)
            assert chunk, received[-300:]
            received += chunk
    finally:
        os.close(read_end)  # first: a write still blocked on the pipe (before the fix) ends, EPIPE
        logger.removeHandler(handler)
        handler.flush()
        stream.close()
    lines = received.decode().splitlines()
    kept = [line for line in lines if " line " in line]
    assert 100 < len(kept) < 400 and kept[0].endswith("line 000 " + "x" * 40)
    said = [line for line in lines if "were dropped" in line]
    assert said and all("log lines (access lines among them) were dropped" in line for line in said)
    assert _accounted(received) == 400


def _accounted(received: bytes) -> int:
    """Lines written plus lines said dropped, in what the pipe gave so far (whole lines only)."""
    text = received.decode(errors="replace")
    whole = text[: text.rfind("\n") + 1]
    dropped = sum(int(n) for n in re.findall(r"(\d+) log lines \(access lines among them\) were dropped", whole))
    return dropped + sum(1 for line in whole.splitlines() if " line " in line)

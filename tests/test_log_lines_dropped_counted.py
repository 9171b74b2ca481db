"""Log lines dropped because nothing read stderr (`proxy.logs.BUFFER_BYTES` held, the rest dropped) were said in a log
line only, once stderr took lines again: while it was stalled, nothing showed it. They are now counted on /metrics as
they are dropped, each process's (a `--workers` supervisor's too), summed whichever worker a scrape reaches."""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.servers.vllm_like import SERVED
from tests.test_workers import WAIT_S
from tests.test_workers_killed_losses_said import config_file, samples

ROOT = Path(__file__).resolve().parent.parent

# `proxy.logs` is not compiled: its bound is set small here, in the supervisor before it forks its workers
BOUNDED = (
    "import sys\nfrom proxy import logs\nlogs.BUFFER_BYTES = 16384\nfrom proxy.cli import main\n"
    "print('proxy from', logs.__file__, file=sys.stderr)\nraise SystemExit(main(sys.argv[1:]))\n"
)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_log_lines_dropped_show_on_metrics_while_stderr_is_stalled(vllm, tmp_path: Path, workers: str) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    args = [
        sys.executable,
        "-c",
        BOUNDED,
        "serve",
        "--config",
        str(config_file(tmp_path, upstream)),
        "--workers",
        workers,
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=write_end, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    os.close(write_end)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.extend(iter(lambda: os.read(read_end, 65536), b"")), daemon=True)
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        assert ready.startswith("lineage-proxy ready "), ready
        fields = dict(part.split("=", 1) for part in ready.split()[2:])
        body = {"model": SERVED, "messages": [{"role": "user", "content": "hi"}]}
        for _ in range(300):  # ~70 KB of access lines: the pipe's 4 KB, 16 KB held by each process, the rest dropped
            assert httpx.post(f"http://{fields['http']}/v1/chat/completions", json=body, timeout=10).status_code == 200
        # nothing read stderr yet: /metrics shows the lines dropped now, not once it is read again
        deadline, dropped = time.monotonic() + WAIT_S, 0.0
        while dropped == 0 and time.monotonic() < deadline:
            dropped = samples(fields["admin"]).get(("lineage_proxy_log_lines_dropped_total", ()), 0.0)
        assert dropped > 0  # before: no such series
        reader.start()  # the log shipper is back: each process says what it dropped; /metrics has the same sum

        def said() -> int:
            text = b"".join(received).decode(errors="replace")
            return sum(int(n) for n in re.findall(r"(\d+) log lines \(access lines among them\) were dropped", text))

        deadline, counted = time.monotonic() + WAIT_S, -1.0
        while time.monotonic() < deadline:
            counted = samples(fields["admin"]).get(("lineage_proxy_log_lines_dropped_total", ()), -1.0)
            if counted == said() > 0:
                break
        proc.terminate()
        assert proc.wait(30) == 0
        reader.join(10)
        text = b"".join(received).decode(errors="replace")
        assert f"proxy from {ROOT}" in text, text[:500]  # this tree's proxy, not another install
        assert counted == said() >= dropped, (counted, said(), dropped)  # every line said dropped was counted
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if reader.ident is not None:
            reader.join(10)
        os.close(read_end)

"""A console exporter whose stdout fails (its reader gone: EPIPE) says so in the words of a stdout, where it said
`dropping spans until the collector is back` and, at the stop, `the collector has failed since before the stop`: the
console exporter has no collector."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from tests.servers.vllm_like import SERVED

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: vllm, url: "UPSTREAM"}]
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
telemetry: {exporter: console}
"""
WAIT_S = 30.0


def test_a_console_export_whose_stdout_fails_names_stdout_not_a_collector(vllm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG.replace("UPSTREAM", upstream))
    proc = subprocess.Popen([sys.executable, "-m", "proxy", "serve", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    lines: list[str] = []
    failed = threading.Event()

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "span export failed" in line:
                failed.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        ready = proc.stdout.readline()
        assert ready.startswith("lineage-proxy ready http="), ready
        url = f"http://{ready.split()[2].split('=', 1)[1]}"
        proc.stdout.close()  # the reader gone: the next write to stdout fails with EPIPE
        reply = httpx.post(f"{url}/v1/chat/completions", timeout=WAIT_S,
                           json={"model": SERVED, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
        assert reply.status_code == 200
        assert failed.wait(WAIT_S), "".join(lines)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(WAIT_S)
        reader.join(WAIT_S)
    said = "".join(lines)
    assert code == 0, said
    failure = next(line for line in lines if "span export failed" in line)
    assert failure.rstrip().endswith("; dropping spans until stdout takes them again"), failure
    assert "BrokenPipeError" in failure, failure
    stop = [line for line in lines if "not exported at shutdown" in line]
    assert len(stop) == 1, said
    assert "1 span not exported at shutdown: stdout has refused them since before the stop (BrokenPipeError" in stop[0]
    assert "collector" not in said, said

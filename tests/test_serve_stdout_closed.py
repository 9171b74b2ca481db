"""`serve` started with no stdout (`1>&-`: Python's `sys.stdout` is None) stops on SIGTERM with exit 0, as it does
otherwise; before, its exit flushed `sys.stdout` and exited 1 with an AttributeError's traceback. Console spans,
which then have nowhere to go, fail in a line that says why, counted as any failed export."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from tests.harness import dead_port
from tests.servers.vllm_like import SERVED

CONFIG = """
listen: {http: "127.0.0.1:PORT"}
upstreams: [{name: vllm, url: "UPSTREAM"}]
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
telemetry: {exporter: console}
lineage: {store: "STORE"}
"""


def test_a_serve_without_stdout_stops_with_0_and_says_where_its_spans_went(vllm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    port = dead_port()
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG.replace("PORT", str(port)).replace("UPSTREAM", upstream)
                      .replace("STORE", str(tmp_path / "l.db")))  # fmt: skip
    command = f"exec {sys.executable} -m proxy serve --config {config} 1>&-"
    proc = subprocess.Popen(["bash", "-c", command], stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    lines: list[str] = []
    serving = threading.Event()

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if " serving http=" in line:
                serving.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        assert serving.wait(30), "".join(lines)
        reply = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=10,
                           json={"model": SERVED, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
        assert reply.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        reader.join(10)
    said = "".join(lines)
    assert code == 0, said
    assert "Traceback" not in said
    assert "the proxy was started with no stdout (1>&-): console spans have nowhere to go" in said
